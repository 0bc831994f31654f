"""Training-free test-time fix from a few labelled images of a new domain.

Every concept direction is read on the k labelled images per class on its absent (0) to
present (1) scale; a concept *fires* on an image at level >= ``fire_level``. The class a concept
supports is the one whose probability its mask lowers most on the source domain.

*Misactivated confounder*
    fires on images of the wrong class (not the one it supports) clearly more often than in
    the source domain, and masking it raises the true-class probability of those images. Only
    concepts the clinical graph does not expect to matter (artifacts, unknown concepts) are
    masked.
*Under-activated*
    a clinically discriminative concept whose level on images of the class it supports is
    clearly below its source-domain level, and whose amplification lowers the few-shot
    cross-entropy.

Edits are added best first while the source-domain accuracy (on cases without planted
artifacts when known) drops by at most ``max_source_drop``. With k = 4 the few-shot loss alone
is too noisy to decide (a mean-level mask also moves the right-class images), so the firing
evidence decides and the loss is reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from concepts import ClassifierModel
from interventions._effects import _clean
from interventions._spec import ConceptDirection, ConceptEdit, InterventionError, InterventionSpec
from interventions._whatif import WhatIf

__all__ = ["FixProposal", "propose_fix", "select_few_shot"]


def _cross_entropy(proba: np.ndarray, labels: np.ndarray) -> float:
    p = proba[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))


@lru_cache(maxsize=1)
def _graph() -> Any:
    from graph._model import ClinicalGraph

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
    """A proposed test-time fix and its measured effect.

    Attributes
    ----------
    spec
        The proposed intervention (None when no concept qualifies).
    ranking
        One row per concept: ``concept``, ``concept_id``, ``expected`` (clinical graph:
        irrelevant / relevant / unknown), ``supports`` (the class it pushes towards),
        ``fire_rate_wrong_class`` and its source value, ``excess`` (their difference),
        ``help`` (mean true-class log-probability gain of its mask on the wrong-class images it
        fires on), ``level_own_class`` and its source value, ``deficit``, ``gain_mask`` and
        ``gain_amplify`` (drop of the few-shot cross-entropy), ``role`` (``misactivated
        confounder``, ``under-activated`` or empty) and ``proposed``; misactivated first.
    few_shot, held_out, source
        ``{"before": M, "after": M}`` metrics on the few-shot images, a held-out set of the new
        domain and the source domain (None where not given).
    source_drop
        Drop of the guarded source accuracy (clean accuracy when known), in [0, 1].
    """

    spec: InterventionSpec | None
    ranking: list[dict[str, Any]]
    few_shot: dict[str, Any]
    held_out: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    source_drop: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def proposed(self) -> list[str]:
        """Concepts edited by the proposal."""
        return [] if self.spec is None else list(self.spec.concepts)

    def to_json(self) -> dict[str, Any]:
        return _clean({
            "spec": None if self.spec is None else self.spec.to_json(),
            "description": None if self.spec is None else self.spec.describe(),
            "proposed": self.proposed,
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


def propose_fix(
    model: ClassifierModel,
    directions: Sequence[ConceptDirection],
    few_shot_acts: np.ndarray,
    few_shot_labels: np.ndarray,
    *,
    source: WhatIf | None = None,
    held_out: WhatIf | None = None,
    gamma: float = 2.0,
    max_source_drop: float = 0.02,
    fire_level: float = 0.5,
    min_excess: float = 0.2,
    min_help: float = 0.05,
    min_deficit: float = 0.2,
    max_edits: int = 4,
    case_ids: Sequence[str] | None = None,
) -> FixProposal:
    """Rank concepts on a few labelled images of a new domain and propose a mask/amplify spec.

    Parameters
    ----------
    model
        The model.
    directions
        Candidate concept directions, all at one layer of ``model`` (with present levels).
    few_shot_acts, few_shot_labels
        Activations of the labelled images at that layer and their class indices.
    source
        A what-if of a source-domain split: the reference firing rates and levels, and the
        guard (accuracy on cases without planted artifacts when its groups are known, else
        accuracy). Without it, rates and levels are compared with zero and nothing is guarded.
    held_out
        A what-if of held-out images of the new domain (reported only).
    gamma
        Amplification proposed for under-activated concepts.
    max_source_drop
        Largest source accuracy drop accepted (0.02 = 2 points).
    fire_level
        Level from which a concept counts as present on an image.
    min_excess
        Smallest rise of the wrong-class firing rate over the source's for a misactivation.
    min_help
        Smallest mean rise of the true-class log-probability, when masked, of the wrong-class
        images it fires on.
    min_deficit
        Smallest drop of a discriminative concept's level on its class for an under-activation.
    max_edits
        Most concepts in the proposal.
    case_ids
        Ids of the few-shot images (for reports).
    """
    if not directions:
        raise InterventionError("propose_fix needs at least one concept direction")
    layer = directions[0].layer
    if any(d.layer != layer for d in directions):
        raise InterventionError("all concept directions must be at the same layer")
    y = np.asarray(few_shot_labels, dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise InterventionError("the few-shot set needs labelled images of at least two classes")
    fs = WhatIf(model, layer, few_shot_acts, y, case_ids=case_ids)
    base_loss = _cross_entropy(fs.base_proba, y)
    classes = model.classes
    notes: list[str] = []
    rows = np.arange(len(y))
    base_logp = np.log(np.clip(fs.base_proba[rows, y], 1e-12, 1.0))

    def single(d: ConceptDirection, op: str, s: float) -> InterventionSpec:
        return InterventionSpec(model.model_id, layer, (ConceptEdit(d, op, s),))

    ranking: list[dict[str, Any]] = []
    candidates: list[tuple[int, float, ConceptEdit]] = []
    for d in directions:
        mask = single(d, "mask", 1.0)
        p_mask = fs.predict_proba(mask)
        gain_m = base_loss - _cross_entropy(p_mask, y)
        gain_a = base_loss - _cross_entropy(fs.predict_proba(single(d, "amplify", gamma)), y)
        ref = source if source is not None else fs
        support = (ref.base_proba - ref.predict_proba(mask)).mean(axis=0)
        k_c = int(np.argmax(support))
        lv = _levels(few_shot_acts, d)
        fires, wrong = lv >= fire_level, y != k_c
        rate_wrong = float(fires[wrong].mean()) if wrong.any() else 0.0
        level_right = float(lv[~wrong].mean()) if (~wrong).any() else float("nan")
        src_rate_wrong, src_level_right = 0.0, float("nan")
        if source is not None:
            ls = _levels(source.h.numpy(), d)
            sw = source.labels != k_c
            src_rate_wrong = float((ls[sw] >= fire_level).mean()) if sw.any() else 0.0
            src_level_right = float(ls[~sw].mean()) if (~sw).any() else float("nan")
        hit = fires & wrong
        help_ = float((np.log(np.clip(p_mask[rows, y], 1e-12, 1.0)) - base_logp)[hit].mean()) if hit.any() else 0.0
        excess = rate_wrong - src_rate_wrong
        deficit = src_level_right - level_right if source is not None else float("nan")
        expected = _expected(d.concept, classes)
        role = ""
        if expected != "relevant" and excess >= min_excess and help_ >= min_help:
            role = "misactivated confounder"
            candidates.append((0, excess * help_, ConceptEdit(d, "mask", 1.0)))
        elif expected == "relevant" and gain_a > 0 and (source is None or deficit >= min_deficit):
            role = "under-activated"
            candidates.append((1, gain_a, ConceptEdit(d, "amplify", gamma)))
        ranking.append({
            "concept": d.concept, "concept_id": d.concept_id, "expected": expected,
            "supports": classes[k_c], "fire_rate_wrong_class": rate_wrong,
            "source_fire_rate_wrong_class": src_rate_wrong, "excess": excess, "help": help_,
            "level_own_class": level_right, "source_level_own_class": src_level_right,
            "deficit": deficit, "gain_mask": gain_m, "gain_amplify": gain_a,
            "role": role, "proposed": False,
        })
    candidates.sort(key=lambda t: (t[0], -t[1]))

    src_base = _guarded(source.evaluate(None, flip_rates=False).metrics) if source is not None else None
    chosen: list[ConceptEdit] = []
    for _kind, _score, edit in candidates:
        if len(chosen) >= max_edits:
            break
        trial = InterventionSpec(model.model_id, layer, (*chosen, edit), note="test-time fix")
        try:
            trial_src = source.evaluate(trial, flip_rates=False).metrics if source is not None else None
        except InterventionError as exc:  # e.g. nearly parallel to a chosen direction
            notes.append(f"skipped {edit.direction.concept}: {exc}")
            continue
        if trial_src is not None and src_base is not None:
            trial_drop = src_base - _guarded(trial_src)
            if trial_drop > max_source_drop:
                notes.append(
                    f"skipped {edit.direction.concept}: source accuracy would drop by "
                    f"{100 * trial_drop:.1f} points"
                )
                continue
        chosen.append(edit)
    spec = InterventionSpec(model.model_id, layer, tuple(chosen), note="test-time fix") if chosen else None
    for row in ranking:
        row["proposed"] = spec is not None and row["concept"] in spec.concepts
    order = {"misactivated confounder": 0, "under-activated": 1, "": 2}
    ranking.sort(key=lambda r: (order[r["role"]], -r["excess"] * max(r["help"], 0.0), -r["gain_amplify"]))
    src = _before_after(source, spec)
    drop: float | None = None
    if src is not None:
        drop = _guarded(src["before"]) - _guarded(src["after"])
    p_after = fs.predict_proba(spec) if spec is not None else fs.base_proba
    few = {"before": fs.evaluate(None, flip_rates=False).metrics,
           "after": fs.evaluate(spec, flip_rates=False).metrics,
           "loss_before": base_loss, "loss_after": _cross_entropy(p_after, y)}
    if spec is None:
        notes.append("no concept is misactivated or under-activated on these images; nothing proposed")
    return FixProposal(
        spec=spec, ranking=_clean(ranking), few_shot=_clean(few), held_out=_clean(_before_after(held_out, spec)),
        source=_clean(src), source_drop=None if drop is None or not math.isfinite(drop) else drop, notes=notes,
    )
