"""Issue #13.10: corrupt data-set files give one-line errors, and the content hash is checked.

Every case corrupts one file of a small data set in a workspace and runs a CLI command that
loads it (``workbench confounders --table cooccurrence``, ``workbench serve``): exit code 1, one
``error:`` line, no traceback, and the workspace's store untouched.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from concepts import DataError, Dataset, Workspace
from concepts.data._dataset import _VERIFIED
from tests.support.toy_workspace import cli_app, make_workspace, store_digest

runner = CliRunner()


def _bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _garbage(p: Path) -> None:
    p.write_bytes(b"\x00garbage\xff" * 10)


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _json_list(p: Path) -> None:
    p.write_text("[1, 2, 3]")


def _json_no_classes(p: Path) -> None:
    d = json.loads(p.read_text())
    del d["classes"]
    p.write_text(json.dumps(d))


def _npy_pickle(p: Path) -> None:
    np.save(p, np.array([{"a": 1}] * 12, dtype=object), allow_pickle=True)


def _npy_float(p: Path) -> None:
    np.save(p, np.zeros((12, 8, 8, 3), dtype=np.float32))


def _npy_rows(p: Path) -> None:
    np.save(p, np.zeros((5, 8, 8, 3), dtype=np.uint8))


def _parquet_no_label(p: Path) -> None:
    pd.read_parquet(p).drop(columns=["label"]).to_parquet(p)


def _pixel_flip(p: Path) -> None:  # a valid file with other content: only the hash tells
    a = np.load(p)
    a[3, 2, 1, 0] ^= 0xFF
    np.save(p, a)
    _bump_mtime(p)


def _label_swap(p: Path) -> None:
    df = pd.read_parquet(p)
    df.loc[0, "label"] = "nev" if df.loc[0, "label"] == "mel" else "mel"
    df.to_parquet(p, index=False)
    _bump_mtime(p)


def _hash_removed(p: Path) -> None:
    d = json.loads(p.read_text())
    d["content_hash"] = ""
    p.write_text(json.dumps(d))


CORRUPTIONS: list[tuple[str, Callable[[Path], None], str]] = [
    ("cases.parquet", _garbage, "cannot read it"),
    ("cases.parquet", _truncate, "cannot read it"),
    ("cases.parquet", _empty, "cannot read it"),
    ("cases.parquet", _parquet_no_label, "lacks the column"),
    ("cases.parquet", _label_swap, "content hash"),
    ("dataset.json", _garbage, "cannot read it"),
    ("dataset.json", _empty, "cannot read it"),
    ("dataset.json", _json_list, "cannot read it"),
    ("dataset.json", _json_no_classes, "cannot read it"),
    ("dataset.json", _hash_removed, "no content_hash"),
    ("images.npy", _garbage, "cannot read it"),
    ("images.npy", _truncate, "cannot read it"),
    ("images.npy", _empty, "cannot read it"),
    ("images.npy", _npy_pickle, "cannot read it"),
    ("images.npy", _npy_float, "not uint8 images"),
    ("images.npy", _npy_rows, "rows but images.npy"),
    ("images.npy", _pixel_flip, "content hash"),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("integrity") / "ws").root


@pytest.mark.parametrize(("file", "corrupt", "message"), CORRUPTIONS,
                         ids=[f"{f}-{c.__name__.strip('_')}" for f, c, _ in CORRUPTIONS])
def test_corrupt_dataset_one_line_error(
    template: Path, tmp_path: Path, file: str, corrupt: Callable[[Path], None], message: str
) -> None:
    root = tmp_path / "ws"
    shutil.copytree(template, root)
    ws = Workspace(root)
    before = store_digest(ws)
    Dataset.load(ws.datasets_dir / "toy")  # fine, and remembered as verified
    corrupt(ws.datasets_dir / "toy" / file)
    with pytest.raises(DataError, match=message) as info:
        Dataset.load(ws.datasets_dir / "toy")
    assert "\n" not in str(info.value) and "re-import" in str(info.value)
    r = runner.invoke(cli_app(), ["confounders", "--table", "cooccurrence", "--workspace", str(root)])  # type: ignore[arg-type]
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output
    assert store_digest(ws) == before  # the store is intact


def test_serve_refuses_corrupt_dataset(template: Path, tmp_path: Path) -> None:
    """`workbench serve` verifies the data set before starting Streamlit."""
    import socket

    root = tmp_path / "ws"
    shutil.copytree(template, root)
    _pixel_flip(root / "datasets" / "toy" / "images.npy")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = runner.invoke(cli_app(), ["serve", "--workspace", str(root), "--port", str(port)])  # type: ignore[arg-type]
    assert r.exit_code == 1 and "content hash" in r.output and "Traceback" not in r.output, r.output


def test_verification_is_remembered_by_file_identity(template: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws" / "datasets" / "toy"
    shutil.copytree(template / "datasets" / "toy", root)
    ds = Dataset.load(root)
    assert any(k.root == str(root.resolve()) for k in _VERIFIED)
    ds.verify()  # remembered: no rehash
    _pixel_flip(root / "images.npy")  # new mtime: checked again
    with pytest.raises(DataError, match="content hash"):
        Dataset.load(root)
    assert Dataset.load(root, verify=False).images.shape[0] == 12  # explicit opt-out still loads
