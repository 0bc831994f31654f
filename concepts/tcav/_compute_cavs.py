"""The CAV stage of a TCAV analysis (captum's ``compute_cavs`` -> ``train_cav``).

:func:`compute_cavs` gathers one activation pool per layer (the random pool and every concept's
example sets), designs the runs (:func:`design_runs`: fresh half-samples and random sets per
run, see :mod:`concepts.tcav._design`) and trains them (:func:`train_cavs`): per (layer, probe)
the CAVs of every concept and of the random baseline, loaded from the ``.npz`` cache when an
identical design was trained before, else fitted in one batch.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from concepts._errors import ConceptError
from concepts.bank import MIN_EXAMPLES, Concept, ConceptBank, ExampleSet
from concepts.data import ImageSet
from concepts.tcav._cav import CAVSet
from concepts.tcav._design import ConceptSides, plan_runs
from concepts.tcav._plan import TCAVPlan
from concepts.tcav._probes import ProbeTask, fit_cav_batch
from concepts.tcav._setup import TCAVConfig, TCAVSetup

if TYPE_CHECKING:
    from collections.abc import Sequence

    from concepts._progress import ProgressFn

__all__ = [
    "CAV_FORMAT",
    "RANDOM",
    "ActivationPool",
    "CAVKey",
    "CAVSpec",
    "RunDesign",
    "TrainedCAVs",
    "compute_cavs",
    "design_runs",
    "train_cavs",
]

#: Version of the CAV training code; part of every cached CAV's key.
CAV_FORMAT = 3  # 3: per-run half-samples, baseline of random pseudo-concepts

#: Name under which the random-vs-random baseline CAVs are kept and scored.
RANDOM = "random"


@dataclass(frozen=True)
class ActivationPool:
    """One activation matrix per layer holding the random pool and every concept's example sets.

    Attributes
    ----------
    offsets
        Example-set key -> ``(first row, row count)`` in every layer's matrix.
    acts
        Layer -> ``(rows, D)`` float32 flattened activations.
    shapes
        Layer -> activation shape of one example (for concept maps).
    """

    offsets: Mapping[str, tuple[int, int]]
    acts: Mapping[str, np.ndarray]
    shapes: Mapping[str, tuple[int, ...]]

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers, in the order they were requested."""
        return tuple(self.acts)

    def rows(self, example_set: ExampleSet) -> np.ndarray:
        """The pool rows of an example set."""
        start, n = self.offsets[example_set.key]
        return np.arange(start, start + n)


@dataclass(frozen=True)
class CAVSpec:
    """The R probe tasks of one concept (or of the random baseline) and their negatives' names."""

    name: str
    concept_id: str
    tasks: tuple[ProbeTask, ...]
    negatives: tuple[str, ...]


