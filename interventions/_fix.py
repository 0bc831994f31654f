"""Training-free test-time fix from a few labelled images of a new domain.

The clinical graph decides what may be edited: an artifact (or a concept the graph does not
know) may only be masked, a dermoscopic criterion only amplified — never the reverse. Every
allowed edit becomes a candidate, and the strengths of all candidates are searched jointly
(:mod:`interventions._fix_search`): they minimise the class-balanced cross-entropy of the few
labelled images plus the cross-entropy change on the source domain's clean images (an anchor:
what the model does on images without artifacts should not move) plus an L1 term (few edits).
The source statistics set the L1 weights: a concept whose level on
the shots moved from the source by ``shift_z`` standard errors or more, in the direction its
edit corrects, costs much less; one that fires on misclassified shots of the class it does not
support more than on the source's costs half. The gradient of the few-shot loss along each
concept's edit is reported with them.

A leave-one-out check over the shots decides: the search is rerun without each shot in turn;
an edit is kept when it is chosen in at least ``min_stability`` of those runs, and the fix is
proposed only when it helps the left-out shots (their balanced accuracy or their log-likelihood
rises under it). Every kept edit is
reported with its stability and its expected gain (left-out shots' balanced accuracy and
log-likelihood, with a bootstrap interval over the shots). The source guard then scales the
strengths down until the clean accuracy of the source split drops by at most
``max_source_drop``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from concepts import ClassifierModel
from interventions._fix_search import (
    ANCHORS,
    Problem,
    balance_weights,
    base_logits,
    cross_entropy,
    edit_deltas,
    fit_strengths,
    logits_at,
)
from interventions._ops import MAX_CONDITION
from interventions._spec import ConceptDirection, ConceptEdit, InterventionError, InterventionSpec
from interventions._whatif import WhatIf
from store import to_jsonable as _clean

__all__ = ["FixProposal", "propose_fix", "select_few_shot"]

#: Magnitudes below this count as "not chosen".
_EPS = 0.05


@lru_cache(maxsize=1)
def _graph() -> Any:
    from graph import ClinicalGraph

    return ClinicalGraph.default()


def _expected(concept: str, classes: Sequence[str]) -> str:
    """``irrelevant``, ``relevant`` (indicates/counter-indicates a class) or ``unknown``."""
    rels = {_graph().expected_relation(concept, c).relation for c in classes}
    if rels & {"indicates", "counter_indicates"}:
        return "relevant"
    if rels == {"irrelevant"}:
        return "irrelevant"
    return "unknown"


@dataclass(frozen=True)
class FixProposal:
    """A proposed test-time fix, how sure it is, and its measured effect.

    Attributes
    ----------
    spec
        The proposed intervention (None when no edit survives the leave-one-out check).
    ranking
        One row per concept: ``concept``, ``concept_id``, ``expected`` (clinical graph),
        ``operation`` (the only one the graph allows), ``supports`` (the class it pushes
        towards), ``fire_rate_wrong_class`` and its source value, ``excess``, ``fires_on_errors``
        (share of the misclassified shots it fires on), ``gradient`` (derivative of the few-shot
        loss along its allowed edit at strength 0; negative helps), ``help``, ``deficit``,
        ``strength_all`` (jointly fitted magnitude on all shots), ``stability`` (share of the
        leave-one-out runs that chose it), ``role`` and ``proposed``; proposed first.
    edits
        One row per proposed edit: ``concept``, ``operation``, ``strength``, ``level`` (the
        component level a mask moves to; None for an amplification), ``stability``,
        ``gain_points`` (expected change of the left-out shots' balanced accuracy when the edit
        is dropped from the fix, in points), ``gain_interval`` (90 % bootstrap interval),
        ``gain_nats`` and ``gain_nats_interval`` (the same for the log-likelihood).
    loo
        The whole fix under leave-one-out: ``gain_points``, ``gain_interval``, ``gain_nats``,
        ``gain_nats_interval``, ``n_folds``.
    few_shot, held_out, source
        ``{"before": M, "after": M}`` metrics (None where not given).
    source_drop
        Drop of the guarded source accuracy (clean accuracy when known), in [0, 1].
    notes
        What was skipped and why; why nothing is proposed.
    """

    spec: InterventionSpec | None
    ranking: list[dict[str, Any]]
    few_shot: dict[str, Any]
    held_out: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    source_drop: float | None = None
    notes: list[str] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    loo: dict[str, Any] | None = None

    @property
    def proposed(self) -> list[str]:
        """Concepts edited by the proposal."""
        return [] if self.spec is None else list(self.spec.concepts)

    def to_json(self) -> dict[str, Any]:
        return _clean({
            "spec": None if self.spec is None else self.spec.to_json(),
            "description": None if self.spec is None else self.spec.describe(),
            "proposed": self.proposed,
            "edits": self.edits,
            "loo": self.loo,
            "ranking": self.ranking,
            "few_shot": self.few_shot,
            "held_out": self.held_out,
            "source": self.source,
            "source_drop": self.source_drop,
            "notes": self.notes,
        })


def select_few_shot(labels: np.ndarray, k: int = 4, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``k`` random rows per class (the few-shot set) and the remaining rows (held out).

    Raises
    ------
    InterventionError
        ``k < 1`` or a class with fewer than ``k`` images.
    """
    y = np.asarray(labels, dtype=np.int64)
    if k < 1:
        raise InterventionError(f"k must be at least 1, got {k}")
    rng = np.random.default_rng(seed)
    few = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        if len(rows) < k:
            raise InterventionError(f"class index {c} has {len(rows)} labelled images; k={k} needs {k}")
        few.append(np.sort(rng.choice(rows, k, replace=False)))
    chosen = np.sort(np.concatenate(few)) if few else np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(len(y)), chosen)
    return chosen, rest


