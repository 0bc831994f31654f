"""The TCAV run design and its false-positive rate, on synthetic activations and gradients.

Random "concepts" (positives, and explicit negatives, drawn from the same distribution as the
random pool) must come out significant no more often than the level allows, in both counterpart
modes. The old design (the same positives and negatives in every run, Welch's test on the runs)
is measured alongside, so the test shows it can tell the two apart.
"""

from __future__ import annotations

import numpy as np
import pytest

from concepts import ConceptError
from concepts.tcav import (
    ConceptSides,
    ProbeTask,
    baseline_means,
    compare_to_random,
    fit_cav_batch,
    half_sample,
    holm,
    plan_runs,
    random_sets,
    tcav_scores,
)
from tests.support.null_world import N_EX, POOL, R, null_world, seed_of


def _pvalues(mode: str, seed: int, *, test: str, old_design: bool = False) -> np.ndarray:
    X, sides, grads = null_world(mode, seed)
    plan = plan_runs(sides, pool_offset=0, pool_size=POOL, set_size=N_EX // 2, runs=R,
                     baseline_id="random", seed_of=seed_of(seed))
    if old_design:  # every run: all positives, the same negatives (or the shared random sets)
        tasks = [ProbeTask(s.pos, s.neg if s.neg is not None else plan.baseline_tasks[r].neg, r)
                 for s in sides for r in range(R)]
    else:
        tasks = [t for ts in plan.concept_tasks for t in ts]
    batch = fit_cav_batch(X, [*tasks, *plan.baseline_tasks], probe="pattern")
    sc = tcav_scores(grads, batch.vectors).sign_count
    base = baseline_means(sc[len(tasks):], plan.runs_per_set)
    return np.array([compare_to_random(sc[i * R : (i + 1) * R], base, test) for i in range(len(sides))])


@pytest.mark.parametrize("mode", ["random", "negative"])
def test_random_concepts_keep_the_false_positive_rate(mode):
    for seed in range(3):
        p = _pvalues(mode, seed, test="prediction")
        assert (holm(p) < 0.05).mean() <= 0.05
        assert (p < 0.05).mean() <= 0.10  # also before correction


def test_the_old_design_over_claims_on_the_same_data():
    """Fixed example sets + Welch on the runs (the design this replaced) calls noise significant."""
    rates = [(holm(_pvalues("negative", s, test="welch", old_design=True)) < 0.05).mean() for s in range(3)]
    assert np.mean(rates) > 0.2


def _toy_sides(n_pool: int = 100):
    pos = np.arange(n_pool, n_pool + 30)
    neg = np.arange(n_pool + 30, n_pool + 60)
    return pos, neg


def test_runs_draw_fresh_examples_and_keep_pools_apart():
    pos, neg = _toy_sides(400)
    excl = np.arange(0, 10)  # pool images that are also the concept's own examples
    sides = [ConceptSides("a", pos, exclude=excl), ConceptSides("b", pos, neg)]
    plan = plan_runs(sides, pool_offset=0, pool_size=400, set_size=8, runs=5, baseline_id="rnd",
                     seed_of=seed_of(0))
    a_tasks, b_tasks = plan.concept_tasks
    assert len({tuple(t.pos) for t in a_tasks}) == 5  # a fresh half of the positives per run
    assert all(len(t.pos) == 15 for t in a_tasks)
    assert all(not set(t.neg) & set(excl) for t in a_tasks)  # never its own examples as random
    assert all(set(t.neg) <= set(neg) and len(t.neg) == 15 for t in b_tasks)
    assert len({tuple(t.neg) for t in b_tasks}) == 5
    a_negs = {int(i) for t in a_tasks for i in t.neg}
    assert len(a_negs) == 5 * 8  # disjoint random sets: the pool holds them
    # baseline: 5 random pseudo-concepts (fixed sets of 16 a side, disjoint from each other),
    # each trained on fresh halves plan.runs_per_set times
    assert len(plan.baseline_tasks) == 5 * plan.runs_per_set
    groups = [plan.baseline_tasks[k * plan.runs_per_set : (k + 1) * plan.runs_per_set] for k in range(5)]
    sides_of = []
    for g in groups:
        p_all = set().union(*(set(t.pos.tolist()) for t in g))
        n_all = set().union(*(set(t.neg.tolist()) for t in g))
        assert not p_all & n_all and len(p_all) <= 16 and len(n_all) <= 16
        assert all(len(t.pos) == len(t.neg) == 8 for t in g) and len({tuple(t.pos) for t in g}) > 1
        sides_of.append(p_all | n_all)
    assert all(not sides_of[i] & sides_of[j] for i in range(5) for j in range(i + 1, 5))
    assert not plan.warnings
    np.testing.assert_allclose(baseline_means(np.arange(8.0), 4), [1.5, 5.5])


