"""TCAV: how sensitive a class logit is to a concept's direction, with significance testing.

For a layer ``l``, class ``k`` and CAV ``v``, the directional derivative of an input ``x`` is
``S_k(x) = ∇_h z_k(h(x)) · v``. Per (concept, class, layer) this module reports

* ``sign_count`` — the share of class-``k`` inputs with ``S > 0`` (the TCAV score),
* ``magnitude`` — ``Σ S·[S>0] / Σ |S|`` (positive share of the derivative mass),
* ``mean_derivative`` — ``mean(S)``, which is what ``captum.concept.TCAV`` (0.9) returns under
  the key ``"magnitude"``.

Each (layer, class) gradient is computed once for all class inputs, from cached activations
(``model.forward_from(layer, h)``, backward on the summed class logit), and every CAV of the
analysis is scored with one matrix product. Layers whose gradient is the same for every input
(a layer feeding only a linear head) are refused: their TCAV scores are 0 or 1 for all concepts.

:func:`run_tcav` is the high-level analysis: concept bank -> CAVs against R random
counterparts (trained in batched form, cached as ``.npz``) -> scores -> significance table.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concepts._errors import ConceptError, ModelError, WorkspaceError
from concepts._progress import ProgressFn
from concepts.bank import ConceptBank
from concepts.data import ImageSet
from concepts.models import ActivationCache, ClassifierModel, on_device
from concepts.tcav._cav import MIN_EXAMPLES, PROBES, CAVSet, ProbeTask, cav_cosine, fit_cav_batch
from concepts.tcav._core import (
    TABLE_COLUMNS,
    TARGETS,
    TCAVReport,
    TCAVScores,
    check_gradients_vary,
    class_gradients,
    shared_logit_share,
    tcav_scores,
)
from concepts.tcav._design import ConceptSides, baseline_means, plan_runs, random_sets
from concepts.tcav._significance import (
    SignificanceConfig,
    adjust_pvalues,
    compare_to_random,
    direction,
)
from concepts.workspace import Workspace
from store import atomic_path

__all__ = [
    "DEFAULT_TCAV_LAYERS",
    "TABLE_COLUMNS",
    "TCAVReport",
    "TCAVSetup",
    "default_layers",
    "random_sets",
    "run_tcav",
]


# --------------------------------------------------------------------------- the analysis
#: Default TCAV layers of the built-in architectures (below the last non-linearity).
DEFAULT_TCAV_LAYERS: dict[str, tuple[str, ...]] = {
    "efficientnet-lite0": ("block10", "block15"),
    "tiny-cnn": ("conv1", "conv2"),
}

#: Version of the CAV training code; part of every cached CAV's key.
CAV_FORMAT = 3  # 3: per-run half-samples, baseline of random pseudo-concepts

#: Share of the logit gradient common to all classes above which a warning is given.
SHARED_LOGIT_WARN = 0.5

#: Fewer class inputs than this draws a warning.
RECOMMENDED_INPUTS = 200


def default_layers(model: ClassifierModel) -> tuple[str, ...]:
    """TCAV layers used when none are given: built-in defaults, else the two stages before the
    last two (pooling and head)."""
    if model.architecture in DEFAULT_TCAV_LAYERS:
        return DEFAULT_TCAV_LAYERS[model.architecture]
    names = model.layers
    return tuple(names[-4:-2]) if len(names) >= 4 else tuple(names[:1])


@dataclass
class TCAVSetup:
    """The parts of a TCAV analysis, for callers without a workspace.

    Parameters
    ----------
    model
        The classifier.
    bank
        Concepts and the random pool.
    inputs
        Class name -> images of that class (the inputs whose sensitivity is measured).
    cache
        Activation cache.
    results_dir
        Where ``tcav.parquet`` and ``cavs/`` go (``None``: nothing is written or reused).
    default_layers
        Layers used when ``run_tcav`` is given none.
    """

    model: ClassifierModel
    bank: ConceptBank
    inputs: Mapping[str, ImageSet]
    cache: ActivationCache
    results_dir: Path | None = None
    default_layers: tuple[str, ...] = ()

    @classmethod
    def from_workspace(
        cls,
        workspace: Workspace,
        *,
        split: str | Sequence[str] = "val",
        inputs_per_class: int | None = None,
        min_inputs_per_class: int = RECOMMENDED_INPUTS,
        seed: int = 0,
    ) -> TCAVSetup:
        """Model, bank (built and saved when missing), class inputs and cache of a workspace.

        Class inputs come from ``split``; a class with fewer than ``min_inputs_per_class`` cases
        there is topped up from the other held-out splits (never ``train``). At most
        ``inputs_per_class`` per class are kept (default: all).
        """
        model = workspace.model()
        ds = workspace.dataset()
        bank = ConceptBank.for_workspace(workspace)
        bank.register_dataset(ds)
        rng = np.random.default_rng(seed)
        first = [split] if isinstance(split, str) else list(split)
        for sp in first:
            if sp not in ds.splits:
                raise ConceptError(f"unknown split {sp!r}; this data set has {ds.splits}")
        extra = [sp for sp in ds.splits if sp not in first and sp != "train"]
        inputs: dict[str, ImageSet] = {}
        for name in model.classes:
            rows = np.concatenate([ds.indices(sp, label=name) for sp in first])
            for sp in extra:
                if len(rows) >= min_inputs_per_class:
                    break
                more = ds.indices(sp, label=name)
                rows = np.concatenate([rows, more[: min_inputs_per_class - len(rows)]])
            if inputs_per_class is not None and len(rows) > inputs_per_class:
                rows = rng.choice(rows, inputs_per_class, replace=False)
            rows = np.sort(rows)
            if len(rows):
                inputs[name] = ds.image_set(rows, name=f"{ds.info.name}:inputs:{name}")
        try:
            layers = tuple(workspace.layers())
        except WorkspaceError:
            layers = ()
        return cls(model, bank, inputs, workspace.activation_cache, workspace.results_dir, layers)


def _sides(bank: ConceptBank, con: Any, offsets: Mapping[str, tuple[int, int]], pool: Any) -> ConceptSides:
    """A concept's rows in the activation pool, its labels, and the pool rows it must avoid."""

    def rows(ex: Any) -> np.ndarray:
        s, n = offsets[ex.key]
        return np.arange(s, s + n)

    exclude = None
    if pool.source == "dataset":
        mine = {(ex.dataset, c) for ex in (con.positive, con.negative) if ex is not None and ex.source == "dataset"
                for c in ex.case_ids}
        exclude = np.array([i for i, c in enumerate(pool.case_ids) if (pool.dataset, c) in mine], dtype=np.int64)
    if con.counterpart == "random" or con.negative is None:
        return ConceptSides(con.id, rows(con.positive), exclude=exclude)
    return ConceptSides(con.id, rows(con.positive), rows(con.negative), bank.labels(con.positive),
                        bank.labels(con.negative), twins=con.twins)