def _guarded(metrics: Mapping[str, Any]) -> float:
    v = metrics.get("clean_accuracy")
    return float(v if v is not None else metrics["accuracy"])


def _before_after(wi: WhatIf | None, spec: InterventionSpec | None) -> dict[str, Any] | None:
    if wi is None:
        return None
    before = wi.evaluate(None, flip_rates=False).metrics
    after = wi.evaluate(spec, flip_rates=False).metrics if spec is not None else before
    return {"before": before, "after": after}


def _levels(acts: np.ndarray, d: ConceptDirection) -> np.ndarray:
    """Component of each row on the absent (0) to present (1) scale of a direction."""
    comp = np.asarray(acts, dtype=np.float32).reshape(len(acts), -1) @ d.vector - d.mu0
    if d.mu1 is None or d.mu1 == d.mu0:
        return np.sign(comp)  # type: ignore[no-any-return]
    return comp / (d.mu1 - d.mu0)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class _Settings:
    max_gamma: float
    max_source_drop: float
    sparsity: float
    source_weight: float
    min_stability: float
    fire_level: float
    max_edits: int
    shift_z: float
    refit_penalty: float
    anchor: str = "ce"
    mask_level: str = "source"


@dataclass(frozen=True)
class _Context:
    """Everything the search needs, computed once."""

    model: ClassifierModel
    layer: str
    few: WhatIf
    y: np.ndarray
    source: WhatIf | None
    src_rows: np.ndarray
    cfg: _Settings


def _source_rows(source: WhatIf | None) -> np.ndarray:
    """Rows of the source anchor and guard: the clean ones (no planted artifact) when known."""
    if source is None:
        return np.zeros(0, np.int64)
    n = len(source.labels)
    if not source.groups:
        return np.arange(n)
    dirty = np.zeros(n, bool)
    for flags in source.groups.values():
        dirty |= flags
    return np.flatnonzero(~dirty) if (~dirty).any() else np.arange(n)


def _allowed(directions: Sequence[ConceptDirection], classes: Sequence[str], notes: list[str]) -> list[tuple[ConceptDirection, str, str]]:
    """``(direction, expected, operation)`` of the candidates whose directions stay well
    conditioned together (nearly parallel ones are skipped with a note)."""
    out: list[tuple[ConceptDirection, str, str]] = []
    vecs: list[np.ndarray] = []
    for d in directions:
        expected = _expected(d.concept, classes)
        v = d.vector.astype(np.float64)
        trial = np.stack([*vecs, v])
        cond = float(np.linalg.cond(trial @ trial.T))
        if not np.isfinite(cond) or cond > MAX_CONDITION:
            notes.append(f"skipped {d.concept}: its direction is nearly parallel to another candidate's")
            continue
        vecs.append(v)
        out.append((d, expected, "amplify" if expected == "relevant" else "mask"))
    return out