def test_a_pool_too_small_is_reported():
    pos, _ = _toy_sides(40)
    plan = plan_runs([ConceptSides("a", pos)], pool_offset=0, pool_size=40, set_size=8, runs=5,
                     baseline_id="rnd", seed_of=seed_of(0))
    assert len(plan.warnings) == 1 and "too small" in plan.warnings[0] and "--pool-size" in plan.warnings[0]
    with pytest.raises(ConceptError, match="usable images"):
        random_sets(20, 8, 3, seed=0, exclude=np.arange(15))


def test_matched_halves_and_twins():
    pos, neg = _toy_sides()
    labels = np.r_[np.zeros(20, int), np.ones(10, int)]
    side = ConceptSides("m", pos, neg, labels, labels[::-1].copy())  # 20/10 vs 10/20 per class
    plan = plan_runs([side], pool_offset=0, pool_size=100, set_size=8, runs=4, baseline_id="rnd",
                     seed_of=seed_of(1))
    lab = dict(zip(pos.tolist(), labels.tolist(), strict=True)) | dict(
        zip(neg.tolist(), labels[::-1].tolist(), strict=True))
    for t in plan.concept_tasks[0]:
        cp = np.bincount([lab[i] for i in t.pos], minlength=2)
        cn = np.bincount([lab[i] for i in t.neg], minlength=2)
        np.testing.assert_array_equal(cp, cn)  # same class mix on both sides in every run
    twin = ConceptSides("t", pos, neg, twins=True)
    plan = plan_runs([twin], pool_offset=0, pool_size=100, set_size=8, runs=3, baseline_id="rnd",
                     seed_of=seed_of(2))
    for t in plan.concept_tasks[0]:
        assert t.paired
        np.testing.assert_array_equal(t.neg - 30, t.pos)  # pairs kept together
    rng = np.random.default_rng(0)
    assert len(half_sample(3, rng)) == 3 and len(half_sample(30, rng)) == 15


def test_a_planted_direction_is_found():
    """Ground truth: the class logit rises along ``u`` for almost every input, and the concept's
    examples differ from the pool along ``u`` (a CAV that separates well, as real concepts do in
    wide layers) — called significant after Holm over it and 20 random concepts, in both counterpart
    modes; the random ones are not."""
    d = 256
    rng = np.random.default_rng(5)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    grads = 1.5 * u + 0.4 * rng.normal(size=(200, d))
    pool = rng.normal(size=(POOL, d))
    blocks, sides, at = [pool], [], POOL
    for i in range(21):
        shift = 6.0 * u if i == 0 else 0.0
        blocks += [rng.normal(size=(N_EX, d)) + shift, rng.normal(size=(N_EX, d))]
        sides.append((np.arange(at, at + N_EX), np.arange(at + N_EX, at + 2 * N_EX)))
        at += 2 * N_EX
    X = np.concatenate(blocks).astype(np.float32)
    for mode in ("random", "negative"):
        cs = [ConceptSides(f"c{i}", p, n if mode == "negative" else None) for i, (p, n) in enumerate(sides)]
        plan = plan_runs(cs, pool_offset=0, pool_size=POOL, set_size=N_EX // 2, runs=R, baseline_id="random",
                         seed_of=seed_of(9))
        ctasks = [t for ts in plan.concept_tasks for t in ts]
        batch = fit_cav_batch(X, [*ctasks, *plan.baseline_tasks])
        assert batch.accuracies[:R].mean() > 0.9
        sc = tcav_scores(grads, batch.vectors).sign_count
        base = baseline_means(sc[len(ctasks):], plan.runs_per_set)
        p = holm(np.array([compare_to_random(sc[i * R : (i + 1) * R], base) for i in range(len(cs))]))
        assert p[0] < 0.01 and sc[:R].mean() > 0.9, (mode, p[0], sc[:R].mean(), base.std())
        assert (p[1:] < 0.05).mean() <= 0.05
