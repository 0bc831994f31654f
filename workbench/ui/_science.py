"""The UI's bridge to the science packages, with caching keyed by explicit ids.

Every function here takes a :class:`concepts.Workspace` (or ids read from it), calls the public
APIs of ``concepts``, ``graph`` and ``interventions`` and returns tables/arrays ready to show.
Results are cached with ``st.cache_data`` keyed by the workspace path plus a content key (a
file's mtime and size, a model's weights hash, a data set's content hash), never by unhashed
arguments, so a rebuilt workspace never shows stale results.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from concepts import Workspace
from workbench.ui._state import MissingResults, dataset_key

__all__ = [
    "alignment_frame",
    "confounder_display",
    "confounder_frame",
    "cooccurrence_tables",
    "example_split",
    "file_key",
    "graph_tables",
    "node_evidence",
    "summary",
    "tcav_table",
]


def file_key(path: Path) -> str:
    """A cache key for a file's current content: ``mtime_ns:size`` ("" when missing)."""
    try:
        st_ = path.stat()
    except FileNotFoundError:
        return ""
    return f"{st_.st_mtime_ns}:{st_.st_size}"


# --------------------------------------------------------------------------- summary
@st.cache_data(show_spinner=False, max_entries=8)
def _summary(root: str, files_key: str) -> dict[str, Any]:
    from workbench.services._summary import workspace_summary

    return json.loads(json.dumps(workspace_summary(Workspace(root)), default=str))  # type: ignore[no-any-return]


def _summary_key(ws: Workspace) -> str:
    """The files the summary reads (manifest, stored evaluation, analyses, bank)."""
    paths = (ws.manifest_path, ws.results_dir / "evaluation.json", ws.results_dir / "tcav.parquet",
             ws.results_dir / "tcav.json", ws.results_dir / "clusters.json", ws.concepts_dir / "bank.json",
             ws.results_dir / "confounder_flip_rates.json")
    return "|".join(file_key(p) for p in paths)


def summary(ws: Workspace) -> dict[str, Any]:
    """What the workspace holds (:func:`workbench.services._summary.workspace_summary`): data set, model,
    stored evaluation and its headline figures, concepts, analyses — for any workspace."""
    return _summary(str(ws.root), _summary_key(ws))


# --------------------------------------------------------------------------- splits
def example_split(ws: Workspace) -> str:
    """The split whose images illustrate concepts: ``val`` when the data set has it, else its
    evaluation split (``test``, ``test_debiased``), else its first split — never assumed."""
    from workbench.services._summary import evaluation_splits

    splits = list((summary(ws).get("dataset") or {}).get("splits") or {})
    if "val" in splits:
        return "val"
    ev = evaluation_splits(splits)
    return ev[0] if ev else "val"


# --------------------------------------------------------------------------- TCAV
@st.cache_data(show_spinner=False, max_entries=8)
def _tcav(path: str, key: str) -> pd.DataFrame:
    return pd.read_parquet(path)


def tcav_table(ws: Workspace) -> pd.DataFrame:
    """``<ws>/results/tcav.parquet``.

    Raises
    ------
    MissingResults
        No TCAV run yet.
    """
    path = ws.results_dir / "tcav.parquet"
    key = file_key(path)
    if not key:
        raise MissingResults(
            f"no TCAV results in this workspace yet — run `workbench tcav -w {ws.root}` "
            "(`workbench train` and `workbench demo` compute them)"
        )
    return _tcav(str(path), key)


# --------------------------------------------------------------------------- alignment + graph
def _clinical_graph() -> Any:
    from graph import ClinicalGraph

    return ClinicalGraph.default()


@st.cache_data(show_spinner=False, max_entries=8)
def _alignment(tcav_path: str, key: str) -> pd.DataFrame:
    from graph import alignment_report

    return alignment_report(pd.read_parquet(tcav_path), _clinical_graph()).to_frame()


def alignment_frame(ws: Workspace) -> pd.DataFrame:
    """The alignment report (one ranked row per concept) of the workspace's TCAV results.

    Raises
    ------
    MissingResults
        No TCAV results yet.
    """
    tcav_table(ws)  # raises MissingResults with the hint when absent
    path = ws.results_dir / "tcav.parquet"
    return _alignment(str(path), file_key(path))


_MAIN_DIAGNOSES = ("melanoma", "non_melanoma", "nevus")


