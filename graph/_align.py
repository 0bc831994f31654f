"""Alignment report: the model's concept sensitivity (TCAV) held against clinical knowledge.

TCAV measures the directional sensitivity of a class logit to a concept direction, not causal
reliance (counterfactual flip rates measure that); the wording below says so.

One finding per concept. For every (concept, class) the graph gives the expected relation
(:meth:`ClinicalGraph.expected_relation`: sign +1 indicates, -1 counter-indicates, 0 irrelevant,
unknown); every TCAV row that is ``significant`` and not ``unstable`` is a *finding row* (an
unstable row is never a finding). TCAV's ``effect`` > 0 means the concept raises the class
logit. The concept's category is, in this order:

``confounder``
    a finding row on a class to which the concept is clinically irrelevant (artifacts always;
    a class logit sensitive to an irrelevant concept is a shortcut candidate);
``contradictory``
    a finding row whose effect has the opposite sign of the expected relation (e.g. a
    melanoma criterion that lowers the melanoma logit), even if other rows agree;
``aligned``
    finding rows only in the expected direction — or, for a concept expected irrelevant to
    every class, no finding row at all;
``neglected`` (no evidence of use)
    a clinically discriminative concept (it indicates or counter-indicates some class) with
    no finding row at all. This is absence of evidence, not evidence of absence: TCAV found
    no significant, stable sensitivity (too few examples, a weak CAV or another layer can
    hide one), so the model may still use the concept;
``unreviewed``
    the graph has no expectation (a custom concept, or findings only on classes the graph
    does not know): a human should review it and, if useful, add it to a taxonomy file.

A concept the graph does not know but whose TCAV ``group`` is ``"artifact"`` is treated as an
artifact (irrelevant to every class).

Rank: confounders, contradictory, neglected, unreviewed, aligned; within a category by
|effect| (descending) then adjusted p (ascending) of the lead evidence row — except
neglected, ordered by the clinical weight (checklist points) of the concept, then name. The
lead evidence row is the finding row that decided the category with the largest |effect| (ties:
smaller adjusted p, then the positive effect, so a two-class model reads "raises nevus" rather
than "lowers melanoma"), or the concept's strongest row when it has no finding row.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from concepts import DataError
from graph._expectation import Expectation
from graph._model import ClinicalGraph
from graph._schema import py_scalar
from store import finite_or_none as _num

__all__ = [
    "ALIGNMENT_CATEGORIES",
    "COOCCURRENCE_EVIDENCE_COLUMNS",
    "TCAV_COLUMNS",
    "AlignmentFinding",
    "AlignmentReport",
    "alignment_report",
]

#: Categories, in rank order.
ALIGNMENT_CATEGORIES: tuple[str, ...] = (
    "confounder", "contradictory", "neglected", "unreviewed", "aligned",
)

#: Columns required in the TCAV results table.
TCAV_COLUMNS: tuple[str, ...] = (
    "concept", "group", "class", "layer", "score_mean", "score_std", "random_mean", "effect",
    "p_value", "p_adjusted", "cav_accuracy", "stability", "significant", "unstable",
)

#: Columns required in the optional co-occurrence evidence table.
COOCCURRENCE_EVIDENCE_COLUMNS: tuple[str, ...] = ("attribute", "class", "lift", "odds_ratio", "p_adjusted")

_GROUPS = ("criterion", "artifact", "custom")


@dataclass(frozen=True)
class AlignmentFinding:
    """One concept's alignment verdict and the evidence behind it.

    ``cls``, ``layer`` and the TCAV numbers are those of the lead evidence row (see the module
    docstring); ``expected`` lists the expected relation for every class the concept was
    tested on; ``n_findings`` counts its significant, stable rows and ``n_unstable`` its
    significant but unstable ones. ``cooc_*`` come from the optional co-occurrence evidence
    (the concept as attribute, lead class first); ``related_criterion``/``related_phi`` name
    the criterion it co-occurs with most in the graph's learned ``co_occurs`` edges.
    """

    rank: int
    concept: str
    group: str
    category: str
    cls: str | None
    expected_relation: str
    expected: str
    direction: str
    layer: str | None
    effect: float | None
    score_mean: float | None
    random_mean: float | None
    p_adjusted: float | None
    cav_accuracy: float | None
    stability: float | None
    n_rows: int
    n_findings: int
    n_unstable: int
    cooc_lift: float | None
    cooc_odds_ratio: float | None
    cooc_p_adjusted: float | None
    related_criterion: str | None
    related_phi: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; the class field is named ``class`` (as in the TCAV table)."""
        d = asdict(self)
        d["class"] = d.pop("cls")
        return d


