"""Model abstraction: ids, layers, staged forward, safe checkpoints."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from concepts import ClassifierModel, ModelError, UnsafeCheckpointError
from concepts.models import Preprocessing, load_state_dict_safely


def _tiny(seed: int = 0) -> ClassifierModel:
    return ClassifierModel.build("tiny-cnn", ("melanoma", "nevus"), seed=seed)


def test_model_id_is_stable_and_weight_sensitive() -> None:
    a, b = _tiny(0), _tiny(0)
    assert a.model_id == b.model_id
    assert len(a.model_id) == 16
    c = _tiny(1)
    assert c.model_id != a.model_id
    with torch.no_grad():
        b.module.stages["fc"].bias.add_(1e-3)
    b.invalidate_id()
    assert b.model_id != a.model_id


def test_forward_from_matches_full_forward() -> None:
    m = _tiny()
    x = m.preprocess(np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8))
    with torch.inference_mode():
        full = m.module(x)
        for layer in ("conv1", "conv2", "conv3", "pool"):
            h = m.activations(x, [layer])[layer]
            assert torch.equal(m.forward_from(layer, h), full)


def test_unknown_layer_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="unknown layer 'nope'"):
        _tiny().check_layer("nope")


def test_preprocessing_resizes_and_normalises() -> None:
    pp = Preprocessing(size=32)
    x = pp(np.full((2, 64, 64, 3), 255, dtype=np.uint8))
    assert x.shape == (2, 3, 32, 32)
    assert torch.allclose(x, torch.ones_like(x))
    with pytest.raises(ModelError):
        pp(np.zeros((2, 64, 64), dtype=np.uint8))


def test_save_load_roundtrip(tmp_path: Path) -> None:
    m = _tiny(3)
    m.save(tmp_path / "m")
    m2 = ClassifierModel.load(tmp_path / "m")
    assert m2.model_id == m.model_id
    assert m2.classes == m.classes
    x = m.preprocess(np.zeros((1, 64, 64, 3), np.uint8))
    with torch.inference_mode():
        assert torch.equal(m.module(x), m2.module(x))


def test_tampered_weights_are_detected(tmp_path: Path) -> None:
    m = _tiny()
    m.save(tmp_path / "m")
    sd2 = {k: v.clone() for k, v in torch.load(tmp_path / "m" / "weights.pt", weights_only=True).items()}
    first = next(iter(sd2))
    sd2[first] += 1.0
    torch.save(sd2, tmp_path / "m" / "weights.pt")
    with pytest.raises(ModelError, match="sha256 differs"):
        ClassifierModel.load(tmp_path / "m")


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_malicious_checkpoint_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "evil": _Evil()}, p)
    with pytest.raises(UnsafeCheckpointError, match="arbitrary unpickling"):
        load_state_dict_safely(p)
    assert "pwned" not in capsys.readouterr().out
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises((UnsafeCheckpointError, ModelError)):
        load_state_dict_safely(raw)
    assert "pwned" not in capsys.readouterr().out


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_state_dict_safely(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelError):
        load_state_dict_safely(junk)
    notdict = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], notdict)
    with pytest.raises(ModelError, match="state dict"):
        load_state_dict_safely(notdict)


def test_user_factory_model(tmp_path: Path) -> None:
    from concepts.models import TinyCNN

    m = ClassifierModel.build(
        "tiny-user",
        ("a", "b", "c"),
        preprocess=Preprocessing(size=48),
        factory_kwargs={"n_classes": 3, "width": 8},
        factory=TinyCNN,
    )
    torch.save(m.module.state_dict(), tmp_path / "w.pt")
    m2 = ClassifierModel.from_state_dict(
        "tiny-user", ("a", "b", "c"), tmp_path / "w.pt", factory=TinyCNN,
        preprocess=Preprocessing(size=48), factory_kwargs={"n_classes": 3, "width": 8},
    )
    assert m2.model_id == m.model_id
    with pytest.raises(ModelError, match="do not fit"):
        ClassifierModel.from_state_dict(
            "tiny-user", ("a", "b"), tmp_path / "w.pt", factory=TinyCNN,
            preprocess=Preprocessing(size=48), factory_kwargs={"n_classes": 2, "width": 8},
        )
    with pytest.raises(ModelError, match="names code to import"):
        ClassifierModel.build("no_such_pkg.mod:f", ("a", "b"), preprocess=Preprocessing(size=8))
    with pytest.raises(ModelError, match="unknown architecture"):
        ClassifierModel.build("resnet9000", ("a", "b"))


def test_hook_based_model_forward_from() -> None:
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
    )
    m = ClassifierModel(net, "custom", ("a", "b"), Preprocessing(size=16))
    x = m.preprocess(np.zeros((2, 16, 16, 3), np.uint8))
    with torch.inference_mode():
        h = m.activations(x, ["1"])["1"]
        assert torch.equal(m.forward_from("1", h, x=x), net(x))
        with pytest.raises(ModelError, match="needs the input x"):
            m.forward_from("1", h)


@pytest.mark.slow
def test_efficientnet_lite0_pretrained_weights_load() -> None:
    m = ClassifierModel.build("efficientnet-lite0", ("melanoma", "nevus"))
    assert "block10" in m.layers and m.layers[-1] == "fc"
    x = m.preprocess(np.zeros((1, 128, 128, 3), np.uint8))
    with torch.inference_mode():
        acts = m.activations(x, ["block10", "pool"])
    assert tuple(acts["block10"].shape) == (1, 112, 8, 8)
    assert tuple(acts["pool"].shape) == (1, 1280)
    # ImageNet weights, not random init: the stem's BN statistics are the trained ones.
    stem_bn = m.module.stages["stem"].bn
    assert float(stem_bn.running_var.mean()) != 1.0
