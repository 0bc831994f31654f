"""Build the embedded demo workspace: DermSynth + EfficientNet-Lite0 with a trained head.

The build is cached: the manifest records a hash of the demo configuration, and a second run
with the same configuration reuses everything (data, model, cached activations).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from concepts import (
    ActivationCache,
    ClassifierModel,
    Dataset,
    ProgressFn,
    Workspace,
    WorkspaceError,
)
from concepts.dermsynth import DermSynthConfig, generate_dermsynth
from concepts.discovery import counterfactual_flip_rate, planted_confounders
from concepts.models import (
    classification_metrics,
    fit_linear_head,
    set_linear_head,
    train_end_to_end,
)

__all__ = ["DEMO_LAYERS", "DemoConfig", "build_demo", "evaluate_shortcut"]


#: Layers analysed by default: two intermediate blocks for TCAV, pooled features for interventions.
DEMO_LAYERS: dict[str, tuple[str, ...]] = {
    "efficientnet-lite0": ("block10", "block15", "pool"),
    "tiny-cnn": ("conv2", "conv3", "pool"),
}


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo build."""

    dermsynth: DermSynthConfig = field(default_factory=DermSynthConfig)
    architecture: str = "efficientnet-lite0"
    head_l2: float = 1e-3
    #: "head": logistic head on frozen pooled features (EfficientNet-Lite0 with ImageNet weights);
    #: "end_to_end": train every weight (small models such as tiny-cnn); "auto" picks by architecture.
    training: str = "auto"
    epochs: int = 10
    seed: int = 0

    def training_mode(self) -> str:
        if self.training != "auto":
            return self.training
        return "head" if self.architecture == "efficientnet-lite0" else "end_to_end"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return json.loads(json.dumps(d, default=str))  # type: ignore[no-any-return]

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def _predict_fn(model: ClassifierModel) -> Callable[[np.ndarray], np.ndarray]:
    def predict(images: np.ndarray) -> np.ndarray:
        return model.predict_proba(images).argmax(axis=1)  # type: ignore[no-any-return]

    return predict


