"""Where a test-time fix's masks move a concept's component: the source's clean level, then calibrated.

A mask moves the component of an image along the artifact's direction to a level. With
``mask_level="source"`` that level is the mean component of the source's clean images (no
planted artifact; per class, then averaged): a full mask leaves an image where the source's
artifact-free images are on average, and removes only the artifact's excess.

``mask_level="calibrated"`` (the default of :func:`interventions.propose_fix`) starts there and,
once the search has chosen the edits and their strengths, refits the level of the strongest mask
on the source's clean images: the level, within the central 90 % of their components, at which
the patched model's class-balanced cross-entropy on them is lowest. The reason is the head's
intercept: it was learnt with the shortcut present, so once the artifact's evidence is removed,
images without it are no longer calibrated (the class that carried the artifact is called less
often than it should be). On a full mask a change of level adds the same logit change to every
image, so the refit level is that recalibration, kept inside the concept edit (the spec, the
hook and the exported model are unchanged) and inside the range of levels artifact-free images
have. Only the source's clean images decide it, not the shots. Measured in
docs/interventions.md.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.optimize import minimize_scalar

from interventions._fix_evidence import FixContext
from interventions._fix_search import balance_weights, cross_entropy
from interventions._spec import ConceptDirection, ConceptEdit, InterventionSpec

__all__ = ["MASK_LEVELS", "calibrate_level", "source_level"]

#: Levels a mask may move a component to (see ``propose_fix(mask_level=...)``).
MASK_LEVELS: tuple[str, ...] = ("calibrated", "source", "absent")

#: Share of the source's clean components on each side outside the calibrated level's range.
_TAIL = 0.05


def _clean_components(ctx: FixContext, d: ConceptDirection) -> tuple[np.ndarray, np.ndarray]:
    """Components of the source's clean images on ``d`` and their labels (source required)."""
    assert ctx.source is not None
    rows = ctx.src_rows
    comp = ctx.source.h.numpy()[rows].reshape(len(rows), -1) @ d.vector
    return np.asarray(comp, dtype=np.float64), ctx.source.labels[rows]


def source_level(ctx: FixContext, d: ConceptDirection) -> ConceptDirection:
    """The direction a mask candidate uses: its absent level set to the mean component of the
    source's clean images (per class, then averaged), unless ``mask_level="absent"`` or there is
    no source (then the concept examples' absent level ``mu0``)."""
    if ctx.cfg.mask_level == "absent" or ctx.source is None or not len(ctx.src_rows):
        return d
    comp, y = _clean_components(ctx, d)
    return replace(d, mu0=round(float(np.mean([comp[y == c].mean() for c in np.unique(y)])), 6))


def calibrate_level(ctx: FixContext, spec: InterventionSpec) -> tuple[InterventionSpec, ConceptEdit | None]:
    """``spec`` with the level of its strongest mask refit on the source's clean images, and that
    edit as it was (``None`` and ``spec`` itself when nothing is calibrated: another mask level,
    no source, no mask)."""
    masks = [e for e in spec.edits if e.operation == "mask"]
    if ctx.cfg.mask_level != "calibrated" or ctx.source is None or len(ctx.src_rows) < 2 or not masks:
        return spec, None
    edit = max(masks, key=lambda e: e.strength)
    comp, y = _clean_components(ctx, edit.direction)
    lo, hi = np.quantile(comp, [_TAIL, 1.0 - _TAIL])
    if not hi > lo:
        return spec, None
    src, rows, w = ctx.source, ctx.src_rows, balance_weights(y)

    def at(level: float) -> InterventionSpec:
        moved = replace(edit, direction=replace(edit.direction, mu0=round(float(level), 6)))
        return replace(spec, edits=tuple(moved if e is edit else e for e in spec.edits))

    def loss(level: float) -> float:
        p = src.predict_proba(at(level))[rows]
        return cross_entropy(np.log(np.clip(p, 1e-12, 1.0)), y, w)

    best = minimize_scalar(loss, bounds=(float(lo), float(hi)), method="bounded",
                           options={"xatol": 1e-3 * float(hi - lo)})
    level = float(best.x)
    if loss(edit.direction.mu0) <= loss(level):
        return spec, None
    return at(level), edit