def _problem(ctx: _Context, dirs: Sequence[ConceptDirection], signs: np.ndarray, penalty: np.ndarray) -> Problem:
    upper = np.where(signs < 0, 1.0, ctx.cfg.max_gamma - 1.0)
    src = ctx.source
    if src is not None and len(ctx.src_rows):
        z_src, d_src = base_logits(src, ctx.src_rows), edit_deltas(src, dirs, ctx.src_rows)
        y_src = src.labels[ctx.src_rows]
    else:
        k = len(ctx.model.classes)
        z_src, d_src, y_src = np.zeros((0, k)), np.zeros((0, len(dirs), k)), np.zeros(0, np.int64)
    return Problem(base_logits(ctx.few), edit_deltas(ctx.few, dirs), ctx.y, balance_weights(ctx.y),
                   z_src, d_src, y_src, signs, upper, penalty, ctx.cfg.source_weight, ctx.cfg.anchor)


def _folds(y: np.ndarray) -> list[np.ndarray]:
    """Leave-one-out training rows (row ``j`` of the result leaves shot ``j`` out)."""
    return [np.delete(np.arange(len(y)), j) for j in range(len(y))] if len(y) > 1 else []


# ---------------------------------------------------------------------------------- evidence
@dataclass(frozen=True)
class _ShiftStat:
    """How far a concept's level moved from the source on the shots where a fix would act: up
    on the class it does not support (a mask's case), down on its own (an amplification's)."""

    levels: np.ndarray  # (n,) levels of the shots
    rows: np.ndarray  # shots of the tested class
    sign: float
    src_mean: float
    src_sd: float

    def z(self, subset: np.ndarray) -> float:
        """z-score of the mean level of the tested shots within ``subset`` against the source."""
        r = np.intersect1d(self.rows, subset)
        if len(r) == 0 or not math.isfinite(self.src_mean):
            return 0.0
        return float(self.sign * (self.levels[r].mean() - self.src_mean) / (self.src_sd / math.sqrt(len(r))))


def _src_stats(src: WhatIf | None, d: ConceptDirection, *, wrong_of: int, op: str) -> tuple[float, float]:
    """Mean and standard deviation of a concept's level on the source images of the class a
    shift is tested on (NaN without a source)."""
    if src is None:
        return float("nan"), 1.0
    lv = _levels(src.h.numpy(), d)
    cls = src.labels != wrong_of if op == "mask" else src.labels == wrong_of
    if cls.sum() < 2:
        return float("nan"), 1.0
    return float(lv[cls].mean()), max(float(lv[cls].std(ddof=1)), 1e-6)


