"""Interventions: spec, operations, hooks, patched models, what-if, concept head (fast tests)."""

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
    ConceptHead,
    HeadEdit,
    InterventionError,
    InterventionSpec,
    Scope,
    WhatIf,
    apply_spec,
    direction_from_examples,
    insert_artifact,
    intervention_curve,
    load_patched,
    patch,
    pcbm_concept_scores,
    propose_fix,
    select_few_shot,
)
from interventions._directions import random_direction
from interventions._ops import edit_activations
from tests.support.linear_domain import linear_domain, linear_model

CLASSES = ("melanoma", "nevus")


# ---------------------------------------------------------------------------------- fixtures
def _tiny(seed: int = 0) -> ClassifierModel:
    return ClassifierModel.build("tiny-cnn", CLASSES, seed=seed)


def _images(n: int = 12, seed: int = 0, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _direction(model: ClassifierModel, layer: str, vec: np.ndarray, name: str, mu0: float = 0.1,
               mu1: float | None = 1.0) -> ConceptDirection:
    return ConceptDirection(f"{name}@v1", name, layer, model.model_id, _unit(vec), mu0=mu0, mu1=mu1)


def _pair(model: ClassifierModel, layer: str, dim: int, cos: float = 0.6, seed: int = 0
          ) -> tuple[ConceptDirection, ConceptDirection]:
    """Two unit directions with cosine ``cos``."""
    rng = np.random.default_rng(seed)
    a = _unit(rng.standard_normal(dim))
    r = rng.standard_normal(dim)
    r -= (r @ a) * a
    b = cos * a + np.sqrt(1 - cos**2) * _unit(r)
    return _direction(model, layer, a, "ink", 0.2, 1.5), _direction(model, layer, b, "ruler", -0.3, 0.8)


def _spec(model: ClassifierModel, layer: str, *edits: ConceptEdit, scope: Scope | None = None) -> InterventionSpec:
    return InterventionSpec(model.model_id, layer, tuple(edits), scope or Scope())


@pytest.fixture(scope="module")
def tiny() -> ClassifierModel:
    return _tiny()


@pytest.fixture(scope="module")
def conv3_dim(tiny: ClassifierModel) -> int:
    return int(extract_activations(tiny, _images(1), ["conv3"])["conv3"][0].size)


# ---------------------------------------------------------------------------------- the spec
def test_spec_json_roundtrip_is_exact(tiny: ClassifierModel, conv3_dim: int, tmp_path: Path) -> None:
    a, b = _pair(tiny, "conv3", conv3_dim)
    spec = _spec(tiny, "conv3", ConceptEdit(a, "mask", 1.0), ConceptEdit(b, "amplify", 2.5),
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
    a, b = _pair(tiny, "conv3", conv3_dim)
    data = _spec(tiny, "conv3", ConceptEdit(a, "mask"), ConceptEdit(b, "amplify", 2.0)).to_json()
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
    a, _ = _pair(tiny, "conv3", conv3_dim)
    spec = _spec(tiny, "conv3", ConceptEdit(a, "mask"))
    other = _tiny(seed=1)
    with pytest.raises(InterventionError, match="is for model"):
        patch(other, spec)
    with pytest.raises(InterventionError, match="is for model"), apply_spec(other, spec):
        pass
    wrong_layer = InterventionSpec.from_json(
        json.dumps(spec.to_json()).replace('"conv3"', '"conv9"')
    )
    with pytest.raises(InterventionError, match="lacks"):
        patch(tiny, wrong_layer)
    short = _direction(tiny, "conv3", np.ones(7), "ink")
    with pytest.raises(InterventionError, match="values per input"):
        patch(tiny, _spec(tiny, "conv3", ConceptEdit(short, "mask")))


def test_set_needs_a_present_level(tiny: ClassifierModel) -> None:
    d = _direction(tiny, "pool", np.ones(64), "ink", mu1=None)
    with pytest.raises(InterventionError, match="present level"):
        ConceptEdit(d, "set", 1.0, "present")
    assert ConceptEdit(d, "set", 1.0, 0.7).target_level() == 0.7


# ---------------------------------------------------------------------------------- operations
def test_mask_moves_the_component_to_the_absent_level() -> None:
    rng = np.random.default_rng(1)
    h = rng.standard_normal((50, 32)).astype(np.float32)
    d = ConceptDirection("c@1", "c", "pool", "m" * 16, _unit(rng.standard_normal(32)), mu0=0.25, mu1=2.0)
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
    a, b = _pair(tiny, "conv3", conv3_dim, cos=0.6)
    assert abs(float(a.vector @ b.vector) - 0.6) < 1e-5
    h = extract_activations(tiny, _images(10), ["conv3"])["conv3"] + 0.5 * a.vector.reshape(1, 64, 8, 8)
    spec = _spec(tiny, "conv3", ConceptEdit(a, "mask"), ConceptEdit(b, "mask"))
    out = edit_activations(spec, h).reshape(10, -1)
    np.testing.assert_allclose(out @ a.vector, a.mu0, atol=1e-4)
    np.testing.assert_allclose(out @ b.vector, b.mu0, atol=1e-4)
    # masking one after the other does not: the second undoes part of the first
    seq = edit_activations(_spec(tiny, "conv3", ConceptEdit(b, "mask")),
                           edit_activations(_spec(tiny, "conv3", ConceptEdit(a, "mask")), h)).reshape(10, -1)
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
    a, _ = _pair(tiny, "conv3", conv3_dim)
    twin = ConceptDirection("ruler@v1", "ruler", "conv3", tiny.model_id, a.vector + 1e-6, mu0=0.0)
    spec = _spec(tiny, "conv3", ConceptEdit(a, "mask"), ConceptEdit(twin, "mask"))
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
    a, b = _pair(tiny, "conv3", conv3_dim)
    spec = _spec(tiny, "conv3", ConceptEdit(a, "mask", 0.0), ConceptEdit(b, "amplify", 1.0))
    assert spec.is_neutral
    x = tiny.preprocess(_images(8))
    with torch.inference_mode():
        base = tiny.module(x)
        with apply_spec(tiny, spec):
            assert _hooks(tiny.module) == 0
            same = tiny.module(x)
        patched = patch(tiny, spec)(x)
    assert torch.equal(base, same) and torch.equal(base, patched)


def test_leaving_the_context_restores_the_model_exactly(tiny: ClassifierModel, conv3_dim: int) -> None:
    a, b = _pair(tiny, "conv3", conv3_dim)
    spec = _spec(tiny, "conv3", ConceptEdit(a, "mask"), ConceptEdit(b, "amplify", 3.0))
    x = tiny.preprocess(_images(8))
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
    a, b = _pair(tiny, "conv3", conv3_dim)
    spec = _spec(tiny, "conv3", ConceptEdit(a, "mask"), ConceptEdit(b, "set", 0.7, "present"))
    imgs = _images(10)
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
    a, _ = _pair(tiny, "conv3", conv3_dim)
    imgs = _images(16, seed=3)
    h = extract_activations(tiny, imgs, ["conv3"])["conv3"]
    full = _spec(tiny, "conv3", ConceptEdit(a, "amplify", 10.0))
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


# ---------------------------------------------------------------------------------- artifacts
def test_patched_artifact_roundtrip_and_refusals(tiny: ClassifierModel, conv3_dim: int, tmp_path: Path) -> None:
    a, b = _pair(tiny, "conv3", conv3_dim)
    spec = _spec(tiny, "conv3", ConceptEdit(a, "mask"), ConceptEdit(b, "amplify", 2.0))
    pm = patch(tiny, spec)
    out = pm.save(tmp_path / "patched")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_id"] == tiny.model_id and manifest["spec_id"] == spec.spec_id
    assert set(manifest["files"]) == {"spec.json", "base/model.json", "base/weights.pt"}
    sd = torch.load(out / "base" / "weights.pt", weights_only=True)
    assert set(sd) == set(tiny.module.state_dict())
    loaded = load_patched(out)
    x = tiny.preprocess(_images(6))
    with torch.inference_mode():
        assert torch.equal(loaded(x), pm(x))
    assert loaded.patched_id == pm.patched_id
    with pytest.raises(InterventionError, match="not empty"):
        pm.save(out)
    pm.save(out, overwrite=True)
    with pytest.raises(InterventionError, match="base model given"):
        load_patched(out, base_model=_tiny(seed=2))
    assert load_patched(out, base_model=tiny).model is tiny
    spec_file = out / "spec.json"
    spec_file.write_text(spec_file.read_text().replace('"strength": 2.0', '"strength": 3.0'))
    with pytest.raises(InterventionError, match="checksum"):
        load_patched(out)
    with pytest.raises(InterventionError, match=r"manifest\.json missing"):
        load_patched(tmp_path / "nothing")


# ---------------------------------------------------------------------------------- directions
def test_directions_from_examples_and_twins(tiny: ClassifierModel) -> None:
    rng = np.random.default_rng(4)
    absent = rng.standard_normal((30, 20)).astype(np.float32)
    shift = _unit(rng.standard_normal(20))
    present = absent + 2.0 * shift
    twin = direction_from_examples("ink", "pool", tiny.model_id, present, absent, method="twin")
    assert float(twin.vector @ shift) > 0.999
    assert twin.mu1 is not None and abs(twin.mu1 - twin.mu0 - 2.0) < 1e-4
    assert twin.accuracy == 1.0
    pattern = direction_from_examples("ink", "pool", tiny.model_id, present, absent, method="pattern")
    assert float(pattern.vector @ shift) > 0.9
    with pytest.raises(InterventionError, match="unknown direction method"):
        direction_from_examples("ink", "pool", tiny.model_id, present, absent, method="magic")
    rnd = random_direction("pool", tiny.model_id, absent, seed=1)
    assert abs(float(np.linalg.norm(rnd.vector)) - 1) < 1e-6 and rnd.method == "random"


def test_insert_artifact_is_reproducible_and_local() -> None:
    imgs = np.full((3, 48, 64, 3), 180, dtype=np.uint8)
    t1 = insert_artifact(imgs, "ink", seed=7)
    t2 = insert_artifact(imgs, "ink", seed=7)
    assert np.array_equal(t1, t2) and t1.shape == imgs.shape
    changed = (t1 != imgs).any(axis=-1)
    assert 0 < changed.mean() < 0.5
    assert np.array_equal(insert_artifact(imgs[1:2], "ink", seed=7, stream_ids=[1]), t1[1:2])
    with pytest.raises(InterventionError, match="unknown artifact"):
        insert_artifact(imgs, "glitter")


# ---------------------------------------------------------------------------------- what-if
def test_whatif_matches_metrics_and_strength_changes() -> None:
    rng = np.random.default_rng(5)
    n, d = 400, 24
    y = rng.integers(0, 2, n)
    ink = (rng.random(n) < np.where(y == 0, 0.6, 0.05)).astype(int)
    v_sig, v_ink = np.eye(d)[0], np.eye(d)[1]
    X = (rng.standard_normal((n, d)) + np.outer(np.where(y == 0, 1.0, -1.0), v_sig)
         + 3.0 * np.outer(ink, v_ink)).astype(np.float32)
    w = np.stack([v_sig + v_ink, -v_sig - v_ink]).astype(np.float32)
    model = linear_model(w, np.zeros(2, np.float32))
    ink_dir = direction_from_examples("ink", "pool", model.model_id, X[ink == 1], X[ink == 0], method="pattern")
    spec = InterventionSpec(model.model_id, "pool", (ConceptEdit(ink_dir, "mask"),))
    wi = WhatIf(model, "pool", X, y, groups={"ink": ink}, spec=spec)
    base = wi.evaluate(None)
    assert base.n_flipped == 0 and base.metrics["n"] == n
    assert base.metrics["accuracy"] == pytest.approx(float(np.mean((X @ w.T).argmax(1) == y)))
    full = wi.evaluate({"ink": 1.0})
    assert full.metrics == wi.evaluate(spec).metrics
    assert full.metrics["worst_group_accuracy"] > base.metrics["worst_group_accuracy"]
    zero = wi.evaluate({"ink": 0.0})
    assert np.array_equal(zero.proba, base.proba) and zero.n_flipped == 0
    assert full.elapsed_ms < 1000
    with pytest.raises(InterventionError, match="not in this spec"):
        wi.evaluate({"ruler": 1.0})


# ---------------------------------------------------------------------------------- concept head
def test_concept_head_ops_are_exact() -> None:
    rng = np.random.default_rng(6)
    n, k = 300, 5
    P = rng.random((n, k)) < 0.5
    S = np.where(P, 1.0, -1.0) + 0.3 * rng.standard_normal((n, k))
    y = (P[:, 0] | P[:, 1]).astype(int)
    names = ["streaks", "pigment_network", "ink", "ruler", "hair"]
    head = ConceptHead(C=0.5).fit(S, y, names, presence=P)
    assert head.coef_.shape == (2, k)
    assert np.abs(head.coef_[1, :2]).min() > np.abs(head.coef_[1, 2:]).max()
    np.testing.assert_array_equal(head.decision_function(S), head.decision_function(S, [HeadEdit("ink", "scale", 1.0)]))
    zeroed = head.decision_function(S, [HeadEdit("streaks", "zero_weight")])
    S0 = S.copy()
    S0[:, 0] = 0.0
    np.testing.assert_allclose(zeroed, head.decision_function(S0))
    absent = head.predict_proba(S, [HeadEdit("streaks", "set", "absent"), HeadEdit("pigment_network", "set", "absent")])
    assert absent[:, 1].mean() < head.predict_proba(S)[:, 1].mean()
    with pytest.raises(InterventionError, match="unknown concept"):
        head.decision_function(S, [HeadEdit("gel", "zero_weight")])
    with pytest.raises(InterventionError, match="unknown head operation"):
        HeadEdit("ink", "delete")
    curve = intervention_curve(head, S + rng.standard_normal(S.shape), P, y, n_orders=5)
    assert curve.shape == (k + 1,) and curve[-1] >= curve[0]


def test_pcbm_concept_scores_use_mid_level(tiny: ClassifierModel) -> None:
    d = ConceptDirection("c@1", "c", "pool", tiny.model_id, np.eye(4)[0], mu0=1.0, mu1=3.0)
    s = pcbm_concept_scores(np.array([[2.0, 5, 5, 5], [4.0, 0, 0, 0]], np.float32), [d])
    np.testing.assert_allclose(s[:, 0], [0.0, 2.0])


def test_fast_whatif_metrics_agree_with_classification_metrics() -> None:
    from concepts.models import classification_metrics
    from interventions._whatif_metrics import FastMetrics as _FastMetrics

    rng = np.random.default_rng(7)
    n = 300
    y = rng.integers(0, 2, n)
    groups = {"ink": rng.random(n) < 0.3, "patch": rng.random(n) < 0.2}
    model = linear_model(np.eye(2, 4, dtype=np.float32), np.zeros(2, np.float32))
    wi = WhatIf(model, "pool", rng.standard_normal((n, 4)).astype(np.float32), y, groups=groups)
    fast = _FastMetrics(y, CLASSES, groups)
    for seed in range(3):
        p = np.random.default_rng(seed).random((n, 2))
        p[:10, 0] = p[:10, 1]  # ties
        p /= p.sum(1, keepdims=True)
        ref = classification_metrics(wi._dataset, np.arange(n), p, group_artifacts=("ink", "patch")).to_json()
        got = fast(p)
        for k, v in ref.items():
            if isinstance(v, dict):  # per-group / per-class values
                assert set(got[k]) == set(v), k
                for kk, vv in v.items():
                    assert got[k][kk] == pytest.approx(vv, abs=1e-12), (k, kk)
            else:
                assert got[k] == pytest.approx(v, abs=1e-12), k


# ---------------------------------------------------------------------------------- test-time fix
def test_fix_masks_the_confounder_that_fires_on_the_wrong_class() -> None:
    rng = np.random.default_rng(8)
    Xs, ys, inks = linear_domain(rng, 600, ink_on=0)  # source: ink with melanoma
    w = np.array([[1.0, 1.2, 0.5, 0, 0, 0], [-1.0, -1.2, -0.5, 0, 0, 0]], np.float32)
    model = linear_model(w, np.array([-1.8, 1.8], np.float32))
    e = np.eye(6, dtype=np.float32)
    dirs = [
        ConceptDirection("ink@v1", "ink", "pool", model.model_id, e[1], mu0=0.0, mu1=3.0),
        ConceptDirection("hair@v1", "hair", "pool", model.model_id, e[3], mu0=0.0, mu1=2.0),
        ConceptDirection("streaks@v1", "streaks", "pool", model.model_id, e[2], mu0=0.0, mu1=1.0),
    ]
    source = WhatIf(model, "pool", Xs, ys, groups={"ink": inks})
    Xn, yn, _ = linear_domain(rng, 200, ink_on=1)  # new domain: ink with nevi
    few, rest = select_few_shot(yn, 4, seed=0)
    assert len(few) == 8 and len(rest) == 192 and set(yn[few]) == {0, 1}
    held = WhatIf(model, "pool", Xn[rest], yn[rest])
    p = propose_fix(model, dirs, Xn[few], yn[few], source=source, held_out=held)
    assert "ink" in p.proposed and p.spec is not None
    assert p.spec.edit("ink").operation == "mask"
    assert all(e.operation == "amplify" for e in p.spec.edits if e.direction.concept == "streaks")
    top = p.ranking[0]
    assert top["concept"] == "ink" and top["role"] == "misactivated confounder"
    assert top["supports"] == "melanoma" and top["excess"] > 0.2
    assert p.source_drop is not None and p.source_drop <= 0.02
    assert p.held_out is not None
    assert p.held_out["after"]["accuracy"] > p.held_out["before"]["accuracy"]
    assert json.loads(json.dumps(p.to_json()))["proposed"] == p.proposed
    with pytest.raises(InterventionError, match="at least two classes"):
        propose_fix(model, dirs, Xn[:3], np.zeros(3, int))
    with pytest.raises(InterventionError, match="k=5"):
        select_few_shot(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 5)


def test_whatif_affine_head_path_matches_the_patched_model(tiny: ClassifierModel) -> None:
    from interventions._whatif import _affine_above

    imgs = _images(20, seed=9)
    h = extract_activations(tiny, imgs, ["pool"])["pool"]
    assert _affine_above(tiny.module, "pool") is not None  # type: ignore[arg-type]
    assert _affine_above(tiny.module, "conv3") is None  # type: ignore[arg-type]
    a, b = _pair(tiny, "pool", h.shape[1], cos=0.5)
    spec = _spec(tiny, "pool", ConceptEdit(a, "mask"), ConceptEdit(b, "amplify", 4.0))
    ids = [f"c{i}" for i in range(20)]
    wi = WhatIf(tiny, "pool", h, np.zeros(20, int), case_ids=ids)
    for s in (spec, spec.with_scope(Scope.cases(["c3", "c4"])), spec.with_scope(Scope.predicted("nevus"))):
        np.testing.assert_allclose(wi.predict_proba(s), patch(tiny, s).predict_proba(imgs, case_ids=ids),
                                   rtol=1e-4, atol=1e-5)


def test_reliance_on_real_data_uses_real_twins(tiny: ClassifierModel, tmp_path: Path) -> None:
    import pandas as pd

    from concepts import Dataset, DatasetInfo
    from interventions import measure_effect, twin_direction_from_images

    n = 30
    imgs = np.full((n, 64, 64, 3), 170, dtype=np.uint8)
    imgs[:, 20:44, 20:44] = np.random.default_rng(10).integers(40, 120, (n, 24, 24, 3), dtype=np.uint8)
    cases = pd.DataFrame({
        "case_id": [f"r{i}" for i in range(n)], "label": [CLASSES[i % 2] for i in range(n)], "split": "test",
        "ink": [int(i % 5 == 0) for i in range(n)],
    })
    info = DatasetInfo(name="real", kind="folder", classes=CLASSES, image_size=64, artifacts=("ink",))
    ds = Dataset.write(tmp_path / "real", info, cases, imgs)
    d = twin_direction_from_images(tiny, imgs[:12], "ink", "pool", seed=1)
    assert d.method == "twin" and d.mu1 is not None and d.mu1 > d.mu0
    spec = _spec(tiny, "pool", ConceptEdit(d, "mask"))
    # not DermSynth and no twin/mask column: no renderer's ink on real images, a note instead
    assert measure_effect(tiny, spec, ds, "test").reliance["flip_rates"] == {}
    # a twin column (another case of the data set): add pairs from the clean cases
    cases["ink_twin"] = [f"r{(i // 5) * 5}" if i % 5 else "" for i in range(n)]
    ds = Dataset.write(tmp_path / "real2", info, cases, imgs)
    rep = measure_effect(tiny, spec, ds, "test")
    fr = rep.reliance["flip_rates"]["ink"]
    assert fr["n"] == int((cases["ink"] == 0).sum()) and fr["to_class"] is None
    assert fr["method"] == "pairs:ink_twin"
    assert set(rep.before["flip_rates"]) == {"ink"}
    assert rep.before["n"] == n and rep.to_json()["split"] == "test"
    assert {s["column"] for s in rep.slices} == {"ink"}
