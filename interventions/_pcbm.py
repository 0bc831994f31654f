"""A concept-space head (PCBM-style) and the interventions on it.

The head is a sparse linear model (L1 logistic regression, scikit-learn) on concept scores:
the signed distance of an activation to each concept's mid-level hyperplane,
``s_c = h·v_c - (mu0_c + mu1_c) / 2``. Interventions act on the scores or on the head:
``set`` a concept's score to a value (``absent``/``present`` reference or a number), ``scale``
it, or ``zero_weight`` (drop its weight column). A neutral edit list gives exactly the
original outputs. :func:`intervention_curve` is the concept-bottleneck test-time intervention:
accuracy against the number of concepts replaced by their true values, averaged over random
orders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

from interventions._spec import ConceptDirection, InterventionError

__all__ = ["HEAD_OPERATIONS", "ConceptHead", "HeadEdit", "intervention_curve", "pcbm_concept_scores"]

_SKLEARN = tuple(int(p) for p in sklearn.__version__.split(".")[:2] if p.isdigit())

#: Operations on a concept-space head.
HEAD_OPERATIONS: tuple[str, ...] = ("set", "scale", "zero_weight")


def pcbm_concept_scores(acts: np.ndarray, directions: Sequence[ConceptDirection]) -> np.ndarray:
    """Concept scores ``(N, K)``: signed distance to each concept's mid-level hyperplane."""
    if not directions:
        raise InterventionError("pcbm_concept_scores needs at least one concept direction")
    flat = np.asarray(acts, dtype=np.float32).reshape(len(acts), -1)
    V = np.stack([d.vector for d in directions], axis=1)
    if flat.shape[1] != V.shape[0]:
        raise InterventionError(f"activations have {flat.shape[1]} values, the directions {V.shape[0]}")
    mid = np.array([(d.mu0 + (d.mu1 if d.mu1 is not None else d.mu0)) / 2 for d in directions], np.float32)
    return flat @ V - mid  # type: ignore[no-any-return]


@dataclass(frozen=True)
class HeadEdit:
    """One edit of a concept-space head.

    Parameters
    ----------
    concept
        Concept name (a column of the head).
    operation
        ``set`` (score := ``value``), ``scale`` (score *= ``value``) or ``zero_weight``.
    value
        For ``set``: a number, ``"absent"`` or ``"present"`` (the concept's reference scores);
        for ``scale``: the factor (1 is neutral).
    """

    concept: str
    operation: str
    value: float | str | None = None

    def __post_init__(self) -> None:
        if self.operation not in HEAD_OPERATIONS:
            raise InterventionError(
                f"unknown head operation {self.operation!r}; use one of {', '.join(HEAD_OPERATIONS)}"
            )
        if self.operation == "set" and not (
            self.value in ("absent", "present") or isinstance(self.value, int | float)
        ):
            raise InterventionError(f"set {self.concept!r}: value must be a number, 'absent' or 'present'")
        if self.operation == "scale" and not isinstance(self.value, int | float):
            raise InterventionError(f"scale {self.concept!r}: value must be a number")