def _task_seed(seed: int, cid: str, run: int) -> int:
    return (seed * 1_000_003 + int(hashlib.sha256(cid.encode()).hexdigest()[:8], 16) + 7919 * run) % 2**32


def _alt_probe(probe: str, stability_probe: str | None) -> str | None:
    if stability_probe is None or stability_probe == "none":
        return None
    if stability_probe == "auto":
        return "ridge" if probe == "pattern" else "pattern"
    if stability_probe not in PROBES:
        raise ConceptError(f"unknown stability probe {stability_probe!r}; choose one of {list(PROBES)}")
    return None if stability_probe == probe else stability_probe


def _tested(
    concept: TCAVScores, random: TCAVScores, statistic: str, runs_per_set: int
) -> tuple[np.ndarray, np.ndarray]:
    """The concept's per-run values of the tested statistic and the random pseudo-concepts' means."""
    field = "mean_derivative" if statistic == "derivative" else "sign_count"
    return getattr(concept, field), baseline_means(getattr(random, field), runs_per_set)


def _z(T: np.ndarray, B: np.ndarray) -> float:
    """How many random-pseudo-concept SDs the concept's mean lies from theirs."""
    sd = float(np.std(B, ddof=1)) if len(B) > 1 else 0.0
    return float((T.mean() - B.mean()) / sd) if sd > 0 else float("nan")


