"""A synthetic linear domain with a planted ink shortcut, and a staged linear model on its
features (tests/interventions/test_interventions.py, tests/interventions/test_fix.py)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from concepts import ClassifierModel
from concepts.models import Preprocessing, StagedNet

__all__ = ["CLASSES", "linear_domain", "linear_model"]

CLASSES = ("melanoma", "nevus")


def linear_model(w: np.ndarray, b: np.ndarray, name: str = "linear") -> ClassifierModel:
    """A staged model whose ``pool`` stage is the identity on feature vectors (synthetic tests)."""
    fc = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        fc.weight.copy_(torch.as_tensor(w))
        fc.bias.copy_(torch.as_tensor(b))
    module = StagedNet([("pool", nn.Identity()), ("fc", fc)])
    return ClassifierModel(module, name, CLASSES, Preprocessing(size=8))


def linear_domain(rng: np.random.Generator, n: int, ink_on: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features: e0 = lesion signal (+ melanoma), e1 = ink (3.0 when drawn), e2 = streaks (melanoma)."""
    y = rng.integers(0, 2, n)
    ink = (rng.random(n) < np.where(y == ink_on, 0.6, 0.05)).astype(int)
    X = rng.standard_normal((n, 6)).astype(np.float32) * 0.7
    X[:, 0] += np.where(y == 0, 1.0, -1.0)
    X[:, 1] += 3.0 * ink
    X[:, 2] += np.where(y == 0, 1.0, 0.0) + 0.3 * rng.standard_normal(n)
    return X, y, ink
