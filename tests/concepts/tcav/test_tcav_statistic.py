"""Which per-run statistic the TCAV significance test compares (synthetic activations and gradients).

Near a linear head the class-logit gradient barely varies across inputs, so the TCAV score (the
sign count) of every CAV, random ones included, is close to 0 or 1: the random pseudo-concepts'
means spread over the whole interval and a concept scoring 1.0 cannot clear a Holm-corrected
test. The mean directional derivative has no such ceiling. These tests show the ceiling, that the
derivative finds the planted direction there, and that it keeps the false-positive rate, both for
random concepts and for a concept that separates well but that the logit does not use.
"""

from __future__ import annotations

import numpy as np
import pytest

from concepts import ConceptError
from concepts.tcav import (
    STATISTICS,
    ConceptSides,
    SignificanceConfig,
    TCAVScores,
    baseline_means,
    compare_to_random,
    fit_cav_batch,
    holm,
    plan_runs,
    tcav_scores,
)
from concepts.tcav._table import _tested
from tests.support.null_world import N_CONCEPTS, POOL, null_world, seed_of
from tests.support.null_world import N_EX as NE
from tests.support.null_world import R as RR

D, R, N_EX = 256, 20, 40


def _pvalues(X: np.ndarray, sides: list[ConceptSides], grads: np.ndarray, statistic: str,
             seed: int = 9) -> tuple[np.ndarray, np.ndarray, float]:
    """Holm-adjusted p of every concept, its mean sign count, and the first concept's CAV accuracy."""
    plan = plan_runs(sides, pool_offset=0, pool_size=POOL, set_size=N_EX // 2, runs=R, baseline_id="random",
                     seed_of=seed_of(seed))
    ctasks = [t for ts in plan.concept_tasks for t in ts]
    batch = fit_cav_batch(X, [*ctasks, *plan.baseline_tasks])
    sc = tcav_scores(grads, batch.vectors)
    n = len(ctasks)

    def part(sl: slice) -> TCAVScores:
        return TCAVScores(sc.sign_count[sl], sc.magnitude[sl], sc.mean_derivative[sl], sc.n_inputs)

    rnd = part(slice(n, None))
    p = []
    for i in range(len(sides)):
        T, B = _tested(part(slice(i * R, (i + 1) * R)), rnd, statistic, plan.runs_per_set)
        p.append(compare_to_random(T, B))
    scores = np.array([sc.sign_count[i * R : (i + 1) * R].mean() for i in range(len(sides))])
    return holm(np.array(p)), scores, float(batch.accuracies[:R].mean())


def _saturated_world(seed: int = 5) -> tuple[np.ndarray, list[ConceptSides], np.ndarray]:
    """Gradients that barely vary (``1.5 u`` plus a little noise, as below a linear head); concept 0
    differs from its negatives along ``u`` (the logit uses it), concept 1 as strongly along ``w``
    orthogonal to ``u`` (separable, but the logit ignores it), concepts 2..21 are random."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=D)
    u /= np.linalg.norm(u)
    w = rng.normal(size=D)
    w -= (w @ u) * u
    w /= np.linalg.norm(w)
    grads = 1.5 * u + 0.05 * rng.normal(size=(200, D))
    blocks, sides, at = [rng.normal(size=(POOL, D))], [], POOL
    for i in range(22):
        shift = 6.0 * u if i == 0 else 6.0 * w if i == 1 else 0.0
        blocks += [rng.normal(size=(N_EX, D)) + shift, rng.normal(size=(N_EX, D))]
        sides.append(ConceptSides(f"c{i}", np.arange(at, at + N_EX), np.arange(at + N_EX, at + 2 * N_EX)))
        at += 2 * N_EX
    return np.concatenate(blocks).astype(np.float32), sides, grads


def test_the_sign_count_has_a_ceiling_near_a_linear_head_and_the_derivative_does_not() -> None:
    X, sides, grads = _saturated_world()
    p_sign, scores, acc = _pvalues(X, sides, grads, "sign_count")
    assert acc > 0.9 and scores[0] > 0.99  # the CAV separates and the score is at its maximum ...
    assert p_sign[0] > 0.05  # ... and still not significant after Holm: random means spread 0..1
    p_der, _, _ = _pvalues(X, sides, grads, "derivative")
    assert p_der[0] < 0.01
    assert p_der[1] > 0.05  # separable, but the logit does not use it: not a finding
    assert (p_der[2:] < 0.05).mean() <= 0.05


@pytest.mark.parametrize("mode", ["random", "negative"])
def test_random_concepts_keep_the_false_positive_rate_on_the_derivative(mode: str) -> None:
    for seed in range(3):
        X, sides, grads = null_world(mode, seed)
        plan = plan_runs(sides, pool_offset=0, pool_size=POOL, set_size=NE // 2, runs=RR, baseline_id="random",
                         seed_of=seed_of(seed))
        tasks = [t for ts in plan.concept_tasks for t in ts]
        sc = tcav_scores(grads, fit_cav_batch(X, [*tasks, *plan.baseline_tasks], probe="pattern").vectors)
        md = sc.mean_derivative
        rnd = TCAVScores(sc.sign_count[len(tasks):], sc.magnitude[len(tasks):], md[len(tasks):], sc.n_inputs)
        p = []
        for i in range(N_CONCEPTS):
            sl = slice(i * RR, (i + 1) * RR)
            T, B = _tested(TCAVScores(sc.sign_count[sl], sc.magnitude[sl], md[sl], sc.n_inputs), rnd,
                           "derivative", plan.runs_per_set)
            assert np.allclose(B, baseline_means(md[len(tasks):], plan.runs_per_set))
            p.append(compare_to_random(T, B))
        assert (holm(np.array(p)) < 0.05).mean() <= 0.05
        assert (np.array(p) < 0.05).mean() <= 0.10


def test_statistic_is_validated() -> None:
    assert SignificanceConfig().statistic == "derivative" and set(STATISTICS) == {"derivative", "sign_count"}
    with pytest.raises(ConceptError, match="unknown statistic"):
        SignificanceConfig(statistic="magnitude")