@st.cache_data(show_spinner=False, max_entries=16)
def _graph_tables(
    tcav_path: str, key: str, show_sub_labels: bool, show_subtypes: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    cg = _clinical_graph()
    categories: dict[str, str] = {}
    if key:
        from graph import alignment_report

        rep = alignment_report(pd.read_parquet(tcav_path), cg)
        categories = {f.concept: f.category for f in rep.findings}
    rows = []
    for node, data in cg.nx.nodes(data=True):
        kind = str(data.get("kind"))
        if kind == "sub_label" and not show_sub_labels:
            continue
        if kind == "diagnosis" and node not in _MAIN_DIAGNOSES and not show_subtypes:
            continue
        cat = "diagnosis" if kind == "diagnosis" else categories.get(node, "not tested")
        label = str(data.get("label") or node) if kind != "sub_label" else str(data.get("raw_label", node))
        rows.append({"node": node, "kind": kind, "label": label, "category": cat})
    for concept, cat in categories.items():
        if concept not in cg.nx:
            rows.append({"node": concept, "kind": "concept", "label": concept, "category": cat})
    nodes = pd.DataFrame(rows, columns=["node", "kind", "label", "category"])
    shown = set(nodes["node"])
    erows = [
        {"source": u, "target": v, "relation": k}
        for u, v, k in cg.nx.edges(keys=True)
        if u in shown and v in shown and k != "complement_of"
    ]
    edges = pd.DataFrame(erows, columns=["source", "target", "relation"])
    return nodes, edges


def graph_tables(
    ws: Workspace, *, show_sub_labels: bool = False, show_subtypes: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """Nodes (with alignment category) and edges of the knowledge graph to draw, and whether
    TCAV results coloured it (without them every concept is "not tested")."""
    path = ws.results_dir / "tcav.parquet"
    key = file_key(path)
    nodes, edges = _graph_tables(str(path), key, show_sub_labels, show_subtypes)
    return nodes, edges, bool(key)


def node_evidence(ws: Workspace, node: str) -> dict[str, Any]:
    """What the UI shows for a clicked graph node: kind, explanation sentences, alignment
    finding and TCAV rows."""
    cg = _clinical_graph()
    out: dict[str, Any] = {"node": node, "kind": "concept", "explain": [], "finding": None,
                           "tcav": pd.DataFrame(), "neighbors": []}
    if node in cg.nx:
        out["kind"] = cg.kind(node)
        data = cg.nx.nodes[node]
        out["label"] = data.get("label", node)
        if out["kind"] in ("criterion", "artifact", "concept"):
            out["explain"] = cg.explain(node, "melanoma")
        out["neighbors"] = [
            " —{}→ ".format(n.relation.replace("_", " ")).join(
                (node, n.node) if n.direction == "out" else (n.node, node)
            )
            for n in cg.neighbors(node)
            if n.relation != "scores"
        ][:24]
    path = ws.results_dir / "tcav.parquet"
    if file_key(path):
        al = alignment_frame(ws)
        hit = al[al["concept"] == node]
        if len(hit):
            out["finding"] = hit.iloc[0].to_dict()
        tc = tcav_table(ws)
        out["tcav"] = tc[tc["concept"] == node].reset_index(drop=True)
    return out


# --------------------------------------------------------------------------- co-occurrence
@st.cache_data(show_spinner="Counting co-occurrences…", max_entries=4)
def _cooccurrence(root: str, ds_name: str, ds_hash: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from concepts.discovery import attribute_class_table, attribute_pair_table

    ds = Workspace(root).dataset(ds_name)
    return attribute_class_table(ds), attribute_pair_table(ds)


def cooccurrence_tables(ws: Workspace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(attribute x class, attribute x attribute) co-occurrence tables of the active data set,
    one row per split and pair (see ``concepts.discovery._cooccurrence``)."""
    from workbench.services._precompute import COOCCURRENCE_FILES

    name, h = dataset_key(ws)
    files = "|".join(file_key(ws.results_dir / f) for f in COOCCURRENCE_FILES)
    pre = _precomputed_cooccurrence(str(ws.root), name, h, files)
    return pre if pre is not None else _cooccurrence(str(ws.root), name, h)


@st.cache_data(show_spinner=False, max_entries=4)
def _precomputed_cooccurrence(root: str, ds_name: str, ds_hash: str,
                              files: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    from workbench.services._precompute import cached_cooccurrence

    return cached_cooccurrence(Workspace(root))  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- confounders
@st.cache_data(show_spinner="Ranking confounders…", max_entries=8)
def _confounders(root: str, ds_name: str, ds_hash: str, tcav_key: str) -> pd.DataFrame:
    from graph import workspace_confounders

    return workspace_confounders(Workspace(root), dataset=ds_name)


@st.cache_data(show_spinner=False, max_entries=8)
def _precomputed_confounders(root: str, key: str) -> pd.DataFrame | None:
    from workbench.services._precompute import cached_confounders

    return cached_confounders(Workspace(root))  # type: ignore[no-any-return]


def confounder_frame(ws: Workspace) -> pd.DataFrame:
    """The ranked confounder report (``graph._confounders``): one row per (concept, class) with
    ``rank, concept, class, score, ..., evidence``; rows with a positive score first.

    The report precomputed by ``workbench train``/``demo`` when it is still current (same model,
    data set, TCAV results and named clusters), else computed here once."""
    from workbench.services._precompute import CONFOUNDERS_FILE, confounders_key

    key = confounders_key(ws)
    df = _precomputed_confounders(str(ws.root), f"{key}|{file_key(ws.results_dir / CONFOUNDERS_FILE)}")
    if df is None:
        name, h = dataset_key(ws)
        df = _confounders(str(ws.root), name, h, key)
    return df.reset_index(drop=True)


def confounder_display(cf: pd.DataFrame, limit: int = 15) -> pd.DataFrame:
    """The report's rows worth showing: every row with a positive score (at most ``limit``)."""
    keep = cf[cf["score"].fillna(0) > 0] if "score" in cf else cf
    cols = [c for c in ("rank", "concept", "class", "score", "kind", "lift", "odds_ratio",
                        "p_adjusted", "flip_rate", "reliance_source", "reliance", "tcav_significant",
                        "relation", "evidence")
            if c in cf]
    return keep.head(limit)[cols].reset_index(drop=True)
