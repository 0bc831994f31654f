"""The ranked confounder report: co-occurrence x model reliance x clinical irrelevance.

One row per (concept, class): every annotated attribute of the data (artifacts, criteria,
metadata levels) crossed with every class, every unannotated concept whose association was
measured otherwise (a named cluster, tested on a split it was not found on — see
:func:`concepts.cluster_associations`), plus every other concept of the TCAV table.

The score is a product of three factors, each a necessary condition of a shortcut; the formula,
its defence and its edge cases are written once, in ``docs/confounders.md`` ("The score"), and
computed once, in :func:`_score`. Its parts are the columns ``association`` (co-occurrence),
``reliance_strength`` (reliance) and ``relevance_weight`` (clinical irrelevance).

Rows are ranked by score (descending), then co-occurrence factor (descending: among rows of
equal score, e.g. 0, the better-supported association first), adjusted co-occurrence p-value
(ascending), odds ratio (descending), then name. ``clinically_relevant`` is True only for an ``indicates``
or ``counter_indicates`` relation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concepts import DataError, Workspace, WorkspaceError, cluster_associations
from concepts._cooccurrence import (
    ALL_SPLITS,
    AttributeSource,
    Correction,
    attribute_class_table,
)
from concepts._metrics import finite_or_none as _num
from graph._model import ClinicalGraph

__all__ = [
    "CONFOUNDER_COLUMNS",
    "RELEVANCE_WEIGHTS",
    "confounder_report",
    "rank_confounders",
    "workspace_confounders",
]

#: Columns of the ranked report.
CONFOUNDER_COLUMNS: tuple[str, ...] = (
    "rank", "concept", "class", "score", "kind", "split",
    "lift", "odds_ratio", "or_ci_low", "or_ci_high", "p_adjusted",
    "prevalence_class", "prevalence_other", "n_class", "n_both",
    "reliance", "reliance_layer", "tcav_significant", "tcav_p_adjusted",
    "clinically_relevant", "relation",
    "association", "reliance_strength", "relevance_weight", "testable", "evidence",
)

#: Weight ``w`` of each clinical situation (see the module docstring).
RELEVANCE_WEIGHTS: dict[str, float] = {
    "irrelevant": 1.0,
    "unknown": 0.5,
    "contradicts": 0.25,
    "indicates": 0.0,
}

_TCAV_REQUIRED = ("concept", "class", "layer", "effect", "p_adjusted", "significant", "unstable")
_CHECKLIST_DERIVED = ("seven_point_score",)


# ====================================================================== inputs
def _read_tcav(tcav: pd.DataFrame | str | Path | None) -> pd.DataFrame | None:
    if tcav is None:
        return None
    if isinstance(tcav, str | Path):
        p = Path(tcav)
        if not p.is_file():
            raise DataError(f"no TCAV results at {p} — run `workbench tcav` first, or leave it out")
        try:
            tcav = pd.read_parquet(p)
        except (OSError, ValueError) as exc:
            raise DataError(f"{p}: cannot read the TCAV results ({exc}) — rerun `workbench tcav`") from exc
    if not isinstance(tcav, pd.DataFrame):
        raise DataError(f"the TCAV results must be a DataFrame or a parquet path, got {type(tcav).__name__}")
    missing = [c for c in _TCAV_REQUIRED if c not in tcav.columns]
    if missing:
        raise DataError(
            f"the TCAV table lacks the column(s) {missing} — expected one row per (concept, class, "
            f"layer) with {', '.join(_TCAV_REQUIRED)}"
        )
    df = tcav.reset_index(drop=True).copy()
    for col in ("concept", "class", "layer"):
        df[col] = df[col].astype(str)
    df["effect"] = pd.to_numeric(df["effect"], errors="coerce")
    df["p_adjusted"] = pd.to_numeric(df["p_adjusted"], errors="coerce")
    for col in ("significant", "unstable"):
        df[col] = df[col].fillna(False).astype(bool)
    if "group" not in df.columns:
        df["group"] = ""
    return df


# ====================================================================== pieces of the score
def _reliance(rows: pd.DataFrame | None) -> dict[str, Any]:
    """Lead TCAV evidence of one (concept, class): the strongest stable positive finding.

    ``reliance_strength`` is the effect of a significant, stable, positive row, else 0 (also
    for a concept the TCAV table lacks: no evidence of sensitivity).
    """
    out: dict[str, Any] = {"reliance": None, "reliance_layer": None, "tcav_significant": None,
                           "tcav_p_adjusted": None, "reliance_strength": 0.0}
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
    return out


def _association(testable: bool, or_low: float | None) -> float:
    """Co-occurrence factor ``C = max(0, ln OR_low)`` (0 when not testable)."""
    return max(0.0, math.log(or_low)) if testable and or_low and or_low > 0 else 0.0


def _score(weight: float, association: float, reliance: float, tcav_given: bool) -> float:
    """``score = w * C * R``; ``R = 1`` for every row when no TCAV results are given at all.

    The one implementation of the formula documented in docs/confounders.md ("The score").
    """
    return weight * association * (reliance if tcav_given else 1.0)


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


def _evidence(row: dict[str, Any], note: str, reason: str, tcav_given: bool) -> str:
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
    if not tcav_given:
        parts.append("no TCAV results: sensitivity unknown, ranked on co-occurrence alone")
    elif row["reliance"] is None:
        parts.append("not in the TCAV results: no evidence of sensitivity")
    elif row["tcav_significant"]:
        parts.append(f"class logit sensitive to it (TCAV effect {row['reliance']:+.2f} at "
                     f"{row['reliance_layer']}; directional sensitivity, not a causal test)")
    else:
        parts.append(f"no significant stable TCAV sensitivity (best effect {row['reliance']:+.2f})")
    parts.append(f"graph: {reason}")
    return "; ".join(parts)


_COOC_NEED = ("split", "attribute", "kind", "column", "class", "lift", "odds_ratio", "or_ci_low",
              "or_ci_high", "p_adjusted", "testable", "note")


def _tested_rows(cooc: pd.DataFrame, by_key: dict[tuple[str, str], pd.DataFrame], g: ClinicalGraph,
                 tcav_given: bool) -> list[dict[str, Any]]:
    """One scored row per (attribute, class) of a co-occurrence-like table."""
    rows: list[dict[str, Any]] = []
    for r in cooc.to_dict("records"):
        concept, cls = str(r["attribute"]), str(r["class"])
        rel_rows = by_key.get((concept, cls))
        group = str(rel_rows["group"].iloc[0]) if rel_rows is not None and len(rel_rows) else ""
        rely = _reliance(rel_rows)
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
        row["score"] = _score(w, assoc, row["reliance_strength"], tcav_given)
        row["evidence"] = _evidence(row, str(r["note"]), reason, tcav_given)
        rows.append(row)
    return rows


def _tcav_only_rows(by_key: dict[tuple[str, str], pd.DataFrame], seen: set[tuple[str, str]],
                    g: ClinicalGraph, sp: str) -> list[dict[str, Any]]:
    """Rows of TCAV concepts with no measured association (co-occurrence factor 0)."""
    rows: list[dict[str, Any]] = []
    for (concept, cls), rel_rows in by_key.items():
        if (concept, cls) in seen:
            continue
        group = str(rel_rows["group"].iloc[0]) if len(rel_rows) else ""
        rely = _reliance(rel_rows)
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
        row["evidence"] = _evidence(row, "", reason, True)
        rows.append(row)
    return rows


def _check_table(df: pd.DataFrame, what: str) -> None:
    missing = [c for c in _COOC_NEED if c not in df.columns]
    if missing:
        raise DataError(
            f"the {what} table lacks {missing} — build it with "
            + ("concepts.attribute_class_table" if what == "co-occurrence"
               else "concepts.cluster_associations")
        )


# ====================================================================== the report
def rank_confounders(
    cooccurrence: pd.DataFrame,
    tcav: pd.DataFrame | str | Path | None = None,
    graph: ClinicalGraph | None = None,
    *,
    split: str | None = None,
    associations: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Combine co-occurrence, TCAV sensitivity and the clinical graph into one ranked table.

    Parameters
    ----------
    cooccurrence
        A table of :func:`concepts.attribute_class_table` (other splits are ignored).
    tcav
        TCAV results (a DataFrame or ``tcav.parquet``) with at least ``concept``, ``class``,
        ``layer``, ``effect``, ``p_adjusted``, ``significant``, ``unstable`` (``group``
        optional); ``None``: sensitivity unknown, every row ranked on co-occurrence and
        clinical irrelevance alone.
    graph
        The clinical graph (default :meth:`ClinicalGraph.default`).
    split
        The split whose co-occurrence counts: default ``train`` when present, else the pooled
        :data:`concepts.ALL_SPLITS`.
    associations
        Associations of unannotated concepts measured otherwise, in the co-occurrence table's
        columns (e.g. :func:`concepts.cluster_associations`: a named cluster tested on a
        held-out split). They enter the ranking exactly like annotated attributes, whatever
        their split.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CONFOUNDER_COLUMNS`, ranked best first (score in docs/confounders.md);
        ``evidence`` is one sentence per row.

    Raises
    ------
    DataError
        A co-occurrence table without the expected columns, an unknown split, or a malformed
        TCAV or associations table.
    """
    _check_table(cooccurrence, "co-occurrence")
    g = graph or ClinicalGraph.default()
    splits = list(dict.fromkeys(cooccurrence["split"].astype(str)))
    sp = split or ("train" if "train" in splits else ALL_SPLITS)
    if sp not in splits:
        raise DataError(f"split {sp!r} is not in the co-occurrence table (it has {splits})")
    cooc = cooccurrence[cooccurrence["split"].astype(str) == sp]
    if associations is not None and len(associations):
        _check_table(associations, "associations")
        known = set(zip(cooc["attribute"].astype(str), cooc["class"].astype(str), strict=True))
        extra = associations[[(str(a), str(c)) not in known for a, c in
                              zip(associations["attribute"], associations["class"], strict=True)]]
        cooc = pd.concat([cooc, extra], ignore_index=True)
    tc = _read_tcav(tcav)
    by_key: dict[tuple[str, str], pd.DataFrame] = {}
    if tc is not None:
        by_key = {(str(c), str(k)): r for (c, k), r in tc.groupby(["concept", "class"], sort=False)}
    rows = _tested_rows(cooc, by_key, g, tc is not None)
    seen = {(str(r["concept"]), str(r["class"])) for r in rows}
    rows += _tcav_only_rows(by_key, seen, g, sp)
    return _ranked(pd.DataFrame(rows, columns=[c for c in CONFOUNDER_COLUMNS if c != "rank"]))


