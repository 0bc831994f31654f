"""The whole mission through CLI commands only, on a small folder of real-looking images made here
(issue #11): workspace init -> import folder -> train -> tcav -> confounders -> clusters ->
name-cluster -> intervene (real-marker twins) -> apply --export -> predict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from workbench.cli import app

runner = CliRunner()
SIZE = 32
N = 90


def _run(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


def _json(*args: str) -> Any:
    out = _run(*args, "--format", "json")
    return json.loads(out[min(i for i in (out.find("["), out.find("{")) if i >= 0):])


def _stroke(rng: np.random.Generator) -> np.ndarray:
    """A violet pen stroke's mask: a slanted band at a random height."""
    m = np.zeros((SIZE, SIZE), bool)
    r0, slope = int(rng.integers(3, SIZE - 10)), float(rng.uniform(-0.2, 0.2))
    for x in range(2, SIZE - 2):
        y = int(r0 + slope * x)
        m[y : y + 3, x] = True
    return m


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 cases in train/val/test: melanomas darker; a violet stroke (with its mask file) on 70 %
    of the train/val melanomas and 10 % of the nevi, on half of every class in test; every test
    case has a real-marker twin (the stroke drawn on, or the clean original)."""
    src = tmp_path_factory.mktemp("flow") / "src"
    for sub in ("img", "mask", "twin"):
        (src / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N):
        mel = i % 3 == 0
        split = ("train", "train", "train", "val", "test")[(i // 3) % 5]
        img = np.empty((SIZE, SIZE, 3), np.uint8)
        img[:] = (205, 160, 135)
        img[9:23, 9:23] = (85, 55, 45) if mel else (150, 112, 92)
        img = np.clip(img.astype(int) + rng.integers(-18, 18, img.shape), 0, 255).astype(np.uint8)
        m = _stroke(rng)
        marked = img.copy()
        marked[m] = (120, 50, 165)
        p = 0.5 if split == "test" else (0.7 if mel else 0.1)
        ink = int(rng.random() < p)
        row = {"case_id": f"c{i}", "path": f"img/c{i}.png", "label": "melanoma" if mel else "nevus",
               "split": split, "ink": ink, "mask": "", "ink_twin": "", "blue": int(rng.random() < 0.5)}
        if ink:
            Image.fromarray((m * 255).astype(np.uint8)).save(src / "mask" / f"c{i}.png")
            row["mask"] = f"mask/c{i}.png"
        if split == "test":
            Image.fromarray(img if ink else marked).save(src / "twin" / f"c{i}.png")
            row["ink_twin"] = f"twin/c{i}.png"
        Image.fromarray(marked if ink else img).save(src / "img" / f"c{i}.png")
        rows.append(row)
    pd.DataFrame(rows).to_csv(src / "cases.csv", index=False)
    return src


@pytest.mark.slow
def test_the_mission_through_cli_commands_only(folder: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    _run("workspace", "init", "-w", str(ws))
    imp = _json("import", "folder", str(folder / "cases.csv"), "--name", "clinic", "-w", str(ws),
                "--concept-col", "blue", "--image-size", str(SIZE))
    assert imp["artifacts"] == ["ink"] and "ink_twin" in imp["metadata"]
    assert imp["active"] and _json("workspace", "show", "-w", str(ws))["dataset"] == "clinic"
    cases = pd.read_csv(folder / "cases.csv", keep_default_na=False)
    cases.drop(columns=["ink", "mask"]).to_csv(folder / "noink.csv", index=False)
    other = _json("import", "folder", str(folder / "noink.csv"), "--name", "noink", "-w", str(ws), "--no-active")
    assert not other["active"] and _json("workspace", "show", "-w", str(ws))["dataset"] == "clinic"

    tr = _json("train", "-w", str(ws), "--architecture", "tiny-cnn", "--epochs", "4", "--no-analyse")
    assert tr["model"] == "clinic-tiny-cnn" and set(tr["metrics"]) == {"val", "test"}
    assert tr["metrics"]["test"]["worst_group"] is not None  # groups from the ink column

    tcav = _json("tcav", "-w", str(ws), "--runs", "4")
    assert {(r["concept"], r["class"]) for r in tcav} >= {("ink", "melanoma"), ("blue", "melanoma")}
    for r in tcav:
        assert 0.0 <= r["score_mean"] <= 1.0 and 0.0 <= r["p_adjusted"] <= 1.0

    conf = _json("confounders", "-w", str(ws))
    ink = [r for r in conf if r["concept"] == "ink"]
    assert ink and {r["reliance_source"] for r in ink} <= {"flip_rate", "tcav", "none"}

    clusters = _json("clusters", "-w", str(ws), "--k", "2")
    assert clusters and {"cluster", "class", "suspicious"} <= set(clusters[0])
    _run("name-cluster", "--cluster", str(clusters[0]["cluster"]), "--name", "found", "-w", str(ws),
         "--no-record")
    assert "found" in {c["name"] for c in _json("concepts", "list", "-w", str(ws))}

    spec = tmp_path / "spec.json"
    rep = _json("intervene", "-w", str(ws), "--mask", "ink", "--method", "transplant", "--mask-level", "balanced",
                "--split", "test", "--twins", "ink_twin", "--no-tcav", "--spec-out", str(spec))
    fr = rep["reliance"]["flip_rates"]
    assert fr["ink"]["method"] == "pairs:ink_twin"
    assert fr["ink"]["n"] + fr["ink:remove"]["n"] == N // 5  # every test case has its real-marker twin
    assert rep["spec"]["edits"][0]["cav"]["method"] == "transplant"

    art = tmp_path / "patched"
    applied = _json("apply", "--model", str(ws / "models" / "clinic-tiny-cnn"), "--spec", str(spec),
                    "--out", str(art), "--export")
    assert applied["spec_id"] == rep["spec_id"] and (art / "program.pt2").is_file()

    # predict: the cases whose class the patch changes are the ones intervene reported as flipped
    test = cases[cases["split"] == "test"]
    images = [str(folder / p) for p in test["path"]]
    plain = _json("predict", "--model", str(ws / "models" / "clinic-tiny-cnn"), *images)
    patched = _json("predict", "--model", str(art), *images)
    assert [r["case"] for r in patched] == [Path(p).stem for p in test["path"]]
    changed = {a["case"] for a, b in zip(plain, patched, strict=True) if a["predicted"] != b["predicted"]}
    assert changed == {f["case_id"] for f in rep["flipped_cases"]}
    for r in patched:
        assert abs(sum(r["probabilities"].values()) - 1.0) < 1e-5
