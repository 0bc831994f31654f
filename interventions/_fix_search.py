"""The joint search behind :func:`interventions.propose_fix` (pooled-feature space, convex).

For a fixed set of concept edits the logits are linear in the edits' strengths: with
``t_i = s_i a_i`` (``s_i = -1`` for a mask, whose strength is ``a_i``; ``+1`` for an
amplification by ``gamma = 1 + a_i``) the joint projection adds ``sum_i t_i D_i(h)`` to the
logits of an input ``h``, where ``D_i(h)`` is the logit change of a unit step of edit ``i``
(exact for a linear head, a linearisation otherwise). The search therefore minimises, over
``a`` in a box,

    CE_few(a) + source_weight * (CE_src(a) - CE_src(0)) + sum_i penalty_i a_i,

a smooth convex problem (cross-entropy of linear logits plus a linear term; the signs are fixed
by the clinical graph so the L1 penalty is linear) that L-BFGS-B solves in milliseconds; the
source term anchors the fix to the source domain's clean images, the L1 term keeps it sparse.
Two other anchors are available (``Problem.anchor``): ``hinge`` counts only a rise of the source
cross-entropy (a smoothed ``max(0, ·)`` of a convex function, still convex), ``kl`` the divergence
of the source predictions from the unpatched ones (a cross-entropy against soft targets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize

from interventions._ops import CompiledSpec
from interventions._spec import ConceptDirection, ConceptEdit, InterventionSpec
from interventions._whatif import WhatIf

__all__ = ["ANCHORS", "Problem", "edit_deltas", "fit_strengths", "fixed_masks", "logits_at"]


#: Source anchors: cross-entropy change, its rise only (hinge), divergence from the unpatched
#: predictions.
ANCHORS: tuple[str, ...] = ("ce", "hinge", "kl")


def edit_deltas(wi: WhatIf, directions: Sequence[ConceptDirection], rows: np.ndarray | None = None) -> np.ndarray:
    """``(N, m, K)`` logit change of a unit step (amplify by 2) of each edit, the others held
    at their components (the joint projection of the whole set)."""
    m = len(directions)
    base = wi._base_logits
    out = np.zeros((len(base), m, base.shape[1]), dtype=np.float64)
    for i in range(m):
        edits = tuple(ConceptEdit(d, "amplify", 2.0 if j == i else 1.0) for j, d in enumerate(directions))
        op = CompiledSpec(InterventionSpec(wi.model.model_id, wi.layer, edits))
        out[:, i, :] = (wi._logits(wi.h, op, None) - base).double().numpy()
    return out if rows is None else out[np.asarray(rows, dtype=np.int64)]


def base_logits(wi: WhatIf, rows: np.ndarray | None = None) -> np.ndarray:
    """``(N, K)`` unpatched logits of (some rows of) a what-if."""
    if rows is None:
        return wi._base_logits.double().numpy()  # type: ignore[no-any-return]
    return wi._base_logits[torch.from_numpy(np.asarray(rows, dtype=np.int64))].double().numpy()  # type: ignore[no-any-return]


def logits_at(z0: np.ndarray, deltas: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Logits ``z0 + sum_i t_i D_i`` ``(N, K)``."""
    return z0 + np.einsum("nmk,m->nk", deltas, t)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def cross_entropy(z: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """(Weighted) mean cross-entropy of logits."""
    nll = -_log_softmax(z)[np.arange(len(y)), y]
    w = np.ones(len(y)) if weights is None else weights
    return float((w * nll).sum() / max(w.sum(), 1e-12))


@dataclass(frozen=True)
class Problem:
    """One search problem: few-shot logits and edit deltas, the source anchor, the bounds.

    Attributes
    ----------
    z_few, d_few, y_few, w_few
        Few-shot base logits ``(n, K)``, deltas ``(n, m, K)``, labels and class-balancing
        weights.
    z_src, d_src, y_src
        The source anchor (clean source images; empty arrays when none).
    signs
        ``(m,)`` -1 for a mask, +1 for an amplification.
    upper
        ``(m,)`` largest magnitude per edit.
    penalty
        ``(m,)`` L1 weight per edit.
    source_weight
        Weight of the source anchor.
    anchor
        ``"ce"`` (default): the cross-entropy of the source images against their labels (its
        change: edits that also improve the source are rewarded); ``"hinge"``: only its rise
        counts (smoothed); ``"kl"``: the divergence of their predictions from the unpatched
        model's (the fix should not move them).
    """

    z_few: np.ndarray
    d_few: np.ndarray
    y_few: np.ndarray
    w_few: np.ndarray
    z_src: np.ndarray
    d_src: np.ndarray
    y_src: np.ndarray
    signs: np.ndarray
    upper: np.ndarray
    penalty: np.ndarray
    source_weight: float
    anchor: str = "ce"

    def subset(self, rows: np.ndarray) -> Problem:
        """The same problem on some few-shot rows (weights re-balanced)."""
        y = self.y_few[rows]
        return Problem(self.z_few[rows], self.d_few[rows], y, balance_weights(y), self.z_src, self.d_src,
                       self.y_src, self.signs, self.upper, self.penalty, self.source_weight, self.anchor)


def balance_weights(y: np.ndarray) -> np.ndarray:
    """Per-row weights giving every present class the same total weight."""
    counts = np.bincount(y)
    return np.asarray(1.0 / counts[y], dtype=np.float64)


#: Smoothing (nats) of the one-sided source anchor's hinge.
_HINGE_TAU = 0.005


def _ce_grad(z0: np.ndarray, d: np.ndarray, target: np.ndarray, w: np.ndarray,
             t: np.ndarray) -> tuple[float, np.ndarray]:
    """Weighted cross-entropy (soft targets) of the logits ``z0 + D t`` and its gradient in ``t``."""
    ls = _log_softmax(logits_at(z0, d, t))
    g = np.exp(ls) - target
    return float(-(w[:, None] * target * ls).sum()), np.einsum("nk,nmk->m", g * w[:, None], d)


def _anchor(p: Problem, t: np.ndarray) -> tuple[float, np.ndarray]:
    """The source anchor and its gradient in ``t`` (see :class:`Problem`)."""
    n = len(p.y_src)
    if n == 0 or p.source_weight == 0.0:
        return 0.0, np.zeros_like(t)
    w = np.full(n, 1.0 / n)
    if p.anchor == "kl":
        target = np.exp(_log_softmax(p.z_src))
    else:
        target = np.eye(p.z_src.shape[1])[p.y_src]
    ce, g = _ce_grad(p.z_src, p.d_src, target, w, t)
    if p.anchor != "hinge":
        return p.source_weight * ce, p.source_weight * g
    ce0, _ = _ce_grad(p.z_src, p.d_src, target, w, np.zeros_like(t))
    x = (ce - ce0) / _HINGE_TAU
    soft = _HINGE_TAU * (max(x, 0.0) + np.log1p(np.exp(-abs(x))))
    return p.source_weight * soft, p.source_weight / (1.0 + np.exp(-x)) * g


def _loss_grad(a: np.ndarray, p: Problem, free: np.ndarray) -> tuple[float, np.ndarray]:
    t = np.where(free, p.signs * a, 0.0)
    w = p.w_few / p.w_few.sum()
    total, grad_t = _ce_grad(p.z_few, p.d_few, np.eye(p.z_few.shape[1])[p.y_few], w, t)
    src, g_src = _anchor(p, t)
    total += src + float((p.penalty * a)[free].sum())
    grad = np.where(free, p.signs * (grad_t + g_src) + p.penalty, 0.0)
    return total, grad


def fit_strengths(p: Problem, free: np.ndarray | None = None) -> np.ndarray:
    """Magnitudes ``a`` (``(m,)``, within ``[0, upper]``) minimising the objective; edits not
    ``free`` stay at 0."""
    m = len(p.signs)
    f = np.ones(m, bool) if free is None else np.asarray(free, bool)
    if not f.any():
        return np.zeros(m)
    bounds = [(0.0, float(u)) if fi else (0.0, 0.0) for u, fi in zip(p.upper, f, strict=True)]
    res = minimize(_loss_grad, np.zeros(m), args=(p, f), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 200})
    a = np.clip(np.asarray(res.x, dtype=np.float64), 0.0, p.upper)
    a[~f] = 0.0
    return a


def fixed_masks(p: Problem, fix: np.ndarray | None = None) -> Problem:
    """The problem with the masks ``fix`` (boolean per edit; default every mask) fixed at full
    strength (folded into the base logits, few-shot and source): the other edits are left to fit."""
    m = p.signs < 0 if fix is None else np.asarray(fix, dtype=bool) & (p.signs < 0)
    t = np.where(m, -1.0, 0.0)
    has_src = len(p.y_src) > 0
    return Problem(logits_at(p.z_few, p.d_few, t), p.d_few[:, ~m], p.y_few, p.w_few,
                   logits_at(p.z_src, p.d_src, t) if has_src else p.z_src, p.d_src[:, ~m] if has_src else p.d_src,
                   p.y_src, p.signs[~m], p.upper[~m], p.penalty[~m], p.source_weight, p.anchor)