def _agreeing_effect(tested: float, score: np.ndarray, random_means: np.ndarray) -> float:
    """The tested statistic's effect, or 0 (no direction) when the TCAV score moves the other way:
    a row is called positive/negative only when both agree, so the reported score never
    contradicts the verdict."""
    score_effect = float(score.mean() - random_means.mean())
    return tested if tested * score_effect > 0 else 0.0


def _verdict(row: dict[str, Any], alpha: float, alt: str | None, acc_ok: bool) -> str:
    if not acc_ok:
        v = f"CAV not better than chance/random (accuracy {row['cav_accuracy']:.2f})"
    elif row["unstable"]:
        v = f"unstable: conclusion flips with the {alt} probe"
    elif row["significant"]:
        v = (f"{'positive' if row['effect'] > 0 else 'negative'} logit sensitivity "
             f"(TCAV {row['score_mean']:.2f} vs random {row['random_mean']:.2f}; "
             f"{row['statistic']} {row['test_z']:+.1f} random SDs)")
    else:
        v = "not significant"
    if row["confounded"]:
        v += "; example set confounded with the label"
    return v


def run_tcav(
    source: Workspace | TCAVSetup | str | Path,
    layers: Sequence[str] | None = None,
    *,
    runs: int = 20,
    probe: str = "pattern",
    stability_probe: str | None = "auto",
    concepts: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    counterpart: str | None = None,
    split: str | Sequence[str] = "val",
    inputs_per_class: int | None = None,
    random_set_size: int | None = None,
    significance: SignificanceConfig | None = None,
    probe_alpha: float = 1.0,
    test_size: float = 0.3,
    target: str = "logit",
    seed: int = 0,
    reuse: bool = True,
    save: bool = True,
    progress: ProgressFn | None = None,
) -> TCAVReport:
    """TCAV of every bank concept against ``runs`` random counterparts, with significance.

    Parameters
    ----------
    source
        A workspace (or its path) or a :class:`TCAVSetup`.
    layers
        Layers to analyse (default: the workspace's / model's TCAV layers). Named layers whose
        gradient is constant across inputs raise :class:`ModelError`; default ones are skipped
        with a warning.
    runs
        R: random counterparts per concept (and random-vs-random baseline runs).
    probe
        CAV probe (:data:`PROBES`).
    stability_probe
        Second probe whose conclusions must agree (``"auto"``: ridge for pattern, else pattern;
        ``None``: no probe check).
    concepts, classes
        Subsets to analyse (default: all bank concepts, all model classes with inputs).
    counterpart
        Override what the CAVs of concepts with explicit negatives train against: ``"random"``
        or ``"negative"`` (e.g. DermSynth's counterfactual twins). Default: each concept's own.
    split, inputs_per_class
        Where the class inputs of a workspace come from (topped up to 200 per class from the
        other held-out splits when short) and how many at most (default: all).
    random_set_size
        Size of each random counterpart (default: median positive-set size, at most half the pool).
    significance
        Test, tested statistic (the mean directional derivative by default; the sign count
        saturates near a linear head), correction, level and accuracy thresholds.
    probe_alpha, test_size
        Probe regularisation and held-out share.
    target
        ``logit`` (the class logit, default) or ``centered_logit`` (``z_k - mean_j z_j``; use it
        when the run warns that the logits share a large common part).
    seed
        Seed of the random sets and the CAV splits.
    reuse, save
        Reuse / write CAVs under ``results/cavs`` and write ``results/tcav.parquet``.
    progress
        ``progress(stage, done, total)`` callback.

    Returns
    -------
    TCAVReport
    """
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    if isinstance(source, TCAVSetup):
        setup = source
    else:
        ws = source if isinstance(source, Workspace) else Workspace(source)
        setup = TCAVSetup.from_workspace(ws, split=split, inputs_per_class=inputs_per_class, seed=seed)
    if runs < 2:
        raise ConceptError(f"runs must be at least 2 for a significance test (got {runs})")
    if probe not in PROBES:
        raise ConceptError(f"unknown probe {probe!r}; choose one of {list(PROBES)}")
    if target not in TARGETS:
        raise ConceptError(f"unknown target {target!r}; choose one of {list(TARGETS)}")
    sig = significance or SignificanceConfig()
    alt = _alt_probe(probe, stability_probe)
    probes = [probe] + ([alt] if alt else [])
    model, bank, cache = setup.model, setup.bank, setup.cache
    if counterpart is not None:
        if counterpart not in ("random", "negative"):
            raise ConceptError(f"counterpart must be 'random' or 'negative', not {counterpart!r}")
        bank = bank.with_counterpart(counterpart)
    warnings: list[str] = []

    chosen = [bank[n] for n in concepts] if concepts is not None else list(bank)
    if not chosen:
        raise ConceptError("the concept bank is empty — add concepts before running TCAV")
    if bank.random_pool is None:
        raise ConceptError("the concept bank has no random pool — set one (set_random_pool_from_dataset)")
    for con in chosen:
        small = [ex for ex in (con.positive, con.negative if con.counterpart == "negative" else None)
                 if ex is not None and len(ex) < MIN_EXAMPLES]
        if small:
            raise ConceptError(
                f"concept {con.name!r} has only {len(small[0])} examples on one side — a CAV needs at "
                f"least {MIN_EXAMPLES}; add examples (at least 30 are recommended)"
            )
    class_names = list(classes) if classes is not None else [c for c in model.classes if c in setup.inputs]
    for c in class_names:
        if c not in model.classes:
            raise ConceptError(f"unknown class {c!r}; the model's classes are {list(model.classes)}")
        if c not in setup.inputs or len(setup.inputs[c]) == 0:
            raise ConceptError(f"no inputs of class {c!r} — the split has no cases of that class")
        if len(setup.inputs[c]) < RECOMMENDED_INPUTS:
            warnings.append(
                f"class {c!r}: only {len(setup.inputs[c])} inputs (>= {RECOMMENDED_INPUTS} recommended)"
            )
    explicit = layers is not None
    layer_list = list(dict.fromkeys(layers if layers is not None else (setup.default_layers or default_layers(model))))
    for lay in layer_list:
        model.check_layer(lay)

    # 1. class gradients from cached activations (one backward per layer and class)
    t0 = time.perf_counter()
    acts_in = {c: cache.get(model, layer_list, setup.inputs[c], progress=progress) for c in class_names}
    timings["input_activations"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    grads: dict[tuple[str, str], np.ndarray] = {}
    ok_layers: list[str] = []
    with on_device(model, cache.compute.device):  # the gradients run on the device; moved once
        for lay in layer_list:
            try:
                for c in class_names:
                    g = class_gradients(model, lay, acts_in[c][lay], model.classes.index(c),
                                        images=setup.inputs[c].images, target=target)
                    check_gradients_vary(g, lay)
                    grads[(lay, c)] = g
                ok_layers.append(lay)
                if target == "logit" and len(model.classes) > 1:
                    c0 = class_names[0]
                    share = shared_logit_share(model, lay, acts_in[c0][lay][:64],
                                               images=setup.inputs[c0].images[:64])
                    if share > SHARED_LOGIT_WARN:
                        warnings.append(
                            f"layer {lay!r}: {share:.0%} of the class-logit gradient is shared by all "
                            "classes (softmax ignores it), so raw-logit TCAV scores of all classes move "
                            "together — rerun with target='centered_logit'"
                        )
            except ModelError as exc:
                if explicit:
                    raise
                warnings.append(f"skipped {exc}")
    if not ok_layers:
        raise ModelError("no layer usable for TCAV: " + "; ".join(warnings))
    timings["gradients"] = time.perf_counter() - t0

    # 2. one activation pool per layer: random pool + every concept's example sets
    t0 = time.perf_counter()
    pool_set = bank.random_pool
    offsets: dict[str, tuple[int, int]] = {}
    sets: list[tuple[str, ImageSet]] = []

    def want(ex: Any) -> None:
        if ex.key not in offsets:
            start = sum(n for _, n in offsets.values())
            offsets[ex.key] = (start, len(ex))
            sets.append((ex.key, bank.image_set(ex)))

    want(pool_set)
    for con in chosen:
        want(con.positive)
        if con.counterpart == "negative" and con.negative is not None:
            want(con.negative)
    blocks: dict[str, list[np.ndarray]] = {lay: [] for lay in ok_layers}
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (_, iset) in enumerate(sets):
        got = cache.get(model, ok_layers, iset, progress=progress)
        for lay in ok_layers:
            a = np.asarray(got[lay], dtype=np.float32)
            shapes[lay] = tuple(a.shape[1:])
            blocks[lay].append(a.reshape(len(a), -1))
        if progress is not None:
            progress("concept activations", i + 1, len(sets))
    pool_acts = {lay: np.concatenate(b) for lay, b in blocks.items()}
    del blocks
    timings["concept_activations"] = time.perf_counter() - t0

    # 3. run design: fresh half-samples and random sets per run (see concepts.tcav._design)
    P = len(pool_set)
    n_rand = random_set_size or int(np.median([(len(c.positive) + 1) // 2 for c in chosen]))
    n_rand = int(min(max(n_rand, 2 * MIN_EXAMPLES), P // 2))
    if n_rand < 2 * MIN_EXAMPLES:
        raise ConceptError(f"the random pool has only {P} images — add at least {4 * MIN_EXAMPLES}")
    design = hashlib.sha256(
        json.dumps([CAV_FORMAT, pool_set.key, n_rand, runs, seed, test_size, probe_alpha, MIN_EXAMPLES]).encode()
    ).hexdigest()[:16]
    p0 = offsets[pool_set.key][0]
    rid = f"random-{pool_set.key[:12]}"
    plan = plan_runs(
        [_sides(bank, con, offsets, pool_set) for con in chosen], pool_offset=p0, pool_size=P,
        set_size=n_rand, runs=runs, baseline_id=rid, seed_of=lambda cid, r: _task_seed(seed, cid, r),
    )
    warnings.extend(plan.warnings)
    specs: list[tuple[str, str, list[ProbeTask], tuple[str, ...]]] = []  # name, cid, tasks, negs
    for con, ctasks in zip(chosen, plan.concept_tasks, strict=True):
        negs = (tuple(f"random_{r}" for r in range(1, runs + 1)) if con.counterpart == "random"
                else (con.negative_name,) * runs)
        specs.append((con.name, con.id, list(ctasks), negs))
    specs.append(("random", rid, list(plan.baseline_tasks),
                  tuple(f"random_{i // plan.runs_per_set + 1}" for i in range(len(plan.baseline_tasks)))))

    # 4. CAVs: cached .npz or one batched fit per (layer, probe)
    t0 = time.perf_counter()
    cav_dir = setup.results_dir / "cavs" / model.model_id if setup.results_dir is not None else None
    trained: dict[tuple[str, str, str], CAVSet] = {}  # (probe, name, layer)
    n_fit = 0
    for li, lay in enumerate(ok_layers):
        for pr in probes:
            todo = []
            for name, cid, tasks, negs in specs:
                path = None
                if cav_dir is not None:
                    key = hashlib.sha256(f"{design}|{lay}|{cid}|{pr}".encode()).hexdigest()[:12]
                    path = cav_dir / lay / f"{cid}-{pr}-{key}.npz"
                if reuse and path is not None and path.is_file():
                    try:
                        trained[(pr, name, lay)] = CAVSet.load(path)
                        continue
                    except (OSError, ValueError, KeyError):
                        path.unlink(missing_ok=True)
                todo.append((name, cid, tasks, negs, path))
            if not todo:
                continue
            flat = [t for item in todo for t in item[2]]
            batch = fit_cav_batch(pool_acts[lay], flat, probe=pr, alpha=probe_alpha, test_size=test_size)
            n_fit += len(flat)
            at = 0
            for name, cid, tasks, negs, path in todo:
                sl = slice(at, at + len(tasks))
                at += len(tasks)
                cs = CAVSet(name, cid, lay, pr, negs, batch.vectors[sl], batch.intercepts[sl],
                            batch.accuracies[sl], shapes[lay], int(batch.n_pos[sl][0]), int(batch.n_neg[sl][0]))
                trained[(pr, name, lay)] = cs
                if save and path is not None:
                    cs.save(path, model_id=model.model_id, design=design)
        if progress is not None:
            progress("CAVs", li + 1, len(ok_layers))
    del pool_acts
    timings["cavs"] = time.perf_counter() - t0

    # 5. score every CAV of a (layer, class) with one product
    t0 = time.perf_counter()
    runs_scores: dict[tuple[str, str, str, str], TCAVScores] = {}
    score_rows: list[dict[str, Any]] = []
    names = [s[0] for s in specs]
    for lay in ok_layers:
        keys = [(pr, n) for pr in probes for n in names]
        V = np.concatenate([trained[(pr, n, lay)].vectors for pr, n in keys])
        for c in class_names:
            sc = tcav_scores(grads[(lay, c)], V)
            at = 0
            for pr, n in keys:
                k = len(trained[(pr, n, lay)])
                sl = slice(at, at + k)
                at += k
                part = TCAVScores(sc.sign_count[sl], sc.magnitude[sl], sc.mean_derivative[sl], sc.n_inputs)
                runs_scores[(pr, n, lay, c)] = part
                for r in range(len(part.sign_count)):
                    score_rows.append({
                        "concept": n, "class": c, "layer": lay, "probe": pr, "run": r + 1,
                        "sign_count": float(part.sign_count[r]), "magnitude": float(part.magnitude[r]),
                        "mean_derivative": float(part.mean_derivative[r]),
                    })
    timings["scores"] = time.perf_counter() - t0

    # 6. significance, correction over concepts x classes x layers, probe stability
    confounded: dict[str, bool] = {}
    for con in chosen:
        w = bank.check_balance(con)
        confounded[con.name] = w is not None
        if w:
            warnings.append(w)
    rows: list[dict[str, Any]] = []
    pvals: dict[str, list[float]] = {pr: [] for pr in probes}
    accok: dict[str, list[bool]] = {pr: [] for pr in probes}
    effects: dict[str, list[float]] = {pr: [] for pr in probes}
    zs: list[float] = []
    for lay in ok_layers:
        for c in class_names:
            for con in chosen:
                for pr in probes:
                    T, B = _tested(runs_scores[(pr, con.name, lay, c)], runs_scores[(pr, "random", lay, c)],
                                   sig.statistic, plan.runs_per_set)
                    pvals[pr].append(compare_to_random(T, B, sig.test))
                    effects[pr].append(_agreeing_effect(
                        float(T.mean() - B.mean()), runs_scores[(pr, con.name, lay, c)].sign_count,
                        baseline_means(runs_scores[(pr, "random", lay, c)].sign_count, plan.runs_per_set)))
                    if pr == probe:
                        zs.append(_z(T, B))
                    acc = float(trained[(pr, con.name, lay)].accuracies.mean())
                    racc = float(trained[(pr, "random", lay)].accuracies.mean())
                    accok[pr].append(acc >= sig.min_accuracy and acc >= racc + sig.accuracy_margin)
                cs = trained[(probe, con.name, lay)]
                ts = runs_scores[(probe, con.name, lay, c)]
                bs = baseline_means(runs_scores[(probe, "random", lay, c)].sign_count, plan.runs_per_set)
                rows.append({
                    "concept": con.name, "concept_id": con.id, "group": con.group, "class": c,
                    "layer": lay, "probe": probe, "runs": runs,
                    "score_mean": float(ts.sign_count.mean()), "score_std": float(ts.sign_count.std(ddof=1)),
                    "random_mean": float(bs.mean()), "random_std": float(bs.std(ddof=1)),
                    "effect": float(ts.sign_count.mean() - bs.mean()),
                    "magnitude_mean": float(ts.magnitude.mean()),
                    "derivative_mean": float(ts.mean_derivative.mean()),
                    "random_derivative_mean": float(baseline_means(
                        runs_scores[(probe, "random", lay, c)].mean_derivative, plan.runs_per_set).mean()),
                    "statistic": sig.statistic,
                    "test_z": zs[-1],
                    "cav_accuracy": float(cs.accuracies.mean()),
                    "random_accuracy": float(trained[(probe, "random", lay)].accuracies.mean()),
                    "stability": float(cs.stability),
                    "stability_probe": alt or "",
                    "probe_cosine": cav_cosine(cs.mean_cav(), trained[(alt, con.name, lay)].mean_cav())
                    if alt else float("nan"),
                    "confounded": confounded[con.name],
                })
    padj = {pr: adjust_pvalues(np.array(pvals[pr]), sig.correction) for pr in probes}
    for i, row in enumerate(rows):
        dirs = {pr: direction(bool(padj[pr][i] < sig.alpha and accok[pr][i]), effects[pr][i]) for pr in probes}
        row["p_value"] = float(pvals[probe][i])
        row["p_adjusted"] = float(padj[probe][i])
        row["stability_p_adjusted"] = float(padj[alt][i]) if alt else float("nan")
        row["stability_effect"] = float(effects[alt][i]) if alt else float("nan")
        row["unstable"] = bool(alt is not None and dirs[alt] != dirs[probe])
        row["significant"] = bool(dirs[probe] != "none" and not row["unstable"])
        row["verdict"] = _verdict(row, sig.alpha, alt, accok[probe][i])
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    scores = pd.DataFrame(score_rows)
    timings["total"] = time.perf_counter() - t_all
    settings = {
        "runs": runs, "probe": probe, "stability_probe": alt, "layers": ok_layers, "classes": class_names,
        "concepts": [c.name for c in chosen], "random_set_size": n_rand, "random_pool_size": P,
        "seed": seed, "test": sig.test, "statistic": sig.statistic, "correction": sig.correction,
        "alpha": sig.alpha,
        "min_accuracy": sig.min_accuracy, "probe_alpha": probe_alpha, "test_size": test_size,
        "n_inputs": {c: len(setup.inputs[c]) for c in class_names}, "cavs_trained": n_fit,
        "target": target,
        "design": design, "model_id": model.model_id,
    }
    if save and setup.results_dir is not None:
        setup.results_dir.mkdir(parents=True, exist_ok=True)
        _write_parquet(table, setup.results_dir / "tcav.parquet")
        _write_parquet(scores, setup.results_dir / "tcav_runs.parquet")
        (setup.results_dir / "tcav.json").write_text(json.dumps(
            {"settings": settings, "warnings": warnings, "timings": timings}, indent=1, default=str))
    return TCAVReport(
        table=table, scores=scores,
        cavs={(n, lay): trained[(probe, n, lay)] for n in names if n != "random" for lay in ok_layers},
        random_cavs={lay: trained[(probe, "random", lay)] for lay in ok_layers},
        stability_cavs={(n, lay): trained[(alt, n, lay)] for n in names if n != "random" for lay in ok_layers}
        if alt else {},
        layers=tuple(ok_layers), classes=tuple(class_names), model_id=model.model_id,
        settings=settings, warnings=tuple(warnings), timings=timings,
    )


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path, private=False) as tmp:
        df.to_parquet(tmp, index=False)
