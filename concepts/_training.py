"""Training the classifier under study: a linear head on frozen features, or a small CNN end to end."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from concepts._errors import ModelError
from concepts._models import ClassifierModel, StagedNet

__all__ = ["fit_linear_head", "set_linear_head", "train_end_to_end"]


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


def train_end_to_end(
    model: ClassifierModel,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int = 8,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> ClassifierModel:
    """Train every parameter of ``model`` with Adam (small models such as ``tiny-cnn``)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x_all = model.preprocess(images)
    y_all = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    opt = torch.optim.Adam(model.module.parameters(), lr=lr)
    model.module.train()
    n = len(y_all)
    for ep in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model.module(x_all[idx]), y_all[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
        if progress is not None:
            progress("training", ep + 1, epochs)
    model.module.eval()
    model.invalidate_id()
    return model