#: Columns of :meth:`AlignmentReport.to_frame` (``cls`` renamed ``class``).
ALIGNMENT_COLUMNS: tuple[str, ...] = tuple(
    "class" if f.name == "cls" else f.name for f in fields(AlignmentFinding)
)


@dataclass(frozen=True)
class AlignmentReport:
    """Ranked :class:`AlignmentFinding` rows, one per concept."""

    findings: tuple[AlignmentFinding, ...]

    def to_frame(self) -> pd.DataFrame:
        """One row per concept, in rank order (columns: the finding's fields, ``class``)."""
        return pd.DataFrame([f.to_dict() for f in self.findings], columns=list(ALIGNMENT_COLUMNS))

    def counts(self) -> dict[str, int]:
        """Number of concepts per category (every category present, zeros included)."""
        out = dict.fromkeys(ALIGNMENT_CATEGORIES, 0)
        for f in self.findings:
            out[f.category] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        """``{"findings": [...], "summary": {category: count}}`` (JSON-able)."""
        return {"findings": [f.to_dict() for f in self.findings], "summary": self.counts()}

    def category(self, concept: str) -> str:
        """The category of one concept (KeyError-free lookup for tests and the UI)."""
        for f in self.findings:
            if f.concept == concept:
                return f.category
        raise DataError(f"{concept!r} is not in the alignment report")


def _validate_tcav(tcav: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(tcav, pd.DataFrame):
        raise DataError(f"the TCAV results must be a pandas DataFrame, got {type(tcav).__name__}")
    missing = [c for c in TCAV_COLUMNS if c not in tcav.columns]
    if missing:
        raise DataError(
            f"the TCAV results table lacks the column(s) {missing} — expected one row per "
            f"(concept, class, layer) with {', '.join(TCAV_COLUMNS)}"
        )
    if tcav.empty:
        raise DataError("the TCAV results table is empty — run TCAV on at least one concept")
    df = tcav.reset_index(drop=True).copy()
    bad = ~df["group"].isin(_GROUPS)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"TCAV row {i}: group {py_scalar(df['group'].iloc[i])!r} is not one of {list(_GROUPS)}")
    for col in ("significant", "unstable"):
        if df[col].isna().any():
            i = int(np.flatnonzero(df[col].isna().to_numpy())[0])
            raise DataError(f"TCAV row {i}: {col!r} is missing (must be true/false)")
        df[col] = df[col].astype(bool)
    eff = pd.to_numeric(df["effect"], errors="coerce")
    if eff.isna().any():
        i = int(np.flatnonzero(eff.isna().to_numpy())[0])
        raise DataError(f"TCAV row {i}: effect {py_scalar(df['effect'].iloc[i])!r} is not a number")
    df["effect"] = eff.astype(float)
    for col in ("concept", "class", "layer"):
        df[col] = df[col].astype(str)
    return df


def _validate_cooc(cooc: pd.DataFrame | None) -> pd.DataFrame | None:
    if cooc is None:
        return None
    if not isinstance(cooc, pd.DataFrame):
        raise DataError(f"co-occurrence evidence must be a pandas DataFrame, got {type(cooc).__name__}")
    missing = [c for c in COOCCURRENCE_EVIDENCE_COLUMNS if c not in cooc.columns]
    if missing:
        raise DataError(
            f"the co-occurrence evidence lacks the column(s) {missing} — expected "
            f"{', '.join(COOCCURRENCE_EVIDENCE_COLUMNS)}"
        )
    out = cooc.reset_index(drop=True).copy()
    out["attribute"] = out["attribute"].astype(str)
    out["class"] = out["class"].astype(str)
    return out


def _lead(rows: pd.DataFrame) -> pd.Series:
    """The row with the largest |effect|; ties go to the smaller adjusted p, then to a positive
    effect (for a two-class model "raises nevus" reads better than "lowers melanoma")."""
    key = pd.DataFrame(
        {
            "a": -rows["effect"].abs(),
            "p": pd.to_numeric(rows["p_adjusted"], errors="coerce").fillna(np.inf),
            "s": (rows["effect"] <= 0).astype(int),
        },
        index=rows.index,
    )
    return rows.loc[key.sort_values(["a", "p", "s"], kind="stable").index[0]]


def _expectation(graph: ClinicalGraph, concept: str, group: str, cls: str) -> Expectation:
    exp = graph.expected_relation(concept, cls)
    if exp.node is None and group == "artifact":
        return Expectation(concept, cls, "irrelevant", 0, None,
                           f"{concept} is grouped as an artifact: clinically irrelevant to every "
                           "diagnosis", None, exp.class_node)
    return exp


def _verb(sign: float) -> str:
    return "raises" if sign > 0 else "lowers"