def _evidence(ctx: _Context, cands: Sequence[tuple[ConceptDirection, str, str]]) -> list[dict[str, Any]]:
    """Per candidate: the class it supports, its firing on wrong-class and misclassified shots
    (and on the source), its level deficit on its own class, the few-shot loss gradient."""
    fs, y, src, classes = ctx.few, ctx.y, ctx.source, ctx.model.classes
    acts = fs.h.numpy()
    wrong_pred = fs.base_pred != y
    dirs = [d for d, _, _ in cands]
    d_few = edit_deltas(fs, dirs) if dirs else np.zeros((len(y), 0, len(classes)))
    w = balance_weights(y)
    w = w / w.sum()
    g = fs.base_proba.copy()
    g[np.arange(len(y)), y] -= 1.0
    grad_t = np.einsum("nk,nmk->m", g * w[:, None], d_few)  # dCE/dt at 0
    rows = []
    for i, (d, expected, op) in enumerate(cands):
        lv = _levels(acts, d)
        if src is None:
            delta, lv_ref = d_few[:, i, :], lv
        else:
            delta, lv_ref = edit_deltas(src, [d])[:, 0, :], _levels(src.h.numpy(), d)
        # the class whose logit rises with the concept's component (the step is (c - mu0) times it)
        k_c = int(np.argmax((delta * np.sign(lv_ref)[:, None]).mean(axis=0)))
        fires, wrong = lv >= ctx.cfg.fire_level, y != k_c
        rate_wrong = float(fires[wrong].mean()) if wrong.any() else 0.0
        level_own = float(lv[~wrong].mean()) if (~wrong).any() else float("nan")
        src_rate, src_level = 0.0, float("nan")
        if src is not None:
            ls = _levels(src.h.numpy(), d)
            sw = src.labels != k_c
            src_rate = float((ls[sw] >= ctx.cfg.fire_level).mean()) if sw.any() else 0.0
            src_level = float(ls[~sw].mean()) if (~sw).any() else float("nan")
        errs = wrong_pred & wrong
        sign = -1.0 if op == "mask" else 1.0
        shift_cls = np.flatnonzero(wrong if op == "mask" else ~wrong)
        shift = _ShiftStat(lv, shift_cls, 1.0 if op == "mask" else -1.0, *_src_stats(src, d, wrong_of=k_c, op=op))
        rows.append({
            "concept": d.concept, "concept_id": d.concept_id, "expected": expected, "operation": op,
            "supports": classes[k_c], "fire_rate_wrong_class": rate_wrong,
            "source_fire_rate_wrong_class": src_rate, "excess": rate_wrong - src_rate,
            "fires_on_errors": float(fires[errs].mean()) if errs.any() else 0.0,
            "level_own_class": level_own, "source_level_own_class": src_level,
            "deficit": src_level - level_own if src is not None else float("nan"),
            "gradient": float(sign * grad_t[i]),
            "shift": shift.z(np.arange(len(y))), "_shift": shift,
        })
    return rows


# ---------------------------------------------------------------------------------- leave-one-out
@dataclass(frozen=True)
class _Loo:
    """Leave-one-out fits of one problem: per fold the magnitudes and the left-out shot."""

    held: np.ndarray  # (F,) left-out shot per fold
    a: np.ndarray  # (F, m)


def _loo(p: Problem, penalty: Callable[[np.ndarray], np.ndarray]) -> _Loo:
    """Refit without each shot (the penalties recomputed on the remaining shots)."""
    folds = _folds(p.y_few)
    held = np.array([np.setdiff1d(np.arange(len(p.y_few)), r)[0] for r in folds], dtype=np.int64)
    a = np.array([fit_strengths(replace(p.subset(r), penalty=penalty(r))) for r in folds])
    a = a.reshape(len(folds), len(p.signs))
    return _Loo(held, a)


def _shot_scores(p: Problem, loo: _Loo, drop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per fold: log-likelihood gain and correctness change of the left-out shot under its
    fold's fix (edit ``drop`` removed from the baseline instead of the unpatched model)."""
    nats, correct = np.zeros(len(loo.held)), np.zeros(len(loo.held))
    for f, j in enumerate(loo.held):
        t = p.signs * loo.a[f]
        t0 = np.zeros_like(t)
        if drop is not None:
            t0 = t.copy()
            t0[drop] = 0.0
        z1 = logits_at(p.z_few[j : j + 1], p.d_few[j : j + 1], t)
        z0 = logits_at(p.z_few[j : j + 1], p.d_few[j : j + 1], t0)
        yj = p.y_few[j : j + 1]
        nats[f] = cross_entropy(z0, yj) - cross_entropy(z1, yj)
        correct[f] = float(z1.argmax(1)[0] == yj[0]) - float(z0.argmax(1)[0] == yj[0])
    return nats, correct


def _balanced_mean(values: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([values[y == c].mean() for c in np.unique(y)])) if len(y) else 0.0


def _gain(p: Problem, loo: _Loo, drop: int | None = None, n_boot: int = 1000) -> dict[str, Any]:
    """Expected gain (balanced accuracy points, nats) of the left-out shots with a 90 %
    class-stratified bootstrap interval."""
    nats, correct = _shot_scores(p, loo, drop)
    y = p.y_few[loo.held]
    rng = np.random.default_rng(0)
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    boot_pts, boot_nats = np.zeros(n_boot), np.zeros(n_boot)
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(r, len(r)) for r in by_class])
        boot_pts[b] = 100 * _balanced_mean(correct[idx], y[idx])
        boot_nats[b] = _balanced_mean(nats[idx], y[idx])
    return {
        "gain_points": 100 * _balanced_mean(correct, y),
        "gain_interval": [float(np.quantile(boot_pts, 0.05)), float(np.quantile(boot_pts, 0.95))],
        "gain_nats": _balanced_mean(nats, y),
        "gain_nats_interval": [float(np.quantile(boot_nats, 0.05)), float(np.quantile(boot_nats, 0.95))],
        "n_folds": len(loo.held),
    }


