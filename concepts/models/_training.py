"""Training the classifier under study: a linear head on frozen features, or a small CNN end to end."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from concepts._errors import DataError, ModelError
from concepts._progress import ProgressFn
from concepts.data import Dataset, RowView, take_rows
from concepts.models._activations import ActivationCache, extract_activations
from concepts.models._classifier import ClassifierModel
from concepts.models._compute import on_device
from concepts.models._metrics import ClassificationMetrics, classification_metrics
from concepts.models._networks import BUILTIN_ARCHITECTURES, Preprocessing, StagedNet

__all__ = [
    "TrainConfig",
    "TrainResult",
    "fit_linear_head",
    "set_linear_head",
    "train_classifier",
    "train_end_to_end",
]


def fit_linear_head(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    l2: float = 1e-3,
    max_iter: int = 300,
    class_balanced: bool = False,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression (softmax + L2) fitted with full-batch L-BFGS.

    Returns
    -------
    (W, b)
        ``W`` of shape ``(n_classes, D)`` and ``b`` of shape ``(n_classes,)``.
    """
    if len(features) != len(labels):
        raise ModelError(f"{len(features)} feature rows but {len(labels)} labels")
    present = np.unique(labels)
    if len(present) < 2:
        raise ModelError("training a classifier needs examples of at least two classes")
    torch.manual_seed(seed)
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    d = x.shape[1]
    w = torch.zeros(n_classes, d, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    weight = None
    if class_balanced:
        counts = torch.bincount(y, minlength=n_classes).float().clamp(min=1)
        weight = counts.sum() / (n_classes * counts)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(x @ w.T + b, y, weight=weight) + l2 * (w * w).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    return w.detach().numpy().copy(), b.detach().numpy().copy()


def set_linear_head(model: ClassifierModel, weight: np.ndarray, bias: np.ndarray) -> None:
    """Copy ``(W, b)`` into the final ``nn.Linear`` stage of a staged model."""
    module = model.module
    if not isinstance(module, StagedNet):
        raise ModelError("set_linear_head needs a staged network (built-in architectures)")
    fc = module.stages[module.stage_names[-1]]
    if not isinstance(fc, nn.Linear) or tuple(fc.weight.shape) != tuple(weight.shape):
        raise ModelError(f"last stage is not a Linear of shape {tuple(weight.shape)}")
    with torch.no_grad():
        fc.weight.copy_(torch.as_tensor(weight))
        fc.bias.copy_(torch.as_tensor(bias))
    model.invalidate_id()


#: Preprocessed training inputs up to this size are computed once and kept; larger ones are
#: preprocessed batch by batch, every epoch (the same tensors: preprocessing is per image).
PREPROCESS_ONCE_BYTES = 1 << 30


def _batch_inputs(model: ClassifierModel, images: np.ndarray | RowView, x_all: torch.Tensor | None,
                  idx: torch.Tensor) -> torch.Tensor:
    """The preprocessed inputs of rows ``idx``: from the kept tensor, or read and preprocessed now."""
    if x_all is not None:
        return x_all[idx]
    rows = idx.numpy()
    return model.preprocess(images[rows] if isinstance(images, RowView) else take_rows(images, rows))


def train_end_to_end(
    model: ClassifierModel,
    images: np.ndarray | RowView,
    labels: np.ndarray,
    *,
    epochs: int = 8,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
    class_balanced: bool = False,
    progress: ProgressFn | None = None,
    device: str | torch.device | None = None,
) -> ClassifierModel:
    """Train every parameter of ``model`` with Adam (small models such as ``tiny-cnn``);
    ``class_balanced`` weights the loss by inverse class frequency. ``device``: where the
    model trains (fp32; ``None``: where it is); it is back where it was afterwards. ``images``
    may be a ``RowView``: above :data:`PREPROCESS_ONCE_BYTES` of inputs, each batch is read and
    preprocessed when it is used, so memory does not grow with the number of images."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    once = len(images) * 3 * model.preprocess.size ** 2 * 4 <= PREPROCESS_ONCE_BYTES
    x_all = model.preprocess(np.asarray(images)) if once else None
    y_all = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    weight = None
    if class_balanced:
        k = len(model.classes)
        counts = torch.bincount(y_all, minlength=k).float().clamp(min=1)
        weight = counts.sum() / (k * counts)
    with on_device(model, device) as dev:
        opt = torch.optim.Adam(model.module.parameters(), lr=lr)
        model.module.train()
        n = len(y_all)
        w = None if weight is None else weight.to(dev)
        for ep in range(epochs):
            perm = torch.randperm(n, generator=g)
            for i in range(0, n, batch_size):
                idx = perm[i : i + batch_size]
                opt.zero_grad()
                logits = model.module(_batch_inputs(model, images, x_all, idx).to(dev))
                loss = nn.functional.cross_entropy(logits, y_all[idx].to(dev), weight=w)
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
            if progress is not None:
                progress("training", ep + 1, epochs)
        model.module.eval()
    model.invalidate_id()
    return model


# --------------------------------------------------------------------------- a classifier for a data set
#: Default input size per built-in architecture when training.
DEFAULT_TRAIN_SIZE = {"efficientnet-lite0": 224, "tiny-cnn": 64}


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train_classifier`.

    ``efficientnet-lite0`` trains a logistic head on frozen ImageNet features (stage ``pool``);
    ``tiny-cnn`` trains end to end. ``image_size`` defaults to 224 (EfficientNet) / 64 (tiny
    CNN), capped at the data set's stored size.
    """

    architecture: str = "efficientnet-lite0"
    image_size: int | None = None
    balanced: bool = True
    epochs: int = 10
    positive_class: str | None = None
    l2: float = 1e-3
    lr: float = 3e-3
    seed: int = 0


@dataclass(frozen=True)
class TrainResult:
    """A trained model and its metrics per evaluated split."""

    model: ClassifierModel
    metrics: dict[str, ClassificationMetrics]
    positive_class: str
    mode: str
    n_train: int
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "model_id": self.model.model_id,
            "architecture": self.model.architecture,
            "image_size": self.model.preprocess.size,
            "positive_class": self.positive_class,
            "mode": self.mode,
            "n_train": self.n_train,
            "seconds": round(self.seconds, 2),
            "metrics": {k: m.to_json() for k, m in self.metrics.items()},
            "config": self.config,
        }