def evaluate_shortcut(
    model: ClassifierModel,
    dataset: Dataset,
    *,
    features_proba: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Biased-val and debiased-test metrics plus counterfactual flip rates of the planted artifacts.

    Flip rates are measured on ``test_debiased``: *add* uses the cases of the other classes that
    lack the artifact, *remove* the cases that carry it.
    """
    planted = planted_confounders(dataset)
    arts = [a for a, _ in planted]
    out: dict[str, Any] = {"planted": [{"artifact": a, "class": c} for a, c in planted]}
    probas = features_proba or {}
    for split in ("val", "test_debiased"):
        idx = dataset.indices(split)
        proba = probas.get(split)
        if proba is None:
            proba = model.predict_proba(np.asarray(dataset.images[idx]))
            probas[split] = proba
        out[split] = classification_metrics(dataset, idx, proba, group_artifacts=arts).to_json()
    predict = _predict_fn(model)
    test = dataset.indices("test_debiased")
    test_pred = probas["test_debiased"].argmax(axis=1)
    pos_in_test = {int(r): i for i, r in enumerate(test)}
    flips: dict[str, Any] = {}
    labels = dataset.cases["label"].to_numpy()
    for art, cls in planted:
        flag = dataset.cases[art].to_numpy().astype(bool)
        add_idx = test[(~flag[test]) & (labels[test] != cls)]
        rem_idx = test[flag[test]]
        fr_add = counterfactual_flip_rate(
            predict, dataset, add_idx, art, direction="add", to_class=cls,
            base_pred=test_pred[[pos_in_test[int(i)] for i in add_idx]],
        )
        fr_rem = counterfactual_flip_rate(
            predict, dataset, rem_idx, art, direction="remove",
            base_pred=test_pred[[pos_in_test[int(i)] for i in rem_idx]],
        )
        flips[art] = {
            "class": cls,
            "add": fr_add.rate,
            "add_to_class": fr_add.n_to_class / max(fr_add.n, 1),
            "add_n": fr_add.n,
            "remove": fr_rem.rate,
            "remove_n": fr_rem.n,
        }
    out["flip_rates"] = flips
    return out


def build_demo(
    workspace: Workspace,
    config: DemoConfig | None = None,
    *,
    force: bool = False,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Build (or reuse) the demo workspace and return its summary (also in ``workspace.json``)."""
    cfg = config or DemoConfig()
    digest = cfg.digest()
    if not force:
        reused = _reusable_summary(workspace, digest)
        if reused is not None:
            return reused
    t_start = time.perf_counter()
    workspace.ensure()
    torch.manual_seed(cfg.seed)

    t0 = time.perf_counter()
    result = generate_dermsynth(cfg.dermsynth, workspace.datasets_dir, progress=progress)
    gen_s = time.perf_counter() - t0
    ds = result.main

    model = ClassifierModel.build(cfg.architecture, ds.classes, seed=cfg.seed)
    layers = DEMO_LAYERS.get(cfg.architecture, ())
    feat_layer = layers[-1] if layers else model.layers[-2]
    feats = _train_on_features(model, ds, cfg, workspace.activation_cache, feat_layer, progress)
    model_dir = model.save(workspace.models_dir / "demo")
    probas = _feature_probas(model, feat_layer, feats)
    if progress:
        progress("counterfactual twins", 0, 1)
    shortcut = evaluate_shortcut(model, ds, features_proba=probas)
    if progress:
        progress("counterfactual twins", 1, 1)
    summary = _demo_summary(ds, len(result.concept_sets), model, cfg, shortcut,
                            gen_s, time.perf_counter() - t_start)
    workspace.update_manifest(
        dataset=ds.info.name,
        concept_sets=result.concept_sets.info.name,
        model="demo",
        model_dir=str(model_dir.relative_to(workspace.root)),
        layers=list(layers),
        demo_digest=digest,
        demo_config=cfg.to_json(),
        demo_summary=summary,
    )
    return summary


def _demo_summary(
    ds: Dataset, n_concept_images: int, model: ClassifierModel, cfg: DemoConfig,
    shortcut: Mapping[str, Any], gen_s: float, build_s: float,
) -> dict[str, Any]:
    """The demo's summary (``demo_summary`` of the manifest, printed by ``workbench demo``)."""
    return {
        "dataset": ds.info.name,
        "n_images": len(ds),
        "n_concept_images": n_concept_images,
        "image_size": ds.info.image_size,
        "model": "demo",
        "model_id": model.model_id,
        "architecture": cfg.architecture,
        "generation_seconds": round(gen_s, 2),
        "build_seconds": round(build_s, 2),
        "val_accuracy": shortcut["val"]["accuracy"],
        "test_debiased_accuracy": shortcut["test_debiased"]["accuracy"],
        "test_debiased_worst_group_accuracy": shortcut["test_debiased"]["worst_group_accuracy"],
        "flip_rates": shortcut["flip_rates"],
        "metrics": {"val": shortcut["val"], "test_debiased": shortcut["test_debiased"]},
        "reused": False,
    }


def _reusable_summary(workspace: Workspace, digest: str) -> dict[str, Any] | None:
    """The stored summary when ``workspace`` already holds a complete demo of ``digest``."""
    if not workspace.exists():
        return None
    try:
        man = workspace.manifest()
    except WorkspaceError:
        man = {}
    if man.get("demo_digest") == digest and man.get("demo_summary"):
        try:
            workspace.model()
            workspace.dataset()
        except (WorkspaceError, OSError, ValueError):  # incomplete workspace: rebuild it
            return None
        return {**man["demo_summary"], "reused": True}
    return None


def _train_on_features(
    model: ClassifierModel,
    ds: Dataset,
    cfg: DemoConfig,
    cache: ActivationCache,
    feat_layer: str,
    progress: ProgressFn | None,
) -> dict[str, np.ndarray]:
    """Train the demo model as ``cfg`` says; return its pooled features of the three splits.

    End to end: the whole network first, then the features. Head only: a linear head fitted
    on the features of ``train``, which are then re-keyed under the trained model's id.
    """
    if cfg.training_mode() == "end_to_end":
        tr = ds.indices("train")
        train_end_to_end(
            model, np.asarray(ds.images[tr]), ds.labels(tr), epochs=cfg.epochs, seed=cfg.seed, progress=progress
        )
    feats: dict[str, np.ndarray] = {}
    isets = {}
    for split in ("train", "val", "test_debiased"):
        isets[split] = ds.image_set(ds.indices(split), name=f"{ds.info.name}:{split}")
        feats[split] = cache.get(model, feat_layer, isets[split], progress=progress)[feat_layer]
    if cfg.training_mode() == "head":
        if progress:
            progress("training head", 0, 1)
        y_train = ds.labels(ds.indices("train"))
        w, b = fit_linear_head(
            feats["train"].reshape(len(y_train), -1), y_train, len(ds.classes), l2=cfg.head_l2, seed=cfg.seed
        )
        set_linear_head(model, w, b)
        # The features lie below the head: re-key them under the trained model's id.
        for split, arr in feats.items():
            cache.put(model, feat_layer, isets[split], arr)
        if progress:
            progress("training head", 1, 1)
    return feats


def _feature_probas(
    model: ClassifierModel, feat_layer: str, feats: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Class probabilities of ``val`` and ``test_debiased`` from the cached pooled features.

    The head is linear on them, so no second forward pass through the network is needed.
    """
    probas = {}
    for split in ("val", "test_debiased"):
        with torch.inference_mode():
            logits = model.forward_from(feat_layer, torch.as_tensor(np.asarray(feats[split])))
            probas[split] = torch.softmax(logits, dim=1).numpy()
    return probas


def _register_in_store(workspace: Workspace, model: ClassifierModel, ds: Dataset) -> None:
    from store import Actor, Store

    actor = Actor.from_os_user("engineer")
    store = Store.for_workspace(workspace.root)
    with store.session():
        store.register_model(
            actor, model.model_id, model.architecture, model.weights_sha256,
            meta={"classes": list(model.classes), "preprocess": model.preprocess.key()},
        )
        store.register_dataset(
            actor, ds.info.name, ds.info.content_hash,
            splits={s: len(ds.indices(s)) for s in ds.splits},
            meta={"kind": ds.info.kind, "n": len(ds)},
        )


def analyse_workspace(
    workspace: Workspace, *, runs: int = 20, progress: ProgressFn | None = None
) -> dict[str, Any]:
    """Precompute what the UI shows, so that no page makes its user wait on first open.

    TCAV with significance (``results/tcav.parquet``), the model and data set registered in
    the store, the artifact flip rates, and what :func:`workbench.services._precompute.precompute_pages`
    adds (evaluation, confounder report, clusters). A step that cannot run on this workspace
    (e.g. TCAV with no concept) is skipped with a note in ``notes``. Returns a short summary
    (also the manifest's ``analysis``) with the wall time in ``seconds``.
    """
    from concepts import WorkbenchError
    from concepts.tcav import run_tcav
    from graph import workspace_flip_rates
    from workbench.services._precompute import precompute_pages

    t0 = time.perf_counter()
    notes: list[str] = []
    out: dict[str, Any] = {"tcav_rows": 0, "tcav_significant": 0}
    try:
        table = run_tcav(workspace, runs=runs, progress=progress).table
        out["tcav_rows"] = len(table)
        out["tcav_significant"] = int(table["significant"].sum()) if len(table) else 0
    except WorkbenchError as exc:  # e.g. no concept columns: the other analyses still run
        notes.append(f"TCAV not precomputed: {' '.join(str(exc).split())}")
    ds = workspace.dataset()
    _register_in_store(workspace, workspace.model(), ds)
    # the confounder report's reliance: counterfactual flip rates of every annotated artifact,
    # cached in results/ so that no page or command waits on them later
    flips = workspace_flip_rates(workspace, ds)
    out["flip_rate_artifacts"] = 0 if flips is None else len(flips)
    # what a page would compute on first visit: evaluation, confounder report, clusters
    pages = precompute_pages(workspace, progress=progress)
    out.update(pages, notes=notes + pages["notes"], seconds=round(time.perf_counter() - t0, 2))
    workspace.update_manifest(analysis=out)
    return out


def load_summary(workspace: Workspace) -> dict[str, Any]:
    """The stored demo summary of a workspace."""
    man = workspace.manifest()
    if "demo_summary" not in man:
        raise WorkspaceError(f"{workspace.root} has no demo summary — run `workbench demo --no-serve`")
    return dict(man["demo_summary"])


def workspace_path(path: str | Path) -> Workspace:
    return Workspace(path)
