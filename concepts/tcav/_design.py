"""The sampling design of a TCAV analysis: which examples each of the R runs trains on.

Every run draws its examples afresh, so the run-to-run spread is real:

* **concept runs** train on a random half of the concept's positives (half-sampling: the spread
  of half-sample estimates approximates the sampling error of the whole set) against either a
  random set of the pool (``counterpart="random"``; drawn from the pool *minus the concept's own
  examples*, so no image sits on both sides) or a random half of the explicit negatives
  (``counterpart="negative"``; the same number per class on both sides when the labels are
  known, counterfactual twins kept in pairs);
* **baseline**: R random *pseudo-concepts* — each a fixed random "positive" set and a disjoint
  fixed random "negative" set of the pool, drawn from their own permutation stream independent of
  the concept runs' sets — each trained like a concept, on fresh halves, a few times. A concept's
  mean score is compared with the distribution of the pseudo-concepts' mean scores: a random
  concept is one sample of images just as they are, so under the null the two are exchangeable
  (up to the pseudo-concepts' fewer runs, which only makes the test conservative).

Within each stream the random sets are disjoint while the pool allows; when it does not, later
runs re-use pool images (each run's own two sets stay disjoint) and :func:`plan_runs` says so
in a warning with the pool size that would be needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from concepts._errors import ConceptError
from concepts.bank import MIN_EXAMPLES
from concepts.tcav._probes import ProbeTask

__all__ = ["BASELINE_RUNS_PER_SET", "ConceptSides", "RunPlan", "baseline_means", "half_sample", "plan_runs", "random_sets"]


def random_sets(
    pool_size: int, set_size: int, count: int, seed: int, *, exclude: np.ndarray | None = None
) -> list[np.ndarray]:
    """``count`` random index sets of ``set_size`` from a pool, disjoint while the pool allows.

    ``exclude`` (pool indices) are never drawn. When the remaining pool runs out, a fresh
    permutation starts (sets drawn after that overlap earlier ones).
    """
    rng = np.random.default_rng(seed)
    avail = np.arange(pool_size)
    if exclude is not None and len(exclude):
        avail = np.setdiff1d(avail, np.asarray(exclude, dtype=np.int64))
    if set_size > len(avail):
        raise ConceptError(
            f"the random pool has {len(avail)} usable images, fewer than one random set of {set_size}"
            " — add images to the pool (ConceptBank.set_random_pool_from_dataset(size=...))"
        )
    perm = rng.permutation(avail)
    at = 0
    out = []
    for _ in range(count):
        if at + set_size > len(perm):
            perm, at = rng.permutation(avail), 0
        out.append(np.sort(perm[at : at + set_size]))
        at += set_size
    return out


def half_sample(n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a random half of ``n`` items (at least :data:`MIN_EXAMPLES`, at most ``n``)."""
    k = min(n, max(MIN_EXAMPLES, (n + 1) // 2))
    return np.sort(rng.choice(n, k, replace=False))


def _matched_halves(
    pos: np.ndarray, neg: np.ndarray, pos_labels: np.ndarray, neg_labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Half of each side with the same number per class on both sides."""
    ps, ns = [], []
    for k in np.union1d(pos_labels, neg_labels):
        pk, nk = pos[pos_labels == k], neg[neg_labels == k]
        m = (min(len(pk), len(nk)) + 1) // 2
        if m:
            ps.append(rng.choice(pk, m, replace=False))
            ns.append(rng.choice(nk, m, replace=False))
    p = np.sort(np.concatenate(ps)) if ps else pos[:0]
    q = np.sort(np.concatenate(ns)) if ns else neg[:0]
    if len(p) < MIN_EXAMPLES:  # too few class-matched cases: plain halves
        return pos[half_sample(len(pos), rng)], neg[half_sample(len(neg), rng)]
    return p, q


@dataclass(frozen=True)
class ConceptSides:
    """One concept's example rows in the shared activation pool.

    Attributes
    ----------
    cid
        Concept id (seeds its runs).
    pos, neg
        Pool rows of the positives and of the explicit negatives (``neg`` ``None``: the CAVs
        train against random sets).
    pos_labels, neg_labels
        Class indices of the rows, when known (class-matched halves for explicit negatives).
    twins
        ``pos[i]`` and ``neg[i]`` are counterfactual twins.
    exclude
        Random-pool indices holding the concept's own examples (never drawn against it).
    """

    cid: str
    pos: np.ndarray
    neg: np.ndarray | None = None
    pos_labels: np.ndarray | None = None
    neg_labels: np.ndarray | None = None
    twins: bool = False
    exclude: np.ndarray | None = None


#: Runs per random pseudo-concept of the baseline.
BASELINE_RUNS_PER_SET = 4


@dataclass(frozen=True)
class RunPlan:
    """The probe tasks of every concept and of the random baseline, plus what to warn about.

    ``baseline_tasks`` holds R random pseudo-concepts x ``runs_per_set`` runs (consecutive);
    :func:`baseline_means` turns their scores into the R pseudo-concept means.
    """

    concept_tasks: tuple[tuple[ProbeTask, ...], ...]
    baseline_tasks: tuple[ProbeTask, ...]
    warnings: tuple[str, ...]
    runs_per_set: int = BASELINE_RUNS_PER_SET


def baseline_means(scores: np.ndarray, runs_per_set: int = BASELINE_RUNS_PER_SET) -> np.ndarray:
    """The mean score of each random pseudo-concept (consecutive groups of ``runs_per_set``)."""
    a = np.asarray(scores, dtype=np.float64)
    return a.reshape(-1, runs_per_set).mean(axis=1)


def _concept_tasks(
    side: ConceptSides, pool_offset: int, pool_size: int, set_size: int, runs: int,
    seed_of: Callable[[str, int], int],
) -> tuple[list[ProbeTask], bool]:
    """R tasks of one concept; also whether its random sets had to overlap."""
    tasks = []
    if side.neg is None:
        excl = side.exclude if side.exclude is not None else np.zeros(0, np.int64)
        rsets = random_sets(pool_size, set_size, runs, seed_of(side.cid, 0), exclude=excl)
        for r in range(runs):
            rng = np.random.default_rng(seed_of(side.cid, r + 1))
            pos = side.pos[half_sample(len(side.pos), rng)]
            tasks.append(ProbeTask(pos, pool_offset + rsets[r], seed_of(side.cid, r + 1)))
        return tasks, (pool_size - len(excl)) < runs * set_size
    for r in range(runs):
        rng = np.random.default_rng(seed_of(side.cid, r + 1))
        if side.twins and len(side.pos) == len(side.neg):
            pick = half_sample(len(side.pos), rng)
            pos, neg = side.pos[pick], side.neg[pick]
        elif side.pos_labels is not None and side.neg_labels is not None:
            pos, neg = _matched_halves(side.pos, side.neg, side.pos_labels, side.neg_labels, rng)
        else:
            pos, neg = side.pos[half_sample(len(side.pos), rng)], side.neg[half_sample(len(side.neg), rng)]
        tasks.append(ProbeTask(pos, neg, seed_of(side.cid, r + 1), paired=side.twins))
    return tasks, False


def plan_runs(
    sides: Sequence[ConceptSides],
    *,
    pool_offset: int,
    pool_size: int,
    set_size: int,
    runs: int,
    baseline_id: str,
    seed_of: Callable[[str, int], int],
) -> RunPlan:
    """Every run's probe task: R per concept and R random-vs-random baseline runs.

    Parameters
    ----------
    sides
        The concepts' example rows.
    pool_offset, pool_size
        Where the random pool starts in the activation pool, and its size.
    set_size
        Size of each random set.
    runs
        R.
    baseline_id
        Id that seeds the baseline stream.
    seed_of
        ``seed_of(id, r)`` -> seed of run ``r`` of ``id`` (``r = 0``: its random-set stream).
    """
    warnings: list[str] = []
    concept_tasks = []
    short = []
    for side in sides:
        tasks, overlapped = _concept_tasks(side, pool_offset, pool_size, set_size, runs, seed_of)
        concept_tasks.append(tuple(tasks))
        if overlapped:
            short.append(side.cid)
    baseline = _baseline_tasks(pool_offset, pool_size, set_size, runs, baseline_id, seed_of)
    need = 2 * _pseudo_size(set_size, pool_size) * runs
    if pool_size < need or short:
        warnings.append(
            f"the random pool ({pool_size} images) is too small for {runs} disjoint random concepts "
            f"(the baseline needs {need}); later ones re-use pool images "
            "(each run's own sets stay disjoint, and a concept's own examples are never drawn "
            "against it) — enlarge the pool (`workbench concepts build --pool-size`) or lower --runs"
        )
    return RunPlan(tuple(concept_tasks), tuple(baseline), tuple(warnings), BASELINE_RUNS_PER_SET)


def _pseudo_size(set_size: int, pool_size: int) -> int:
    """Size of each side of a random pseudo-concept (its runs use halves of ``set_size``)."""
    return max(MIN_EXAMPLES, min(2 * set_size, pool_size // 2))


def _baseline_tasks(
    pool_offset: int, pool_size: int, set_size: int, runs: int, baseline_id: str,
    seed_of: Callable[[str, int], int],
) -> list[ProbeTask]:
    """``runs`` random pseudo-concepts, each trained like a concept on fresh halves of two fixed
    random sets, :data:`BASELINE_RUNS_PER_SET` times (tasks of one pseudo-concept are consecutive)."""
    m = _pseudo_size(set_size, pool_size)
    tasks = []
    for k, pair in enumerate(random_sets(pool_size, 2 * m, runs, seed_of(baseline_id, 0))):
        perm = np.random.default_rng(seed_of(baseline_id, -1 - k)).permutation(pair)
        pos, neg = perm[:m], perm[m:]
        for j in range(BASELINE_RUNS_PER_SET):
            sd = seed_of(baseline_id, 1 + k * BASELINE_RUNS_PER_SET + j)
            rng = np.random.default_rng(sd)
            tasks.append(ProbeTask(pool_offset + pos[half_sample(m, rng)], pool_offset + neg[half_sample(m, rng)], sd))
    return tasks