def _ranked(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        df.insert(0, "rank", pd.Series(dtype="int64"))
        return df
    key_p = pd.to_numeric(df["p_adjusted"], errors="coerce").fillna(np.inf).to_numpy()
    key_or = pd.to_numeric(df["odds_ratio"], errors="coerce").fillna(0.0).to_numpy()
    order = np.lexsort((df["class"].to_numpy(), df["concept"].to_numpy(), -key_or, key_p,
                        -df["association"].to_numpy(dtype=float), -df["score"].to_numpy(dtype=float)))
    df = df.iloc[order].reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df


def confounder_report(
    source: AttributeSource,
    tcav: pd.DataFrame | str | Path | None = None,
    graph: ClinicalGraph | None = None,
    *,
    split: str | None = None,
    correction: Correction = "holm",
    alpha: float = 0.05,
    artifacts: Sequence[str] | None = None,
    criteria: Sequence[str] | None = None,
    metadata: Sequence[str] | None = None,
    associations: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The ranked confounder report of a data set (and optionally a model's TCAV results).

    Parameters
    ----------
    source
        Annotated cases: a :class:`concepts.Dataset`, a data-set directory, a parquet file, a
        DataFrame or a DuckDB relation (see :func:`concepts.attribute_class_table`).
    tcav, graph
        See :func:`rank_confounders`.
    split
        The split whose co-occurrence counts (default ``train`` when present, else all cases).
    correction, alpha
        Multiple-testing correction of the co-occurrence p-values and the level.
    artifacts, criteria, metadata
        Attribute columns (default: as declared by the data set / detected).
    associations
        Associations of unannotated concepts (see :func:`rank_confounders`).

    Returns
    -------
    pandas.DataFrame
        See :func:`rank_confounders`.
    """
    cooc = attribute_class_table(source, artifacts=artifacts, criteria=criteria, metadata=metadata,
                                 correction=correction, alpha=alpha)
    return rank_confounders(cooc, tcav, graph, split=split, associations=associations)


def workspace_confounders(
    workspace: Workspace | str | Path,
    *,
    dataset: str | None = None,
    split: str | None = None,
    correction: Correction = "holm",
    alpha: float = 0.05,
    tcav: pd.DataFrame | str | Path | None = None,
    graph: ClinicalGraph | None = None,
) -> pd.DataFrame:
    """The ranked confounder report of a workspace.

    Uses the workspace's active data set (or ``dataset``), its TCAV results
    (``<workspace>/results/tcav.parquet``, when present; ``tcav`` overrides) and the held-out
    associations of its named clusters (:func:`concepts.cluster_associations`).

    Raises
    ------
    WorkspaceError
        Not a workspace, or the data set is missing.
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    if not ws.exists():
        raise WorkspaceError(
            f"{ws.root} is not a workspace (workspace.json missing) — build one with "
            f"`workbench demo --no-serve --workspace {ws.root}`"
        )
    ds = ws.dataset(dataset)
    path = ws.results_dir / "tcav.parquet"
    tc = tcav if tcav is not None else (path if path.is_file() else None)
    assoc = cluster_associations(ws, ds.info.name)
    return confounder_report(ds, tc, graph, split=split, correction=correction, alpha=alpha,
                             associations=assoc)