class ConceptHead:
    """Sparse logistic regression on concept scores (PCBM-style head).

    Parameters
    ----------
    C
        Inverse L1 strength (smaller: sparser).
    max_iter
        Solver iterations.
    random_state
        Seed of the solver.

    Attributes
    ----------
    concepts_ : tuple of str
        Concept names, in column order.
    coef_ : ndarray
        ``(n_classes, K)`` weights (binary problems: row 1 is the positive logit, row 0 zeros).
    intercept_ : ndarray
        ``(n_classes,)``.
    absent_, present_ : ndarray
        Reference scores per concept (mean score of training rows without / with it when
        known, else the 10th / 90th percentile).
    """

    def __init__(self, C: float = 1.0, *, max_iter: int = 5000, random_state: int = 0):
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(
        self,
        scores: np.ndarray,
        labels: np.ndarray,
        concepts: Sequence[str],
        *,
        presence: np.ndarray | None = None,
    ) -> ConceptHead:
        """Fit on concept scores ``(N, K)`` and class indices; ``presence`` ``(N, K)`` 0/1
        annotations (optional) give the absent/present reference scores."""
        S = np.asarray(scores, dtype=np.float64)
        y = np.asarray(labels, dtype=np.int64)
        if S.ndim != 2 or S.shape[1] != len(concepts):
            raise InterventionError(f"scores must be (N, {len(concepts)}), got {S.shape}")
        if len(np.unique(y)) < 2:
            raise InterventionError("a concept head needs examples of at least two classes")
        n_classes = int(y.max()) + 1
        solver = "liblinear" if n_classes == 2 else "saga"
        l1: dict[str, Any] = {"l1_ratio": 1.0} if _SKLEARN >= (1, 8) else {"penalty": "l1"}
        clf = LogisticRegression(
            C=self.C, solver=solver, max_iter=self.max_iter, random_state=self.random_state, **l1
        )
        clf.fit(S, y)
        if n_classes == 2:
            self.coef_ = np.vstack([np.zeros(S.shape[1]), clf.coef_[0]])
            self.intercept_ = np.array([0.0, float(clf.intercept_[0])])
        else:
            self.coef_ = clf.coef_.astype(np.float64)
            self.intercept_ = clf.intercept_.astype(np.float64)
        self.concepts_ = tuple(concepts)
        lo, hi = np.percentile(S, 10, axis=0), np.percentile(S, 90, axis=0)
        if presence is not None:
            P = np.asarray(presence).astype(bool)
            lo = np.array([S[~P[:, k], k].mean() if (~P[:, k]).any() else lo[k] for k in range(S.shape[1])])
            hi = np.array([S[P[:, k], k].mean() if P[:, k].any() else hi[k] for k in range(S.shape[1])])
        self.absent_, self.present_ = lo, hi
        return self

    def _col(self, concept: str) -> int:
        if concept not in self.concepts_:
            raise InterventionError(f"unknown concept {concept!r}; the head has {', '.join(self.concepts_)}")
        return self.concepts_.index(concept)

    def edit(self, scores: np.ndarray, edits: Sequence[HeadEdit]) -> tuple[np.ndarray, np.ndarray]:
        """Edited scores and weights (copies; the head itself is never changed)."""
        S = np.array(scores, dtype=np.float64, copy=True)
        W = self.coef_.copy()
        for e in edits:
            k = self._col(e.concept)
            if e.operation == "set":
                v = e.value
                S[:, k] = self.absent_[k] if v == "absent" else self.present_[k] if v == "present" else float(v)  # type: ignore[arg-type]
            elif e.operation == "scale":
                S[:, k] *= float(e.value)  # type: ignore[arg-type]
            else:
                W[:, k] = 0.0
        return S, W

    def decision_function(self, scores: np.ndarray, edits: Sequence[HeadEdit] = ()) -> np.ndarray:
        """Logits ``(N, n_classes)``; with no edits (or neutral ones) exactly the original."""
        if not edits or all(e.operation == "scale" and float(e.value) == 1.0 for e in edits):  # type: ignore[arg-type]
            S, W = np.asarray(scores, dtype=np.float64), self.coef_
        else:
            S, W = self.edit(scores, edits)
        return S @ W.T + self.intercept_  # type: ignore[no-any-return]

    def predict_proba(self, scores: np.ndarray, edits: Sequence[HeadEdit] = ()) -> np.ndarray:
        z = self.decision_function(scores, edits)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    def predict(self, scores: np.ndarray, edits: Sequence[HeadEdit] = ()) -> np.ndarray:
        return self.decision_function(scores, edits).argmax(axis=1)  # type: ignore[no-any-return]

    @property
    def sparsity(self) -> float:
        """Share of zero weights."""
        return float(np.mean(self.coef_[-1] == 0.0)) if self.coef_.shape[0] == 2 else float(np.mean(self.coef_ == 0))


def intervention_curve(
    head: ConceptHead,
    scores: np.ndarray,
    presence: np.ndarray,
    labels: np.ndarray,
    *,
    concepts: Sequence[str] | None = None,
    n_orders: int = 20,
    seed: int = 0,
) -> np.ndarray:
    """Test-time intervention: accuracy after replacing 0..K concepts by their true values.

    ``presence`` ``(N, K)`` holds the true 0/1 concepts; a replaced score becomes the head's
    present or absent reference. Averaged over ``n_orders`` random orders of the concepts.

    Returns
    -------
    ndarray
        ``(K + 1,)`` mean accuracy with 0, 1, ..., K concepts intervened on.
    """
    names = list(concepts) if concepts is not None else list(head.concepts_)
    P = np.asarray(presence).astype(bool)
    y = np.asarray(labels, dtype=np.int64)
    if P.shape != (len(y), len(names)):
        raise InterventionError(f"presence must be (N, {len(names)}), got {P.shape}")
    cols = [head._col(c) for c in names]
    rng = np.random.default_rng(seed)
    acc = np.zeros(len(names) + 1)
    for _ in range(n_orders):
        S = np.array(scores, dtype=np.float64, copy=True)
        acc[0] += np.mean(head.predict(S) == y)
        for j, i in enumerate(rng.permutation(len(names))):
            k = cols[i]
            S[:, k] = np.where(P[:, i], head.present_[k], head.absent_[k])
            acc[j + 1] += np.mean(head.predict(S) == y)
    return acc / n_orders
