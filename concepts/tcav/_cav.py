"""Concept activation vectors: unit directions separating a concept's examples from a negative set.

A :class:`CAV` is one trained direction; a :class:`CAVSet` holds the R CAVs of one (concept, layer),
one per run. :class:`CAVTrainer` (scikit-learn style) and :func:`fit_cavs` train them with the
batched probes of :mod:`concepts.tcav._probes` (``pattern``, ``ridge``, ``logistic``, ``sgd``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from concepts._errors import ConceptError
from concepts.tcav._probes import ProbeTask, fit_cav_batch

__all__ = [
    "CAV",
    "CAVSet",
    "CAVTrainer",
    "cav_cosine",
    "fit_cavs",
    "mean_pairwise_cosine",
]


# --------------------------------------------------------------------------- one CAV
@dataclass(frozen=True)
class CAV:
    """A trained concept activation vector.

    ``vector`` is unit length in the flattened activation space of ``layer``; the probe's
    decision function is ``vector @ h + intercept`` (a signed distance).
    """

    concept: str
    negative: str
    layer: str
    probe: str
    vector: np.ndarray = field(repr=False)
    intercept: float
    accuracy: float
    n_pos: int
    n_neg: int
    seed: int

    def score(self, acts: np.ndarray) -> np.ndarray:
        """Signed distances of activations ``(N, ...)`` to the probe's hyperplane."""
        flat = np.asarray(acts, dtype=np.float32).reshape(len(acts), -1)
        return flat @ self.vector + self.intercept  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (the vector as a list)."""
        return {
            "concept": self.concept,
            "negative": self.negative,
            "layer": self.layer,
            "probe": self.probe,
            "vector": self.vector.astype(float).tolist(),
            "intercept": float(self.intercept),
            "accuracy": float(self.accuracy),
            "n_pos": self.n_pos,
            "n_neg": self.n_neg,
            "seed": self.seed,
        }


# --------------------------------------------------------------------------- estimator
class CAVTrainer:
    """Scikit-learn-style estimator of one CAV.

    Parameters
    ----------
    probe
        ``pattern``, ``ridge``, ``logistic`` or ``sgd``.
    alpha
        Regularisation strength (relative ridge penalty / inverse of logistic ``C`` / SGD alpha).
    test_size
        Held-out share of each (balanced) class for the accuracy.
    random_state
        Seed of the balancing, the split and stochastic probes.

    Attributes
    ----------
    vector_ : ndarray
        Unit-length CAV.
    coef_ : ndarray
        The same direction (kept for scikit-learn familiarity; unit length).
    intercept_ : float
        Intercept of the unit-norm decision function.
    accuracy_ : float
        Held-out accuracy.
    n_pos_, n_neg_ : int
        Balanced example counts.
    """

    def __init__(
        self,
        probe: str = "pattern",
        *,
        alpha: float = 1.0,
        test_size: float = 0.3,
        random_state: int = 0,
    ):
        self.probe = probe
        self.alpha = alpha
        self.test_size = test_size
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> CAVTrainer:
        """Fit on activations ``X`` ``(N, ...)`` and labels ``y`` (1 = concept, 0 = negative)."""
        yy = np.asarray(y).astype(int).reshape(-1)
        if len(yy) != len(X):
            raise ConceptError(f"{len(X)} activation rows but {len(yy)} labels")
        task = ProbeTask(np.flatnonzero(yy == 1), np.flatnonzero(yy == 0), self.random_state)
        batch = fit_cav_batch(X, [task], probe=self.probe, alpha=self.alpha, test_size=self.test_size)
        self.vector_ = batch.vectors[0]
        self.coef_ = self.vector_.astype(np.float64)
        self.intercept_ = float(batch.intercepts[0])
        self.accuracy_ = float(batch.accuracies[0])
        self.n_pos_, self.n_neg_ = int(batch.n_pos[0]), int(batch.n_neg[0])
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Signed distances of ``X`` to the hyperplane."""
        Xf = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        return Xf @ self.vector_ + self.intercept_  # type: ignore[no-any-return]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 where the concept is predicted present, else 0."""
        return (self.decision_function(X) > 0).astype(int)

    def to_cav(self, concept: str, negative: str, layer: str) -> CAV:
        """The fitted probe as a :class:`CAV`."""
        return CAV(
            concept=concept,
            negative=negative,
            layer=layer,
            probe=self.probe,
            vector=self.vector_,
            intercept=self.intercept_,
            accuracy=self.accuracy_,
            n_pos=self.n_pos_,
            n_neg=self.n_neg_,
            seed=self.random_state,
        )


