"""What the test-time fix search knows: its settings and context, the candidate edits the
clinical graph allows, and the evidence per candidate (firing rates, level shift from the
source, few-shot loss gradient) that sets the L1 weights and the ranking."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from concepts import ClassifierModel
from interventions._fix_search import balance_weights, edit_deltas
from interventions._spec import ConceptDirection
from interventions._whatif import WhatIf

__all__ = ["Candidate", "FixContext", "FixSettings", "ShiftStat", "candidate_evidence", "concept_levels",
           "expected_relation", "mask_only"]


@lru_cache(maxsize=1)
def _graph() -> Any:
    from graph import ClinicalGraph

    return ClinicalGraph.default()


def expected_relation(concept: str, classes: Sequence[str]) -> str:
    """``irrelevant``, ``relevant`` (indicates/counter-indicates a class) or ``unknown``."""
    rels = {_graph().expected_relation(concept, c).relation for c in classes}
    if rels & {"indicates", "counter_indicates"}:
        return "relevant"
    if rels == {"irrelevant"}:
        return "irrelevant"
    return "unknown"


def mask_only(concept: str, classes: Sequence[str]) -> bool:
    """Whether the clinical graph lets a fix only mask ``concept`` (an artifact, or a concept it
    does not know), rather than only amplify it (a criterion of one of ``classes``)."""
    return expected_relation(concept, classes) != "relevant"


@dataclass(frozen=True)
class FixSettings:
    """The knobs of :func:`interventions.propose_fix` (see its parameters)."""

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
    mask_level: str = "calibrated"
    survival: str = "gain"
    mask_prior: str = "full"


@dataclass(frozen=True)
class FixContext:
    """Everything the search needs, computed once."""

    model: ClassifierModel
    layer: str
    few: WhatIf
    y: np.ndarray
    source: WhatIf | None
    src_rows: np.ndarray
    cfg: FixSettings


@dataclass(frozen=True)
class Candidate:
    """An edit the graph allows: the concept's direction, what the graph expects of it
    (``relevant``, ``irrelevant`` or ``unknown``) and the one operation allowed (``mask`` or
    ``amplify``)."""

    direction: ConceptDirection
    expected: str
    operation: str

    @property
    def sign(self) -> float:
        """-1 for a mask, +1 for an amplification."""
        return -1.0 if self.operation == "mask" else 1.0


def concept_levels(acts: np.ndarray, d: ConceptDirection) -> np.ndarray:
    """Component of each row on the absent (0) to present (1) scale of a direction."""
    comp = np.asarray(acts, dtype=np.float32).reshape(len(acts), -1) @ d.vector - d.mu0
    if d.mu1 is None or d.mu1 == d.mu0:
        return np.sign(comp)  # type: ignore[no-any-return]
    return comp / (d.mu1 - d.mu0)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ShiftStat:
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
    lv = concept_levels(src.h.numpy(), d)
    cls = src.labels != wrong_of if op == "mask" else src.labels == wrong_of
    if cls.sum() < 2:
        return float("nan"), 1.0
    return float(lv[cls].mean()), max(float(lv[cls].std(ddof=1)), 1e-6)


def candidate_evidence(ctx: FixContext, cands: Sequence[Candidate]) -> list[dict[str, Any]]:
    """Per candidate: the class it supports, its firing on wrong-class and misclassified shots
    (and on the source), its level deficit on its own class, the few-shot loss gradient."""
    fs, y, classes = ctx.few, ctx.y, ctx.model.classes
    dirs = [c.direction for c in cands]
    d_few = edit_deltas(fs, dirs) if dirs else np.zeros((len(y), 0, len(classes)))
    w = balance_weights(y)
    w = w / w.sum()
    g = fs.base_proba.copy()
    g[np.arange(len(y)), y] -= 1.0
    grad_t = np.einsum("nk,nmk->m", g * w[:, None], d_few)  # dCE/dt at 0
    return [_candidate_row(ctx, c, d_few[:, i, :], float(grad_t[i])) for i, c in enumerate(cands)]


def _candidate_row(ctx: FixContext, c: Candidate, delta_few: np.ndarray, grad: float) -> dict[str, Any]:
    """The evidence row of one candidate (``delta_few``: its logit steps on the shots)."""
    fs, y, src, classes = ctx.few, ctx.y, ctx.source, ctx.model.classes
    d, op = c.direction, c.operation
    lv = concept_levels(fs.h.numpy(), d)
    if src is None:
        delta, lv_ref = delta_few, lv
    else:
        delta, lv_ref = edit_deltas(src, [d])[:, 0, :], concept_levels(src.h.numpy(), d)
    # the class whose logit rises with the concept's component (the step is (c - mu0) times it)
    k_c = int(np.argmax((delta * np.sign(lv_ref)[:, None]).mean(axis=0)))
    fires, wrong = lv >= ctx.cfg.fire_level, y != k_c
    rate_wrong = float(fires[wrong].mean()) if wrong.any() else 0.0
    level_own = float(lv[~wrong].mean()) if (~wrong).any() else float("nan")
    src_rate, src_level = 0.0, float("nan")
    if src is not None:
        ls = concept_levels(src.h.numpy(), d)
        sw = src.labels != k_c
        src_rate = float((ls[sw] >= ctx.cfg.fire_level).mean()) if sw.any() else 0.0
        src_level = float(ls[~sw].mean()) if (~sw).any() else float("nan")
    errs = (fs.base_pred != y) & wrong
    shift_cls = np.flatnonzero(wrong if op == "mask" else ~wrong)
    shift = ShiftStat(lv, shift_cls, 1.0 if op == "mask" else -1.0, *_src_stats(src, d, wrong_of=k_c, op=op))
    return {
        "concept": d.concept, "concept_id": d.concept_id, "expected": c.expected, "operation": op,
        "supports": classes[k_c], "fire_rate_wrong_class": rate_wrong,
        "source_fire_rate_wrong_class": src_rate, "excess": rate_wrong - src_rate,
        "fires_on_errors": float(fires[errs].mean()) if errs.any() else 0.0,
        "level_own_class": level_own, "source_level_own_class": src_level,
        "deficit": src_level - level_own if src is not None else float("nan"),
        "gradient": float(c.sign * grad),
        "shift": shift.z(np.arange(len(y))), "_shift": shift,
    }
