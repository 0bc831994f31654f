"""Security: nothing named in a model file or artifact is imported or run; apply --overwrite
never replaces a workspace or any folder that is not a patched-model artifact (issue #13.1/2)."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from concepts import ClassifierModel, ModelError, UnsafeCheckpointError, Workspace
from concepts.models import ARCHITECTURE_GROUP, Preprocessing, TinyCNN, check_program_archive
from interventions import (
    ConceptDirection,
    ConceptEdit,
    InterventionError,
    InterventionSpec,
    load_patched,
    patch,
)
from workbench.cli import app

CLASSES = ("melanoma", "nevus")


def _tiny(seed: int = 0) -> ClassifierModel:
    return ClassifierModel.build("tiny-cnn", CLASSES, seed=seed)


def _hostile_model_dir(d: Path, marker: Path) -> Path:
    """A saved tiny-cnn whose model.json names ``os:system`` with a command creating ``marker``."""
    _tiny().save(d)
    meta = json.loads((d / "model.json").read_text())
    meta["architecture"] = "os:system"
    meta["factory_kwargs"] = {"command": f"touch {marker}"}
    (d / "model.json").write_text(json.dumps(meta))
    return d


def _spec(model: ClassifierModel, layer: str = "pool") -> InterventionSpec:
    vec = np.zeros(64, np.float32)
    vec[3] = 1.0
    d = ConceptDirection("ink@v1", "ink", layer, model.model_id, vec, mu0=0.0, mu1=1.0)
    return InterventionSpec(model.model_id, layer, (ConceptEdit(d, "mask", 1.0),))


def _rehash_manifest(artifact: Path) -> None:
    man = json.loads((artifact / "manifest.json").read_text())
    for rel in man["files"]:
        man["files"][rel] = hashlib.sha256((artifact / rel).read_bytes()).hexdigest()
    (artifact / "manifest.json").write_text(json.dumps(man))


# ------------------------------------------------------------------ code named in model.json
def test_model_json_naming_os_system_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    d = _hostile_model_dir(tmp_path / "m", marker)
    with pytest.raises(ModelError, match="entry point"):
        ClassifierModel.load(d)
    assert not marker.exists()


def test_workspace_and_cli_predict_refuse_a_hostile_model(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ws = Workspace(tmp_path / "ws").ensure()
    _hostile_model_dir(ws.models_dir / "evil", marker)
    ws.update_manifest(model="evil")
    with pytest.raises(ModelError):
        ws.model()
    img = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(img)
    res = CliRunner().invoke(app, ["predict", "--model", str(ws.models_dir / "evil"), str(img)])
    assert res.exit_code == 1
    assert "names code to import" in res.output and "Traceback" not in res.output
    assert not marker.exists()


def test_patched_artifact_with_rehashed_hostile_base_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model = _tiny()
    out = patch(model, _spec(model)).save(tmp_path / "art")
    _hostile_model_dir(tmp_path / "evil", marker)
    (out / "base" / "model.json").write_text((tmp_path / "evil" / "model.json").read_text())
    _rehash_manifest(out)  # checksums are unsigned: an attacker recomputes them
    with pytest.raises(InterventionError, match="names code to import"):
        load_patched(out)
    assert not marker.exists()


@pytest.mark.parametrize("kwargs", [{"a": [1, 2]}, {"a": {"b": 1}}, ["x"]])
def test_factory_kwargs_must_be_scalars(tmp_path: Path, kwargs: object) -> None:
    d = _tiny().save(tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    meta["factory_kwargs"] = kwargs
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="factory_kwargs"):
        ClassifierModel.load(d)


def test_module_path_refused_in_python_too() -> None:
    with pytest.raises(ModelError, match="names code to import"):
        ClassifierModel.build("concepts.models._classifier:TinyCNN", CLASSES, preprocess=Preprocessing(size=8))


# ------------------------------------------------------------------ the allow-lists
def test_trusted_callable_in_python_and_entry_point_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = ClassifierModel.build("my-net", ("a", "b", "c"), preprocess=Preprocessing(size=48),
                              factory_kwargs={"n_classes": 3, "width": 8}, factory=TinyCNN)
    torch.save(m.module.state_dict(), tmp_path / "w.pt")
    m2 = ClassifierModel.from_state_dict("my-net", ("a", "b", "c"), tmp_path / "w.pt", factory=TinyCNN,
                                         preprocess=Preprocessing(size=48), factory_kwargs={"n_classes": 3, "width": 8})
    assert m2.model_id == m.model_id
    d = m2.save(tmp_path / "saved")
    with pytest.raises(ModelError, match=r"unknown architecture 'my-net'.*entry point"):
        ClassifierModel.load(d)
    assert ClassifierModel.load(d, factory=TinyCNN).model_id == m.model_id
    # an installed package registering the entry point: the operator's allow-list
    site = tmp_path / "site"
    (site / "mynets").mkdir(parents=True)
    (site / "mynets" / "__init__.py").write_text("from concepts.models import TinyCNN as build\n")
    dist = site / "mynets-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mynets\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ARCHITECTURE_GROUP}]\nmy-net = mynets:build\n")
    monkeypatch.syspath_prepend(str(site))
    assert ClassifierModel.load(d).model_id == m.model_id
    sys.modules.pop("mynets", None)


def test_safetensors_state_dict(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    m = _tiny()
    save_file(m.module.state_dict(), str(tmp_path / "w.safetensors"))
    m2 = ClassifierModel.from_state_dict("tiny-cnn", CLASSES, tmp_path / "w.safetensors")
    assert m2.model_id == m.model_id
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ModelError, match="safetensors"):
        ClassifierModel.from_state_dict("tiny-cnn", CLASSES, tmp_path / "bad.safetensors")


# ------------------------------------------------------------------ torch.export programs
def _program(tmp_path: Path) -> tuple[ClassifierModel, Path]:
    m = _tiny()
    ep = torch.export.export(m.module, (torch.zeros(2, 3, 64, 64),),
                             dynamic_shapes=({0: torch.export.Dim("batch")},))
    p = tmp_path / "net.pt2"
    torch.export.save(ep, p)
    return m, p


def _rewrite(src: Path, dst: Path, edit: dict[str, bytes | None]) -> Path:
    """Copy a .pt2 archive, replacing (or adding, or with None dropping) members by suffix."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        root = zin.namelist()[0].split("/")[0]
        done = set()
        for info in zin.infolist():
            rel = info.filename.split("/", 1)[1]
            if rel in edit:
                done.add(rel)
                if edit[rel] is not None:
                    zout.writestr(info.filename, edit[rel])  # type: ignore[arg-type]
                continue
            zout.writestr(info, zin.read(info))
        for rel, data in edit.items():
            if rel not in done and data is not None:
                zout.writestr(f"{root}/{rel}", data)
    return dst


