"""The ranked confounder report: co-occurrence x model reliance x clinical irrelevance.

One row per (concept, class): every annotated attribute of the data (artifacts, criteria,
metadata levels) crossed with every class, every unannotated concept whose association was
measured otherwise (a named cluster, tested on a split it was not found on — see
:func:`concepts.cluster_associations`), plus every other concept of the TCAV table.

The score is a product of three factors, each a necessary condition of a shortcut; the formula,
its defence and its edge cases are written once, in ``docs/confounders.md`` ("The score"), and
computed once, in :func:`_score`::

    score = w * C * R
    C = max(0, ln OR_low)          co-occurrence (lower 95% bound of the odds ratio)
    R = flip rate toward the class  when counterfactual twins exist (reliance_source flip_rate)
      = max(0, TCAV effect)         of a significant, stable row otherwise (tcav)
      = 0                           neither (none); R = 1 for every row when no reliance
                                    evidence (flip rates or TCAV) was given at all
    w = clinical irrelevance (1 artifact, 0.5 unknown, 0.25 contradicting, 0 indicating)

Its parts are the columns ``association`` (C), ``reliance_strength`` (R, with
``reliance_source``) and ``relevance_weight`` (w). The flip rate toward class ``k`` is the share
of twins whose original was predicted another class that are predicted ``k`` once the artifact
is added (:func:`concepts.discovery._reliance.artifact_flip_table`); :func:`workspace_confounders` measures
it for every annotated artifact of the data set and caches it in the workspace results.

Rows are ranked by score (descending), then co-occurrence factor (descending: among rows of
equal score, e.g. 0, the better-supported association first), adjusted co-occurrence p-value
(ascending), odds ratio (descending), then name. ``clinically_relevant`` is True only for an ``indicates``
or ``counter_indicates`` relation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concepts import (
    DataError,
    Dataset,
    ModelError,
    Workspace,
    WorkspaceError,
    cluster_associations,
)
from concepts.discovery import (
    ALL_SPLITS,
    FLIP_TABLE_COLUMNS,
    AttributeSource,
    Correction,
    artifact_flip_table,
    attribute_class_table,
    evaluation_split,
)
from graph._model import ClinicalGraph
from store import atomic_path
from store import finite_or_none as _num

__all__ = [
    "CONFOUNDER_COLUMNS",
    "FLIP_CACHE_FILE",
    "RELEVANCE_WEIGHTS",
    "confounder_report",
    "rank_confounders",
    "workspace_confounders",
    "workspace_flip_rates",
]

#: Columns of the ranked report.
CONFOUNDER_COLUMNS: tuple[str, ...] = (
    "rank", "concept", "class", "score", "kind", "split",
    "lift", "odds_ratio", "or_ci_low", "or_ci_high", "p_adjusted",
    "prevalence_class", "prevalence_other", "n_class", "n_both",
    "reliance", "reliance_layer", "tcav_significant", "tcav_p_adjusted",
    "flip_rate", "flip_n", "reliance_source",
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
_FLIP_REQUIRED = ("concept", "class", "flip_rate", "n")

#: Cache of the flip rates of :func:`workspace_confounders` (in the workspace's results folder).
FLIP_CACHE_FILE = "confounder_flip_rates.json"


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


def _read_flips(flips: pd.DataFrame | None) -> dict[tuple[str, str], tuple[float, int]]:
    """``(concept, class) -> (flip rate, n)`` of the measured rows (n > 0, finite rate)."""
    if flips is None:
        return {}
    if not isinstance(flips, pd.DataFrame):
        raise DataError(f"the flip rates must be a DataFrame, got {type(flips).__name__}")
    missing = [c for c in _FLIP_REQUIRED if c not in flips.columns]
    if missing:
        raise DataError(f"the flip-rate table lacks the column(s) {missing} — build it with "
                        "concepts.discovery._reliance.artifact_flip_table")
    out: dict[tuple[str, str], tuple[float, int]] = {}
    for r in flips.to_dict("records"):
        rate, n = _num(r["flip_rate"]), int(_num(r["n"]) or 0)
        if rate is None or n <= 0 or not 0.0 <= rate <= 1.0:
            continue
        out[(str(r["concept"]), str(r["class"]))] = (rate, n)
    return out


# ====================================================================== pieces of the score
def _reliance(rows: pd.DataFrame | None, flip: tuple[float, int] | None = None) -> dict[str, Any]:
    """Reliance evidence of one (concept, class): a flip rate first, else the lead TCAV row.

    ``reliance_strength`` (R) is the flip rate toward the class when one was measured
    (``reliance_source`` ``flip_rate``); else the effect of a significant, stable, positive TCAV
    row (``tcav``); else 0 (``none``; also for a concept the TCAV table lacks).
    """
    out = _tcav_evidence(rows)
    if flip is not None:
        out.update(flip_rate=flip[0], flip_n=flip[1], reliance_source="flip_rate",
                   reliance_strength=flip[0])
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
class _Given:
    """Which reliance evidence the report was given."""

    tcav: bool
    flips: dict[tuple[str, str], tuple[float, int]]

    @property
    def any(self) -> bool:
        return self.tcav or bool(self.flips)


def _flip_sentence(row: dict[str, Any]) -> str:
    return (f"adding it to {row['flip_n']} twins predicted otherwise turns "
            f"{_pct(row['flip_rate'])} of them {row['class']} (counterfactual flip rate: reliance)")


def _evidence(row: dict[str, Any], note: str, reason: str, given: _Given) -> str:
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


_COOC_NEED = ("split", "attribute", "kind", "column", "class", "lift", "odds_ratio", "or_ci_low",
              "or_ci_high", "p_adjusted", "testable", "note")


def _tested_rows(cooc: pd.DataFrame, by_key: dict[tuple[str, str], pd.DataFrame], g: ClinicalGraph,
                 given: _Given) -> list[dict[str, Any]]:
    """One scored row per (attribute, class) of a co-occurrence-like table."""
    rows: list[dict[str, Any]] = []
    for r in cooc.to_dict("records"):
        concept, cls = str(r["attribute"]), str(r["class"])
        rel_rows = by_key.get((concept, cls))
        group = str(rel_rows["group"].iloc[0]) if rel_rows is not None and len(rel_rows) else ""
        rely = _reliance(rel_rows, given.flips.get((concept, cls)))
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


def _tcav_only_rows(by_key: dict[tuple[str, str], pd.DataFrame], seen: set[tuple[str, str]],
                    g: ClinicalGraph, sp: str, given: _Given) -> list[dict[str, Any]]:
    """Rows of TCAV concepts with no measured association (co-occurrence factor 0)."""
    rows: list[dict[str, Any]] = []
    for (concept, cls), rel_rows in by_key.items():
        if (concept, cls) in seen:
            continue
        group = str(rel_rows["group"].iloc[0]) if len(rel_rows) else ""
        rely = _reliance(rel_rows, given.flips.get((concept, cls)))
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
    flip_rates: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Combine co-occurrence, model reliance and the clinical graph into one ranked table.

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
    flip_rates
        Counterfactual flip rates (:func:`concepts.discovery._reliance.artifact_flip_table`: at least
        ``concept``, ``class``, ``flip_rate``, ``n``). Where a (concept, class) has one (n > 0),
        it is the reliance R, before any TCAV evidence.

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
    given = _Given(tcav=tc is not None, flips=_read_flips(flip_rates))
    rows = _tested_rows(cooc, by_key, g, given)
    seen = {(str(r["concept"]), str(r["class"])) for r in rows}
    rows += _tcav_only_rows(by_key, seen, g, sp, given)
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
    flip_rates: pd.DataFrame | None = None,
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
    associations, flip_rates
        Associations of unannotated concepts and counterfactual flip rates (see
        :func:`rank_confounders`).

    Returns
    -------
    pandas.DataFrame
        See :func:`rank_confounders`.
    """
    cooc = attribute_class_table(source, artifacts=artifacts, criteria=criteria, metadata=metadata,
                                 correction=correction, alpha=alpha)
    return rank_confounders(cooc, tcav, graph, split=split, associations=associations,
                            flip_rates=flip_rates)


