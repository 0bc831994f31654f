"""``workbench concepts list|build|add|remove`` on a small workspace with annotated columns."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from concepts import ClassifierModel, ConceptBank, Workspace
from tests.support.synth import CLASSES, make_dataset, render


@pytest.fixture()
def ws(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    ds = make_dataset(ws.datasets_dir, n=400)
    model = ClassifierModel.build("tiny-cnn", CLASSES, seed=0)
    model.save(ws.models_dir / "m")
    ws.update_manifest(dataset=ds.info.name, model="m", layers=["conv1", "conv2"])
    return ws


def _app():
    import typer

    from workbench.cli._concepts import concepts_app

    app = typer.Typer()
    app.add_typer(concepts_app, name="concepts")
    return app


def test_list_build_add_remove_and_the_store(ws, tmp_path):
    run = CliRunner().invoke
    app = _app()
    res = run(app, ["concepts", "list", "-w", str(ws.root), "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert {"veil", "ink"} <= set(rows)
    for r in rows.values():  # matched per class: never flagged as confounded with the label
        assert r["trains_against"] == f"not_{r['name']}" and not r["label_confounded"]
        assert r["class_share_diff"] == pytest.approx(0.0)
    bank = ConceptBank.load(ws.concepts_dir, datasets_dir=ws.datasets_dir)
    pool = set(bank.random_pool.case_ids)
    for c in bank:  # the random pool is kept apart from the concept sets
        assert pool.isdisjoint(c.positive.case_ids) and pool.isdisjoint(c.negative.case_ids)

    res = run(app, ["concepts", "build", "-w", str(ws.root), "--columns", "veil"])
    assert res.exit_code == 1 and "--replace" in res.output
    res = run(app, ["concepts", "build", "-w", str(ws.root), "--columns", "veil", "--replace", "--seed", "3"])
    assert res.exit_code == 0, res.output

    folder = tmp_path / "ink_crops"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(render(900 + i, bool(i % 2), {"ink": True})).save(folder / f"ink_{i}.png")
    (folder / "notes.txt").write_text("not an image")
    res = run(app, ["concepts", "add", "my_ink", "-w", str(ws.root), "--folder", str(folder), "--group", "artifact"])
    assert res.exit_code == 0, res.output
    ds = ws.dataset()
    mel = ds.cases.loc[ds.cases["label"] == "melanoma", "case_id"].tolist()[:15]
    res = run(app, ["concepts", "add", "picked", "-w", str(ws.root), "--cases", ",".join(mel)])
    assert res.exit_code == 0 and "class-matched negatives" in res.output, res.output
    assert "note: Only 15 examples" in res.stderr and "workbench intervene --mask picked" in res.stderr
    bank = ConceptBank.load(ws.concepts_dir, datasets_dir=ws.datasets_dir)
    assert bank["my_ink"].origin == "folder" and len(bank["my_ink"].positive) == 12
    assert bank.image_set(bank["my_ink"].positive).images.shape == (12, 64, 64, 3)
    picked = bank["picked"]
    assert np.bincount(bank.labels(picked.negative), minlength=2).tolist() == [15, 0]  # same class mix
    assert not set(picked.negative.case_ids) & set(mel) and bank.check_balance(picked) is None

    res = run(app, ["concepts", "remove", "picked", "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    assert "picked" not in ConceptBank.load(ws.concepts_dir, datasets_dir=ws.datasets_dir)

    from store import Store

    events = Store.for_workspace(ws.root).events()
    actions = [(e.action, e.concept) for e in events]
    assert ("concept_named", "my_ink") in actions and ("concept_named", "picked") in actions
    assert sum(a == "concept_registered" for a, _ in actions) == 2  # build (veil) + remove (picked)


@pytest.mark.parametrize("args, message", [
    (["add", "x"], "exactly one of --folder, --cases"),
    (["add", "x", "--twins-of", "nope"], "no column 'nope'"),
    (["add", "x", "--folder", "/nonexistent/folder"], "not a folder"),
    (["add", "x", "--cases", "nope"], "not in data set"),
    (["remove", "nope"], "no concept 'nope'"),
])
def test_errors_are_one_line(ws, args, message):
    res = CliRunner().invoke(_app(), ["concepts", args[0], "-w", str(ws.root), *args[1:]])
    assert res.exit_code == 1 and message in res.output, res.output
    assert "Traceback" not in res.output
