"""What the UI would otherwise compute on a page's first visit, computed once when a model
enters a workspace (``workbench train``, ``workbench models add``, ``workbench demo``).

* the evaluation of the active model (``results/evaluation.json``, :mod:`workbench.services._summary`),
* the ranked confounder report (``results/`` :data:`CONFOUNDERS_FILE`, keyed by
  :func:`confounders_key`: model id, data-set content, TCAV results and named clusters),
* the co-occurrence tables of the Confounders page (``results/`` :data:`COOCCURRENCE_FILES`),
* the activations the Concepts page and the Case explorer score along the CAVs,
* the activations the Interventions page and the Case explorer's what-if start from: every
  concept's example sets and the evaluation splits with their real twins, at the last layer,
* the unsupervised clusters of the Confounders page's gallery (``results/clusters.json``, the
  file ``workbench name-cluster`` reads; their activations land in the activation cache).

TCAV and the artifact flip rates are computed by :func:`workbench.services._demo.analyse_workspace`,
which calls :func:`precompute_pages` last. Each step that cannot run on this workspace (no
train split, no concept) is reported in a note and skipped; the others still run.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from concepts import ProgressFn, WorkbenchError, Workspace
from store import atomic_path

__all__ = [
    "CONFOUNDERS_FILE",
    "COOCCURRENCE_FILES",
    "cached_confounders",
    "cached_cooccurrence",
    "confounders_key",
    "precompute_pages",
]


#: The precomputed confounder report (``results/``).
CONFOUNDERS_FILE = "confounders.parquet"
#: The precomputed co-occurrence tables (``results/``): attribute x class, attribute x attribute.
COOCCURRENCE_FILES = ("cooccurrence_class.parquet", "cooccurrence_pairs.parquet")
#: Held-out associations of named clusters (``concepts.discovery.cluster_associations`` reads it).
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
        from workbench.services._summary import _read_json

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
    with atomic_path(path, private=False) as tmp:
        df.reset_index(drop=True).to_parquet(tmp)
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
    from concepts.discovery import cluster_dataset

    model, ds = ws.model(), ws.dataset()
    layers = ws.layers()
    layer = layers[-1] if layers else model.layers[-2]
    if "train" in ds.splits and "val" in ds.splits:  # cluster_dataset's "auto" test split
        _reuse_split_activations(ws, model, ds, layer, ["train", "val"])
    res = cluster_dataset(ds, model, layer, split="train", cache=ws.activation_cache, progress=progress)
    res.save(ws.results_dir / "clusters.json")
    n_susp = int(res.clusters["suspicious"].astype(bool).sum()) if "suspicious" in res.clusters else 0
    return {"model_id": model.model_id, "layer": layer, "n_clusters": len(res.clusters), "suspicious": n_susp}


def cached_cooccurrence(ws: Workspace) -> tuple[Any, Any] | None:
    """The precomputed (attribute x class, attribute x attribute) co-occurrence tables of the
    active data set when they are still current (same content hash), else ``None``."""
    import pandas as pd

    analysis = ws.manifest().get("analysis") or {}
    co = analysis.get("cooccurrence") if isinstance(analysis, dict) else None
    paths = [ws.results_dir / f for f in COOCCURRENCE_FILES]
    if not isinstance(co, dict) or not all(p.is_file() for p in paths) or co.get("key") != _dataset_key(ws):
        return None
    try:
        return pd.read_parquet(paths[0]), pd.read_parquet(paths[1])
    except (OSError, ValueError):
        return None


def _dataset_key(ws: Workspace) -> str:
    from workbench.services._summary import _read_json

    ds = str(ws.manifest().get("dataset", ""))
    return f"{ds}:{_read_json(ws.datasets_dir / ds / 'dataset.json').get('content_hash', '')}"


def _cooccurrence(ws: Workspace) -> dict[str, Any]:
    from concepts.discovery import attribute_class_table, attribute_pair_table

    ds = ws.dataset()
    for table, name in ((attribute_class_table(ds), COOCCURRENCE_FILES[0]),
                        (attribute_pair_table(ds), COOCCURRENCE_FILES[1])):
        path = ws.results_dir / name
        with atomic_path(path, private=False) as tmp:
            table.to_parquet(tmp)
    return {"key": _dataset_key(ws)}


def _concept_activations(ws: Workspace, progress: ProgressFn | None) -> dict[str, Any]:
    """Activations at the TCAV layers of each class of the splits the Concepts page and the
    Case explorer score along the CAVs (``val`` and the evaluation split), one pass per set."""
    from workbench.services._summary import _read_json, evaluation_splits

    layers = list((_read_json(ws.results_dir / "tcav.json").get("settings") or {}).get("layers") or [])
    if not layers:
        return {"sets": 0}
    model, ds = ws.model(), ws.dataset()
    splits = list(dict.fromkeys([s for s in ("val",) if s in ds.splits] + evaluation_splits(ds.splits)[:1]))
    n = 0
    for split in splits:
        for cls in ds.classes:
            rows = ds.indices(split, label=cls)
            if len(rows):
                ws.activation_cache.get(model, layers, ds.image_set(rows, name=f"{ds.info.name}:{split}:{cls}"),
                                        progress=progress)
                n += 1
    return {"sets": n, "layers": layers, "splits": splits}


def _intervention_activations(ws: Workspace, progress: ProgressFn | None) -> dict[str, Any]:
    """What the Interventions page and the Case explorer build on first open, at the last
    workspace layer (their default): every concept's direction (its example sets' activations)
    and the what-if engine of the evaluation splits with their real twins' activations."""
    from interventions import ConceptLibrary, InterventionError
    from workbench.services._summary import evaluation_splits
    from workbench.services._whatif import whatif_engine

    model, ds = ws.model(), ws.dataset()
    layers = ws.layers()
    layer = layers[-1] if layers else model.layers[-2]
    lib = ConceptLibrary.for_workspace(ws, model, progress=progress)
    skipped = []
    for name in lib.concepts:
        try:
            lib.direction(name, layer)
        except InterventionError:  # too few examples: the page says so too
            skipped.append(name)
    splits = [s for s in evaluation_splits(ds.splits)[:2] if s in ds.splits]
    for split in splits:
        whatif_engine(model, ds, split, layer, cache=ws.activation_cache, progress=progress)
    return {"layer": layer, "concepts": len(lib.concepts) - len(skipped), "splits": splits}


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
    from workbench.services._summary import evaluate_active, stored_evaluation

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
    out["cooccurrence"] = _timed("cooccurrence", lambda: _cooccurrence(ws), notes, seconds)
    out["clusters"] = _timed("clusters", lambda: _clusters(ws, progress), notes, seconds)
    out["concept_activations"] = _timed("concept activations", lambda: _concept_activations(ws, progress),
                                        notes, seconds)
    out["intervention_activations"] = _timed(
        "intervention activations", lambda: _intervention_activations(ws, progress), notes, seconds)
    out["notes"] = notes
    out["step_seconds"] = seconds
    return out
