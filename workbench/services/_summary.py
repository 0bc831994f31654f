"""What a workspace holds, for ``workbench info`` and the Overview page (no Streamlit here).

:func:`workspace_summary` works for any workspace — the demo, or a user's imported data set
with a model from ``workbench train`` / ``workbench models add``: the active data set (source,
cases per split, classes, annotated columns), the active model (architecture, layers, how it
was made), the stored evaluation (annotation-based worst-group and clean accuracy, positive
class), the concept bank, what has been computed (TCAV, confounders, clusters) and the next
command to run. It reads files only (``workspace.json``, ``dataset.json``, ``model.json``,
``results/``): no image, no weights.

The evaluation is written once, by whatever made the model (:func:`store_evaluation`;
``workbench train`` from its own validation pass, the demo build and ``models add`` through
:func:`evaluate_active`), to ``results/`` :data:`EVALUATION_FILE`, keyed by model id and data-set
content hash so a stale one is never shown as current.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from concepts import ModelError, ProgressFn, Workspace, WorkspaceError
from store import atomic_path

__all__ = [
    "EVALUATION_FILE",
    "evaluate_active",
    "evaluation_splits",
    "headline",
    "next_step",
    "store_evaluation",
    "stored_evaluation",
    "workspace_summary",
]

#: The stored evaluation of the active model on the active data set (``results/``).
EVALUATION_FILE = "evaluation.json"


#: Splits a model is evaluated on, in order of preference for the headline figure.
_EVAL_ORDER = ("test", "test_debiased", "val", "valid", "validation")


def evaluation_splits(splits: list[str] | tuple[str, ...]) -> list[str]:
    """The splits a model is evaluated on, headline first: ``test`` (else ``test_debiased``),
    then ``val``; the training split only when there is nothing else."""
    out = [s for s in _EVAL_ORDER if s in splits]
    return out or ([s for s in splits if s != "train"] or list(splits))[:1]


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------------------- data set and model
def _dataset_part(ws: Workspace, name: str | None) -> dict[str, Any] | None:
    """The active data set from ``dataset.json`` and its cases table (no images)."""
    if not name or name not in ws.dataset_names():
        return None
    info = _read_json(ws.datasets_dir / name / "dataset.json")
    extra = _dict(info.get("extra"))
    counts: dict[str, dict[str, int]] = {}
    splits: dict[str, int] = {}
    try:
        import pandas as pd

        cases = pd.read_parquet(ws.datasets_dir / name / "cases.parquet", columns=["label", "split"])
        tab = pd.crosstab(cases["label"].astype(str), cases["split"].astype(str))
        order = [s for s in ("train", "val", "test", "test_debiased") if s in tab.columns]
        order += sorted(set(tab.columns) - set(order))
        splits = {s: int(tab[s].sum()) for s in order}
        counts = {str(c): {s: int(tab.at[c, s]) for s in order} for c in tab.index}
    except (OSError, ValueError, KeyError, ImportError):
        pass
    source = extra.get("importer") or info.get("kind")
    return {
        "name": name,
        "kind": info.get("kind"),
        "source": source,
        "source_path": extra.get("source_csv") or extra.get("root") or extra.get("images_dir"),
        "n": sum(splits.values()),
        "image_size": info.get("image_size"),
        "classes": list(info.get("classes", [])),
        "splits": splits,
        "counts": counts,
        "concepts": list(info.get("concepts", [])),
        "artifacts": list(info.get("artifacts", [])),
        "metadata": list(info.get("metadata", [])),
        "content_hash": info.get("content_hash", ""),
    }


def _how_trained(man: Mapping[str, Any], name: str) -> dict[str, Any]:
    """How the active model was made: ``workbench train``, the demo build, or added."""
    trained = (man.get("trained") or {}).get(name)
    if isinstance(trained, dict):
        cfg = trained.get("config") or {}
        how = ("linear head on frozen ImageNet features" if trained.get("mode") == "head"
               else f"end to end, {cfg.get('epochs')} epochs")
        return {"origin": "train", "mode": trained.get("mode"), "dataset": cfg.get("dataset"),
                "n_train": trained.get("n_train"), "balanced": cfg.get("balanced"),
                "seconds": trained.get("seconds"), "epochs": cfg.get("epochs"),
                "text": f"workbench train: {how} on {trained.get('n_train')} cases of {cfg.get('dataset')}"
                        + (", class-balanced" if cfg.get("balanced") else "")}
    if name == "demo" and man.get("demo_summary"):
        cfg = man.get("demo_config") or {}
        return {"origin": "demo", "mode": cfg.get("training"), "dataset": man.get("dataset"),
                "text": f"workbench demo: {cfg.get('architecture')} on DermSynth ({cfg.get('training')} training)"}
    return {"origin": "added", "text": "added with `workbench models add` (trained elsewhere)"}


def _model_part(ws: Workspace, man: Mapping[str, Any]) -> dict[str, Any] | None:
    name = man.get("model")
    if not name or name not in ws.model_names():
        return None
    try:
        info = ws.model_info(str(name))
    except (ModelError, WorkspaceError):
        info = {}
    return {
        "name": name,
        "architecture": info.get("architecture"),
        "model_id": info.get("model_id"),
        "classes": list(info.get("classes", [])),
        "image_size": (info.get("preprocess") or {}).get("size"),
        "layers": list(man.get("layers", [])),
        "all_layers": list(info.get("layers", [])),
        "how": _how_trained(man, str(name)),
    }


# --------------------------------------------------------------------------- evaluation
def _eval_key(model_id: str, dataset_hash: str) -> str:
    return f"{model_id}:{dataset_hash}"


def store_evaluation(
    ws: Workspace, *, model_id: str, dataset: str, dataset_hash: str, positive_class: str,
    metrics: Mapping[str, Mapping[str, Any]], source: str,
) -> Path:
    """Write the evaluation of model ``model_id`` on a data set to ``results/`` (atomic; one
    entry per model and data-set content)."""
    path = ws.results_dir / EVALUATION_FILE
    entries = _read_json(path)
    entries[_eval_key(model_id, dataset_hash)] = {
        "model_id": model_id, "dataset": dataset, "dataset_hash": dataset_hash,
        "positive_class": positive_class, "source": source,
        "splits": evaluation_splits(list(metrics)), "metrics": {k: dict(v) for k, v in metrics.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, private=False) as tmp:
        tmp.write_text(json.dumps(entries, indent=1, default=str))
    return path


def stored_evaluation(ws: Workspace, man: Mapping[str, Any], model_id: str | None,
                      dataset_hash: str) -> dict[str, Any] | None:
    """The evaluation of the active model on the active data set: ``results/`` first, then what
    ``workbench train`` or the demo build recorded in the manifest (``None``: not evaluated)."""
    if not model_id:
        return None
    hit = _read_json(ws.results_dir / EVALUATION_FILE).get(_eval_key(model_id, dataset_hash))
    if isinstance(hit, dict) and isinstance(hit.get("metrics"), dict):
        return hit
    name = str(man.get("model"))
    trained = (man.get("trained") or {}).get(name) or {}
    if trained.get("model_id") == model_id and (trained.get("config") or {}).get("dataset_hash") == dataset_hash:
        return {"model_id": model_id, "positive_class": trained.get("positive_class"), "source": "train",
                "splits": evaluation_splits(list(trained.get("metrics") or {})),
                "metrics": dict(trained.get("metrics") or {})}
    demo = man.get("demo_summary") or {}
    if demo.get("model_id") == model_id and isinstance(demo.get("metrics"), dict):
        metrics = dict(demo["metrics"])
        pos = next((m.get("positive_class") for m in metrics.values() if isinstance(m, dict)), None)
        return {"model_id": model_id, "positive_class": pos, "source": "demo",
                "splits": evaluation_splits(list(metrics)), "metrics": metrics}
    return None


def evaluate_active(ws: Workspace, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Evaluate the active model on the active data set's evaluation splits (annotation-based
    groups, the workspace's positive class) and store it; returns the stored entry."""
    from concepts.data import RowView
    from concepts.models import classification_metrics

    ds, model = ws.dataset(), ws.model()
    pos = ws.manifest().get("positive_class")
    pos = pos if pos in ds.classes else None
    metrics: dict[str, Any] = {}
    splits = evaluation_splits(ds.splits)
    for i, split in enumerate(splits):
        if progress:
            progress("evaluating the model", i, len(splits))
        idx = ds.indices(split)
        if len(idx):
            proba = model.predict_proba(RowView(ds.images, idx))  # a batch of images at a time
            metrics[split] = classification_metrics(ds, idx, proba, positive_class=pos).to_json()
    if progress:
        progress("evaluating the model", len(splits), len(splits))
    first: dict[str, Any] = next(iter(metrics.values()), {})
    store_evaluation(ws, model_id=model.model_id, dataset=ds.info.name, dataset_hash=ds.info.content_hash,
                     positive_class=str(first.get("positive_class", pos)), metrics=metrics, source="evaluated")
    return _read_json(ws.results_dir / EVALUATION_FILE)[_eval_key(model.model_id, ds.info.content_hash)]  # type: ignore[no-any-return]


