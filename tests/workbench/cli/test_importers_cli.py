"""``workbench import folder|isic|subfolders`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from concepts.data import Dataset
from workbench.cli._import import import_app

app = typer.Typer()
app.add_typer(import_app, name="import")
runner = CliRunner()


def _img(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    lines = ["case_id,label,hair,blue_whitish_veil,age"]
    for i in range(10):
        _img(root / f"c{i}.png", i)
        lines.append(f"c{i},{'mel' if i < 5 else 'nev'},{i % 2},{int(i < 3)},{50 + i}")
    (root / "cases.csv").write_text("\n".join(lines) + "\n")
    return root


def _ok(args: list[str]) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, (res.stdout, res.stderr)
    return res.stdout


def _fails(args: list[str]) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == 1, (res.stdout, res.stderr)
    err = res.stderr
    assert err.startswith("error: ")
    assert err.count("\n") == 1  # exactly one line
    assert "Traceback" not in res.output
    return err


def test_folder_summary(data: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    out = _ok([
        "import", "folder", str(data / "cases.csv"), "--workspace", str(ws), "--name", "mine",
        "--image-size", "16",
    ])
    ds = Dataset.load(ws / "datasets" / "mine")
    assert len(ds) == 10 and ds.images.shape[1] == 16
    assert "Imported 'mine': 10 cases" in out
    for word in ("train", "val", "test", "total", "mel", "nev"):
        assert word in out
    assert "concept columns:  blue_whitish_veil" in out
    assert "artifact columns: hair" in out
    assert "metadata columns: age" in out


def test_folder_options_and_json(data: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    csv_path = tmp_path / "elsewhere" / "t.csv"
    csv_path.parent.mkdir()
    csv_path.write_text(
        "id;diag;fold;shiny\n" + "".join(f"c{i};{'b' if i % 2 else 'a'};{'train' if i < 6 else 'test'};{i % 2}\n" for i in range(10))
    )
    out = _ok([
        "import", "folder", str(csv_path), "-w", str(ws), "-n", "opts", "--images", str(data),
        "--id-col", "id", "--label-col", "diag", "--split-col", "fold", "--classes", "b,a",
        "--concept-col", "shiny", "--delimiter", ";", "--image-size", "8", "--format", "json",
    ])
    summary = json.loads(out)
    assert summary["classes"] == ["b", "a"]
    assert summary["counts"] == {"b": {"train": 3, "test": 2}, "a": {"train": 3, "test": 2}}
    assert summary["concepts"] == ["shiny"]
    assert summary["splits"] == ["train", "test"]


def test_folder_errors_are_one_line(data: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    base = ["import", "folder", str(data / "cases.csv"), "-w", str(ws), "--image-size", "8"]
    err = _fails([*base, "--name", "x", "--classes", "mel"])
    assert "line 7, column 'label': label 'nev' is not one of ['mel']" in err
    assert "5 problems in 5 of 10 rows" in err
    assert not (ws / "datasets" / "x").exists()
    err = _fails([*base, "--name", "../escape"])
    assert "invalid data-set name" in err
    assert "--split-fractions" in _fails([*base, "--name", "x", "--split-fractions", "a,b"])
    bad_format = runner.invoke(app, [*base, "--name", "x", "--format", "xml"])  # a usage error, as everywhere
    assert bad_format.exit_code == 2 and "unknown format 'xml'" in bad_format.output
    assert not (ws / "datasets" / "x").exists()
    _ok([*base, "--name", "x"])
    assert "--overwrite" in _fails([*base, "--name", "x"])
    _ok([*base, "--name", "x", "--overwrite"])
    (data / "c4.png").write_bytes(b"not a png")
    err = _fails([*base, "--name", "y"])
    assert "c4.png" in err and "line 6" in err
    assert not (ws / "datasets" / "y").exists()


def test_missing_csv(tmp_path: Path) -> None:
    err = _fails(["import", "folder", str(tmp_path / "no.csv"), "-w", str(tmp_path), "-n", "x"])
    assert "CSV file not found" in err


def test_isic(tmp_path: Path) -> None:
    root = tmp_path / "isic"
    gt = ["image,MEL,NV,BKL"]
    art = ["image_id,hair,patches,gel_border"]
    for i in range(9):
        _img(root / "img" / f"ISIC_{i}.jpg", i)
        gt.append(f"ISIC_{i}," + ",".join("1.0" if j == i % 3 else "0.0" for j in range(3)))
        art.append(f"ISIC_{i},{i % 2},0,1")
    (root / "gt.csv").write_text("\n".join(gt) + "\n")
    (root / "art.csv").write_text("\n".join(art) + "\n")
    ws = tmp_path / "ws"
    out = _ok([
        "import", "isic", str(root / "gt.csv"), "--images", str(root / "img"), "-w", str(ws),
        "-n", "isic", "--binary", "--artifacts", str(root / "art.csv"), "--image-size", "8",
    ])
    assert "melanoma" in out and "non_melanoma" in out
    assert "artifact columns: hair, patch, gel_border" in out
    assert "metadata columns: diagnosis" in out
    ds = Dataset.load(ws / "datasets" / "isic")
    assert ds.classes == ("non_melanoma", "melanoma")
    summary = json.loads(_ok([
        "import", "isic", str(root / "gt.csv"), "--images", str(root / "img"), "-w", str(ws),
        "-n", "isic3", "--split", "test", "--image-size", "8", "--format", "json",
    ]))
    assert summary["counts"] == {"MEL": {"test": 3}, "NV": {"test": 3}, "BKL": {"test": 3}}
    (root / "gt.csv").write_text("\n".join([*gt, "ISIC_0,1,1,0"]) + "\n")
    err = _fails([
        "import", "isic", str(root / "gt.csv"), "--images", str(root / "img"), "-w", str(ws),
        "-n", "bad",
    ])
    assert "line 11" in err and "several diagnosis columns" in err
    assert "duplicate image id 'ISIC_0'" in err


def test_subfolders(tmp_path: Path) -> None:
    for i in range(6):
        _img(tmp_path / "imgs" / ("a" if i < 3 else "b") / f"{i}.png", i)
    ws = tmp_path / "ws"
    out = _ok(["import", "subfolders", str(tmp_path / "imgs"), "-w", str(ws), "-n", "sf", "--image-size", "8"])
    assert "Imported 'sf': 6 cases (class_folders)" in out
    assert "concept columns:  none" in out
    err = _fails(["import", "subfolders", str(tmp_path / "nope"), "-w", str(ws), "-n", "sf2"])
    assert "image folder not found" in err


def test_labels_are_not_rich_markup(tmp_path: Path) -> None:
    _img(tmp_path / "a.png", 0)
    (tmp_path / "t.csv").write_text("path,label,[b]x\na.png,[/weird],1\n")
    out = _ok(["import", "folder", str(tmp_path / "t.csv"), "-w", str(tmp_path / "ws"), "-n", "m", "--image-size", "8"])
    assert "[/weird]" in out and "[b]x" in out


def test_help_lists_the_commands() -> None:
    res = runner.invoke(app, ["import", "--help"])
    assert res.exit_code == 0
    for cmd in ("folder", "isic", "subfolders"):
        assert cmd in res.stdout


def test_import_derm7pt_command(tmp_path: Path) -> None:
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "derm7pt"
    app = typer.Typer()
    app.add_typer(import_app, name="import")
    r = CliRunner().invoke(
        app, ["import", "derm7pt", str(fixture), "--workspace", str(tmp_path), "--image-size", "32"]
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "datasets" / "derm7pt" / "dataset.json").is_file()
    bad = CliRunner().invoke(app, ["import", "derm7pt", str(tmp_path / "nowhere"), "--workspace", str(tmp_path)])
    assert bad.exit_code == 1
    assert "Traceback" not in bad.output
