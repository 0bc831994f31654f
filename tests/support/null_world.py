"""A null world of synthetic activations for the TCAV design tests: a random pool, random
"concepts" (and explicit negatives) drawn from the same distribution, and class gradients.

Shared by tests/concepts/tcav/test_tcav_design.py and test_tcav_statistic.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from concepts.tcav import ConceptSides

__all__ = ["N_CONCEPTS", "N_EX", "POOL", "D", "R", "null_world", "seed_of"]

D, R, POOL, N_CONCEPTS, N_EX = 32, 20, 400, 40, 40


def seed_of(seed: int) -> Callable[[str, int], int]:
    def f(cid: str, r: int) -> int:
        return int(hashlib.sha256(f"{seed}|{cid}|{r}".encode()).hexdigest()[:8], 16)

    return f


def null_world(mode: str, seed: int) -> tuple[np.ndarray, list[ConceptSides], np.ndarray]:
    """A pool, N_CONCEPTS random concepts (and negatives) from the same distribution, gradients."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(D, D)) / np.sqrt(D)

    def draw(n: int) -> np.ndarray:
        return rng.normal(size=(n, D)) @ mix + 0.5 * rng.normal(size=(n, D))

    blocks, sides, at = [draw(POOL)], [], POOL
    for i in range(N_CONCEPTS):
        blocks.append(draw(N_EX))
        pos, at = np.arange(at, at + N_EX), at + N_EX
        if mode == "negative":
            blocks.append(draw(N_EX))
            neg, at = np.arange(at, at + N_EX), at + N_EX
            sides.append(ConceptSides(f"c{i}", pos, neg))
        else:
            sides.append(ConceptSides(f"c{i}", pos))
    grads = rng.normal(size=D) + rng.normal(size=(200, D))  # a shared part plus per-input variation
    return np.concatenate(blocks).astype(np.float32), sides, grads