# ---------------------------------------------------------------------------------- search
def _penalties(ctx: _Context, rows: Sequence[Mapping[str, Any]], subset: np.ndarray) -> np.ndarray:
    """L1 weight per candidate from the shift of its level on ``subset`` of the shots: a
    concept that did not move from the source costs ``sparsity``, one that moved by
    ``shift_z`` standard errors or more in the direction its edit corrects costs much less (4 % far beyond)
    (halved again when it fires on misclassified shots)."""
    pen = np.empty(len(rows))
    for i, r in enumerate(rows):
        z = r["_shift"].z(subset)
        pen[i] = ctx.cfg.sparsity * (0.04 + 0.96 / (1.0 + math.exp(2.0 * (z - ctx.cfg.shift_z))))
        if r["fires_on_errors"] > r["source_fire_rate_wrong_class"] + 0.2:
            pen[i] *= 0.5
    return pen


def _select(ctx: _Context, cands: Sequence[tuple[ConceptDirection, str, str]], rows: list[dict[str, Any]],
            notes: list[str]) -> list[int]:
    """Indices of the candidates the joint fit chooses on all shots and in at least
    ``min_stability`` of the leave-one-out fits (at most ``max_edits``, strongest first)."""
    signs = np.array([-1.0 if op == "mask" else 1.0 for _, _, op in cands])
    every = np.arange(len(ctx.y))
    p = _problem(ctx, [d for d, _, _ in cands], signs, _penalties(ctx, rows, every))
    a_all = fit_strengths(p)
    loo = _loo(p, lambda r: _penalties(ctx, rows, r))
    stab = (loo.a > _EPS).mean(axis=0) if len(loo.held) else (a_all > _EPS).astype(float)
    for i, r in enumerate(rows):
        r["strength_all"] = float(a_all[i])
        r["stability"] = float(stab[i])
    keep = [int(i) for i in np.argsort(-a_all) if a_all[i] > _EPS and stab[i] >= ctx.cfg.min_stability]
    for i in (int(j) for j in np.flatnonzero(a_all > _EPS)):
        if i not in keep:
            notes.append(f"dropped {rows[i]['operation']} {rows[i]['concept']}: chosen in only "
                         f"{100 * stab[i]:.0f}% of the leave-one-out runs")
    return keep[: ctx.cfg.max_edits]


def _spec(ctx: _Context, dirs: Sequence[ConceptDirection], signs: np.ndarray, a: np.ndarray) -> InterventionSpec | None:
    edits = []
    for d, s, mag in zip(dirs, signs, a, strict=True):
        if mag <= _EPS / 2:
            continue
        mag = round(float(mag), 3)
        edits.append(ConceptEdit(d, "mask", min(mag, 1.0)) if s < 0 else ConceptEdit(d, "amplify", 1.0 + mag))
    if not edits:
        return None
    return InterventionSpec(ctx.model.model_id, ctx.layer, tuple(edits), note="test-time fix")


def _guard(ctx: _Context, dirs: Sequence[ConceptDirection], signs: np.ndarray, a: np.ndarray,
           notes: list[str]) -> np.ndarray:
    """Scale the magnitudes down (halving) until the source's guarded accuracy drops by at most
    ``max_source_drop``."""
    src = ctx.source
    if src is None:
        return a
    base = _guarded(src.evaluate(None, flip_rates=False).metrics)
    scale = 1.0
    for _ in range(8):
        spec = _spec(ctx, dirs, signs, a * scale)
        if spec is None:
            return a * 0.0
        drop = base - _guarded(src.evaluate(spec, flip_rates=False).metrics)
        if drop <= ctx.cfg.max_source_drop + 1e-9:
            if scale < 1.0:
                notes.append(f"strengths scaled by {scale:g} to keep the source accuracy drop within "
                             f"{100 * ctx.cfg.max_source_drop:.1f} points")
            return a * scale
        scale /= 2
    notes.append("no strength keeps the source accuracy within the guard; nothing proposed")
    return a * 0.0