def _graph_json(p: Path) -> dict:  # type: ignore[type-arg]
    with zipfile.ZipFile(p) as z:
        name = next(n for n in z.namelist() if n.endswith("models/model.json"))
        return json.loads(z.read(name))  # type: ignore[no-any-return]


def test_program_model_roundtrip(tmp_path: Path) -> None:
    m, p = _program(tmp_path)
    pm = ClassifierModel.from_program(p, CLASSES, preprocess=m.preprocess)
    imgs = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(pm.predict_proba(imgs), m.predict_proba(imgs), atol=1e-5)
    assert "stages.conv2" in pm.layers  # the submodules of the unflattened program are the layers
    x = m.preprocess(imgs)
    with torch.no_grad():
        a = pm.activations(x, ["stages.conv2"])["stages.conv2"]
        torch.testing.assert_close(a, m.activations(x, ["conv2"])["conv2"], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(pm.forward_from("stages.conv2", a, x=x), m.logits(x), atol=1e-5, rtol=1e-4)
    loaded = ClassifierModel.load(pm.save(tmp_path / "saved"))
    assert loaded.model_id == pm.model_id


def test_program_with_python_target_refused(tmp_path: Path) -> None:
    _, p = _program(tmp_path)
    g = _graph_json(p)
    g["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"
    bad = _rewrite(p, tmp_path / "bad.pt2", {"models/model.json": json.dumps(g).encode()})
    with pytest.raises(UnsafeCheckpointError, match="not an aten operator"):
        check_program_archive(bad.read_bytes())


def test_program_with_eval_in_shape_expression_refused(tmp_path: Path) -> None:
    _, p = _program(tmp_path)
    text = json.dumps(_graph_json(p))
    evil = text.replace("Symbol('s", "__import__('os').system('true') or Symbol('s", 1)
    assert evil != text
    bad = _rewrite(p, tmp_path / "bad.pt2", {"models/model.json": evil.encode()})
    with pytest.raises(UnsafeCheckpointError, match="shape expression"):
        check_program_archive(bad.read_bytes())


def test_program_with_pickled_weight_refused(tmp_path: Path) -> None:
    _, p = _program(tmp_path)
    with zipfile.ZipFile(p) as z:
        name = next(n for n in z.namelist() if n.endswith("model_weights_config.json"))
        cfg = json.loads(z.read(name))
    first = next(iter(cfg["config"]))
    cfg["config"][first]["use_pickle"] = True
    bad = _rewrite(p, tmp_path / "bad.pt2", {"data/weights/model_weights_config.json": json.dumps(cfg).encode()})
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        check_program_archive(bad.read_bytes())


def test_program_with_extra_member_or_pickled_inputs_refused(tmp_path: Path) -> None:
    _, p = _program(tmp_path)
    bad = _rewrite(p, tmp_path / "bad.pt2", {"data/aotinductor/model/x.so": b"\x7fELF"})
    with pytest.raises(UnsafeCheckpointError, match="unexpected archive member"):
        check_program_archive(bad.read_bytes())
    buf = io.BytesIO()
    torch.save({"x": Preprocessing(size=3)}, buf)  # needs full unpickling
    bad2 = _rewrite(p, tmp_path / "bad2.pt2", {"data/sample_inputs/model.pt": buf.getvalue()})
    with pytest.raises(UnsafeCheckpointError, match="sample inputs"):
        check_program_archive(bad2.read_bytes())


# ------------------------------------------------------------------ apply --overwrite
def _apply_args(tmp_path: Path, out: Path) -> list[str]:
    model = _tiny()
    mdir = model.save(tmp_path / "model")
    spec = _spec(model).save(tmp_path / "spec.json")
    return ["apply", "--model", str(mdir), "--spec", str(spec), "--out", str(out), "--overwrite"]


def test_apply_overwrite_refuses_a_workspace(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    ws.update_manifest(dataset="x")
    ws.store_path.write_bytes(b"precious")
    before = sorted(p.relative_to(ws.root).as_posix() for p in ws.root.rglob("*"))
    res = CliRunner().invoke(app, _apply_args(tmp_path, ws.root))
    assert res.exit_code == 1 and "not a patched-model artifact" in res.output
    assert sorted(p.relative_to(ws.root).as_posix() for p in ws.root.rglob("*")) == before
    assert ws.store_path.read_bytes() == b"precious"


def test_apply_overwrite_refuses_an_artifact_with_foreign_files(tmp_path: Path) -> None:
    args = _apply_args(tmp_path, tmp_path / "art")
    assert CliRunner().invoke(app, args).exit_code == 0
    assert CliRunner().invoke(app, args).exit_code == 0  # a workbench artifact is replaced
    (tmp_path / "art" / "notes.txt").write_text("mine")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and "does not list" in res.output
    assert (tmp_path / "art" / "notes.txt").read_text() == "mine"


def test_apply_overwrite_never_deletes_the_aside_folder(tmp_path: Path) -> None:
    args = _apply_args(tmp_path, tmp_path / "art")
    assert CliRunner().invoke(app, args).exit_code == 0
    keep = tmp_path / ".art.old"  # the swap's aside name, holding someone's files
    keep.mkdir()
    (keep / "data.txt").write_text("mine")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and "move it away" in res.output
    assert (keep / "data.txt").read_text() == "mine"