@dataclass(frozen=True)
class RunDesign:
    """The runs of an analysis: what every CAV trains on.

    Attributes
    ----------
    key
        Digest of everything the CAVs depend on besides layer, concept and probe (cache key).
    random_set_size, pool_size
        Size of each random set and of the random pool.
    runs_per_set
        Baseline runs per random pseudo-concept.
    specs
        One per concept, in the plan's order, then the random baseline (:data:`RANDOM`).
    warnings
        A random pool too small for disjoint random sets.
    """

    key: str
    random_set_size: int
    pool_size: int
    runs_per_set: int
    specs: tuple[CAVSpec, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class CAVKey:
    """Which CAVs: the concept's (or :data:`RANDOM`'s) R runs at one layer with one probe."""

    probe: str
    concept: str
    layer: str


@dataclass(frozen=True)
class TrainedCAVs:
    """Every CAV set of the analysis, with what it took.

    Attributes
    ----------
    design
        The run design they were trained on.
    sets
        :class:`CAVKey` -> the R CAVs.
    n_fitted
        CAVs fitted in this call (the rest came from the cache).
    timings
        Seconds spent on the concept activations and on the CAVs.
    """

    design: RunDesign
    sets: Mapping[CAVKey, CAVSet]
    n_fitted: int
    timings: Mapping[str, float]

    def get(self, probe: str, concept: str, layer: str) -> CAVSet:
        """The CAV set of ``concept`` at ``layer`` trained with ``probe``."""
        return self.sets[CAVKey(probe, concept, layer)]


def compute_cavs(
    setup: TCAVSetup, plan: TCAVPlan, layers: Sequence[str], config: TCAVConfig,
    progress: ProgressFn | None = None,
) -> TrainedCAVs:
    """Activation pool -> run design -> the CAVs of every concept and of the baseline per layer."""
    t0 = time.perf_counter()
    pool = activation_pool(setup, plan, layers, progress)
    t_acts = time.perf_counter() - t0
    design = design_runs(plan, pool, config)
    t0 = time.perf_counter()
    sets, n_fitted = train_cavs(setup, pool, design, plan.probes, config, progress)
    timings = {"concept_activations": t_acts, "cavs": time.perf_counter() - t0}
    return TrainedCAVs(design, sets, n_fitted, timings)


def activation_pool(
    setup: TCAVSetup, plan: TCAVPlan, layers: Sequence[str], progress: ProgressFn | None = None
) -> ActivationPool:
    """The random pool and every example set the concepts train on, stacked per layer."""
    bank = plan.bank
    offsets: dict[str, tuple[int, int]] = {}
    sets: list[ImageSet] = []
    wanted = [_random_pool(bank)]
    for con in plan.concepts:
        wanted.append(con.positive)
        if con.counterpart == "negative" and con.negative is not None:
            wanted.append(con.negative)
    for ex in wanted:
        if ex.key not in offsets:
            offsets[ex.key] = (sum(n for _, n in offsets.values()), len(ex))
            sets.append(bank.image_set(ex))
    blocks: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    shapes: dict[str, tuple[int, ...]] = {}
    for i, image_set in enumerate(sets):
        got = setup.cache.get(setup.model, list(layers), image_set, progress=progress)
        for layer in layers:
            a = np.asarray(got[layer], dtype=np.float32)
            shapes[layer] = tuple(a.shape[1:])
            blocks[layer].append(a.reshape(len(a), -1))
        if progress is not None:
            progress("concept activations", i + 1, len(sets))
    return ActivationPool(offsets, {layer: np.concatenate(b) for layer, b in blocks.items()}, shapes)


def _random_pool(bank: ConceptBank) -> ExampleSet:
    if bank.random_pool is None:  # plan_analysis refuses such a bank; kept for direct callers
        raise ConceptError("the concept bank has no random pool — set one (set_random_pool_from_dataset)")
    return bank.random_pool


def _task_seed(seed: int, cid: str, run: int) -> int:
    return (seed * 1_000_003 + int(hashlib.sha256(cid.encode()).hexdigest()[:8], 16) + 7919 * run) % 2**32


def design_runs(plan: TCAVPlan, pool: ActivationPool, config: TCAVConfig) -> RunDesign:
    """Size the random sets, digest the design and plan every run's probe task.

    Raises
    ------
    ConceptError
        The random pool is too small for two random sets of the minimum size.
    """
    pool_set = _random_pool(plan.bank)
    pool_size = len(pool_set)
    n_rand = config.random_set_size or int(np.median([(len(c.positive) + 1) // 2 for c in plan.concepts]))
    n_rand = int(min(max(n_rand, 2 * MIN_EXAMPLES), pool_size // 2))
    if n_rand < 2 * MIN_EXAMPLES:
        raise ConceptError(f"the random pool has only {pool_size} images — add at least {4 * MIN_EXAMPLES}")
    key = hashlib.sha256(json.dumps([CAV_FORMAT, pool_set.key, n_rand, config.runs, config.seed, config.test_size,
                                     config.probe_alpha, MIN_EXAMPLES]).encode()).hexdigest()[:16]
    baseline_id = f"random-{pool_set.key[:12]}"
    runs = plan_runs(
        [_sides(plan.bank, con, pool, pool_set) for con in plan.concepts], pool_offset=pool.offsets[pool_set.key][0],
        pool_size=pool_size, set_size=n_rand, runs=config.runs, baseline_id=baseline_id,
        seed_of=lambda cid, r: _task_seed(config.seed, cid, r),
    )
    specs = [
        CAVSpec(con.name, con.id, tuple(tasks),
                tuple(f"random_{r}" for r in range(1, config.runs + 1)) if con.counterpart == "random"
                else (con.negative_name,) * config.runs)
        for con, tasks in zip(plan.concepts, runs.concept_tasks, strict=True)
    ]
    specs.append(CAVSpec(RANDOM, baseline_id, tuple(runs.baseline_tasks),
                         tuple(f"random_{i // runs.runs_per_set + 1}" for i in range(len(runs.baseline_tasks)))))
    return RunDesign(key, n_rand, pool_size, runs.runs_per_set, tuple(specs), runs.warnings)


def _sides(bank: ConceptBank, con: Concept, pool: ActivationPool, pool_set: ExampleSet) -> ConceptSides:
    """A concept's rows in the activation pool, its labels, and the pool rows it must avoid."""
    exclude = None
    if pool_set.source == "dataset":
        mine = {(ex.dataset, c) for ex in (con.positive, con.negative) if ex is not None and ex.source == "dataset"
                for c in ex.case_ids}
        exclude = np.array([i for i, c in enumerate(pool_set.case_ids) if (pool_set.dataset, c) in mine],
                           dtype=np.int64)
    if con.counterpart == "random" or con.negative is None:
        return ConceptSides(con.id, pool.rows(con.positive), exclude=exclude)
    return ConceptSides(con.id, pool.rows(con.positive), pool.rows(con.negative), bank.labels(con.positive),
                        bank.labels(con.negative), twins=con.twins)


def train_cavs(
    setup: TCAVSetup, pool: ActivationPool, design: RunDesign, probes: Sequence[str], config: TCAVConfig,
    progress: ProgressFn | None = None,
) -> tuple[dict[CAVKey, CAVSet], int]:
    """Every spec's CAVs per (layer, probe): from the cache when ``config.reuse``, else one batched
    fit of all the missing ones (written to the cache when ``config.save``).

    Returns
    -------
    tuple
        ``(sets, n_fitted)``: the CAV sets and how many single CAVs were fitted.
    """
    model_id = setup.model.model_id
    cav_dir = setup.results_dir / "cavs" / model_id if setup.results_dir is not None else None
    sets: dict[CAVKey, CAVSet] = {}
    n_fitted = 0
    for li, layer in enumerate(pool.layers):
        for probe in probes:
            todo: list[tuple[CAVSpec, Path | None]] = []
            for spec in design.specs:
                path = _cache_path(cav_dir, design.key, layer, spec.concept_id, probe)
                cached = _load_cached(path) if config.reuse else None
                if cached is not None:
                    sets[CAVKey(probe, spec.name, layer)] = cached
                else:
                    todo.append((spec, path))
            n_fitted += _fit_specs(pool, layer, probe, todo, config, sets, model_id, design.key)
        if progress is not None:
            progress("CAVs", li + 1, len(pool.layers))
    return sets, n_fitted


def _cache_path(cav_dir: Path | None, design_key: str, layer: str, concept_id: str, probe: str) -> Path | None:
    if cav_dir is None:
        return None
    key = hashlib.sha256(f"{design_key}|{layer}|{concept_id}|{probe}".encode()).hexdigest()[:12]
    return cav_dir / layer / f"{concept_id}-{probe}-{key}.npz"


def _load_cached(path: Path | None) -> CAVSet | None:
    """A cached CAV set, or ``None`` (none there; an unreadable one is deleted)."""
    if path is None or not path.is_file():
        return None
    try:
        return CAVSet.load(path)
    except (OSError, ValueError, KeyError):
        path.unlink(missing_ok=True)
        return None


def _fit_specs(
    pool: ActivationPool, layer: str, probe: str, todo: Sequence[tuple[CAVSpec, Path | None]], config: TCAVConfig,
    into: dict[CAVKey, CAVSet], model_id: str, design_key: str,
) -> int:
    """Fit the CAVs of ``todo`` in one batch into ``into`` (saved when ``config.save``); returns
    how many single CAVs were fitted."""
    if not todo:
        return 0
    flat = [task for spec, _ in todo for task in spec.tasks]
    batch = fit_cav_batch(pool.acts[layer], flat, probe=probe, alpha=config.probe_alpha, test_size=config.test_size)
    at = 0
    for spec, path in todo:
        sl = slice(at, at + len(spec.tasks))
        at += len(spec.tasks)
        cav_set = CAVSet(spec.name, spec.concept_id, layer, probe, spec.negatives, batch.vectors[sl],
                         batch.intercepts[sl], batch.accuracies[sl], pool.shapes[layer], int(batch.n_pos[sl][0]),
                         int(batch.n_neg[sl][0]))
        into[CAVKey(probe, spec.name, layer)] = cav_set
        if config.save and path is not None:
            cav_set.save(path, model_id=model_id, design=design_key)
    return len(flat)
