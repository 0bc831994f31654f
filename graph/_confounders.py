"""The ranked confounder report: co-occurrence x model reliance x clinical irrelevance.

One row per (concept, class): every annotated attribute of the data (artifacts, criteria,
metadata levels) crossed with every class, plus every concept of the TCAV table that has no
annotation (e.g. a named cluster). Each row carries its evidence and a score:

    score = w * (A + B)
    A = max(0, ln OR_low)          OR_low: lower end of the odds ratio's 95% interval
    B = 2 * max(0, effect)         if a TCAV row is significant and stable, else 0

- ``A`` (co-occurrence strength, column ``association``): the natural log of the lower end of
  the 95% interval of the odds ratio of the attribute with the class in the analysed split
  (``train`` by default: what the model learned from). It is 0 unless the data show, with 95%
  confidence, that the attribute is over-represented in the class; 0 for a row that cannot be
  tested. A concept without annotations (only in the TCAV table) gets ``A = 0``.
- ``B`` (model reliance, column ``reliance_strength``): twice the TCAV effect
  (``score_mean - random_mean``) of the strongest significant, stable, positive TCAV row of the
  (concept, class) over the analysed layers; 0 without one. An effect of 0.5 weighs as much as
  an odds ratio whose lower bound is e (2.7).
- ``w`` (clinical irrelevance, column ``relevance_weight``) from the clinical graph's expected
  relation of the concept to the class (:meth:`graph.ClinicalGraph.expected_relation`):
  1 when irrelevant (every artifact), 0.5 when the graph has no expectation (metadata such as
  skin tone or site, custom concepts), 0.25 when the concept is clinically relevant but
  over-represented in a class it counter-indicates, and 0 when it is clinically relevant and
  indicates the class (a criterion that rides with its own diagnosis is evidence, not a
  confounder). Columns derived from the checklist (``seven_point_score``) count as relevant.

Rows are ranked by score (descending), then adjusted co-occurrence p-value (ascending), then
odds ratio (descending), then name. ``clinically_relevant`` is True only for an ``indicates``
or ``counter_indicates`` relation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concepts import DataError, Workspace, WorkspaceError
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

#: Multiplier of the TCAV effect in the score.
RELIANCE_WEIGHT = 2.0

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
    """Lead TCAV evidence of one (concept, class): the strongest stable positive finding."""
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
        out["reliance_strength"] = RELIANCE_WEIGHT * max(0.0, eff)
    return out


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


def _evidence(row: dict[str, Any], note: str, reason: str) -> str:
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
        parts.append("no annotation of this concept in the data")
    if row["reliance"] is None:
        parts.append("no TCAV result")
    elif row["tcav_significant"]:
        parts.append(f"model relies on it: TCAV effect {row['reliance']:+.2f} at {row['reliance_layer']}")
    else:
        parts.append(f"no significant stable TCAV reliance (best effect {row['reliance']:+.2f})")
    parts.append(f"graph: {reason}")
    return "; ".join(parts)


# ====================================================================== the report
def rank_confounders(
    cooccurrence: pd.DataFrame,
    tcav: pd.DataFrame | str | Path | None = None,
    graph: ClinicalGraph | None = None,
    *,
    split: str | None = None,
) -> pd.DataFrame:
    """Combine co-occurrence, TCAV reliance and the clinical graph into one ranked table.

    Parameters
    ----------
    cooccurrence
        A table of :func:`concepts.attribute_class_table` (other splits are ignored).
    tcav
        TCAV results (a DataFrame or ``tcav.parquet``) with at least ``concept``, ``class``,
        ``layer``, ``effect``, ``p_adjusted``, ``significant``, ``unstable`` (``group``
        optional); ``None``: reliance unknown.
    graph
        The clinical graph (default :meth:`ClinicalGraph.default`).
    split
        The split whose co-occurrence counts: default ``train`` when present, else the pooled
        :data:`concepts.ALL_SPLITS`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CONFOUNDER_COLUMNS`, ranked best first (score formula in the module
        docstring); ``evidence`` is one sentence per row.

    Raises
    ------
    DataError
        A co-occurrence table without the expected columns, an unknown split, or a malformed
        TCAV table.
    """
    need = ("split", "attribute", "kind", "column", "class", "lift", "odds_ratio", "or_ci_low",
            "or_ci_high", "p_adjusted", "testable", "note")
    missing = [c for c in need if c not in cooccurrence.columns]
    if missing:
        raise DataError(
            f"the co-occurrence table lacks {missing} — build it with concepts.attribute_class_table"
        )
    g = graph or ClinicalGraph.default()
    splits = list(dict.fromkeys(cooccurrence["split"].astype(str)))
    sp = split or ("train" if "train" in splits else ALL_SPLITS)
    if sp not in splits:
        raise DataError(f"split {sp!r} is not in the co-occurrence table (it has {splits})")
    cooc = cooccurrence[cooccurrence["split"].astype(str) == sp]
    tc = _read_tcav(tcav)
    by_key: dict[tuple[str, str], pd.DataFrame] = {}
    if tc is not None:
        by_key = {(str(c), str(k)): r for (c, k), r in tc.groupby(["concept", "class"], sort=False)}
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for r in cooc.to_dict("records"):
        concept, cls = str(r["attribute"]), str(r["class"])
        key = (concept, cls)
        seen.add(key)
        rel_rows = by_key.get(key)
        group = str(rel_rows["group"].iloc[0]) if rel_rows is not None and len(rel_rows) else ""
        rely = _reliance(rel_rows)
        testable = bool(r["testable"])
        or_lo = _num(r["or_ci_low"])
        assoc = max(0.0, math.log(or_lo)) if testable and or_lo and or_lo > 0 else 0.0
        over = (testable and (_num(r["odds_ratio"]) or 0.0) > 1.0) or rely["reliance_strength"] > 0
        relation, relevant, w, reason = _relevance(g, concept, str(r["column"]), str(r["kind"]),
                                                   group, cls, over)
        row = {
            "concept": concept, "class": cls, "kind": str(r["kind"]), "split": sp,
            "lift": _num(r["lift"]), "odds_ratio": _num(r["odds_ratio"]),
            "or_ci_low": or_lo, "or_ci_high": _num(r["or_ci_high"]),
            "p_adjusted": _num(r["p_adjusted"]),
            "prevalence_class": _num(r.get("prevalence_class")),
            "prevalence_other": _num(r.get("prevalence_other")),
            "n_class": int(r.get("n_class", 0) or 0), "n_both": int(r.get("n_both", 0) or 0),
            **rely, "clinically_relevant": relevant, "relation": relation,
            "association": assoc, "relevance_weight": w, "testable": testable,
        }
        row["score"] = w * (assoc + row["reliance_strength"])
        row["evidence"] = _evidence(row, str(r["note"]), reason)
        rows.append(row)
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
        row["score"] = w * row["reliance_strength"]
        row["evidence"] = _evidence(row, "", reason)
        rows.append(row)
    df = pd.DataFrame(rows, columns=[c for c in CONFOUNDER_COLUMNS if c != "rank"])
    if df.empty:
        df.insert(0, "rank", pd.Series(dtype="int64"))
        return df
    key_p = pd.to_numeric(df["p_adjusted"], errors="coerce").fillna(np.inf).to_numpy()
    key_or = pd.to_numeric(df["odds_ratio"], errors="coerce").fillna(0.0).to_numpy()
    order = np.lexsort((df["class"].to_numpy(), df["concept"].to_numpy(), -key_or, key_p,
                        -df["score"].to_numpy(dtype=float)))
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

    Returns
    -------
    pandas.DataFrame
        See :func:`rank_confounders`.
    """
    cooc = attribute_class_table(source, artifacts=artifacts, criteria=criteria, metadata=metadata,
                                 correction=correction, alpha=alpha)
    return rank_confounders(cooc, tcav, graph, split=split)


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

    Uses the workspace's active data set (or ``dataset``) and its TCAV results
    (``<workspace>/results/tcav.parquet``, when present; ``tcav`` overrides).

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
    return confounder_report(ds, tc, graph, split=split, correction=correction, alpha=alpha)
