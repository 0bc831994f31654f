"""The Test-time fix page (AppTest) and its untrusted-upload handling.

The workspace is the UI tests' small demo plus a "new clinic": DermSynth with ink planted on
nevi instead of melanomas (300 images, seed 77), which the page offers as a data set to pick
the shots from.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from concepts import DataError
from store import EventFilter, Store
from tests.support.clinic import CLINIC_SPEC, build_clinic, proposing_draw
from tests.support.ui import APP
from tests.support.workspaces import WorkspaceFactory
from workbench.auth._config import ENV_ROLE, ENV_WORKSPACE
from workbench.ui._fix import (
    MAX_FILES,
    read_labels_csv,
    shots_from_upload,
    unpack_zip,
)
from workbench.ui._nav import PAGES

TIMEOUT = 300
CLASSES = ("melanoma", "nevus")


@pytest.fixture(scope="module")
def clinic_workspace(workspace_factory: WorkspaceFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return workspace_factory.copy(CLINIC_SPEC, build_clinic(workspace_factory), tmp_path_factory.mktemp("fix_ws") / "ws")


def _page(monkeypatch: pytest.MonkeyPatch, root: Path, role: str) -> AppTest:
    monkeypatch.setenv(ENV_WORKSPACE, str(root))
    monkeypatch.setenv(ENV_ROLE, role)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    at.switch_page(PAGES["fix"].script)
    return at.run()


def _plain(text: str) -> str:
    """Markdown-escaped text (``workbench.ui._text.md``) as displayed."""
    return re.sub(r"\\(.)", r"\1", text)


def _table(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page with ``column``."""
    for d in at.dataframe:
        if column in d.value.columns:
            return d.value
    raise AssertionError(f"no table with a {column!r} column")


