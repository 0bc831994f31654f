"""Interventions: patched artifacts, directions, what-if, concept head, few-shot fix, reliance on real
twins (fast tests; the spec, operations and hooks are in test_interventions.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from concepts import ClassifierModel, extract_activations
from interventions import (
    ConceptDirection,
    ConceptEdit,
    ConceptHead,
    HeadEdit,
    InterventionError,
    InterventionSpec,
    Scope,
    WhatIf,
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
from tests.support.linear_domain import linear_domain, linear_model
from tests.support.tiny_interventions import (
    CLASSES,
    direction_pair,
    random_images,
    spec_of,
    tiny_model,
    unit,
)


# ---------------------------------------------------------------------------------- artifacts
def test_patched_artifact_roundtrip_and_refusals(tiny: ClassifierModel, conv3_dim: int, tmp_path: Path) -> None:
    a, b = direction_pair(tiny, "conv3", conv3_dim)
    spec = spec_of(tiny, "conv3", ConceptEdit(a, "mask"), ConceptEdit(b, "amplify", 2.0))
    pm = patch(tiny, spec)
    out = pm.save(tmp_path / "patched")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_id"] == tiny.model_id and manifest["spec_id"] == spec.spec_id
    assert set(manifest["files"]) == {"spec.json", "base/model.json", "base/weights.pt"}
    sd = torch.load(out / "base" / "weights.pt", weights_only=True)
    assert set(sd) == set(tiny.module.state_dict())
    loaded = load_patched(out)
    x = tiny.preprocess(random_images(6))
    with torch.inference_mode():
        assert torch.equal(loaded(x), pm(x))
    assert loaded.patched_id == pm.patched_id
    with pytest.raises(InterventionError, match="not empty"):
        pm.save(out)
    pm.save(out, overwrite=True)
    with pytest.raises(InterventionError, match="base model given"):
        load_patched(out, base_model=tiny_model(seed=2))
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
    shift = unit(rng.standard_normal(20))
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

    imgs = random_images(20, seed=9)
    h = extract_activations(tiny, imgs, ["pool"])["pool"]
    assert _affine_above(tiny.module, "pool") is not None  # type: ignore[arg-type]
    assert _affine_above(tiny.module, "conv3") is None  # type: ignore[arg-type]
    a, b = direction_pair(tiny, "pool", h.shape[1], cos=0.5)
    spec = spec_of(tiny, "pool", ConceptEdit(a, "mask"), ConceptEdit(b, "amplify", 4.0))
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
    spec = spec_of(tiny, "pool", ConceptEdit(d, "mask"))
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
