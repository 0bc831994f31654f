"""Concept activation vectors: linear probes separating a concept's examples from a negative set.

Probes
------
``pattern``
    Closed form: v = mean(pos) - mean(neg) (for balanced sets the Haufe pattern cov(h, y) up to
    scale). Stable, and the right direction for *removing* a concept.
``ridge``
    Ridge regression on ±1 targets, solved in the dual on the N x N Gram matrix when the features
    are wider than the example count.
``logistic``
    L2 logistic regression (scikit-learn, lbfgs).
``sgd``
    Hinge-loss SGD as captum and the original TCAV use (seeded here).

Every CAV is unit length, trained on a balanced, stratified split and scored on held-out data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import train_test_split

from concepts._errors import ConceptError

__all__ = ["CAV", "PROBES", "CAVTrainer", "cav_cosine", "fit_cavs"]

Probe = Literal["pattern", "ridge", "logistic", "sgd"]
PROBES: tuple[str, ...] = ("pattern", "ridge", "logistic", "sgd")


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


def _balance(
    pos: np.ndarray, neg: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(pos), len(neg))
    if n < 4:
        raise ConceptError(
            f"a CAV needs at least 4 positive and 4 negative examples (got {len(pos)} and {len(neg)}) "
            "— add examples to the concept"
        )
    if len(pos) > n:
        pos = pos[np.sort(rng.choice(len(pos), n, replace=False))]
    if len(neg) > n:
        neg = neg[np.sort(rng.choice(len(neg), n, replace=False))]
    return pos, neg


class CAVTrainer:
    """Scikit-learn-style estimator of one CAV.

    Parameters
    ----------
    probe
        ``pattern``, ``ridge``, ``logistic`` or ``sgd``.
    alpha
        Regularisation strength (ridge penalty / inverse of logistic ``C`` / SGD alpha).
    test_size
        Held-out share of each (balanced) class for the accuracy.
    random_state
        Seed of the balancing, the split and stochastic probes.

    Attributes
    ----------
    coef_ : ndarray
        Raw weight vector.
    vector_ : ndarray
        Unit-length CAV.
    intercept_ : float
        Intercept of the unit-norm decision function.
    accuracy_ : float
        Held-out accuracy.
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
        if self.probe not in PROBES:
            raise ConceptError(f"unknown probe {self.probe!r}; choose one of {list(PROBES)}")
        rng = np.random.default_rng(self.random_state)
        Xf = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        y = np.asarray(y).astype(int)
        pos, neg = _balance(Xf[y == 1], Xf[y == 0], rng)
        Xb = np.concatenate([pos, neg])
        yb = np.concatenate([np.ones(len(pos), int), np.zeros(len(neg), int)])
        Xtr, Xte, ytr, yte = train_test_split(
            Xb, yb, test_size=self.test_size, stratify=yb, random_state=self.random_state
        )
        w, b = _fit_probe(self.probe, Xtr, ytr, self.alpha, self.random_state)
        norm = float(np.linalg.norm(w))
        if not np.isfinite(norm) or norm == 0.0:
            raise ConceptError("the probe found no direction (identical positive and negative examples?)")
        self.coef_ = w
        self.vector_ = (w / norm).astype(np.float32)
        self.intercept_ = float(b / norm)
        pred = (Xte @ self.vector_ + self.intercept_) > 0
        self.accuracy_ = float(np.mean(pred == (yte == 1)))
        self.n_pos_, self.n_neg_ = len(pos), len(neg)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        Xf = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        return Xf @ self.vector_ + self.intercept_  # type: ignore[no-any-return]

    def to_cav(self, concept: str, negative: str, layer: str) -> CAV:
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


def _fit_probe(
    probe: str, X: np.ndarray, y: np.ndarray, alpha: float, seed: int
) -> tuple[np.ndarray, float]:
    if probe == "pattern":
        mp, mn = X[y == 1].mean(0), X[y == 0].mean(0)
        w = (mp - mn).astype(np.float64)
        b = -float(w @ (mp + mn) / 2.0)
        return w, b
    if probe == "ridge":
        t = np.where(y == 1, 1.0, -1.0)
        mu = X.mean(0)
        Xc = (X - mu).astype(np.float64)
        tc = t - t.mean()
        n, d = Xc.shape
        if d > n:  # dual: w = Xc^T (Xc Xc^T + a I)^-1 t
            K = Xc @ Xc.T
            a = np.linalg.solve(K + alpha * np.eye(n), tc)
            w = Xc.T @ a
        else:
            w = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(d), Xc.T @ tc)
        b = float(t.mean() - mu @ w)
        return w, b
    if probe == "logistic":
        clf = LogisticRegression(C=1.0 / alpha, max_iter=1000, random_state=seed)
        clf.fit(X, y)
        return clf.coef_[0].astype(np.float64), float(clf.intercept_[0])
    clf2 = SGDClassifier(loss="hinge", alpha=0.01 * alpha, max_iter=1000, tol=1e-3, random_state=seed)
    clf2.fit(X, y)
    return clf2.coef_[0].astype(np.float64), float(clf2.intercept_[0])


def fit_cavs(
    tasks: Sequence[tuple[str, str, str, np.ndarray, np.ndarray]],
    *,
    probe: str = "pattern",
    alpha: float = 1.0,
    test_size: float = 0.3,
    random_state: int = 0,
) -> list[CAV]:
    """Train many CAVs: ``tasks`` are ``(concept, negative, layer, X_pos, X_neg)`` tuples."""
    out = []
    for i, (concept, negative, layer, xp, xn) in enumerate(tasks):
        X = np.concatenate([np.asarray(xp).reshape(len(xp), -1), np.asarray(xn).reshape(len(xn), -1)])
        y = np.concatenate([np.ones(len(xp), int), np.zeros(len(xn), int)])
        tr = CAVTrainer(probe, alpha=alpha, test_size=test_size, random_state=random_state + i)
        out.append(tr.fit(X, y).to_cav(concept, negative, layer))
    return out


def cav_cosine(a: CAV | np.ndarray, b: CAV | np.ndarray) -> float:
    """Cosine similarity of two CAVs (or vectors)."""
    va = a.vector if isinstance(a, CAV) else np.asarray(a)
    vb = b.vector if isinstance(b, CAV) else np.asarray(b)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))
