"""Fuzz the workspace files the CLI reads (issue #13, "done when"): corrupted data-set files and
hostile class labels end in success or one ``error:`` line — never a traceback — and the store
is left intact.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from concepts import DataError, Dataset, Workspace
from concepts.data import name_problem
from tests.support.toy_workspace import cli_app, make_workspace, store_digest

runner = CliRunner()
FILES = ("dataset.json", "cases.parquet", "images.npy")
FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("fuzz") / "ws").root


def _one_line_or_ok(output: str, code: int) -> None:
    assert "Traceback" not in output, output
    if code != 0:
        lines = [ln for ln in output.splitlines() if ln.strip()]
        assert code == 1 and len(lines) == 1 and lines[0].startswith("error:"), output


@st.composite
def corruption(draw: st.DrawFn) -> tuple[str, str, int, bytes]:
    file = draw(st.sampled_from(FILES))
    how = draw(st.sampled_from(["flip", "truncate", "replace", "insert"]))
    return file, how, draw(st.integers(0, 10**6)), draw(st.binary(min_size=1, max_size=16))


def _apply(path: Path, how: str, at: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    i = at % max(len(raw), 1)
    if how == "flip":
        for k, b in enumerate(data):
            raw[(i + 97 * k) % len(raw)] ^= b or 0xFF
    elif how == "truncate":
        del raw[i:]
    elif how == "replace":
        raw[i : i + len(data)] = data
    else:
        raw[i:i] = data
    path.write_bytes(bytes(raw))


@FUZZ
@given(c=corruption())
def test_corrupt_workspace_files(template: Path, tmp_path_factory: pytest.TempPathFactory,
                                 c: tuple[str, str, int, bytes]) -> None:
    file, how, at, data = c
    root = tmp_path_factory.mktemp("case") / "ws"
    shutil.copytree(template, root)
    ws = Workspace(root)
    before = store_digest(ws)
    _apply(ws.datasets_dir / "toy" / file, how, at, data)
    try:
        Dataset.load(ws.datasets_dir / "toy")
    except DataError as exc:
        assert "\n" not in str(exc)
    r = runner.invoke(cli_app(), ["confounders", "--table", "cooccurrence", "--workspace", str(root)])  # type: ignore[arg-type]
    _one_line_or_ok(r.output, r.exit_code)
    assert store_digest(ws) == before


_LABEL_CHARS = st.characters(codec="utf-8", exclude_characters=',"\r\n')
_HOSTILE = st.sampled_from(["NaN", "nan", "None", "", " ", "mel\u202eanoma", "nev\u200bus",
                            "\u2067x\u2069", "a\x00b", "n/a", "\ufeffmel"])


@FUZZ
@given(label=st.one_of(_HOSTILE, st.text(_LABEL_CHARS, min_size=0, max_size=12)))
def test_hostile_labels_through_import(template: Path, tmp_path_factory: pytest.TempPathFactory,
                                       label: str) -> None:
    root = tmp_path_factory.mktemp("imp") / "ws"
    shutil.copytree(template, root)
    ws = Workspace(root)
    before = store_digest(ws)
    data = root.parent / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(data / f"c{i}.png")
    rows = ["case_id,path,label"] + [f"c{i},c{i}.png,{label if i == 0 else 'nevus'}" for i in range(4)]
    (data / "cases.csv").write_bytes(("\n".join(rows) + "\n").encode("utf-8"))
    r = runner.invoke(cli_app(), ["import", "folder", str(data / "cases.csv"), "--workspace", str(root),  # type: ignore[arg-type]
                               "--name", "imp", "--image-size", "8"])
    _one_line_or_ok(r.output, r.exit_code)
    stripped = label.strip()
    if r.exit_code == 0:
        assert name_problem(stripped) == ""
        assert stripped in Dataset.load(ws.datasets_dir / "imp").classes
    elif name_problem(stripped) and stripped:
        assert not (ws.datasets_dir / "imp").exists()
    assert store_digest(ws) == before