def headline(evaluation: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The headline figures of an evaluation on its first split (test, else val): accuracy,
    balanced accuracy, sensitivity/specificity of the positive class, AUC, worst group (named)
    and clean accuracy, plus every scored group."""
    if not evaluation:
        return None
    metrics = evaluation.get("metrics") or {}
    split = next((s for s in evaluation.get("splits") or evaluation_splits(list(metrics)) if s in metrics), None)
    if split is None:
        return None
    m = metrics[split]
    keys = ("n", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "auc", "worst_group_accuracy",
            "worst_group", "worst_group_n", "clean_accuracy", "n_clean", "positive_class")
    out = {k: m.get(k) for k in keys}
    out["split"] = split
    out["groups"] = [{"group": g, "accuracy": a, "n": (m.get("group_n") or {}).get(g)}
                     for g, a in sorted((m.get("group_accuracy") or {}).items(), key=lambda kv: kv[1])]
    out["other_splits"] = {s: metrics[s].get("accuracy") for s in metrics if s != split}
    return out


# --------------------------------------------------------------------------- bank and analyses
def _bank_part(ws: Workspace) -> list[dict[str, Any]]:
    """The concepts of the bank (``concepts/bank.json``): name, group, origin."""
    data = _read_json(ws.concepts_dir / "bank.json")
    out = []
    for c in data.get("concepts") or []:
        if isinstance(c, dict) and isinstance(c.get("name"), str):
            out.append({"name": c["name"], "group": c.get("group"), "origin": c.get("origin")})
    return out


def _tcav_part(ws: Workspace, model_id: str | None) -> dict[str, Any]:
    settings = _read_json(ws.results_dir / "tcav.json").get("settings") or {}
    path = ws.results_dir / "tcav.parquet"
    if not path.is_file():
        return {"done": False}
    out: dict[str, Any] = {"done": True, "current": bool(model_id) and settings.get("model_id") == model_id,
                           "runs": settings.get("runs"), "layers": settings.get("layers"),
                           "test": settings.get("test"), "correction": settings.get("correction")}
    try:
        import pandas as pd

        tab = pd.read_parquet(path)
        out["rows"] = len(tab)
        out["concepts"] = sorted(tab["concept"].astype(str).unique().tolist())
        out["significant"] = int(tab["significant"].sum()) if "significant" in tab else None
        out["alignment"] = _alignment_counts(tab)
    except (OSError, ValueError, KeyError, ImportError):
        out["rows"] = None
    return out


def _alignment_counts(tab: Any) -> dict[str, int]:
    """Concepts per alignment category (graph alignment of the TCAV table)."""
    from graph import ClinicalGraph, alignment_report

    try:
        rep = alignment_report(tab, ClinicalGraph.default())
    except Exception:  # an odd table: the rest of the summary stands
        return {}
    counts: dict[str, int] = {}
    for f in rep.findings:
        counts[f.category] = counts.get(f.category, 0) + 1
    return counts


def _analysis_part(ws: Workspace, man: Mapping[str, Any], model_id: str | None) -> dict[str, Any]:
    analysis = _dict(man.get("analysis"))
    flips = _read_json(ws.results_dir / "confounder_flip_rates.json")
    flip_current = any(k.startswith(f"{model_id}:") for k in flips) if model_id else False
    conf, clus = _dict(analysis.get("confounders")), _dict(analysis.get("clusters"))
    return {
        "tcav": _tcav_part(ws, model_id),
        "flip_rates": {"done": flip_current, "artifacts": analysis.get("flip_rate_artifacts")},
        "confounders": {"done": bool(conf) and conf.get("model_id") == model_id, **conf},
        "clusters": {"done": (ws.results_dir / "clusters.json").is_file(),
                     "current": bool(clus) and clus.get("model_id") == model_id, **clus},
        "seconds": analysis.get("seconds"),
    }


def next_step(summary: Mapping[str, Any]) -> str:
    """The next command to run on this workspace, with why."""
    root = summary["workspace"]
    ds, model, comp = summary.get("dataset"), summary.get("model"), summary.get("computed") or {}
    if ds is None:
        return f"workbench import folder CSV --name NAME -w {root}   (no data set yet)"
    if model is None:
        return f"workbench train -w {root}   (or `workbench models add`: no model yet)"
    if not (comp.get("tcav") or {}).get("current"):
        return f"workbench tcav -w {root}   (no TCAV results for the active model)"
    if not (comp.get("confounders") or {}).get("done"):
        return f"workbench confounders -w {root}   (rank what rides with each class)"
    if not (comp.get("clusters") or {}).get("done"):
        return f"workbench clusters -w {root}   (look for confounders nobody annotated)"
    return f"workbench serve -w {root}   (review findings and correct the model in the browser)"


def workspace_summary(ws: Workspace) -> dict[str, Any]:
    """Everything ``workbench info`` and the Overview page show about a workspace.

    Raises
    ------
    WorkspaceError
        Not a workspace (the message says how to make one).
    """
    man = ws.manifest()
    ds = _dataset_part(ws, man.get("dataset"))
    model = _model_part(ws, man)
    model_id = model["model_id"] if model else None
    evaluation = stored_evaluation(ws, man, model_id, ds["content_hash"] if ds else "")
    out: dict[str, Any] = {
        "workspace": str(ws.root),
        "demo": bool(man.get("demo_summary")) and man.get("model") == "demo",
        "dataset": ds,
        "model": model,
        "positive_class": (evaluation or {}).get("positive_class") or man.get("positive_class"),
        "evaluation": evaluation,
        "headline": headline(evaluation),
        "concepts": _bank_part(ws),
        "computed": _analysis_part(ws, man, model_id),
        "datasets": ws.dataset_names(),
        "models": ws.model_names(),
    }
    demo = man.get("demo_summary") or {}
    if out["demo"]:
        out["demo_figures"] = {k: demo.get(k) for k in ("n_concept_images", "generation_seconds",
                                                          "build_seconds", "flip_rates")}
    out["next"] = next_step(out)
    return out
