"""What the UI would otherwise compute on a page's first visit, computed once when a model
enters a workspace (``workbench train``, ``workbench models add``, ``workbench demo``).

* the evaluation of the active model (``results/evaluation.json``, :mod:`workbench._summary`),
* the ranked confounder report (``results/`` :data:`CONFOUNDERS_FILE`, keyed by
  :func:`confounders_key`: model id, data-set content, TCAV results and named clusters),
* the unsupervised clusters of the Confounders page's gallery (``results/clusters.json``, the
  file ``workbench name-cluster`` reads; their activations land in the activation cache).

TCAV and the artifact flip rates are computed by :func:`workbench._demo.analyse_workspace`,
which calls :func:`precompute_pages` last. Each step that cannot run on this workspace (no
train split, no concept) is reported in a note and skipped; the others still run.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from concepts import WorkbenchError, Workspace

__all__ = ["CONFOUNDERS_FILE", "cached_confounders", "confounders_key", "precompute_pages"]

ProgressFn = Callable[[str, int, int], None]

#: The precomputed confounder report (``results/``).
CONFOUNDERS_FILE = "confounders.parquet"
#: Held-out associations of named clusters (``concepts.cluster_associations`` reads it).
_NAMED_CLUSTERS = "named_clusters.json"


def _file_sha(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return "-"


def confounders_key(ws: Workspace) -> str:
    """What the confounder report depends on: active model id, data-set content hash, the TCAV
    results and the named clusters (by content)."""
    man = ws.manifest()
    name = str(man.get("model", ""))
    try:
        model_id = str(ws.model_info(name).get("model_id", "")) if name in ws.model_names() else ""
    except WorkbenchError:
        model_id = ""
    ds = str(man.get("dataset", ""))
    ds_hash = ""
    if ds in ws.dataset_names():
        from workbench._summary import _read_json

        ds_hash = str(_read_json(ws.datasets_dir / ds / "dataset.json").get("content_hash", ""))
    return ":".join((model_id, ds, ds_hash, _file_sha(ws.results_dir / "tcav.parquet"),
                     _file_sha(ws.results_dir / _NAMED_CLUSTERS)))


def cached_confounders(ws: Workspace) -> Any:
    """The precomputed confounder report when it is still current, else ``None``."""
    import pandas as pd

    analysis = ws.manifest().get("analysis") or {}
    conf = analysis.get("confounders") if isinstance(analysis, dict) else None
    path = ws.results_dir / CONFOUNDERS_FILE
    if not isinstance(conf, dict) or not path.is_file() or conf.get("key") != confounders_key(ws):
        return None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError):
        return None


def _confounders(ws: Workspace) -> dict[str, Any]:
    from graph import workspace_confounders

    df = workspace_confounders(ws)
    path = ws.results_dir / CONFOUNDERS_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    df.reset_index(drop=True).to_parquet(tmp)
    tmp.replace(path)
    top = df[df["score"].fillna(0) > 0].head(3) if "score" in df else df.head(0)
    return {"key": confounders_key(ws), "model_id": confounders_key(ws).split(":")[0], "rows": len(df),
            "top": [f"{r['concept']} ({r['class']})" for _, r in top.iterrows()]}


def _reuse_split_activations(ws: Workspace, model: Any, ds: Any, layer: str, splits: list[str]) -> None:
    """Put the activations of ``splits`` together (the rows the clustering reads, in its order)
    when every split's are cached already — ``train`` caches the head's input features per
    split — so that the clustering does not run the model on the same images again."""
    import numpy as np

    cache = ws.activation_cache
    parts = [ds.image_set(ds.indices(s), name=f"{ds.info.name}:{s}") for s in splits]
    union = ds.image_set(np.concatenate([ds.indices(s) for s in splits]), name=f"{ds.info.name}:{'+'.join(splits)}")
    paths = [cache.path(model, layer, p) for p in parts]
    if cache.path(model, layer, union).is_file() or not all(p.is_file() for p in paths):
        return
    try:
        arr = np.concatenate([np.load(p) for p in paths])
    except (OSError, ValueError):
        return  # unreadable entries: the clustering extracts them itself
    cache.put(model, layer, union, arr)


def _clusters(ws: Workspace, progress: ProgressFn | None) -> dict[str, Any]:
    """The clusters the Confounders page's gallery shows (its layer and split), saved where
    ``workbench name-cluster`` reads them."""
    from concepts import cluster_dataset

    model, ds = ws.model(), ws.dataset()
    layers = ws.layers()
    layer = layers[-1] if layers else model.layers[-2]
    if "train" in ds.splits and "val" in ds.splits:  # cluster_dataset's "auto" test split
        _reuse_split_activations(ws, model, ds, layer, ["train", "val"])
    res = cluster_dataset(ds, model, layer, split="train", cache=ws.activation_cache, progress=progress)
    res.save(ws.results_dir / "clusters.json")
    n_susp = int(res.clusters["suspicious"].astype(bool).sum()) if "suspicious" in res.clusters else 0
    return {"model_id": model.model_id, "layer": layer, "n_clusters": len(res.clusters), "suspicious": n_susp}


def _timed(name: str, fn: Callable[[], dict[str, Any]], notes: list[str],
           seconds: dict[str, float]) -> dict[str, Any] | None:
    t0 = time.perf_counter()
    try:
        out = fn()
    except WorkbenchError as exc:  # this analysis cannot run here; the others still do
        notes.append(f"{name} not precomputed: {' '.join(str(exc).split())}")
        return None
    seconds[name] = round(time.perf_counter() - t0, 2)
    return out


def precompute_pages(ws: Workspace, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Evaluation, confounder report and clusters of the active model and data set.

    Returns ``{"confounders": ..., "clusters": ..., "evaluation": bool, "notes": [...],
    "step_seconds": {...}}`` (the manifest's ``analysis`` entry merges it).
    """
    from workbench._summary import evaluate_active, stored_evaluation

    notes: list[str] = []
    seconds: dict[str, float] = {}
    man = ws.manifest()
    model_id = str(ws.model_info(str(man.get("model"))).get("model_id", ""))
    ds_hash = str(ws.dataset().info.content_hash)
    evaluated = stored_evaluation(ws, man, model_id, ds_hash) is not None
    if not evaluated:
        evaluated = _timed("evaluation", lambda: evaluate_active(ws, progress), notes, seconds) is not None
    out: dict[str, Any] = {"evaluation": evaluated}
    if progress:
        progress("confounder report", 0, 1)
    out["confounders"] = _timed("confounders", lambda: _confounders(ws), notes, seconds)
    if progress:
        progress("confounder report", 1, 1)
    out["clusters"] = _timed("clusters", lambda: _clusters(ws, progress), notes, seconds)
    out["notes"] = notes
    out["step_seconds"] = seconds
    return out
