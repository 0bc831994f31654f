"""Clusters on a workspace: clustering a data set's activations, naming a cluster as a concept of the
bank, and the named clusters' held-out associations (for the confounder report).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from concepts._errors import DataError
from concepts.discovery._clusters_result import ClusteringResult
from store import atomic_path
from store import finite_or_none as _num

if TYPE_CHECKING:  # pragma: no cover
    from concepts.data import Dataset
    from concepts.models import ClassifierModel
    from concepts.workspace import Workspace

__all__ = ["NAMED_CLUSTERS_FILE", "cluster_associations", "cluster_dataset", "name_cluster"]


def cluster_dataset(
    dataset: Dataset,
    model: ClassifierModel,
    layer: str,
    *,
    split: str | None = "train",
    test_split: str | None = "auto",
    cache: Any = None,
    progress: Any = None,
    **kwargs: Any,
) -> ClusteringResult:
    """Cluster the activations of ``layer`` on one split and test the clusters on another.

    Parameters
    ----------
    dataset, model, layer
        What to cluster. Activations come from ``cache`` (an :class:`ActivationCache`) when
        given, else are extracted.
    split
        The discovery split (``None``: every case).
    test_split
        The split the clusters' associations are tested on: ``"auto"`` (default) takes
        ``val`` when the data set has it (and it is not ``split``), else holds out half of
        each class of ``split``; ``None`` always holds out half of ``split``.
    cache, progress
        Activation cache and progress callback.
    **kwargs
        Passed to :func:`cluster_activations` (method, scope, pooling, k, k_range, membership, ...).

    Raises
    ------
    DataError
        An unknown or empty split, or a test split equal to the discovery split.
    """
    model.check_layer(layer)
    disc = dataset.indices(split) if split is not None else np.arange(len(dataset))
    if len(disc) == 0:
        raise DataError(f"split {split!r} of {dataset.info.name} has no cases to cluster")
    ts = test_split
    if ts == "auto":
        ts = "val" if "val" in dataset.splits and split not in ("val", None) else None
    if ts is not None and ts == split:
        raise DataError(f"the test split must differ from the discovery split {split!r}")
    test = dataset.indices(ts) if ts is not None else np.zeros(0, dtype=np.int64)
    if ts is not None and len(test) == 0:
        raise DataError(f"test split {ts!r} of {dataset.info.name} has no cases")
    idx = np.concatenate([disc, test]).astype(np.int64)
    acts = _activations(dataset, model, layer, idx, f"{split or 'all'}+{ts or 'half'}", cache, progress)
    cases = dataset.cases.iloc[idx]
    labels = cases["label"].astype(str).to_numpy()
    holdout = np.r_[np.zeros(len(disc), bool), np.ones(len(test), bool)] if ts is not None else None
    from concepts.discovery._clusters import cluster_activations  # sklearn: not for `import graph`

    res = cluster_activations(
        acts, labels, classes=dataset.classes, rows=idx,
        case_ids=cases["case_id"].astype(str).tolist(), layer=layer, split=split or "all",
        holdout=holdout, test_split=ts or f"half of {split or 'all'} (held out)", **kwargs,
    )
    return _with_dataset(res, dataset)


def _activations(dataset: Dataset, model: ClassifierModel, layer: str, idx: np.ndarray, tag: str,
                 cache: Any, progress: Any) -> np.ndarray:
    from concepts.data import RowView
    from concepts.models import extract_activations

    if cache is not None:
        from concepts.discovery._cluster_fit import MINIBATCH_MIN_ROWS

        iset = dataset.image_set(idx, name=f"{dataset.info.name}:{tag}")
        if len(idx) >= MINIBATCH_MIN_ROWS:  # a memory map, pooled chunk by chunk by the clustering
            return cache.get(model, layer, iset, progress=progress, mmap=True)[layer]
        return np.asarray(cache.get(model, layer, iset, progress=progress)[layer])
    return np.asarray(
        extract_activations(model, RowView(dataset.images, idx), [layer], progress=progress)[layer])


def _with_dataset(res: ClusteringResult, dataset: Dataset) -> ClusteringResult:
    from dataclasses import replace

    return replace(res, dataset=dataset.info.name, dataset_hash=dataset.info.content_hash)


def _bank_for(ws: Workspace, ds: Dataset) -> Any:
    """The workspace's bank; an empty one (random pool from the data set) when the data set has
    no annotated concept to build a default bank from — a named cluster is then its first."""
    from concepts._errors import ConceptError
    from concepts.bank import ConceptBank

    try:
        return ConceptBank.for_workspace(ws)
    except ConceptError:
        if (ws.concepts_dir / ConceptBank.FILE).is_file():
            raise
    bank = ConceptBank([], root=ws.concepts_dir, datasets_dir=ws.datasets_dir)
    bank.set_random_pool_from_dataset(ds)
    return bank


def name_cluster(
    workspace: Workspace | str | Path,
    clustering_result: ClusteringResult,
    cluster_id: int,
    name: str,
    description: str,
    actor: Any = None,
    *,
    group: str = "custom",
    negatives: Literal["rest", "random"] = "rest",
    store: Any = None,
    replace: bool = False,
) -> Any:
    """Turn a cluster a human has named into a concept of the workspace's bank.

    Parameters
    ----------
    workspace
        The workspace (its bank is loaded, extended and saved).
    clustering_result
        A result of :func:`cluster_dataset` on one of the workspace's data sets.
    cluster_id
        The cluster (column ``cluster`` of the ranking).
    name, description
        The concept's name (e.g. ``"ink_marks"``) and what the human saw.
    actor
        A :class:`store.Actor`; when given, a ``concept_named`` event is appended to the
        workspace's store (or to ``store``).
    group
        Bank group: ``"custom"`` (default), ``"artifact"`` or ``"criterion"``.
    negatives
        ``"rest"``: the non-members (of the cluster's class for a within-class clustering, so the
        concept is not confounded with the class) as explicit negatives; ``"random"``: random
        counterparts from the bank's pool.
    store
        A :class:`store.Store` to record in (default: the workspace's).
    replace
        Replace an existing concept of the same name.

    Returns
    -------
    concepts.Concept
        The new concept (saved in ``<workspace>/concepts/bank.json``).

    Raises
    ------
    DataError
        An unknown cluster, a result computed on another data set (or another version of it),
        an empty cluster, or unknown ``negatives``.
    ConceptError
        An invalid or existing concept name.
    """
    from concepts.workspace import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    res = clustering_result
    ds, pos, neg = _cluster_cases(ws, res, cluster_id, negatives)
    bank = _bank_for(ws, ds)
    concept = bank.add_from_cases(name, group, description, ds, pos, neg, replace=replace)
    bank.save()
    _record_association(ws, res, int(cluster_id), name, group)
    if actor is not None:
        from store import Store

        st = store if store is not None else Store.for_workspace(ws.root)
        st.append_event(actor, "concept_named", concept=name,
                        **_naming_record(res, int(cluster_id), group, negatives, concept.id, len(pos),
                                         len(neg or ()), description))
    return concept


def _cluster_cases(ws: Workspace, res: ClusteringResult, cluster_id: int,
                   negatives: str) -> tuple[Dataset, list[str], list[str] | None]:
    """The data set and the positive (and negative) case ids of a cluster to name, checked."""
    if negatives not in ("rest", "random"):
        raise DataError(f"negatives must be 'rest' or 'random', got {negatives!r}")
    if not res.dataset:
        raise DataError(
            "this clustering was computed on bare arrays: use cluster_dataset(...) on a workspace "
            "data set so that its members can be named"
        )
    ds = ws.dataset(res.dataset)
    if res.dataset_hash and ds.info.content_hash != res.dataset_hash:
        raise DataError(
            f"data set {res.dataset!r} changed since it was clustered (content hash differs) — "
            "cluster it again"
        )
    pos = res.member_case_ids(cluster_id)
    if not pos:
        raise DataError(f"cluster {cluster_id} has no members")
    neg = res.rest_case_ids(cluster_id) if negatives == "rest" else None
    if neg is not None and not neg:
        neg = None
    return ds, pos, neg


def _naming_record(res: ClusteringResult, cluster_id: int, group: str, negatives: str, concept_id: str,
                   n_positive: int, n_negative: int, description: str) -> dict[str, Any]:
    """``spec``, ``evidence`` and ``dataset_hash`` of the ``concept_named`` event."""
    info = res.cluster(cluster_id)
    return {
        "spec": {
            "source": "cluster", "dataset": res.dataset, "layer": res.layer,
            "split": res.split, "method": res.method, "scope": res.scope,
            "pooling": res.pooling, "cluster": cluster_id, "group": group,
            "negatives": negatives, "concept_id": concept_id,
            "n_positive": n_positive, "n_negative": n_negative,
            "description": description,
        },
        "evidence": {
            "class": str(info["class"]), "purity": _num(info["purity"]),
            "lift": _num(info["lift"]), "odds_ratio": _num(info["odds_ratio"]),
            "p_adjusted": _num(info["p_adjusted"]),
            "exemplar_case_ids": [str(c) for c in info["exemplar_case_ids"]],
        },
        "dataset_hash": res.dataset_hash or None,
    }


# ====================================================================== named clusters' associations
#: Where :func:`name_cluster` records each named cluster's held-out association (results folder).
NAMED_CLUSTERS_FILE = "named_clusters.json"


def _record_association(ws: Workspace, res: ClusteringResult, cluster_id: int, name: str, group: str) -> None:
    import json

    info = res.cluster(cluster_id)
    path = ws.results_dir / NAMED_CLUSTERS_FILE
    try:
        book = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        book = {}
    a = int(info["n_test_hits"]) - int(info["n_assigned_other"])
    book[name] = {
        "dataset": res.dataset, "dataset_hash": res.dataset_hash, "layer": res.layer,
        "cluster": int(cluster_id), "group": group, "class": str(info["class"]),
        "split": res.test_split or res.split, "n": int(info["n_test"]),
        "n_class": int(info["n_test_class"]), "n_both": a, "n_hits": int(info["n_test_hits"]),
        **{k: _num(info[k]) for k in ("lift", "odds_ratio", "or_ci_low", "or_ci_high", "p_adjusted")},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, private=False) as tmp:
        tmp.write_text(json.dumps(book, indent=1))


def cluster_associations(workspace: Workspace | str | Path, dataset: str | None = None) -> pd.DataFrame:
    """The held-out class associations of the workspace's named clusters, as co-occurrence rows.

    Each cluster named with :func:`name_cluster` contributes one row (its concept x its class)
    in the columns of :func:`concepts.discovery.attribute_class_table`, measured on the split the cluster
    was tested on (never the one it was found on), so an unannotated concept enters the
    confounder ranking like an annotated attribute.

    Parameters
    ----------
    workspace
        The workspace.
    dataset
        Only clusters of this data set (default: the active one); clusters of an older version
        of it (content hash differs) are left out.

    Returns
    -------
    pandas.DataFrame
        Possibly empty.
    """
    import json

    from concepts.workspace import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    ds = ws.dataset(dataset)
    path = ws.results_dir / NAMED_CLUSTERS_FILE
    cols = ["split", "attribute", "kind", "column", "class", "n", "n_class", "n_both", "lift",
            "odds_ratio", "or_ci_low", "or_ci_high", "p_adjusted", "prevalence_class",
            "prevalence_other", "testable", "note"]
    try:
        book = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is corrupt ({exc}) — name the clusters again") from exc
    rows = []
    for name, e in book.items():
        if e.get("dataset") != ds.info.name or (e.get("dataset_hash") and e["dataset_hash"] != ds.info.content_hash):
            continue
        n, n_c, a, hits = int(e["n"]), int(e["n_class"]), int(e["n_both"]), int(e["n_hits"])
        rows.append({
            "split": str(e["split"]), "attribute": str(name),
            "kind": "artifact" if e.get("group") == "artifact" else "concept", "column": str(name),
            "class": str(e["class"]), "n": n, "n_class": n_c, "n_both": a,
            **{k: e.get(k) for k in ("lift", "odds_ratio", "or_ci_low", "or_ci_high", "p_adjusted")},
            "prevalence_class": a / n_c if n_c else None,
            "prevalence_other": (hits - a) / (n - n_c) if n - n_c else None,
            "testable": e.get("or_ci_low") is not None,
            "note": f"named cluster {e['cluster']} of {e['layer']} (held-out {e['split']} cases)",
        })
    return pd.DataFrame(rows, columns=cols)