def alignment_report(
    tcav: pd.DataFrame,
    graph: ClinicalGraph | None = None,
    cooccurrence: pd.DataFrame | None = None,
) -> AlignmentReport:
    """Classify every concept of a TCAV results table against the clinical graph.

    Parameters
    ----------
    tcav
        One row per (concept, class, layer) with :data:`TCAV_COLUMNS` (``effect`` =
        ``score_mean - random_mean``; ``significant`` after multiple-testing correction;
        ``unstable`` marks rows whose verdict flips across runs).
    graph
        Default :meth:`ClinicalGraph.default`; extend it with a taxonomy to review custom
        concepts, and with :func:`graph.add_cooccurrence` to attach ``related_criterion``.
    cooccurrence
        Optional evidence of concept/class co-occurrence in the data, with
        :data:`COOCCURRENCE_EVIDENCE_COLUMNS` (``attribute`` names the concept).

    Returns
    -------
    AlignmentReport
        One :class:`AlignmentFinding` per concept, ranked (see the module docstring).

    Raises
    ------
    DataError
        A missing column, an unknown group, a missing significant/unstable flag or a
        non-numeric effect (naming the row).
    """
    g = graph or ClinicalGraph.default()
    df = _validate_tcav(tcav)
    cooc = _validate_cooc(cooccurrence)
    findings: list[tuple[tuple[Any, ...], AlignmentFinding]] = []
    for concept, rows in df.groupby("concept", sort=True):
        ev = _evidence_rows(g, str(concept), rows)
        category, lead_rows = _categorize(ev)
        finding = _finding(g, ev, category, _lead(lead_rows), cooc)
        findings.append((_rank_key(ev, finding), finding))
    findings.sort(key=lambda t: t[0])
    ranked = tuple(
        AlignmentFinding(**{**asdict(f), "rank": i + 1}) for i, (_, f) in enumerate(findings)
    )
    return AlignmentReport(ranked)


@dataclass(frozen=True)
class _ConceptEvidence:
    """One concept's TCAV rows split by what the graph expects of them.

    ``found`` are the finding rows (significant and stable); of them ``irrelevant`` hit a class
    the concept is irrelevant to, ``opposite``/``consistent`` go against/with the expected sign
    and ``unknown_found`` hit a class the graph has no expectation for.
    """

    concept: str
    group: str
    rows: pd.DataFrame
    exps: dict[str, Expectation]
    found: pd.DataFrame
    n_unstable: int
    irrelevant: pd.DataFrame
    opposite: pd.DataFrame
    consistent: pd.DataFrame
    unknown_found: pd.DataFrame


def _evidence_rows(g: ClinicalGraph, concept: str, rows: pd.DataFrame) -> _ConceptEvidence:
    group = str(rows["group"].iloc[0])
    classes = list(dict.fromkeys(rows["class"]))
    exps = {c: _expectation(g, concept, group, c) for c in classes}
    sign = pd.Series([exps[c].sign for c in rows["class"]], index=rows.index, dtype=object)
    found = rows[rows["significant"] & ~rows["unstable"]]
    n_unstable = int((rows["significant"] & rows["unstable"]).sum())
    fsign = sign.loc[found.index]
    known = fsign.notna()
    directional = found[known & (fsign != 0)]
    agree = np.sign(directional["effect"]) == fsign[directional.index]
    return _ConceptEvidence(
        concept=concept, group=group, rows=rows, exps=exps, found=found, n_unstable=n_unstable,
        irrelevant=found[known & (fsign == 0)], opposite=directional[~agree],
        consistent=directional[agree], unknown_found=found[~known],
    )


def _categorize(ev: _ConceptEvidence) -> tuple[str, pd.DataFrame]:
    """The concept's category and the rows its lead evidence row is drawn from."""
    if len(ev.irrelevant):
        return "confounder", ev.irrelevant
    if len(ev.opposite):
        return "contradictory", ev.opposite
    if len(ev.consistent):
        return "aligned", ev.consistent
    if len(ev.unknown_found):
        return "unreviewed", ev.unknown_found
    if any(e.sign in (1, -1) for e in ev.exps.values()):
        return "neglected", ev.rows
    if all(e.sign == 0 for e in ev.exps.values()):
        return "aligned", ev.rows
    return "unreviewed", ev.rows


