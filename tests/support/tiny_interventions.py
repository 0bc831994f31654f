"""A tiny-cnn model, random images and hand-made concept directions for the fast intervention
tests (tests/interventions/test_interventions.py, test_interventions_head.py)."""

from __future__ import annotations

import numpy as np

from concepts import ClassifierModel
from interventions import ConceptDirection, ConceptEdit, InterventionSpec, Scope

__all__ = ["CLASSES", "direction", "direction_pair", "random_images", "spec_of", "tiny_model", "unit"]

CLASSES = ("melanoma", "nevus")


def tiny_model(seed: int = 0) -> ClassifierModel:
    return ClassifierModel.build("tiny-cnn", CLASSES, seed=seed)


def random_images(n: int = 12, seed: int = 0, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def direction(model: ClassifierModel, layer: str, vec: np.ndarray, name: str, mu0: float = 0.1,
               mu1: float | None = 1.0) -> ConceptDirection:
    return ConceptDirection(f"{name}@v1", name, layer, model.model_id, unit(vec), mu0=mu0, mu1=mu1)


def direction_pair(model: ClassifierModel, layer: str, dim: int, cos: float = 0.6, seed: int = 0
          ) -> tuple[ConceptDirection, ConceptDirection]:
    """Two unit directions with cosine ``cos``."""
    rng = np.random.default_rng(seed)
    a = unit(rng.standard_normal(dim))
    r = rng.standard_normal(dim)
    r -= (r @ a) * a
    b = cos * a + np.sqrt(1 - cos**2) * unit(r)
    return direction(model, layer, a, "ink", 0.2, 1.5), direction(model, layer, b, "ruler", -0.3, 0.8)


def spec_of(model: ClassifierModel, layer: str, *edits: ConceptEdit, scope: Scope | None = None) -> InterventionSpec:
    return InterventionSpec(model.model_id, layer, tuple(edits), scope or Scope())