def _check_train_config(dataset: Dataset, cfg: TrainConfig) -> tuple[str, int]:
    if cfg.architecture not in BUILTIN_ARCHITECTURES:
        raise ModelError(
            f"train builds a built-in architecture ({', '.join(sorted(BUILTIN_ARCHITECTURES))}), not "
            f"{cfg.architecture!r} — add your own trained model with `workbench models add`"
        )
    if "train" not in dataset.splits:
        raise DataError(f"data set {dataset.info.name!r} has no 'train' split (splits: {dataset.splits})")
    if len(np.unique(dataset.labels(dataset.indices("train")))) < 2:
        raise DataError(f"the train split of {dataset.info.name!r} holds fewer than two classes")
    pos = cfg.positive_class or ("melanoma" if "melanoma" in dataset.classes else dataset.classes[0])
    if pos not in dataset.classes:
        raise DataError(f"--positive-class {pos!r} is not a class of {dataset.info.name!r}: {list(dataset.classes)}")
    size = cfg.image_size or min(DEFAULT_TRAIN_SIZE[cfg.architecture], dataset.info.image_size)
    if not 16 <= size <= 1024:
        raise DataError(f"--image-size must be between 16 and 1024, got {size}")
    if cfg.epochs < 1:
        raise DataError("--epochs must be at least 1")
    return pos, size


