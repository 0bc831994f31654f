"""The CLI path with no Python (issue #11.1, #11.6): import -> train -> analyse -> intervene ->
apply --export -> predict, models add in safe formats, selection commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from concepts import ClassifierModel, Workspace
from interventions import InterventionSpec, Scope, load_patched, patch
from workbench.cli import app

runner = CliRunner()


def _run(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def _fail(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    return res.output


def _make_folder(root: Path, n: int = 72, seed: int = 0) -> Path:
    """Small generated images: melanomas darker and larger, a blue blotch (concept) and a violet
    ink bar (artifact) more frequent on melanomas."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["case_id,path,label,ink,blue"]
    for i in range(n):
        mel = i % 3 == 0
        img = (170 + rng.integers(0, 20, (32, 32, 3))).astype(np.uint8)
        if mel:
            img[8:24, 8:24] = (90, 40, 30)
        else:
            img[12:20, 12:20] = (140, 100, 70)
        blue = int(rng.random() < (0.7 if mel else 0.3))
        if blue:
            img[3:9, 20:28] = (40, 60, 200)
        ink = int(rng.random() < (0.6 if mel else 0.1))
        if ink:
            img[26:29, 2:30] = (120, 30, 160)
        Image.fromarray(img).save(root / f"c{i}.png")
        rows.append(f"c{i},c{i}.png,{'melanoma' if mel else 'nevus'},{ink},{blue}")
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    return root / "cases.csv"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    base = tmp_path_factory.mktemp("cliws")
    csv = _make_folder(base / "images")
    ws = base / "ws"
    _run("import", "folder", str(csv), "--name", "clinic", "-w", str(ws), "--artifact-col", "ink",
         "--concept-col", "blue", "--image-size", "32")
    out = _run("train", "-w", str(ws), "--architecture", "tiny-cnn", "--epochs", "3", "--tcav-runs", "4",
               "--format", "json")
    return ws, json.loads(out[out.index("{"):])


