"""Pieces of the confounder score and the scored rows of the ranked report.

The formula (``score = w * C * R``) is documented once, in ``docs/confounders.md`` ("The
score"), and in the docstring of :mod:`graph._confounders`; :func:`_score` computes it. A row is
keyed by a :class:`ConceptClass` (concept, class); its reliance R comes from a measured
:class:`FlipRate` first, else from the lead TCAV row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graph._model import ClinicalGraph
from store import finite_or_none as _num

__all__ = ["RELEVANCE_WEIGHTS", "ConceptClass", "FlipRate", "GivenEvidence", "tcav_only_rows", "tested_rows"]

#: Weight ``w`` of each clinical situation (see the module docstring).
RELEVANCE_WEIGHTS: dict[str, float] = {
    "irrelevant": 1.0,
    "unknown": 0.5,
    "contradicts": 0.25,
    "indicates": 0.0,
}

_CHECKLIST_DERIVED = ("seven_point_score",)


@dataclass(frozen=True)
class ConceptClass:
    """A (concept, class) pair: one row of the confounder report."""

    concept: str
    cls: str


@dataclass(frozen=True)
class FlipRate:
    """A measured counterfactual flip rate toward a class, over ``n`` twins."""

    rate: float
    n: int


# ====================================================================== pieces of the score
def _reliance(rows: pd.DataFrame | None, flip: FlipRate | None = None) -> dict[str, Any]:
    """Reliance evidence of one (concept, class): a flip rate first, else the lead TCAV row.

    ``reliance_strength`` (R) is the flip rate toward the class when one was measured
    (``reliance_source`` ``flip_rate``); else the effect of a significant, stable, positive TCAV
    row (``tcav``); else 0 (``none``; also for a concept the TCAV table lacks).
    """
    out = _tcav_evidence(rows)
    if flip is not None:
        out.update(flip_rate=flip.rate, flip_n=flip.n, reliance_source="flip_rate",
                   reliance_strength=flip.rate)
    return out


def _tcav_evidence(rows: pd.DataFrame | None) -> dict[str, Any]:
    """The strongest stable positive TCAV finding of one (concept, class)."""
    out: dict[str, Any] = {"reliance": None, "reliance_layer": None, "tcav_significant": None,
                           "tcav_p_adjusted": None, "flip_rate": None, "flip_n": None,
                           "reliance_source": "none", "reliance_strength": 0.0}
    if rows is None or rows.empty:
        return out
    found = rows[rows["significant"] & ~rows["unstable"] & (rows["effect"] > 0)]
    pick = found if len(found) else rows
    lead = pick.loc[pick["effect"].fillna(-np.inf).idxmax()]
    eff = _num(lead["effect"])
    out.update(reliance=eff, reliance_layer=str(lead["layer"]), tcav_significant=bool(len(found)),
               tcav_p_adjusted=_num(lead["p_adjusted"]))
    if len(found) and eff is not None:
        out["reliance_strength"] = max(0.0, eff)
        out["reliance_source"] = "tcav"
    return out


def _association(testable: bool, or_low: float | None) -> float:
    """Co-occurrence factor ``C = max(0, ln OR_low)`` (0 when not testable)."""
    return max(0.0, math.log(or_low)) if testable and or_low and or_low > 0 else 0.0


def _score(weight: float, association: float, reliance: float, evidence_given: bool) -> float:
    """``score = w * C * R``; ``R = 1`` for every row when no reliance evidence (flip rates or
    TCAV results) is given at all.

    The one implementation of the formula documented in docs/confounders.md ("The score").
    """
    return weight * association * (reliance if evidence_given else 1.0)


def _relevance(graph: ClinicalGraph, concept: str, column: str, kind: str, group: str, cls: str,
               over: bool) -> tuple[str, bool, float, str]:
    """(relation, clinically_relevant, weight, reason) of a concept for a class.

    ``over``: the concept is over-represented in the class (odds ratio > 1) or relied on.
    """
    if column in _CHECKLIST_DERIVED:
        return ("indicates", True, RELEVANCE_WEIGHTS["indicates"],
                f"{column} is computed from the checklist criteria (clinically relevant)")
    exp = graph.expected_relation(column, cls)
    if exp.node is None and concept != column:
        exp = graph.expected_relation(concept, cls)
    rel = exp.relation
    reason = exp.reason
    if exp.node is None and (kind == "artifact" or group == "artifact"):
        rel, reason = "irrelevant", f"{concept} is an artifact: clinically irrelevant to every diagnosis"
    if rel == "irrelevant":
        return rel, False, RELEVANCE_WEIGHTS["irrelevant"], reason
    if rel == "indicates":
        return rel, True, RELEVANCE_WEIGHTS["indicates"], reason
    if rel == "counter_indicates":
        w = RELEVANCE_WEIGHTS["contradicts"] if over else RELEVANCE_WEIGHTS["indicates"]
        return rel, True, w, reason
    return "unknown", False, RELEVANCE_WEIGHTS["unknown"], reason


def _pct(v: Any) -> str:
    f = _num(v)
    return "?" if f is None else f"{100 * f:.0f}%"


@dataclass(frozen=True)
class GivenEvidence:
    """Which reliance evidence the report was given."""

    tcav: bool
    flips: Mapping[ConceptClass, FlipRate]

    @property
    def any(self) -> bool:
        return self.tcav or bool(self.flips)


def _flip_sentence(row: dict[str, Any]) -> str:
    return (f"adding it to {row['flip_n']} twins predicted otherwise turns "
            f"{_pct(row['flip_rate'])} of them {row['class']} (counterfactual flip rate: reliance)")


def _evidence(row: dict[str, Any], note: str, reason: str, given: GivenEvidence) -> str:
    parts: list[str] = []
    if row["testable"]:
        parts.append(
            f"{row['concept']} in {_pct(row['prevalence_class'])} of {row['class']} vs "
            f"{_pct(row['prevalence_other'])} of the other cases ({row['split']}; lift "
            f"{row['lift']:.2f}, OR {row['odds_ratio']:.2f} [{row['or_ci_low']:.2f}, "
            f"{row['or_ci_high']:.2f}], adjusted p {row['p_adjusted']:.2g})"
        )
    elif note:
        parts.append(note)
    else:
        parts.append("no annotation of this concept in the data: co-occurrence unmeasured")
    if row["reliance_source"] == "flip_rate":
        parts.append(_flip_sentence(row))
    if not given.any:
        parts.append("no TCAV results and no twins: reliance unknown, ranked on co-occurrence alone")
    elif not given.tcav:
        if row["reliance_source"] != "flip_rate":
            parts.append("no twins and no TCAV results for it: no evidence of reliance")
    elif row["reliance"] is None:
        parts.append("not in the TCAV results: no evidence of sensitivity")
    elif row["tcav_significant"]:
        parts.append(f"class logit sensitive to it (TCAV effect {row['reliance']:+.2f} at "
                     f"{row['reliance_layer']}; directional sensitivity, not a causal test)")
    else:
        parts.append(f"no significant stable TCAV sensitivity (best effect {row['reliance']:+.2f})")
    parts.append(f"graph: {reason}")
    return "; ".join(parts)



def tested_rows(cooc: pd.DataFrame, by_key: Mapping[ConceptClass, pd.DataFrame], g: ClinicalGraph,
                 given: GivenEvidence) -> list[dict[str, Any]]:
    """One scored row per (attribute, class) of a co-occurrence-like table."""
    rows: list[dict[str, Any]] = []
    for r in cooc.to_dict("records"):
        concept, cls = str(r["attribute"]), str(r["class"])
        key = ConceptClass(concept, cls)
        rel_rows = by_key.get(key)
        group = str(rel_rows["group"].iloc[0]) if rel_rows is not None and len(rel_rows) else ""
        rely = _reliance(rel_rows, given.flips.get(key))
        testable = bool(r["testable"])
        or_lo = _num(r["or_ci_low"])
        assoc = _association(testable, or_lo)
        over = (testable and (_num(r["odds_ratio"]) or 0.0) > 1.0) or rely["reliance_strength"] > 0
        relation, relevant, w, reason = _relevance(g, concept, str(r["column"]), str(r["kind"]),
                                                   group, cls, over)
        row = {
            "concept": concept, "class": cls, "kind": str(r["kind"]), "split": str(r["split"]),
            "lift": _num(r["lift"]), "odds_ratio": _num(r["odds_ratio"]),
            "or_ci_low": or_lo, "or_ci_high": _num(r["or_ci_high"]),
            "p_adjusted": _num(r["p_adjusted"]),
            "prevalence_class": _num(r.get("prevalence_class")),
            "prevalence_other": _num(r.get("prevalence_other")),
            "n_class": int(r.get("n_class", 0) or 0), "n_both": int(r.get("n_both", 0) or 0),
            **rely, "clinically_relevant": relevant, "relation": relation,
            "association": assoc, "relevance_weight": w, "testable": testable,
        }
        row["score"] = _score(w, assoc, row["reliance_strength"], given.any)
        row["evidence"] = _evidence(row, str(r["note"]), reason, given)
        rows.append(row)
    return rows


def tcav_only_rows(by_key: Mapping[ConceptClass, pd.DataFrame], seen: set[ConceptClass],
                    g: ClinicalGraph, sp: str, given: GivenEvidence) -> list[dict[str, Any]]:
    """Rows of TCAV concepts with no measured association (co-occurrence factor 0)."""
    rows: list[dict[str, Any]] = []
    for key, rel_rows in by_key.items():
        if key in seen:
            continue
        concept, cls = key.concept, key.cls
        group = str(rel_rows["group"].iloc[0]) if len(rel_rows) else ""
        rely = _reliance(rel_rows, given.flips.get(key))
        kind = group if group in ("artifact", "criterion") else "concept"
        relation, relevant, w, reason = _relevance(g, concept, concept, kind, group, cls,
                                                   rely["reliance_strength"] > 0)
        row = {
            "concept": concept, "class": cls, "kind": kind, "split": sp,
            "lift": None, "odds_ratio": None, "or_ci_low": None, "or_ci_high": None,
            "p_adjusted": None, "prevalence_class": None, "prevalence_other": None,
            "n_class": 0, "n_both": 0, **rely, "clinically_relevant": relevant,
            "relation": relation, "association": 0.0, "relevance_weight": w, "testable": False,
        }
        row["score"] = _score(w, 0.0, row["reliance_strength"], True)
        row["evidence"] = _evidence(row, "", reason, given)
        rows.append(row)
    return rows
