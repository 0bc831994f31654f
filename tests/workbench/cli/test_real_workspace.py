"""A workspace that is not the demo is first-class (issue #11): ``workbench info`` (table and
JSON), the Overview page's figures from the stored evaluation, every page rendering on
``train/val/test`` splits with no DermSynth configuration, and what ``workbench train``
precomputes so that no page computes it on first open.

The workspace is the session fixture ``real_workspace`` (tests/conftest.py,
tests/conftest_realws.py): test-made images, ``workbench import folder``, ``workbench train``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from concepts import Workspace
from tests.support.realws import REAL_DATASET, REAL_MODEL
from tests.support.ui import APP
from workbench.auth._config import ENV_ROLE, ENV_WORKSPACE
from workbench.cli import app
from workbench.ui._nav import PAGES

runner = CliRunner()
TIMEOUT = 180


def _cli(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    return res.output


# ---------------------------------------------------------------------------- workbench info
def test_info_json_describes_a_trained_workspace(real_workspace: Path) -> None:
    data = json.loads(_cli("info", "-w", str(real_workspace), "--format", "json"))
    ds, model = data["dataset"], data["model"]
    assert data["demo"] is False
    assert ds["name"] == REAL_DATASET and ds["source"] == "folder"
    assert ds["splits"] == {"train": 48, "val": 24, "test": 24}  # as the test's CSV assigns them
    assert ds["classes"] == ["melanoma", "nevus"] and ds["artifacts"] == ["ink"]
    assert {"streaks", "blue_whitish_veil"} <= set(ds["concepts"])
    assert model["name"] == REAL_MODEL and model["architecture"] == "tiny-cnn"
    assert model["layers"] == ["conv2", "conv3", "pool"]
    assert model["how"]["origin"] == "train" and model["how"]["n_train"] == 48
    assert data["positive_class"] == "melanoma"
    head = data["headline"]
    assert head["split"] == "test" and head["n"] == 24  # evaluation split: test, not test_debiased
    assert head["worst_group"] is not None and "ink" in head["worst_group"]  # groups named from the ink column
    assert head["clean_accuracy"] is not None and head["n_clean"] == 24 - _n_inked(real_workspace, "test")
    assert "ink" in {c["name"] for c in data["concepts"]}
    comp = data["computed"]
    assert comp["tcav"]["done"] and comp["tcav"]["current"]
    assert comp["confounders"]["done"] and comp["clusters"]["current"]
    assert data["next"].startswith("workbench serve")


def _n_inked(root: Path, split: str) -> int:
    ds = Workspace(root).dataset()
    return int(ds.cases.loc[ds.cases["split"] == split, "ink"].sum())


def test_info_table_names_groups_and_next_step(real_workspace: Path) -> None:
    out = _cli("info", "-w", str(real_workspace))
    for text in ("Data set", REAL_DATASET, "train 48, val 24, test 24", "Active model", REAL_MODEL,
                 "workbench train: end to end", "sensitivity (melanoma)", "worst-group accuracy",
                 "/ without ink", "clean accuracy", "concept bank", "TCAV", "confounders", "clusters",
                 "next: workbench serve"):
        assert text in out, text


def test_info_says_what_to_run_next_on_an_empty_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    _cli("workspace", "init", "-w", str(ws))
    data = json.loads(_cli("info", "-w", str(ws), "--format", "json"))
    assert data["dataset"] is None and data["model"] is None and data["headline"] is None
    assert data["next"].startswith("workbench import")
    assert "no data set" in _cli("info", "-w", str(ws)) or "none" in _cli("info", "-w", str(ws))


def test_added_model_is_evaluated_and_precomputed(real_workspace: Path, tmp_path: Path) -> None:
    """A model from `models add` (trained elsewhere) gets the evaluation `train` stores."""
    import torch

    root = tmp_path / "ws"
    shutil.copytree(real_workspace, root)
    weights = tmp_path / "state.pt"
    torch.save(Workspace(root).model().module.state_dict(), weights)
    _cli("models", "add", str(weights), "--name", "mine", "-w", str(root), "--architecture", "tiny-cnn",
         "--image-size", "32", "--tcav-runs", "4")
    data = json.loads(_cli("info", "-w", str(root), "--format", "json"))
    assert data["model"]["name"] == "mine" and data["model"]["how"]["origin"] == "added"
    assert data["evaluation"]["source"] == "evaluated"
    assert set(data["evaluation"]["metrics"]) == {"test", "val"}
    assert data["headline"]["worst_group"] is not None
    assert data["computed"]["tcav"]["current"] and data["computed"]["clusters"]["current"]


# ---------------------------------------------------------------------------- precompute
def test_train_precomputes_what_the_pages_show(real_workspace: Path) -> None:
    from workbench.services._precompute import cached_confounders, cached_cooccurrence

    ws = Workspace(real_workspace)
    analysis = ws.manifest()["analysis"]
    assert analysis["evaluation"] is True and not analysis["notes"], analysis
    assert analysis["clusters"]["model_id"] == Workspace(real_workspace).model().model_id
    assert (ws.results_dir / "clusters.json").is_file()  # what `workbench name-cluster` reads
    cf = cached_confounders(ws)
    assert cf is not None and "ink" in set(cf["concept"])
    co = cached_cooccurrence(ws)
    assert co is not None and "ink" in set(co[0]["attribute"])
    assert analysis["concept_activations"]["sets"] == 4  # val and test, two classes each
    assert analysis["seconds"] > 0


def test_precomputed_confounders_go_stale_with_the_tcav_results(real_workspace: Path, tmp_path: Path) -> None:
    from workbench.services._precompute import cached_confounders

    root = tmp_path / "ws"
    shutil.copytree(real_workspace, root)
    ws = Workspace(root)
    assert cached_confounders(ws) is not None
    tcav = ws.results_dir / "tcav.parquet"
    import pandas as pd

    pd.read_parquet(tcav).head(1).to_parquet(tcav)  # other TCAV results: the report is recomputed
    assert cached_confounders(ws) is None


# ---------------------------------------------------------------------------- every page
def _open(monkeypatch: pytest.MonkeyPatch, root: Path, key: str, role: str = "dermatologist") -> AppTest:
    monkeypatch.setenv(ENV_WORKSPACE, str(root))
    monkeypatch.setenv(ENV_ROLE, role)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    at.switch_page(PAGES[key].script)
    return at.run()


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


#: What each page must show on the imported workspace (beyond its title).
_EXPECTED: dict[str, tuple[str, ...]] = {
    "overview": ("Headline metrics", "Worst group", "ink"),
    "concepts": ("Examples and concept maps",),
    "graph": (),
    "confounders": (),
    "cases": (),
    "interventions": (),
    "fix": (),
    "audit": ("History",),
}

@pytest.mark.parametrize(
    "key", list(PAGES))
def test_every_page_renders_on_an_imported_workspace(
    ui_env: pytest.MonkeyPatch, real_workspace: Path, tmp_path: Path, key: str,
) -> None:
    root = tmp_path / "ws"
    shutil.copytree(real_workspace, root)
    at = _open(ui_env, root, key)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == PAGES[key].title
    assert not at.error, [e.value for e in at.error]
    text = _texts(at)
    for expected in _EXPECTED[key]:
        assert expected in text, (key, expected)


def test_overview_headline_from_the_stored_evaluation(ui_env: pytest.MonkeyPatch, real_workspace: Path) -> None:
    at = _open(ui_env, real_workspace, "overview")
    labels = {m.label: m.value for m in at.metric}
    assert labels["Data set"] == REAL_DATASET and labels["Cases"] == "96"
    for label in ("Accuracy, validation", "Accuracy, test", "Sensitivity (melanoma)",
                  "Worst-group accuracy", "Clean accuracy"):
        assert labels[label].endswith("%"), label
    assert not any("debiased" in k for k in labels)  # no DermSynth vocabulary on a real data set
    text = _texts(at)
    assert "Worst group: **melanoma \\/ " in text or "Worst group: **nevus \\/ " in text  # md-escaped
    assert "workbench train" in text and "end to end" in text
    assert "on the test split (24 cases)" in text


def test_no_page_computes_the_confounder_report_or_cooccurrence_on_first_open(
    ui_env: pytest.MonkeyPatch, real_workspace: Path, tmp_path: Path,
) -> None:
    """Overview and Confounders use the report and co-occurrence tables `train` precomputed:
    computing them is made to fail, and the pages still show them."""
    import concepts.discovery._cooccurrence
    import graph
    import graph._confounders

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("computed on first open")

    root = tmp_path / "ws"
    shutil.copytree(real_workspace, root)
    for mod in (graph, graph._confounders):
        ui_env.setattr(mod, "workspace_confounders", refuse)
    for name in ("attribute_class_table", "attribute_pair_table"):
        ui_env.setattr(concepts.discovery._cooccurrence, name, refuse)
    at = _open(ui_env, root, "overview")
    assert not at.exception and not at.error, [e.value for e in at.error]
    at = _open(ui_env, root, "confounders")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.dataframe or "No confounder candidates" in _texts(at)


def test_evaluation_splits_use_the_data_sets_own_names() -> None:
    from workbench.services._summary import evaluation_splits

    assert evaluation_splits(["train", "val", "test"]) == ["test", "val"]
    assert evaluation_splits(["train", "val", "test_debiased"]) == ["test_debiased", "val"]  # the demo
    assert evaluation_splits(["train", "validation"]) == ["validation"]
    assert evaluation_splits(["test"]) == ["test"]  # an ISIC import put in one split
    assert evaluation_splits(["train", "holdout"]) == ["holdout"]
    assert evaluation_splits(["train"]) == ["train"]  # nothing else to evaluate on