def test_import_makes_the_data_set_active_and_train_the_model(trained: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    ws, result = trained
    show = json.loads(_run("workspace", "show", "-w", str(ws), "--format", "json"))
    assert show["dataset"] == "clinic" and show["model"] == "clinic-tiny-cnn"
    assert show["layers"] == ["conv2", "conv3", "pool"]
    assert show["tcav_precomputed"], result["analysis"]
    assert result["architecture"] == "tiny-cnn" and result["positive_class"] == "melanoma"
    assert set(result["metrics"]) == {"val", "test"}
    val = result["metrics"]["val"]
    for key in ("accuracy", "balanced_accuracy", "sensitivity", "specificity"):
        assert 0.0 <= val[key] <= 1.0
    assert val["worst_group"] is not None  # groups from the imported ink column
    models = json.loads(_run("models", "list", "-w", str(ws), "--format", "json"))
    assert [m["name"] for m in models if m["active"]] == ["clinic-tiny-cnn"]
    from store import Store

    with Store.for_workspace(ws).session() as s:  # registered like the demo's model
        assert result["model_id"] in set(s.table("models")["model_id"])
    # a second train under the same name is refused, not silently replaced
    assert "exists" in _fail("train", "-w", str(ws), "--architecture", "tiny-cnn", "--no-analyse")


def test_analyses_run_on_the_imported_data_set(trained: tuple[Path, dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    ws, _ = trained
    _run("confounders", "-w", str(ws), "--format", "json")
    spec = tmp_path / "spec.json"
    out = _run("intervene", "-w", str(ws), "--mask", "blue", "--no-tcav", "--spec-out", str(spec),
               "--format", "json")
    assert json.loads(out)["split"] == "test"  # no test_debiased: falls back to test
    art = tmp_path / "art"
    _run("apply", "--model", str(ws / "models" / "clinic-tiny-cnn"), "--spec", str(spec), "--out", str(art),
         "--export")
    assert (art / "program.pt2").is_file()
    img = sorted((ws.parent / "images").glob("c*.png"))[:3]
    preds = json.loads(_run("predict", "--model", str(art), *map(str, img), "--format", "json"))
    assert len(preds) == 3


def test_exported_program_equals_the_hook_based_patched_model(trained: tuple[Path, dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    ws, _ = trained
    w = Workspace(ws)
    model, ds = w.model(), w.dataset()
    x = model.preprocess(np.asarray(ds.images[:16]))
    spec_all = InterventionSpec.load(_spec_file(ws, tmp_path))
    for scope in (Scope(), Scope.predicted("melanoma")):
        spec = InterventionSpec(spec_all.model_id, spec_all.layer, spec_all.edits, scope)
        art = patch(model, spec).save(tmp_path / f"art-{scope.kind}", export=True)
        pm = load_patched(art)
        program = torch.export.load(str(art / "program.pt2")).module()
        with torch.no_grad():
            hooked, exported, plain = pm(x), program(x), model.logits(x)
        torch.testing.assert_close(exported, hooked, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(hooked, plain)  # the edit is really inside the program
    # the program also loads through the checked path, as a model of its own
    checked = ClassifierModel.from_program(tmp_path / "art-all" / "program.pt2", model.classes,
                                           preprocess=model.preprocess)
    with torch.no_grad():
        torch.testing.assert_close(checked.logits(x), load_patched(tmp_path / "art-all")(x), atol=1e-5, rtol=1e-5)


def _spec_file(ws: Path, tmp_path: Path) -> Path:
    spec = tmp_path / "spec.json"
    if not spec.exists():
        _run("intervene", "-w", str(ws), "--mask", "blue", "--no-tcav", "--spec-out", str(spec), "--format", "json")
    return spec


def test_models_add_safe_formats_and_select(trained: tuple[Path, dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    ws, _ = trained
    model = ClassifierModel.build("tiny-cnn", ("melanoma", "nevus"), seed=3)
    torch.save(model.module.state_dict(), tmp_path / "w.pt")
    _run("models", "add", str(tmp_path / "w.pt"), "--name", "mine", "--architecture", "tiny-cnn",
         "--image-size", "32", "-w", str(ws), "--no-analyse")
    show = json.loads(_run("workspace", "show", "-w", str(ws), "--format", "json"))
    assert show["model"] == "mine"
    assert Workspace(ws).model().weights_sha256 == model.weights_sha256
    from safetensors.torch import save_file

    save_file(model.module.state_dict(), str(tmp_path / "w.safetensors"))
    _run("model", "add", str(tmp_path / "w.safetensors"), "--name", "mine-st", "--architecture", "tiny-cnn",
         "-w", str(ws), "--no-select")
    ep = torch.export.export(model.module, (torch.zeros(2, 3, 32, 32),),
                             dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, tmp_path / "net.pt2")
    out = _run("models", "add", str(tmp_path / "net.pt2"), "--program", "--name", "prog", "--image-size", "32",
               "-w", str(ws), "--tcav-runs", "4")
    assert "TCAV precomputed:" in out, out  # TCAV runs through the program's hooks
    show = json.loads(_run("workspace", "show", "-w", str(ws), "--format", "json"))
    assert show["model"] == "prog"
    assert show["layers"] == ["stages.conv2", "stages.conv3", "stages.pool"]
    _run("models", "select", "clinic-tiny-cnn", "-w", str(ws))
    assert json.loads(_run("workspace", "show", "-w", str(ws), "--format", "json"))["model"] == "clinic-tiny-cnn"
    # refusals: a pickled module, a module path as architecture, unknown names
    torch.save(model.module, tmp_path / "pickled.pt")
    assert "unpickling" in _fail("models", "add", str(tmp_path / "pickled.pt"), "--name", "bad",
                                 "--architecture", "tiny-cnn", "-w", str(ws))
    assert "names code to import" in _fail("models", "add", str(tmp_path / "w.pt"), "--name", "bad",
                                           "--architecture", "os:system", "-w", str(ws))
    assert "no model" in _fail("models", "select", "nope", "-w", str(ws))
    assert "no data set" in _fail("datasets", "select", "nope", "-w", str(ws))
    assert "bad" not in Workspace(ws).model_names()


def test_workspace_init(tmp_path: Path) -> None:
    assert "created" in _run("workspace", "init", "-w", str(tmp_path / "new"))
    assert "already" in _run("workspace", "init", "-w", str(tmp_path / "new"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("x")
    assert "not a workspace" in _fail("workspace", "init", "-w", str(tmp_path / "other"))
    assert "workspace init" in _fail("tcav", "-w", str(tmp_path / "missing"))
