"""Interventions: spec, operations, hooks (fast tests; artifacts, what-if and the concept head are in
test_interventions_head.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from concepts import ClassifierModel, WorkbenchError, extract_activations
from interventions import (
    ConceptDirection,
    ConceptEdit,
    InterventionError,
    InterventionSpec,
    Scope,
    WhatIf,
    apply_spec,
    patch,
)
from interventions._ops import edit_activations
from tests.support.tiny_interventions import (
    CLASSES,
    direction,
    direction_pair,
    random_images,
    spec_of,
    tiny_model,
    unit,
)


# ---------------------------------------------------------------------------------- the spec
def test_spec_json_roundtrip_is_exact(tiny: ClassifierModel, conv3_dim: int, tmp_path: Path) -> None:
    a, b = direction_pair(tiny, "conv3", conv3_dim)
    spec = spec_of(tiny, "conv3", ConceptEdit(a, "mask", 1.0), ConceptEdit(b, "amplify", 2.5),
                 scope=Scope.predicted("nevus"))
    data = json.loads(json.dumps(spec.to_json()))
    assert data["spec_version"] == 1 and data["model_id"] == tiny.model_id
    assert data["edits"][0]["cav"]["vector_sha256"] == a.vector_sha256
    back = InterventionSpec.from_json(data)
    assert back.spec_id == spec.spec_id
    assert np.array_equal(back.edits[1].direction.vector, b.vector)
    assert back.edits[1].strength == 2.5 and back.scope == Scope.predicted("nevus")
    loaded = InterventionSpec.load(spec.save(tmp_path / "spec.json"))
    assert loaded.to_json() == spec.to_json()
    assert spec.with_strengths({"ink": 0.5}).edit("ink").strength == 0.5
    assert "mask ink" in spec.describe()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d["edits"][0].update(operation="erase"), "unknown operation"),
        (lambda d: d["edits"][0].update(strength=1.5), "out of range"),
        (lambda d: d["edits"][1].update(strength=-0.1), "out of range"),
        (lambda d: d["edits"][1].update(strength=11), "out of range"),
        (lambda d: d["edits"][0].update(strength="strong"), "must be a number"),
        (lambda d: d["edits"][0]["cav"].update(model_id="0123456789abcdef"), "comes from model"),
        (lambda d: d["edits"][0]["cav"].update(layer="conv2"), "lives at layer"),
        (lambda d: d["edits"][0]["cav"].update(vector_b64=d["edits"][1]["cav"]["vector_b64"]), "sha256"),
        (lambda d: d["edits"][0]["cav"].update(dim=3), "holds"),
        (lambda d: d.update(spec_version=99), "newer workbench"),
        (lambda d: d.update(edits=[]), "at least one"),
        (lambda d: d.pop("layer"), "lacks the field 'layer'"),
        (lambda d: d["edits"].append(d["edits"][0]), "appears twice"),
        (lambda d: d.update(scope={"kind": "somewhere"}), "unknown scope"),
    ],
)
def test_invalid_specs_are_refused(tiny: ClassifierModel, conv3_dim: int, mutate: object, match: str) -> None:
    a, b = direction_pair(tiny, "conv3", conv3_dim)
    data = spec_of(tiny, "conv3", ConceptEdit(a, "mask"), ConceptEdit(b, "amplify", 2.0)).to_json()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(InterventionError, match=match) as info:
        InterventionSpec.from_json(data)
    assert isinstance(info.value, WorkbenchError)


def test_malformed_json_and_wrong_model_are_refused(tiny: ClassifierModel, conv3_dim: int, tmp_path: Path) -> None:
    with pytest.raises(InterventionError, match="not valid JSON"):
        InterventionSpec.from_json("{not json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(InterventionError, match=r"bad\.json"):
        InterventionSpec.load(bad)
    with pytest.raises(InterventionError, match="not found"):
        InterventionSpec.load(tmp_path / "missing.json")
    a, _ = direction_pair(tiny, "conv3", conv3_dim)
    spec = spec_of(tiny, "conv3", ConceptEdit(a, "mask"))
    other = tiny_model(seed=1)
    with pytest.raises(InterventionError, match="is for model"):
        patch(other, spec)
    with pytest.raises(InterventionError, match="is for model"), apply_spec(other, spec):
        pass
    wrong_layer = InterventionSpec.from_json(
        json.dumps(spec.to_json()).replace('"conv3"', '"conv9"')
    )
    with pytest.raises(InterventionError, match="lacks"):
        patch(tiny, wrong_layer)
    short = direction(tiny, "conv3", np.ones(7), "ink")
    with pytest.raises(InterventionError, match="values per input"):
        patch(tiny, spec_of(tiny, "conv3", ConceptEdit(short, "mask")))


def test_set_needs_a_present_level(tiny: ClassifierModel) -> None:
    d = direction(tiny, "pool", np.ones(64), "ink", mu1=None)
    with pytest.raises(InterventionError, match="present level"):
        ConceptEdit(d, "set", 1.0, "present")
    assert ConceptEdit(d, "set", 1.0, 0.7).target_level() == 0.7


# ---------------------------------------------------------------------------------- operations
def test_mask_moves_the_component_to_the_absent_level() -> None:
    rng = np.random.default_rng(1)
    h = rng.standard_normal((50, 32)).astype(np.float32)
    d = ConceptDirection("c@1", "c", "pool", "m" * 16, unit(rng.standard_normal(32)), mu0=0.25, mu1=2.0)
    spec = InterventionSpec("m" * 16, "pool", (ConceptEdit(d, "mask"),))
    out = edit_activations(spec, h)
    np.testing.assert_allclose(out @ d.vector, 0.25, atol=1e-5)
    # the orthogonal complement is untouched
    P = np.eye(32, dtype=np.float32) - np.outer(d.vector, d.vector)
    np.testing.assert_allclose(out @ P, h @ P, atol=1e-5)
    half = edit_activations(spec.with_strengths({"c": 0.5}), h)
    np.testing.assert_allclose(half @ d.vector, 0.5 * (h @ d.vector) + 0.5 * 0.25, atol=1e-5)


def test_joint_mask_of_non_orthogonal_concepts_reaches_both_absent_levels(
    tiny: ClassifierModel, conv3_dim: int
) -> None:
    a, b = direction_pair(tiny, "conv3", conv3_dim, cos=0.6)
    assert abs(float(a.vector @ b.vector) - 0.6) < 1e-5
    h = extract_activations(tiny, random_images(10), ["conv3"])["conv3"] + 0.5 * a.vector.reshape(1, 64, 8, 8)
    spec = spec_of(tiny, "conv3", ConceptEdit(a, "mask"), ConceptEdit(b, "mask"))
    out = edit_activations(spec, h).reshape(10, -1)
    np.testing.assert_allclose(out @ a.vector, a.mu0, atol=1e-4)
    np.testing.assert_allclose(out @ b.vector, b.mu0, atol=1e-4)
    # masking one after the other does not: the second undoes part of the first
    seq = edit_activations(spec_of(tiny, "conv3", ConceptEdit(b, "mask")),
                           edit_activations(spec_of(tiny, "conv3", ConceptEdit(a, "mask")), h)).reshape(10, -1)
    assert np.abs(seq @ a.vector - a.mu0).max() > 1e-2


def test_amplify_and_set_present() -> None:
    rng = np.random.default_rng(2)
    h = rng.standard_normal((40, 16)).astype(np.float32)
    d = ConceptDirection("c@1", "c", "pool", "m" * 16, rng.standard_normal(16), mu0=-0.2, mu1=1.3)
    amp = InterventionSpec("m" * 16, "pool", (ConceptEdit(d, "amplify", 3.0),))
    c = h @ d.vector
    np.testing.assert_allclose(edit_activations(amp, h) @ d.vector, -0.2 + 3.0 * (c + 0.2), atol=1e-5)
    zero = edit_activations(amp.with_strengths({"c": 0.0}), h)
    masked = edit_activations(InterventionSpec("m" * 16, "pool", (ConceptEdit(d, "mask"),)), h)
    np.testing.assert_allclose(zero, masked, atol=1e-6)
    present = InterventionSpec("m" * 16, "pool", (ConceptEdit(d, "set", 1.0, "present"),))
    np.testing.assert_allclose(edit_activations(present, h) @ d.vector, 1.3, atol=1e-5)


def test_nearly_parallel_directions_are_refused(tiny: ClassifierModel, conv3_dim: int) -> None:
    a, _ = direction_pair(tiny, "conv3", conv3_dim)
    twin = ConceptDirection("ruler@v1", "ruler", "conv3", tiny.model_id, a.vector + 1e-6, mu0=0.0)
    spec = spec_of(tiny, "conv3", ConceptEdit(a, "mask"), ConceptEdit(twin, "mask"))
    with pytest.raises(InterventionError, match="parallel"):
        patch(tiny, spec)


# ---------------------------------------------------------------------------------- hooks
def _state_bytes(model: ClassifierModel) -> bytes:
    buf = io.BytesIO()
    torch.save(model.module.state_dict(), buf)
    return buf.getvalue()


def _hooks(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in module.modules())


def test_neutral_strength_is_bit_identical_and_installs_nothing(tiny: ClassifierModel, conv3_dim: int) -> None:
    a, b = direction_pair(tiny, "conv3", conv3_dim)
    spec = spec_of(tiny, "conv3", ConceptEdit(a, "mask", 0.0), ConceptEdit(b, "amplify", 1.0))
    assert spec.is_neutral
    x = tiny.preprocess(random_images(8))
    with torch.inference_mode():
        base = tiny.module(x)
        with apply_spec(tiny, spec):
            assert _hooks(tiny.module) == 0
            same = tiny.module(x)
        patched = patch(tiny, spec)(x)
    assert torch.equal(base, same) and torch.equal(base, patched)


def test_leaving_the_context_restores_the_model_exactly(tiny: ClassifierModel, conv3_dim: int) -> None:
    a, b = direction_pair(tiny, "conv3", conv3_dim)
    spec = spec_of(tiny, "conv3", ConceptEdit(a, "mask"), ConceptEdit(b, "amplify", 3.0))
    x = tiny.preprocess(random_images(8))
    before_bytes, before_id = _state_bytes(tiny), tiny.model_id
    with torch.inference_mode():
        base = tiny.module(x)
        with apply_spec(tiny, spec):
            assert _hooks(tiny.module) == 1
            edited = tiny.module(x)
        assert not torch.equal(base, edited)
        after = tiny.module(x)
        with pytest.raises(RuntimeError), apply_spec(tiny, spec):
            raise RuntimeError("boom")  # the hook is removed on errors too
        again = tiny.module(x)
    assert _hooks(tiny.module) == 0
    assert torch.equal(base, after) and torch.equal(base, again)
    assert _state_bytes(tiny) == before_bytes
    tiny.invalidate_id()
    assert tiny.model_id == before_id


def test_patched_module_matches_hook_and_cached_activation_path(tiny: ClassifierModel, conv3_dim: int) -> None:
    a, b = direction_pair(tiny, "conv3", conv3_dim)
    spec = spec_of(tiny, "conv3", ConceptEdit(a, "mask"), ConceptEdit(b, "set", 0.7, "present"))
    imgs = random_images(10)
    x = tiny.preprocess(imgs)
    pm = patch(tiny, spec)
    with torch.inference_mode():
        with apply_spec(tiny, spec):
            hooked = tiny.module(x)
        direct = pm(x)
        h = torch.from_numpy(extract_activations(tiny, imgs, ["conv3"])["conv3"])
        via_layer = tiny.forward_from("conv3", torch.from_numpy(edit_activations(spec, h.numpy())))
    assert torch.equal(hooked, direct)
    torch.testing.assert_close(via_layer, direct, rtol=1e-4, atol=1e-5)
    assert set(pm.state_dict()) == {f"base.{k}" for k in tiny.module.state_dict()}
    wi = WhatIf(tiny, "conv3", h.numpy(), np.zeros(10, int))
    np.testing.assert_allclose(wi.predict_proba(spec), torch.softmax(direct, 1).numpy(), rtol=1e-4, atol=1e-5)


def test_scopes(tiny: ClassifierModel, conv3_dim: int) -> None:
    a, _ = direction_pair(tiny, "conv3", conv3_dim)
    imgs = random_images(16, seed=3)
    h = extract_activations(tiny, imgs, ["conv3"])["conv3"]
    full = spec_of(tiny, "conv3", ConceptEdit(a, "amplify", 10.0))
    ids = [f"c{i}" for i in range(16)]
    wi = WhatIf(tiny, "conv3", h, np.zeros(16, int), case_ids=ids)
    p_all = wi.predict_proba(full)
    base = wi.base_proba
    changed = ~np.isclose(p_all, base).all(axis=1)
    assert changed.all()
    scoped = wi.predict_proba(full.with_scope(Scope.cases(["c1", "c5"])))
    moved = np.flatnonzero(~np.isclose(scoped, base).all(axis=1))
    assert moved.tolist() == [1, 5]
    k = 0
    pc = wi.predict_proba(full.with_scope(Scope.predicted(CLASSES[k])))
    sel = base.argmax(1) == k
    np.testing.assert_array_equal(pc[~sel], base[~sel])
    np.testing.assert_allclose(pc[sel], p_all[sel], rtol=1e-6)
    # the patched module agrees with the what-if, and needs the ids for a cases scope
    pm = patch(tiny, full.with_scope(Scope.cases(["c1", "c5"])))
    np.testing.assert_allclose(pm.predict_proba(imgs, case_ids=ids), scoped, rtol=1e-4, atol=1e-5)
    with pytest.raises(InterventionError, match="case ids"):
        pm.predict_proba(imgs)
    pp = patch(tiny, full.with_scope(Scope.predicted(CLASSES[k])))
    np.testing.assert_allclose(pp.predict_proba(imgs), pc, rtol=1e-4, atol=1e-5)
