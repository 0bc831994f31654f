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

When several directions of one concept are given (different methods: pattern CAV, twins,
probes), each mask's direction is chosen by leave-one-out over the shots
(:mod:`interventions._fix_methods`).

A leave-one-out check over the shots decides: the search is rerun without each shot in turn;
an edit is kept when it is chosen in at least ``min_stability`` of those runs, and the fix is
proposed only when it helps the left-out shots (their balanced accuracy or their
log-likelihood rises; with ``survival="strict"`` the latter only with its 90 % bootstrap
interval above zero). Every kept edit is
reported with its stability and its expected gain (left-out shots' balanced accuracy and
log-likelihood, with a bootstrap interval over the shots).

Strength of a mask: the graph lets an artifact be removed entirely, so by default
(``mask_prior="full"``) every kept mask is set to full strength, once per artifact (a mask whose
direction is within ``SAME_ARTIFACT_COS`` of a stronger one keeps a fitted strength; the other
edits refit around them, under leave-one-out too) unless the fitted strengths predict the left-out shots better (the
L1 term and the source anchor otherwise stop a mask half-way on few shots); ``"fit"`` keeps the
fitted strengths. The source guard then scales the strengths down until the clean accuracy of
the source split drops by at most ``max_source_drop``.

Level of a mask: the search moves a masked component to the mean level of the source's clean
images; by default (``mask_level="calibrated"``) the strongest mask's level is then refit on
those images so that the patched model is calibrated on them (:mod:`interventions._fix_level`).
With both defaults the fix reaches its target on the benchmark's reversed-shortcut domains, on
fresh draws too (docs/interventions.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from concepts import ClassifierModel
from interventions._fix_evidence import (
    Candidate,
    FixContext,
    FixSettings,
    candidate_evidence,
    expected_relation,
)
from interventions._fix_level import MASK_LEVELS, calibrate_level, source_level
from interventions._fix_loo import LeaveOneOut, leave_one_out, loo_gain, loo_nats
from interventions._fix_methods import choose_directions, group_directions
from interventions._fix_proposal import FixProposal
from interventions._fix_search import (
    ANCHORS,
    Problem,
    balance_weights,
    base_logits,
    cross_entropy,
    edit_deltas,
    fit_strengths,
    fixed_masks,
)
from interventions._ops import MAX_CONDITION
from interventions._spec import ConceptDirection, ConceptEdit, InterventionError, InterventionSpec
from interventions._whatif import WhatIf
from store import to_jsonable

__all__ = ["propose_fix"]

#: Rules for "the fix helps the left-out shots" (see ``propose_fix(survival=...)``).
SURVIVAL: tuple[str, ...] = ("gain", "strict")

#: Strengths of the kept masks: fitted, or full unless leave-one-out prefers the fitted ones.
MASK_PRIORS: tuple[str, ...] = ("fit", "full")

#: Magnitudes below this count as "not chosen".
_EPS = 0.05


def _guarded(metrics: Mapping[str, Any]) -> float:
    v = metrics.get("clean_accuracy")
    return float(v if v is not None else metrics["accuracy"])


def _before_after(wi: WhatIf | None, spec: InterventionSpec | None) -> dict[str, Any] | None:
    if wi is None:
        return None
    before = wi.evaluate(None, flip_rates=False).metrics
    after = wi.evaluate(spec, flip_rates=False).metrics if spec is not None else before
    return {"before": before, "after": after}


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


def _allowed(directions: Sequence[ConceptDirection], classes: Sequence[str], notes: list[str]) -> list[Candidate]:
    """The candidates (direction, expectation, operation) whose directions stay well
    conditioned together (nearly parallel ones are skipped with a note)."""
    out: list[Candidate] = []
    vecs: list[np.ndarray] = []
    for d in directions:
        expected = expected_relation(d.concept, classes)
        v = d.vector.astype(np.float64)
        trial = np.stack([*vecs, v])
        cond = float(np.linalg.cond(trial @ trial.T))
        if not np.isfinite(cond) or cond > MAX_CONDITION:
            notes.append(f"skipped {d.concept}: its direction is nearly parallel to another candidate's")
            continue
        vecs.append(v)
        out.append(Candidate(d, expected, "amplify" if expected == "relevant" else "mask"))
    return out


def _problem(ctx: FixContext, dirs: Sequence[ConceptDirection], signs: np.ndarray, penalty: np.ndarray) -> Problem:
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


# ---------------------------------------------------------------------------------- search
def _penalties(ctx: FixContext, rows: Sequence[Mapping[str, Any]], subset: np.ndarray) -> np.ndarray:
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


def _select(ctx: FixContext, cands: Sequence[Candidate], rows: list[dict[str, Any]],
            notes: list[str]) -> list[int]:
    """Indices of the candidates the joint fit chooses on all shots and in at least
    ``min_stability`` of the leave-one-out fits (at most ``max_edits``, strongest first)."""
    signs = np.array([c.sign for c in cands])
    every = np.arange(len(ctx.y))
    p = _problem(ctx, [c.direction for c in cands], signs, _penalties(ctx, rows, every))
    a_all = fit_strengths(p)
    loo = leave_one_out(p, lambda r: _penalties(ctx, rows, r))
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


def _spec(ctx: FixContext, dirs: Sequence[ConceptDirection], signs: np.ndarray, a: np.ndarray) -> InterventionSpec | None:
    edits = []
    for d, s, mag in zip(dirs, signs, a, strict=True):
        if mag <= _EPS / 2:
            continue
        mag = round(float(mag), 3)
        edits.append(ConceptEdit(d, "mask", min(mag, 1.0)) if s < 0 else ConceptEdit(d, "amplify", 1.0 + mag))
    if not edits:
        return None
    return InterventionSpec(ctx.model.model_id, ctx.layer, tuple(edits), note="test-time fix")


def _guard(ctx: FixContext, dirs: Sequence[ConceptDirection], signs: np.ndarray, a: np.ndarray,
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


def _survives(overall: Mapping[str, Any], survival: str) -> bool:
    """Whether the whole fix helps the left-out shots. ``"gain"``: more of them right
    (balanced) or their log-likelihood up; ``"strict"``: more of them right, or their
    log-likelihood up with its 90 % interval above zero (not one shot's luck)."""
    if overall["gain_points"] > 0:
        return True
    if survival == "strict":
        return bool(overall["gain_nats_interval"][0] > 0)
    return bool(overall["gain_nats"] > 0)


def _decide(ctx: FixContext, cands: Sequence[Candidate], rows: list[dict[str, Any]],
            keep: list[int], notes: list[str]) -> tuple[InterventionSpec | None, list[dict[str, Any]], dict[str, Any] | None]:
    """Refit the kept edits jointly, check them under leave-one-out, guard the source."""
    if not keep:
        notes.append("no edit helps the shots in a way that survives leave-one-out; nothing proposed")
        return None, [], None
    dirs = [cands[i].direction for i in keep]
    signs = np.array([cands[i].sign for i in keep])
    sub = [rows[i] for i in keep]
    relax = ctx.cfg.refit_penalty
    p = _problem(ctx, dirs, signs, relax * _penalties(ctx, sub, np.arange(len(ctx.y))))
    a = fit_strengths(p)
    loo = leave_one_out(p, lambda r: relax * _penalties(ctx, sub, r))
    if ctx.cfg.mask_prior == "full" and (signs < 0).any() and len(loo.held):
        vectors = np.stack([d.vector.astype(np.float64) for d in dirs])
        a, loo = _full_masks(p, a, loo, lambda r: relax * _penalties(ctx, sub, r), vectors, notes)
    overall = loo_gain(p, loo) if len(loo.held) else None
    if overall is not None and not _survives(overall, ctx.cfg.survival):
        lo, hi = overall["gain_nats_interval"]
        notes.append(
            f"the fix ({', '.join(d.concept for d in dirs)}) does not help the left-out shots in a way "
            f"that survives leave-one-out ({overall['gain_points']:+.1f} points, {overall['gain_nats']:+.3f} "
            f"nats [{lo:+.3f}, {hi:+.3f}]); nothing proposed"
        )
        return None, [], overall
    a = _guard(ctx, dirs, signs, a, notes)
    spec = _calibrated(ctx, _spec(ctx, dirs, signs, a), notes)
    return spec, _edit_rows(spec, dirs, p, loo), overall


def _calibrated(ctx: FixContext, spec: InterventionSpec | None, notes: list[str]) -> InterventionSpec | None:
    """``spec`` with its strongest mask's level calibrated on the source's clean images
    (:mod:`interventions._fix_level`), unless that breaks the source guard."""
    if spec is None or ctx.source is None:
        return spec
    cal, old = calibrate_level(ctx, spec)
    if old is None:
        return spec
    src = ctx.source
    drop = _guarded(src.evaluate(None, flip_rates=False).metrics) - _guarded(src.evaluate(cal, flip_rates=False).metrics)
    name, new = old.direction.concept, cal.edit(old.direction.concept).direction.mu0
    if drop > ctx.cfg.max_source_drop + 1e-9:
        notes.append(f"level of {name} not calibrated: it would drop the source accuracy by {100 * drop:.1f} points")
        return spec
    notes.append(f"level of {name} calibrated on the source's clean images: {old.direction.mu0:.4g} -> {new:.4g}")
    return cal


#: Directions at least this close (|cosine|) count as one artifact for the full-mask prior.
SAME_ARTIFACT_COS = 0.5


def _full_set(p: Problem, a: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """The masks the prior sets to full strength: strongest first, each unless its direction is
    within ``SAME_ARTIFACT_COS`` of one already chosen (two concepts of one marker, say)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    chosen = np.zeros(len(p.signs), bool)
    for i in sorted(np.flatnonzero(p.signs < 0), key=lambda j: -a[j]):
        if not np.any(np.abs(unit[chosen] @ unit[i]) >= SAME_ARTIFACT_COS):
            chosen[i] = True
    return chosen


def _full_masks(p: Problem, a: np.ndarray, loo: LeaveOneOut, penalty: Callable[[np.ndarray], np.ndarray],
                vectors: np.ndarray, notes: list[str]) -> tuple[np.ndarray, LeaveOneOut]:
    """The full-mask prior: the graph lets an artifact be removed entirely, so every kept mask is
    set to full strength — once per artifact: a mask whose direction is close to a stronger one's
    (``SAME_ARTIFACT_COS``) keeps a fitted strength, else the artifact would be removed twice —
    and the other edits refit around them (also under leave-one-out), unless the fitted
    strengths predict the left-out shots better."""
    m = _full_set(p, a, vectors)
    q = fixed_masks(p, m)
    lq = leave_one_out(q, lambda r: penalty(r)[~m])
    full = np.ones((len(lq.held), len(m)))
    full[:, ~m] = lq.a
    full_loo = LeaveOneOut(lq.held, full)
    if loo_nats(p, full_loo) < loo_nats(p, loo):
        return a, loo
    a_full = np.ones(len(m))
    a_full[~m] = fit_strengths(q)
    if np.any(a[m] < 1.0 - 1e-6):
        notes.append("masks at full strength (one per artifact): the left-out shots are predicted at least as "
                     "well as with the fitted strengths")
    return a_full, full_loo


def _edit_rows(
    spec: InterventionSpec | None, dirs: Sequence[ConceptDirection], p: Problem, loo: LeaveOneOut
) -> list[dict[str, Any]]:
    """One row per edit of the proposal: operation, strength, level, stability and gain."""
    edits: list[dict[str, Any]] = []
    if spec is None:
        return edits
    for i, d in enumerate(dirs):
        if d.concept not in spec.concepts:
            continue
        e = spec.edit(d.concept)
        stab = float((loo.a[:, i] > _EPS).mean()) if len(loo.held) else 1.0
        edits.append({"concept": d.concept, "operation": e.operation, "strength": e.strength,
                      "level": e.direction.mu0 if e.operation == "mask" else None, "method": d.method, "stability": stab,
                      **(loo_gain(p, loo, drop=i) if len(loo.held) else {})})
    return edits


def propose_fix(
    model: ClassifierModel, directions: Sequence[ConceptDirection], few_shot_acts: np.ndarray,
    few_shot_labels: np.ndarray, *, source: WhatIf | None = None, held_out: WhatIf | None = None,
    gamma: float = 3.0, max_source_drop: float = 0.02, sparsity: float = 0.15, source_weight: float = 10.0,
    min_stability: float = 0.5, fire_level: float = 0.5, max_edits: int = 4, shift_z: float = 2.0,
    refit_penalty: float = 0.0, anchor: str = "ce", mask_level: str = "calibrated",
    case_ids: Sequence[str] | None = None, survival: str = "gain", mask_prior: str = "full",
) -> FixProposal:
    """Search masks and amplifications jointly on a few labelled images of a new domain.

    Parameters
    ----------
    model
        The model.
    directions
        Candidate concept directions, all at one layer of ``model`` (with present levels). Several
        directions of one concept (different methods, e.g. from :func:`fix_directions`) are
        alternatives: the first is used for an amplification; for a mask the one whose
        leave-one-out fits best predict the left-out shots is chosen (see ``methods``).
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
        Level a mask moves a component to: ``"calibrated"`` (default: the source level, then
        the strongest mask's level refit on the source's clean images within the central 90 %
        of their components, where the patched model's class-balanced cross-entropy on them is
        lowest; :mod:`interventions._fix_level`), ``"source"`` (mean over the source's clean
        images, per class then averaged; the examples' absent level without a source) or
        ``"absent"`` (the concept examples' absent level ``mu0``).
    case_ids
        Ids of the few-shot images (for reports).
    survival
        When the whole fix counts as helping the left-out shots (else nothing is proposed):
        ``"gain"`` (default) when their balanced accuracy or their log-likelihood rises;
        ``"strict"`` when their balanced accuracy rises or their log-likelihood rises with its
        90 % bootstrap interval above zero (less harm where nothing shifted, fewer fixes where
        something did: see docs/interventions.md).
    mask_prior
        Strength of the kept masks: ``"full"`` (default) sets them to full strength unless their
        fitted strengths give the left-out shots a higher log-likelihood (the chosen variant's
        leave-one-out fits then decide whether the fix survives); ``"fit"`` keeps the fitted
        strengths.

    Raises
    ------
    InterventionError
        No direction, directions at several layers, labels of a single class, or an unknown
        anchor, mask level, survival rule or mask prior.
    """
    y = np.asarray(few_shot_labels, dtype=np.int64)
    layer = _check_fix_args(directions, y, gamma, anchor, mask_level)
    if mask_prior not in MASK_PRIORS:
        raise InterventionError(f"unknown mask prior {mask_prior!r}; use one of {', '.join(MASK_PRIORS)}")
    if survival not in SURVIVAL:
        raise InterventionError(f"unknown survival rule {survival!r}; use one of {', '.join(SURVIVAL)}")
    cfg = FixSettings(gamma, max_source_drop, sparsity, source_weight, min_stability, fire_level, max_edits, shift_z,
                    refit_penalty, anchor, mask_level, survival, mask_prior)
    fs = WhatIf(model, layer, few_shot_acts, y, case_ids=case_ids)
    ctx = FixContext(model, layer, fs, y, source, _source_rows(source), cfg)
    return _propose(ctx, directions, held_out)


def _check_fix_args(
    directions: Sequence[ConceptDirection], y: np.ndarray, gamma: float, anchor: str, mask_level: str
) -> str:
    """The directions' common layer, after checking the arguments of :func:`propose_fix`."""
    if not directions:
        raise InterventionError("propose_fix needs at least one concept direction")
    layer = directions[0].layer
    if any(d.layer != layer for d in directions):
        raise InterventionError("all concept directions must be at the same layer")
    if len(np.unique(y)) < 2:
        raise InterventionError("the few-shot set needs labelled images of at least two classes")
    if not 1.0 < gamma <= 10.0:
        raise InterventionError(f"gamma must be in (1, 10], got {gamma}")
    if anchor not in ANCHORS:
        raise InterventionError(f"unknown anchor {anchor!r}; use one of {', '.join(ANCHORS)}")
    if mask_level not in MASK_LEVELS:
        raise InterventionError(f"unknown mask level {mask_level!r}; use one of {', '.join(MASK_LEVELS)}")
    return layer


def _choose(ctx: FixContext, cands: list[Candidate], rows: list[dict[str, Any]],
            alternatives: Mapping[str, Sequence[ConceptDirection]],
            notes: list[str]) -> tuple[list[Candidate], list[dict[str, Any]], list[dict[str, Any]]]:
    """Each mask's direction method, chosen by leave-one-out over the shots
    (:mod:`interventions._fix_methods`)."""
    every = np.arange(len(ctx.y))

    def build(cs: Sequence[Candidate], rs: Sequence[Mapping[str, Any]]) -> tuple[Problem, Any]:
        p = _problem(ctx, [c.direction for c in cs], np.array([c.sign for c in cs]), _penalties(ctx, rs, every))
        return p, lambda r: _penalties(ctx, rs, r)

    cands, rows, choices = choose_directions(ctx, cands, rows, alternatives, build, lambda d: source_level(ctx, d))
    for ch in choices:
        tried = ", ".join(f"{m} {v:+.3f}" for m, v in ch["loo_nats"].items())
        notes.append(f"direction of {ch['concept']}: {ch['method']} (leave-one-out log-likelihood gain per "
                     f"shot: {tried})")
    return cands, rows, choices


def _propose(ctx: FixContext, directions: Sequence[ConceptDirection], held_out: WhatIf | None) -> FixProposal:
    notes: list[str] = []
    primary, alternatives = group_directions(directions)
    cands = _allowed(primary, ctx.model.classes, notes)
    rows = candidate_evidence(ctx, cands)
    cands = [replace(c, direction=source_level(ctx, c.direction)) if c.operation == "mask" else c for c in cands]
    cands, rows, methods = _choose(ctx, cands, rows, alternatives, notes)
    for c, r in zip(cands, rows, strict=True):
        r["method"] = c.direction.method
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
    return FixProposal(
        spec=spec, ranking=to_jsonable(rows), few_shot=to_jsonable(_few_shot_metrics(ctx, spec)), held_out=to_jsonable(_before_after(held_out, spec)),
        source=to_jsonable(src), source_drop=None if drop is None or not math.isfinite(drop) else drop,
        notes=notes, edits=to_jsonable(edits), loo=to_jsonable(overall), methods=to_jsonable(methods),
    )


def _few_shot_metrics(ctx: FixContext, spec: InterventionSpec | None) -> dict[str, Any]:
    """Metrics and cross-entropy of the few shots before and after the proposal."""
    fs, y = ctx.few, ctx.y
    p_after = fs.predict_proba(spec) if spec is not None else fs.base_proba
    return {"before": fs.evaluate(None, flip_rates=False).metrics,
            "after": fs.evaluate(spec, flip_rates=False).metrics,
            "loss_before": cross_entropy(np.log(np.clip(fs.base_proba, 1e-12, 1)), y),
            "loss_after": cross_entropy(np.log(np.clip(p_after, 1e-12, 1)), y)}