def workspace_confounders(
    workspace: Workspace | str | Path,
    *,
    dataset: str | None = None,
    split: str | None = None,
    correction: Correction = "holm",
    alpha: float = 0.05,
    tcav: pd.DataFrame | str | Path | None = None,
    graph: ClinicalGraph | None = None,
    flip_rates: pd.DataFrame | bool = True,
    max_twins: int = 200,
) -> pd.DataFrame:
    """The ranked confounder report of a workspace.

    Uses the workspace's active data set (or ``dataset``), its TCAV results
    (``<workspace>/results/tcav.parquet``, when present; ``tcav`` overrides), the held-out
    associations of its named clusters (:func:`concepts.cluster_associations`) and the
    counterfactual flip rates of its active model on every annotated artifact.

    Parameters
    ----------
    flip_rates
        ``True``: measure them with the workspace's model (at most ``max_twins`` twins per
        artifact on the evaluation split; cached in ``results/`` under the model id and the
        data set's content hash, so a second call does not recompute); ``False``: none (TCAV
        only); a DataFrame: these.
    max_twins
        At most this many twins per artifact.

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
    flips = flip_rates if isinstance(flip_rates, pd.DataFrame) else (
        workspace_flip_rates(ws, ds, max_twins=max_twins) if flip_rates else None)
    return confounder_report(ds, tc, graph, split=split, correction=correction, alpha=alpha,
                             associations=assoc, flip_rates=flips)


def workspace_flip_rates(workspace: Workspace, dataset: Dataset, *, max_twins: int = 200,
                         seed: int = 0) -> pd.DataFrame | None:
    """Flip rates of the workspace's active model on every annotated artifact (cached).

    ``None`` when the workspace has no model or the data set declares no artifact. The cache,
    ``results/`` :data:`FLIP_CACHE_FILE`, is keyed by model id, data-set content hash, split,
    ``max_twins`` and seed; an unreadable cache is recomputed, never trusted.
    """
    if max_twins < 1:
        raise DataError(f"max_twins must be at least 1, got {max_twins}")
    if not dataset.info.artifacts:
        return None
    name = str(workspace.manifest().get("model", "demo"))
    try:
        model_id = str(workspace.model_info(name).get("model_id", ""))
    except (ModelError, WorkspaceError):
        return None  # no model: no causal evidence
    split = evaluation_split(dataset) or "all"
    key = f"{model_id}:{dataset.info.content_hash}:{split}:{max_twins}:{seed}"
    cache = workspace.results_dir / FLIP_CACHE_FILE
    cached = _read_flip_cache(cache)
    if model_id and dataset.info.content_hash and key in cached:
        return pd.DataFrame(cached[key], columns=list(FLIP_TABLE_COLUMNS))
    model = workspace.model(name)

    def predict(images: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_proba(images).argmax(axis=1))

    table = artifact_flip_table(predict, dataset, max_twins=max_twins, seed=seed)
    if model_id and dataset.info.content_hash:
        cached[key] = json.loads(table.to_json(orient="records"))
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache, private=False) as tmp:  # concurrent writers: last wins
            tmp.write_text(json.dumps(cached))
    return table


def _read_flip_cache(path: Path) -> dict[str, Any]:
    """The cache's entries (``{}`` when missing or malformed: recomputed, not trusted)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items()
            if isinstance(v, list) and all(isinstance(r, dict) for r in v)}
