"""CAV probes: unit length, held-out accuracy, batched == one at a time, closed forms exact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Ridge

from concepts import ConceptError
from concepts.tcav import (
    CAV,
    PROBES,
    CAVSet,
    CAVTrainer,
    ProbeTask,
    cav_cosine,
    fit_cav_batch,
    fit_cavs,
)
from concepts.tcav._cav import mean_pairwise_cosine
from concepts.tcav._probes import _split_task


def _blobs(n: int = 60, d: int = 40, shift: float = 1.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    neg = rng.normal(size=(n, d)).astype(np.float32)
    pos = (rng.normal(size=(n, d)) + shift * direction).astype(np.float32)
    return pos, neg, direction


@pytest.mark.parametrize("probe", PROBES)
def test_every_probe_finds_the_planted_direction(probe):
    pos, neg, direction = _blobs(n=80, d=20, shift=3.0)
    X = np.concatenate([pos, neg])
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    tr = CAVTrainer(probe, random_state=3).fit(X, y)
    assert np.linalg.norm(tr.vector_) == pytest.approx(1.0, abs=1e-5)
    assert tr.accuracy_ >= 0.9
    assert cav_cosine(tr.vector_, direction) > 0.6
    cav = tr.to_cav("c", "random", "layer")
    assert cav.n_pos == cav.n_neg == 80
    np.testing.assert_allclose(cav.score(X), tr.decision_function(X), rtol=1e-6)
    assert set(tr.predict(X)) <= {0, 1}


def test_batched_fit_equals_independent_references():
    """Each batched CAV equals a fit computed independently (numpy / scikit-learn) on that task's
    own training rows, and its accuracy is the held-out accuracy computed by hand."""
    from sklearn.linear_model import LogisticRegression, Ridge

    pos, neg, _ = _blobs(n=50, d=30)
    X = np.concatenate([pos, neg, neg[::-1] + 0.1]).astype(np.float32)
    tasks = [ProbeTask(np.arange(50), np.arange(50 + 5 * i, 100 + 5 * i), seed=i) for i in range(6)]
    for probe in ("pattern", "ridge", "logistic"):
        batch = fit_cav_batch(X, tasks, probe=probe)
        for t, task in enumerate(tasks):
            ptr, ntr, pte, nte = _split_task(task, 0.3)
            Xt = X[np.r_[ptr, ntr]].astype(np.float64)
            y01 = np.r_[np.ones(len(ptr)), np.zeros(len(ntr))]
            if probe == "pattern":
                w = X[ptr].mean(0) - X[ntr].mean(0)
            elif probe == "ridge":
                Xc = Xt - Xt.mean(0)
                w = Ridge(alpha=np.trace(Xc.T @ Xc) / len(Xt)).fit(Xt, 2 * y01 - 1).coef_
            else:
                w = LogisticRegression(C=1.0, max_iter=1000, random_state=task.seed).fit(Xt, y01).coef_[0]
            np.testing.assert_allclose(batch.vectors[t], w / np.linalg.norm(w), atol=1e-4)
            s_pos = X[pte] @ batch.vectors[t] + batch.intercepts[t]
            s_neg = X[nte] @ batch.vectors[t] + batch.intercepts[t]
            acc = (np.sum(s_pos > 0) + np.sum(s_neg <= 0)) / (len(pte) + len(nte))
            assert batch.accuracies[t] == pytest.approx(acc)
        assert len({tuple(np.round(v, 4)) for v in batch.vectors}) == len(tasks)  # tasks differ


def test_pattern_is_the_mean_difference_and_ridge_is_sklearn_ridge():
    pos, neg, _ = _blobs(n=40, d=120)  # d > n: ridge runs in the dual on the shared Gram matrix
    X = np.concatenate([pos, neg])
    task = ProbeTask(np.arange(40), np.arange(40, 80), seed=1)
    ptr, ntr, _, _ = _split_task(task, 0.3)
    pat = fit_cav_batch(X, [task], probe="pattern")
    w = X[ptr].mean(0) - X[ntr].mean(0)
    np.testing.assert_allclose(pat.vectors[0], w / np.linalg.norm(w), atol=1e-6)
    mid = (X[ptr].mean(0) + X[ntr].mean(0)) / 2
    assert pat.intercepts[0] == pytest.approx(-(w @ mid) / np.linalg.norm(w), rel=1e-4)

    rows = np.concatenate([ptr, ntr])
    yy = np.r_[np.ones(len(ptr)), -np.ones(len(ntr))]
    Xt = X[rows].astype(np.float64)
    Xc = Xt - Xt.mean(0)
    lam = np.trace(Xc @ Xc.T) / len(rows)  # alpha = 1 relative to the mean diagonal
    ref = Ridge(alpha=lam).fit(Xt, yy)
    rid = fit_cav_batch(X, [task], probe="ridge")
    norm = np.linalg.norm(ref.coef_)
    np.testing.assert_allclose(rid.vectors[0], ref.coef_ / norm, atol=1e-6)
    assert rid.intercepts[0] == pytest.approx(ref.intercept_ / norm, abs=1e-6)
    # the primal path (narrow features) agrees with sklearn as well
    narrow = fit_cav_batch(X[:, :10], [task], probe="ridge")
    Xn = Xt[:, :10]
    lam_n = np.trace((Xn - Xn.mean(0)).T @ (Xn - Xn.mean(0))) / len(rows)
    ref_n = Ridge(alpha=lam_n).fit(Xn, yy)
    np.testing.assert_allclose(narrow.vectors[0], ref_n.coef_ / np.linalg.norm(ref_n.coef_), atol=1e-6)


def test_balancing_and_held_out_split():
    pos, neg, _ = _blobs(n=60)
    tr = CAVTrainer("pattern").fit(np.concatenate([pos[:20], neg]), np.r_[np.ones(20), np.zeros(60)])
    assert tr.n_pos_ == tr.n_neg_ == 20  # the larger side is subsampled
    ptr, ntr, pte, nte = _split_task(ProbeTask(np.arange(20), np.arange(20, 80), 0), 0.3)
    assert len(pte) == len(nte) == 6 and len(ptr) == len(ntr) == 14
    assert not set(ptr) & set(pte) and not set(ntr) & set(nte)


def test_user_errors_are_explained():
    X = np.zeros((6, 3), np.float32)
    with pytest.raises(ConceptError, match="at least 4"):
        CAVTrainer().fit(X, np.r_[np.ones(3), np.zeros(3)])
    with pytest.raises(ConceptError, match="unknown probe"):
        CAVTrainer("svm").fit(np.zeros((10, 3)), np.r_[np.ones(5), np.zeros(5)])
    with pytest.raises(ConceptError, match="no direction"):
        CAVTrainer().fit(np.ones((10, 3)), np.r_[np.ones(5), np.zeros(5)])


def test_fit_cavs_keeps_the_public_interface():
    pos, neg, _ = _blobs()
    cavs = fit_cavs([("a", "random", "l1", pos, neg), ("b", "random", "l2", neg, pos)], probe="ridge")
    assert [c.concept for c in cavs] == ["a", "b"] and [c.layer for c in cavs] == ["l1", "l2"]
    assert isinstance(cavs[0], CAV) and cav_cosine(cavs[0], cavs[1]) < -0.5
    assert cavs[0].to_json()["probe"] == "ridge"
    single = CAVTrainer("ridge", random_state=0).fit(np.concatenate([pos, neg]), np.r_[np.ones(60), np.zeros(60)])
    np.testing.assert_allclose(single.vector_, cavs[0].vector, atol=2e-5)


def test_cavset_roundtrip_and_stability(tmp_path):
    pos, neg, direction = _blobs(n=40, d=16)
    X = np.concatenate([pos, neg])
    batch = fit_cav_batch(X, [ProbeTask(np.arange(40), np.arange(40, 80), s) for s in range(5)])
    cs = CAVSet("a", "id1", "conv", "pattern", ("random_1",) * 5, batch.vectors, batch.intercepts,
                batch.accuracies, (4, 2, 2), 40, 40)
    back = CAVSet.load(cs.save(tmp_path / "a.npz", model_id="m"))
    np.testing.assert_array_equal(back.vectors, cs.vectors)
    assert back.shape == (4, 2, 2) and back.negatives == cs.negatives
    assert 0.5 < cs.stability <= 1.0
    mean = cs.mean_cav()
    assert np.linalg.norm(mean.vector) == pytest.approx(1.0, abs=1e-6)
    assert cav_cosine(mean, direction) > 0.5
    assert len(cs.cavs()) == 5
    assert np.isnan(mean_pairwise_cosine(batch.vectors[:1]))


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(0.01, 100.0), seed=st.integers(0, 1000))
def test_closed_form_cavs_are_unit_length_and_scale_invariant(scale, seed):
    pos, neg, _ = _blobs(n=12, d=8, seed=seed)
    X = np.concatenate([pos, neg])
    tasks = [ProbeTask(np.arange(12), np.arange(12, 24), seed)]
    for probe in ("pattern", "ridge"):
        a = fit_cav_batch(X, tasks, probe=probe)
        b = fit_cav_batch(X * scale, tasks, probe=probe)
        np.testing.assert_allclose(np.linalg.norm(a.vectors, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(a.vectors, b.vectors, atol=2e-4)
        assert a.accuracies[0] == b.accuracies[0]