def _reason(ev: _ConceptEvidence, category: str, exp: Expectation, cls: str, at: str) -> str:
    """The finding's one-sentence reason (``at`` names the lead row's effect)."""
    if category == "confounder":
        reason = f"{exp.reason}, yet the class logit is sensitive to it: {at}"
    elif category == "contradictory":
        reason = f"expected to {'raise' if exp.sign == 1 else 'lower'} {cls} ({exp.reason}) but {at}"
    elif category == "aligned" and len(ev.consistent):
        reason = f"sensitivity in the expected direction ({exp.reason}): {at}"
    elif category == "aligned":
        reason = f"{exp.reason}, and no significant, stable TCAV sensitivity to it"
    elif category == "neglected":
        best = next(e for e in ev.exps.values() if e.sign in (1, -1))
        reason = (
            f"no evidence of use: clinically discriminative ({best.reason}) but no "
            f"significant, stable TCAV effect on any class (strongest: {at}) — absence of "
            "evidence, not proof that the model ignores it"
        )
    elif len(ev.unknown_found):
        reason = f"class logit sensitive to it ({at}) but the graph has no expectation: {exp.reason}"
    else:
        reason = f"no clinical expectation ({exp.reason}) — review it and add it to a taxonomy"
    if ev.n_unstable and category in ("neglected", "aligned"):
        reason += f"; {ev.n_unstable} significant but unstable row(s) ignored"
    return reason


def _cooc_evidence(
    g: ClinicalGraph, cooc: pd.DataFrame | None, concept: str, cls: str
) -> dict[str, float | None]:
    """Lift, odds ratio and adjusted p of the concept's most significant co-occurrence row
    (on ``cls`` when there is one), all None without evidence."""
    ev: dict[str, float | None] = {"lift": None, "odds_ratio": None, "p_adjusted": None}
    if cooc is not None:
        me = g.find(concept) or concept
        mine = cooc[cooc["attribute"].map(lambda a: g.find(a) or a) == me]
        if len(mine):
            same = mine[mine["class"] == cls]
            pick = same if len(same) else mine
            r = pick.loc[pd.to_numeric(pick["p_adjusted"], errors="coerce").fillna(np.inf).idxmin()]
            ev = {k: _num(r[k]) for k in ev}
    return ev


def _finding(
    g: ClinicalGraph, ev: _ConceptEvidence, category: str, lead: pd.Series, cooc: pd.DataFrame | None
) -> AlignmentFinding:
    """The unranked finding of one concept, from its lead evidence row."""
    cls = str(lead["class"])
    exp = ev.exps[cls]
    eff = float(lead["effect"])
    p_adj = _num(lead["p_adjusted"])
    at = f"TCAV effect {eff:+.3f} on {cls} at {lead['layer']}" + (
        f" (adjusted p {p_adj:.2g})" if p_adj is not None else ""
    )
    co = _cooc_evidence(g, cooc, ev.concept, cls)
    related, phi = _related(g, ev.concept)
    return AlignmentFinding(
        rank=0,
        concept=ev.concept,
        group=ev.group,
        category=category,
        cls=cls,
        expected_relation=exp.relation,
        expected="; ".join(f"{c}: {e.relation}" for c, e in ev.exps.items()),
        direction=f"{_verb(eff)} {cls}" if len(ev.found) and eff != 0 else "no evidence",
        layer=str(lead["layer"]),
        effect=eff,
        score_mean=_num(lead["score_mean"]),
        random_mean=_num(lead["random_mean"]),
        p_adjusted=p_adj,
        cav_accuracy=_num(lead["cav_accuracy"]),
        stability=_num(lead["stability"]),
        n_rows=len(ev.rows),
        n_findings=len(ev.found),
        n_unstable=ev.n_unstable,
        cooc_lift=co["lift"],
        cooc_odds_ratio=co["odds_ratio"],
        cooc_p_adjusted=co["p_adjusted"],
        related_criterion=related,
        related_phi=phi,
        reason=_reason(ev, category, exp, cls, at),
    )


def _rank_key(ev: _ConceptEvidence, f: AlignmentFinding) -> tuple[Any, ...]:
    """Category first; within it neglected by clinical weight, the rest by |effect| then p."""
    if f.category == "neglected":
        weight = max((e.weight or 0.0) for e in ev.exps.values())
        within: tuple[Any, ...] = (-weight, 0.0, ev.concept)
    else:
        eff = f.effect if f.effect is not None else 0.0
        within = (-abs(eff), f.p_adjusted if f.p_adjusted is not None else math.inf, ev.concept)
    return (ALIGNMENT_CATEGORIES.index(f.category), *within)


def _related(g: ClinicalGraph, concept: str) -> tuple[str | None, float | None]:
    node = g.find(concept)
    if node is None:
        return None, None
    best: tuple[str | None, float | None] = (None, None)
    for nb in g.neighbors(node, "co_occurs"):
        phi = _num(nb.attrs.get("phi"))
        if phi is not None and (best[1] is None or abs(phi) > abs(best[1])):
            best = (nb.node, phi)
    return best