def fit_cavs(
    tasks: Sequence[tuple[str, str, str, np.ndarray, np.ndarray]],
    *,
    probe: str = "pattern",
    alpha: float = 1.0,
    test_size: float = 0.3,
    random_state: int = 0,
) -> list[CAV]:
    """Train many CAVs in batched form: ``tasks`` are ``(concept, negative, layer, X_pos, X_neg)``.

    Tasks of the same layer are stacked into one pool and trained with :func:`fit_cav_batch`;
    task ``i`` uses seed ``random_state + i`` (the same CAV as ``CAVTrainer(random_state=...)``).
    """
    out: list[CAV | None] = [None] * len(tasks)
    by_layer: dict[str, list[int]] = {}
    for i, t in enumerate(tasks):
        by_layer.setdefault(t[2], []).append(i)
    for layer, ids in by_layer.items():
        blocks: list[np.ndarray] = []
        ptasks: list[ProbeTask] = []
        off = 0
        for i in ids:
            xp = np.asarray(tasks[i][3], dtype=np.float32)
            xn = np.asarray(tasks[i][4], dtype=np.float32)
            blocks += [xp.reshape(len(xp), -1), xn.reshape(len(xn), -1)]
            ptasks.append(
                ProbeTask(np.arange(off, off + len(xp)), np.arange(off + len(xp), off + len(xp) + len(xn)), random_state + i)
            )
            off += len(xp) + len(xn)
        batch = fit_cav_batch(np.concatenate(blocks), ptasks, probe=probe, alpha=alpha, test_size=test_size)
        for j, i in enumerate(ids):
            out[i] = CAV(
                concept=tasks[i][0],
                negative=tasks[i][1],
                layer=layer,
                probe=probe,
                vector=batch.vectors[j],
                intercept=float(batch.intercepts[j]),
                accuracy=float(batch.accuracies[j]),
                n_pos=int(batch.n_pos[j]),
                n_neg=int(batch.n_neg[j]),
                seed=random_state + i,
            )
    return [c for c in out if c is not None]


# --------------------------------------------------------------------------- stability
def cav_cosine(a: CAV | np.ndarray, b: CAV | np.ndarray) -> float:
    """Cosine similarity of two CAVs (or vectors)."""
    va = (a.vector if isinstance(a, CAV) else np.asarray(a)).reshape(-1).astype(np.float64)
    vb = (b.vector if isinstance(b, CAV) else np.asarray(b)).reshape(-1).astype(np.float64)
    den = float(np.linalg.norm(va) * np.linalg.norm(vb))
    return float(va @ vb / den) if den > 0 else float("nan")


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """Mean cosine over all pairs of rows of ``vectors`` (``nan`` for fewer than two rows)."""
    V = np.asarray(vectors, dtype=np.float64)
    if V.shape[0] < 2:
        return float("nan")
    V = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-30)
    G = V @ V.T
    n = V.shape[0]
    return float((G.sum() - np.trace(G)) / (n * (n - 1)))


# --------------------------------------------------------------------------- sets of runs
@dataclass(frozen=True)
class CAVSet:
    """The R CAVs of one (concept, layer): one per random counterpart / run.

    Attributes
    ----------
    concept, concept_id, layer, probe
        What was trained.
    negatives
        Name of each run's negative set (``random_1`` ... or the explicit negative set).
    vectors
        ``(R, D)`` unit vectors. ``shape`` is the layer's activation shape (for concept maps).
    intercepts, accuracies
        ``(R,)``.
    n_pos, n_neg
        Balanced example counts of the first run.
    """

    concept: str
    concept_id: str
    layer: str
    probe: str
    negatives: tuple[str, ...]
    vectors: np.ndarray = field(repr=False)
    intercepts: np.ndarray = field(repr=False)
    accuracies: np.ndarray = field(repr=False)
    shape: tuple[int, ...] = ()
    n_pos: int = 0
    n_neg: int = 0

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def stability(self) -> float:
        """Mean pairwise cosine between the runs' CAVs."""
        return mean_pairwise_cosine(self.vectors)

    def cavs(self) -> list[CAV]:
        """One :class:`CAV` per run."""
        return [
            CAV(self.concept, self.negatives[r], self.layer, self.probe, self.vectors[r],
                float(self.intercepts[r]), float(self.accuracies[r]), self.n_pos, self.n_neg, r)
            for r in range(len(self))
        ]

    def mean_cav(self) -> CAV:
        """The runs' mean direction (re-normalised) with the mean intercept and accuracy."""
        v = self.vectors.astype(np.float64).mean(0)
        norm = float(np.linalg.norm(v))
        if norm == 0.0:
            raise ConceptError(f"the CAVs of {self.concept!r} at {self.layer} cancel out")
        neg = self.negatives[0] if len(set(self.negatives)) == 1 else "random"
        return CAV(self.concept, neg, self.layer, self.probe, (v / norm).astype(np.float32),
                   float(np.mean(self.intercepts)), float(np.mean(self.accuracies)),
                   self.n_pos, self.n_neg, -1)

    def save(self, path: str | Path, **meta: Any) -> Path:
        """Write an ``.npz`` (vectors, intercepts, accuracies, JSON metadata); atomic."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        info = {
            "concept": self.concept, "concept_id": self.concept_id, "layer": self.layer,
            "probe": self.probe, "negatives": list(self.negatives), "shape": list(self.shape),
            "n_pos": self.n_pos, "n_neg": self.n_neg, **meta,
        }
        tmp = p.with_name(f".{p.stem}.tmp.npz")
        np.savez(tmp, vectors=self.vectors.astype(np.float32), intercepts=self.intercepts,
                 accuracies=self.accuracies, meta=np.array(json.dumps(info)))
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> CAVSet:
        """Read a set written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as z:
            info = json.loads(str(z["meta"]))
            return cls(
                concept=str(info["concept"]), concept_id=str(info["concept_id"]),
                layer=str(info["layer"]), probe=str(info["probe"]),
                negatives=tuple(info["negatives"]), vectors=z["vectors"].copy(),
                intercepts=z["intercepts"].copy(), accuracies=z["accuracies"].copy(),
                shape=tuple(int(s) for s in info.get("shape", [])),
                n_pos=int(info.get("n_pos", 0)), n_neg=int(info.get("n_neg", 0)),
            )