def _no_crash(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _propose(at: AppTest, seed: int) -> AppTest:
    at.selectbox(key="fix_ds").set_value("clinic").run()
    at.selectbox(key="fix_split").set_value("train").run()
    at.number_input(key="fix_k").set_value(4)
    at.number_input(key="fix_seed").set_value(seed)
    at.selectbox(key="fix_layer").set_value("pool")
    at.button(key="fix_propose_ds").click().run()
    _no_crash(at)
    assert not at.error, [e.value for e in at.error]
    return at


def test_engineer_picks_shots_adjusts_and_saves_a_fix(ui_env: pytest.MonkeyPatch, clinic_workspace: Path) -> None:
    seed = proposing_draw(clinic_workspace)
    at = _propose(_page(ui_env, clinic_workspace, "engineer"), seed)
    assert at.title[0].value == "Test-time fix"
    proposed = [s.value for s in at.success if "Proposed:" in s.value]
    assert proposed, [s.value for s in at.success]
    edits = _table(at, "leave-one-out stability")
    assert {"edit", "leave-one-out stability", "expected gain (pts)", "90% interval"} <= set(edits.columns)
    metrics = _table(at, "Δ points")
    assert any(v.startswith("held-out") for v in metrics["images"])
    assert any(v.startswith("source") for v in metrics["images"])

    # the what-if recomputes when a strength moves: strength 0/1 (neutral) leaves nothing to save
    keys = {s.key: s.label for s in at.slider if s.key and s.key.startswith("fix_s_")}
    assert keys
    for key, label in keys.items():
        at.slider(key=key).set_value(0.0 if label.startswith("mask") else 1.0)
    at.run()
    _no_crash(at)
    assert any("model is unchanged" in i.value for i in at.info)
    neutral = _table(at, "Δ points")
    assert (neutral["before"] == neutral["after"]).all()
    assert "Save fix" not in [b.label for b in at.button]
    first, label = next(iter(keys.items()))
    at.slider(key=first).set_value(1.0 if label.startswith("mask") else 2.0).run()  # one edit back
    _no_crash(at)
    assert any("Fix: " in _plain(c.value) for c in at.caption)

    at.button(key="FormSubmitter:fix_save_form-Save fix").click().run()
    assert any("rationale" in e.value.lower() for e in at.error)
    s = Store.for_workspace(clinic_workspace)
    assert not s.events(EventFilter(action="fix_recorded"))
    at.text_area(key="fix_rationale").input("Nevi carry ink at this clinic; the model reads ink as melanoma.")
    at.button(key="FormSubmitter:fix_save_form-Save fix").click().run()
    _no_crash(at)
    fixes = s.events(EventFilter(action="fix_recorded"))
    assert len(fixes) == 1
    ev = fixes[0]
    assert ev.actor_role == "engineer" and str(ev.intervention_id).startswith("fix-")
    assert ev.rationale == "Nevi carry ink at this clinic; the model reads ink as melanoma."
    ev_json = ev.evidence or {}
    assert ev_json["few_shot"]["k"] == 4 and len(ev_json["few_shot"]["cases"]) == 8
    assert all(len(c["sha256"]) == 64 for c in ev_json["few_shot"]["cases"])
    assert ev_json["layer"] == "pool" and ev_json["evaluated_on"] == "held_out"
    assert "balanced_accuracy" in (ev.metric_deltas or {})
    assert (ev.spec or {}).get("edits")
    assert s.verify().ok
    assert any(f"as {ev.intervention_id}" in _plain(x.value) for x in at.success)
    assert any(str(ev.intervention_id) in _plain(x.label) for x in at.expander)
    assert "Patched model (zip)" in [b.label for b in at.download_button]

    from concepts import Workspace
    from store import Actor
    from workbench.ui._fix import export_patched

    data = export_patched(Workspace(clinic_workspace), Actor.from_os_user("engineer"), str(ev.intervention_id))
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert any(n.endswith("spec.json") or n.endswith(".json") for n in names)
    exported = s.events(EventFilter(action="model_exported"))
    assert [e.intervention_id for e in exported] == [ev.intervention_id]


def test_auditor_explores_but_cannot_save(ui_env: pytest.MonkeyPatch, clinic_workspace: Path) -> None:
    seed = proposing_draw(clinic_workspace)
    at = _propose(_page(ui_env, clinic_workspace, "auditor"), seed)
    assert "Save fix" not in [b.label for b in at.button]
    assert "Patched model (zip)" not in [b.label for b in at.download_button]
    assert any("Read-only" in i.value for i in at.info)


# ---------------------------------------------------------------------------- untrusted uploads
def _png(seed: int, size: int = 40) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_labels_csv_and_zip_are_validated() -> None:
    assert read_labels_csv(b"file,label\nsub/a.png,nevus\nb.png,melanoma\n") == {"a.png": "nevus", "b.png": "melanoma"}
    with pytest.raises(DataError, match="file,label"):
        read_labels_csv(b"name,class\na.png,nevus\n")
    with pytest.raises(DataError, match="UTF-8"):
        read_labels_csv(b"\xff\xfe\x00bad")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../etc/a.png", _png(0))  # folders (and traversal) are ignored
        zf.writestr("x/labels.csv", "file,label\na.png,nevus\n")
        zf.writestr("run.sh", "rm -rf /")  # neither an image nor a CSV: skipped
    files, labels = unpack_zip(buf.getvalue())
    assert [n for n, _ in files] == ["a.png"] and labels == {"a.png": "nevus"}
    with pytest.raises(DataError, match="not a readable zip"):
        unpack_zip(b"PK\x03\x04 broken")
    nolabels = io.BytesIO()
    with zipfile.ZipFile(nolabels, "w") as zf:
        zf.writestr("a.png", _png(0))
    with pytest.raises(DataError, match="labels CSV"):
        unpack_zip(nolabels.getvalue())


def test_uploaded_shots_are_decoded_safely_and_labels_checked() -> None:
    files = [(f"{c}{i}.png", _png(10 * j + i)) for j, c in enumerate(CLASSES) for i in range(3)]
    labels = {n: n.rstrip("0123456789.png") for n, _ in files}
    shots = shots_from_upload(files, labels, CLASSES, 32, k=2, seed=0)
    assert shots.images.shape == (6, 32, 32, 3) and len(shots.few) == 4 and len(shots.rest) == 2
    assert shots.source == "upload" and len(set(shots.sha256)) == 6
    assert shots_from_upload(files, labels, CLASSES, 32, k=2, seed=0).shots_id == shots.shots_id
    with pytest.raises(DataError, match="unknown label 'mole'"):
        shots_from_upload(files, {**labels, "nevus0.png": "mole"}, CLASSES, 32, k=2)
    with pytest.raises(DataError, match="has no label"):
        shots_from_upload(files, {k: v for k, v in labels.items() if k != "nevus1.png"}, CLASSES, 32, k=2)
    with pytest.raises(DataError, match=r"needs 3|has 3"):
        shots_from_upload(files, labels, CLASSES, 32, k=4)
    bad = [*files[:-1], ("nevus2.png", b"\x89PNG\r\n\x1a\n not really")]
    with pytest.raises(DataError, match=r"'nevus2\.png' cannot be used") as err:
        shots_from_upload(bad, labels, CLASSES, 32, k=2)
    assert "\n" not in str(err.value) and "/tmp" not in str(err.value)
    with pytest.raises(DataError, match="not an image"):
        shots_from_upload([*files[:-1], ("nevus2.eps", b"%!PS")], {**labels, "nevus2.eps": "nevus"}, CLASSES, 32, k=2)
    with pytest.raises(DataError, match="limit"):
        shots_from_upload([(f"{i}.png", b"") for i in range(MAX_FILES + 1)], {}, CLASSES, 32, k=1)
    with pytest.raises(DataError, match="two classes"):
        shots_from_upload(files[:3], labels, CLASSES, 32, k=1)
