"""`workbench intervene` on an imported folder of real-looking images (made here): flip rates
from user-supplied twins or a mask column, the positive class and the mask level."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from concepts import ClassifierModel, Workspace
from concepts.importers import import_folder

runner = CliRunner()
SIZE = 32


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    from workbench.cli import app

    return app


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 cases (train/test), a violet stroke on 40 % of them with a mask file; every test case
    has a twin image (the stroke added, or the clean original)."""
    root = tmp_path_factory.mktemp("real")
    src = root / "src"
    for sub in ("img", "mask", "twin"):
        (src / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        label = ("melanoma", "nevus")[i % 2]
        img = np.empty((SIZE, SIZE, 3), np.uint8)
        img[:] = (200, 150, 130)
        img[10:22, 10:22] = (90, 60, 50) if label == "melanoma" else (150, 110, 90)
        img = np.clip(img.astype(int) + rng.integers(-15, 15, img.shape), 0, 255).astype(np.uint8)
        m = np.zeros((SIZE, SIZE), bool)
        r0 = int(rng.integers(2, SIZE - 6))
        m[r0 : r0 + 3, 2 : SIZE - 2] = True
        marked = img.copy()
        marked[m] = (140, 60, 200)
        ink = int(rng.random() < 0.4)
        split = "test" if i % 3 == 0 else "train"
        row = {"case_id": f"c{i}", "path": f"img/c{i}.png", "label": label, "split": split, "ink": ink,
               "mask": "", "ink_twin": ""}
        if ink:
            Image.fromarray((m * 255).astype(np.uint8)).save(src / "mask" / f"c{i}.png")
            row["mask"] = f"mask/c{i}.png"
        if split == "test":
            Image.fromarray(img if ink else marked).save(src / "twin" / f"c{i}.png")
            row["ink_twin"] = f"twin/c{i}.png"
        Image.fromarray(marked if ink else img).save(src / "img" / f"c{i}.png")
        rows.append(row)
    pd.DataFrame(rows).to_csv(src / "cases.csv", index=False)
    w = Workspace(root / "ws").ensure()
    ds = import_folder(src / "cases.csv", w.datasets_dir / "real", image_size=SIZE)
    model = ClassifierModel.build("tiny-cnn", ds.classes, seed=0)
    model.save(w.models_dir / "real")
    w.update_manifest(dataset="real", model="real", model_dir="models/real", layers=["conv3", "pool"])
    return w.root


def _json(out: str) -> dict:  # type: ignore[type-arg]
    return json.loads(out[out.index("{"):])  # type: ignore[no-any-return]


def test_intervene_with_user_twins_and_positive_class(app: typer.Typer, ws: Path) -> None:
    res = runner.invoke(app, ["intervene", "-w", str(ws), "--mask", "ink", "--split", "test", "--no-tcav",
                              "--twins", "ink_twin", "--positive-class", "nevus", "--format", "json"])
    assert res.exit_code == 0, res.output
    d = _json(res.stdout)
    fr = d["reliance"]["flip_rates"]
    assert set(fr) == {"ink", "ink:remove"} and fr["ink"]["method"] == "pairs:ink_twin"
    assert fr["ink"]["n"] + fr["ink:remove"]["n"] == 20
    assert d["before"]["positive_class"] == "nevus"
    assert d["before"]["worst_group"] is not None and d["before"]["clean_accuracy"] is not None


def test_intervene_transplant_method_masks_and_levels(app: typer.Typer, ws: Path) -> None:
    res = runner.invoke(app, ["intervene", "-w", str(ws), "--mask", "ink", "--split", "test", "--no-tcav",
                              "--method", "transplant", "--masks", "mask", "--mask-level", "balanced",
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    d = _json(res.stdout)
    assert d["spec"]["edits"][0]["operation"] == "set"
    assert d["spec"]["edits"][0]["cav"]["method"] == "transplant"
    assert d["reliance"]["flip_rates"]["ink"]["method"] == "transplant:mask-column:mask"
    res = runner.invoke(app, ["intervene", "-w", str(ws), "--mask", "ink", "--split", "test", "--no-tcav",
                              "--layer", "best"])
    assert res.exit_code == 0, res.output
    assert "layer " in res.stdout and "direction accuracy" in res.stdout


def test_intervene_refuses_an_unknown_positive_class(app: typer.Typer, ws: Path) -> None:
    from workbench.cli._console import cli_errors

    res = runner.invoke(app, ["intervene", "-w", str(ws), "--mask", "ink", "--split", "test", "--no-tcav",
                              "--positive-class", "MEL"])
    assert res.exit_code != 0
    assert "positive class 'MEL' is not one of" in (res.output + str(res.exception))
    assert cli_errors is not None


def test_concept_from_twins_pastes_the_artifact_into_the_same_clean_cases(ws: Path) -> None:
    """`concepts add --twins-of ink`: positives are clean train cases with a donor's stroke pasted
    in, negatives the same cases untouched — the pairs differ inside the stroke only."""
    from concepts import ConceptBank
    from workbench.cli._concepts import concepts_app

    a = typer.Typer(pretty_exceptions_enable=False)
    a.add_typer(concepts_app, name="concepts")
    res = runner.invoke(a, ["concepts", "add", "ink_pasted", "-w", str(ws), "--twins-of", "ink",
                            "--group", "artifact", "--no-record"])
    assert res.exit_code == 0, res.output
    assert "paired clean originals" in res.output
    w = Workspace(ws)
    bank = ConceptBank.for_workspace(w)
    con = bank["ink_pasted"]
    assert con.twins and con.origin == "twins" and con.counterpart == "negative"
    ds = w.dataset()
    train = ds.cases[ds.cases["split"] == "train"]
    assert len(con.positive) == len(con.negative) == int((train["ink"] == 0).sum())
    assert set(con.negative.case_ids) <= set(train.loc[train["ink"] == 0, "case_id"])
    pos = bank.image_set(con.positive).images.astype(int)
    neg = bank.image_set(con.negative).images.astype(int)
    changed = np.abs(pos - neg).sum(-1) > 0
    frac = changed.reshape(len(pos), -1).mean(1)
    assert (frac > 0).all() and (frac < 0.3).all()  # a stroke, not a different image
    # the pasted pixels are the stroke's colour
    assert np.allclose(pos[changed].mean(0), (140, 60, 200), atol=12)
