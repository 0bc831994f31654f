"""The ranked confounder report: co-occurrence x model reliance x clinical irrelevance.

One row per (concept, class): every annotated attribute of the data (artifacts, criteria,
metadata levels) crossed with every class, every unannotated concept whose association was
measured otherwise (a named cluster, tested on a split it was not found on — see
:func:`concepts.discovery.cluster_associations`), plus every other concept of the TCAV table.

The score is a product of three factors, each a necessary condition of a shortcut; the formula,
its defence and its edge cases are written once, in ``docs/confounders.md`` ("The score"), and
computed once, in :func:`graph._confounder_rows._score`::

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concepts import DataError, Dataset, ModelError, Workspace, WorkspaceError
from concepts.discovery import (
    ALL_SPLITS,
    FLIP_TABLE_COLUMNS,
    AttributeSource,
    Correction,
    artifact_flip_table,
    attribute_class_table,
    cluster_associations,
    evaluation_split,
)
from graph._confounder_rows import (
    ConceptClass,
    FlipRate,
    GivenEvidence,
    tcav_only_rows,
    tested_rows,
)
from graph._model import ClinicalGraph
from store import atomic_path
from store import finite_or_none as _num

__all__ = [
    "CONFOUNDER_COLUMNS",
    "FLIP_CACHE_FILE",
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


_TCAV_REQUIRED = ("concept", "class", "layer", "effect", "p_adjusted", "significant", "unstable")
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


def _read_flips(flips: pd.DataFrame | None) -> dict[ConceptClass, FlipRate]:
    """(concept, class) -> flip rate and n of the measured rows (n > 0, finite rate)."""
    if flips is None:
        return {}
    if not isinstance(flips, pd.DataFrame):
        raise DataError(f"the flip rates must be a DataFrame, got {type(flips).__name__}")
    missing = [c for c in _FLIP_REQUIRED if c not in flips.columns]
    if missing:
        raise DataError(f"the flip-rate table lacks the column(s) {missing} — build it with "
                        "concepts.discovery._reliance.artifact_flip_table")
    out: dict[ConceptClass, FlipRate] = {}
    for r in flips.to_dict("records"):
        rate, n = _num(r["flip_rate"]), int(_num(r["n"]) or 0)
        if rate is None or n <= 0 or not 0.0 <= rate <= 1.0:
            continue
        out[ConceptClass(str(r["concept"]), str(r["class"]))] = FlipRate(rate, n)
    return out


_COOC_NEED = ("split", "attribute", "kind", "column", "class", "lift", "odds_ratio", "or_ci_low",
              "or_ci_high", "p_adjusted", "testable", "note")



def _check_table(df: pd.DataFrame, what: str) -> None:
    missing = [c for c in _COOC_NEED if c not in df.columns]
    if missing:
        raise DataError(
            f"the {what} table lacks {missing} — build it with "
            + ("concepts.discovery.attribute_class_table" if what == "co-occurrence"
               else "concepts.discovery.cluster_associations")
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
        A table of :func:`concepts.discovery.attribute_class_table` (other splits are ignored).
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
        columns (e.g. :func:`concepts.discovery.cluster_associations`: a named cluster tested on a
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
    cooc, sp = _cooccurrence_rows(cooccurrence, split, associations)
    tc = _read_tcav(tcav)
    by_key: dict[ConceptClass, pd.DataFrame] = {}
    if tc is not None:
        by_key = {ConceptClass(str(c), str(k)): r for (c, k), r in tc.groupby(["concept", "class"], sort=False)}
    given = GivenEvidence(tcav=tc is not None, flips=_read_flips(flip_rates))
    rows = tested_rows(cooc, by_key, g, given)
    seen = {ConceptClass(str(r["concept"]), str(r["class"])) for r in rows}
    rows += tcav_only_rows(by_key, seen, g, sp, given)
    return _ranked(pd.DataFrame(rows, columns=[c for c in CONFOUNDER_COLUMNS if c != "rank"]))


def _cooccurrence_rows(
    cooccurrence: pd.DataFrame, split: str | None, associations: pd.DataFrame | None
) -> tuple[pd.DataFrame, str]:
    """The co-occurrence rows of the split that counts (and that split), with the
    associations of (attribute, class) pairs the table does not test appended."""
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
    return cooc, sp


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
        DataFrame or a DuckDB relation (see :func:`concepts.discovery.attribute_class_table`).
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
    associations of its named clusters (:func:`concepts.discovery.cluster_associations`) and the
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