def _decide(ctx: _Context, cands: Sequence[tuple[ConceptDirection, str, str]], rows: list[dict[str, Any]],
            keep: list[int], notes: list[str]) -> tuple[InterventionSpec | None, list[dict[str, Any]], dict[str, Any] | None]:
    """Refit the kept edits jointly, check them under leave-one-out, guard the source."""
    if not keep:
        notes.append("no edit helps the shots in a way that survives leave-one-out; nothing proposed")
        return None, [], None
    dirs = [cands[i][0] for i in keep]
    signs = np.array([-1.0 if cands[i][2] == "mask" else 1.0 for i in keep])
    sub = [rows[i] for i in keep]
    relax = ctx.cfg.refit_penalty
    p = _problem(ctx, dirs, signs, relax * _penalties(ctx, sub, np.arange(len(ctx.y))))
    a = fit_strengths(p)
    loo = _loo(p, lambda r: relax * _penalties(ctx, sub, r))
    overall = _gain(p, loo) if len(loo.held) else None
    if overall is not None and overall["gain_points"] <= 0 and overall["gain_nats"] <= 0:
        notes.append(
            f"the fix ({', '.join(d.concept for d in dirs)}) does not help the left-out shots "
            f"(leave-one-out: {overall['gain_points']:+.1f} points, {overall['gain_nats']:+.3f} nats); "
            "nothing proposed"
        )
        return None, [], overall
    a = _guard(ctx, dirs, signs, a, notes)
    spec = _spec(ctx, dirs, signs, a)
    edits = []
    if spec is not None:
        for i, d in enumerate(dirs):
            if d.concept not in spec.concepts:
                continue
            e = spec.edit(d.concept)
            stab = float((loo.a[:, i] > _EPS).mean()) if len(loo.held) else 1.0
            edits.append({"concept": d.concept, "operation": e.operation, "strength": e.strength,
                          "level": d.mu0 if e.operation == "mask" else None, "stability": stab, **(_gain(p, loo, drop=i) if len(loo.held) else {})})
    return spec, edits, overall