def train_classifier(
    dataset: Dataset,
    config: TrainConfig | None = None,
    *,
    cache: ActivationCache | None = None,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train a built-in classifier on ``dataset``'s train split; metrics on ``val`` and ``test``.

    Parameters
    ----------
    dataset
        The data set (needs a ``train`` split with two classes or more).
    config
        Architecture, image size, class balancing, epochs, positive class.
    cache
        Activation cache for the frozen features (EfficientNet head); ``None``: computed in memory.
        Its ``compute`` also says where an end-to-end model trains (``--device``).
    progress
        ``progress(stage, done, total)``.

    Raises
    ------
    ModelError, DataError
        An architecture that is not built in, a data set without a usable train split, an
        unknown positive class.
    """
    cfg = config or TrainConfig()
    pos, size = _check_train_config(dataset, cfg)
    return _train(dataset, cfg, pos, size, cache, progress)


def _train(
    ds: Dataset, cfg: TrainConfig, pos: str, size: int, cache: ActivationCache | None, progress: ProgressFn | None
) -> TrainResult:
    t0 = time.perf_counter()
    pp = Preprocessing(size=size, mean=BUILTIN_ARCHITECTURES[cfg.architecture][1].mean,
                       std=BUILTIN_ARCHITECTURES[cfg.architecture][1].std)
    model = ClassifierModel.build(cfg.architecture, ds.classes, preprocess=pp, seed=cfg.seed)
    mode = "head" if cfg.architecture == "efficientnet-lite0" else "end_to_end"
    tr = ds.indices("train")
    splits: list[str] = [s for s in ("val", "test") if s in ds.splits and len(ds.indices(s))] or ["train"]
    if mode == "end_to_end":
        with on_device(model, cache.compute.device if cache is not None else None):
            train_end_to_end(model, RowView(ds.images, tr), ds.labels(tr), epochs=cfg.epochs, lr=cfg.lr,
                             seed=cfg.seed, class_balanced=cfg.balanced, progress=progress)
            probas = {s: model.predict_proba(RowView(ds.images, ds.indices(s))) for s in splits}
    else:
        probas = _train_head(model, ds, cfg, splits, cache, progress)
    metrics = {
        s: classification_metrics(ds, ds.indices(s), probas[s], positive_class=pos,
                                  group_artifacts=[a for a in ds.info.artifacts if a in ds.cases.columns])
        for s in splits
    }
    cfg_json = {"architecture": cfg.architecture, "image_size": size, "balanced": cfg.balanced,
                "epochs": cfg.epochs if mode == "end_to_end" else None, "l2": cfg.l2, "seed": cfg.seed,
                "dataset": ds.info.name, "dataset_hash": ds.info.content_hash}
    return TrainResult(model, metrics, pos, mode, len(tr), time.perf_counter() - t0, cfg_json)


def _train_head(
    model: ClassifierModel, ds: Dataset, cfg: TrainConfig, splits: list[str],
    cache: ActivationCache | None, progress: ProgressFn | None,
) -> dict[str, np.ndarray]:
    """Logistic head on frozen ``pool`` features; returns class probabilities per split."""
    layer = "pool"
    feats: dict[str, np.ndarray] = {}
    isets = {}
    for split in ["train", *splits]:
        idx = ds.indices(split)
        isets[split] = ds.image_set(idx, name=f"{ds.info.name}:{split}")
        if cache is not None:
            feats[split] = cache.get(model, layer, isets[split], progress=progress)[layer]
        else:
            feats[split] = extract_activations(model, RowView(ds.images, idx), [layer])[layer]
    y = ds.labels(ds.indices("train"))
    if progress:
        progress("training head", 0, 1)
    w, b = fit_linear_head(feats["train"].reshape(len(y), -1), y, len(ds.classes), l2=cfg.l2,
                           class_balanced=cfg.balanced, seed=cfg.seed)
    set_linear_head(model, w, b)
    if progress:
        progress("training head", 1, 1)
    if cache is not None:  # the features lie below the head: re-key them under the trained model's id
        for split, arr in feats.items():
            cache.put(model, layer, isets[split], arr)
    out = {}
    with torch.inference_mode():
        for split in splits:
            logits = model.forward_from(layer, torch.as_tensor(np.asarray(feats[split])))
            out[split] = torch.softmax(logits, dim=1).numpy()
    return out