def propose_fix(
    model: ClassifierModel,
    directions: Sequence[ConceptDirection],
    few_shot_acts: np.ndarray,
    few_shot_labels: np.ndarray,
    *,
    source: WhatIf | None = None,
    held_out: WhatIf | None = None,
    gamma: float = 3.0,
    max_source_drop: float = 0.02,
    sparsity: float = 0.15,
    source_weight: float = 10.0,
    min_stability: float = 0.5,
    fire_level: float = 0.5,
    max_edits: int = 4,
    shift_z: float = 2.0,
    refit_penalty: float = 0.0,
    anchor: str = "ce",
    mask_level: str = "source",
    case_ids: Sequence[str] | None = None,
) -> FixProposal:
    """Search masks and amplifications jointly on a few labelled images of a new domain.

    Parameters
    ----------
    model
        The model.
    directions
        Candidate concept directions, all at one layer of ``model`` (with present levels).
    few_shot_acts, few_shot_labels
        Activations of the labelled images at that layer and their class indices.
    source
        A what-if of a source-domain split: the anchor of the search and the guard (accuracy on
        cases without planted artifacts when its groups are known, else accuracy), and the
        reference firing rates. Without it nothing is anchored or guarded.
    held_out
        A what-if of held-out images of the new domain (reported only).
    gamma
        Largest amplification searched.
    max_source_drop
        Largest source accuracy drop accepted (0.02 = 2 points).
    sparsity
        L1 weight per unit of edit strength.
    source_weight
        Weight of the source anchor against the few-shot loss.
    min_stability
        Share of the leave-one-out runs an edit must be chosen in.
    fire_level
        Level from which a concept counts as present on an image.
    max_edits
        Most concepts in the proposal.
    shift_z
        Level shift (standard errors) from which a concept's L1 weight is mostly waived.
    refit_penalty
        Share of the L1 weights kept when the chosen edits are refit.
    anchor
        Source anchor of the search: ``"ce"`` (change of the clean source images'
        cross-entropy), ``"hinge"`` (only its rise counts) or ``"kl"`` (divergence from the
        unpatched predictions: they should not move).
    mask_level
        Level a mask moves a component to: ``"source"`` (mean over the source's clean images,
        per class then averaged; the examples' absent level without a source) or ``"absent"``
        (the concept examples' absent level ``mu0``).
    case_ids
        Ids of the few-shot images (for reports).

    Raises
    ------
    InterventionError
        No direction, directions at several layers, or labels of a single class.
    """
    if not directions:
        raise InterventionError("propose_fix needs at least one concept direction")
    layer = directions[0].layer
    if any(d.layer != layer for d in directions):
        raise InterventionError("all concept directions must be at the same layer")
    y = np.asarray(few_shot_labels, dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise InterventionError("the few-shot set needs labelled images of at least two classes")
    if not 1.0 < gamma <= 10.0:
        raise InterventionError(f"gamma must be in (1, 10], got {gamma}")
    if anchor not in ANCHORS:
        raise InterventionError(f"unknown anchor {anchor!r}; use one of {', '.join(ANCHORS)}")
    if mask_level not in ("source", "absent"):
        raise InterventionError(f"unknown mask level {mask_level!r}; use 'source' or 'absent'")
    cfg = _Settings(gamma, max_source_drop, sparsity, source_weight, min_stability, fire_level, max_edits, shift_z,
                    refit_penalty, anchor, mask_level)
    fs = WhatIf(model, layer, few_shot_acts, y, case_ids=case_ids)
    ctx = _Context(model, layer, fs, y, source, _source_rows(source), cfg)
    return _propose(ctx, directions, held_out)


def _relevel(ctx: _Context, d: ConceptDirection) -> ConceptDirection:
    """The direction a mask uses: with ``mask_level="source"`` its absent level is the mean
    component of the source's clean images (per class, then averaged), so that a full mask
    leaves an image without the artifact where the source's clean images are on average;
    otherwise (or without a source) the concept examples' absent level ``mu0``."""
    if ctx.cfg.mask_level != "source" or ctx.source is None or not len(ctx.src_rows):
        return d
    comp = ctx.source.h.numpy()[ctx.src_rows].reshape(len(ctx.src_rows), -1) @ d.vector
    y = ctx.source.labels[ctx.src_rows]
    return replace(d, mu0=round(float(np.mean([comp[y == c].mean() for c in np.unique(y)])), 6))


def _propose(ctx: _Context, directions: Sequence[ConceptDirection], held_out: WhatIf | None) -> FixProposal:
    notes: list[str] = []
    cands = _allowed(directions, ctx.model.classes, notes)
    rows = _evidence(ctx, cands)
    cands = [(_relevel(ctx, d) if op == "mask" else d, e, op) for d, e, op in cands]
    keep = _select(ctx, cands, rows, notes)
    spec, edits, overall = _decide(ctx, cands, rows, keep, notes)
    for r in rows:
        r["proposed"] = spec is not None and r["concept"] in spec.concepts
        r["role"] = ""
        if r["strength_all"] > _EPS:
            r["role"] = "misactivated confounder" if r["operation"] == "mask" else "under-activated"
    rows.sort(key=lambda r: (not r["proposed"], r["operation"] != "mask", -r["strength_all"], r["gradient"]))
    for r in rows:
        del r["_shift"]
    src = _before_after(ctx.source, spec)
    drop = None if src is None else _guarded(src["before"]) - _guarded(src["after"])
    fs, y = ctx.few, ctx.y
    p_after = fs.predict_proba(spec) if spec is not None else fs.base_proba
    few = {"before": fs.evaluate(None, flip_rates=False).metrics,
           "after": fs.evaluate(spec, flip_rates=False).metrics,
           "loss_before": cross_entropy(np.log(np.clip(fs.base_proba, 1e-12, 1)), y),
           "loss_after": cross_entropy(np.log(np.clip(p_after, 1e-12, 1)), y)}
    return FixProposal(
        spec=spec, ranking=_clean(rows), few_shot=_clean(few), held_out=_clean(_before_after(held_out, spec)),
        source=_clean(src), source_drop=None if drop is None or not math.isfinite(drop) else drop,
        notes=notes, edits=_clean(edits), loo=_clean(overall),
    )
