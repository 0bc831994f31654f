"""Linear probes behind every CAV, trained many at a time on one shared pool of activations.

Probes
------
``pattern``
    Closed form: v = mean(pos) - mean(neg) (for balanced sets the Haufe pattern cov(h, y) up to
    scale). Stable, and the right direction for *removing* a concept.
``ridge``
    Ridge regression on ±1 targets, solved in the dual on the N x N Gram matrix when the features
    are wider than the example count. The penalty is relative: ``alpha`` times the mean diagonal
    of the centred Gram matrix, so it does not depend on the activations' scale.
``logistic``
    L2 logistic regression (scikit-learn, lbfgs).
``sgd``
    Hinge-loss SGD as captum and the original TCAV use (seeded here).

Every CAV is unit length, trained on a balanced, stratified split and scored on held-out data.

Batched training
----------------
:func:`fit_cav_batch` trains many probes that share one pool of activation rows, each probe
given as row indices (a :class:`ProbeTask`). The closed-form probes are solved for all tasks at
once: the pattern CAVs are one sparse-times-dense matrix product of a coefficient matrix over
the pool with the activations; the ridge CAVs share the pool's Gram matrix (the per-task systems
are stacked and solved in one batched ``solve``) and again come out of one matrix product. The
classic probes (``logistic``, ``sgd``) are fitted one task at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy import sparse
from threadpoolctl import threadpool_limits

from concepts._errors import ConceptError
from concepts.bank import MIN_EXAMPLES
from concepts.tcav._choices import PROBES

__all__ = [
    "CAVBatch",
    "ProbeTask",
    "fit_cav_batch",
    "pool_gram",
]




# --------------------------------------------------------------------------- batched core
@dataclass(frozen=True)
class ProbeTask:
    """One probe to train on a shared pool of activation rows.

    Parameters
    ----------
    pos, neg
        Row indices into the pool of the concept's examples and of the negative examples.
    seed
        Seed of this task's balancing and held-out split.
    paired
        ``pos[i]`` and ``neg[i]`` are counterfactual twins: they are kept on the same side of the
        held-out split (a twin left in training with the opposite label makes the held-out
        accuracy fall below chance).
    """

    pos: np.ndarray
    neg: np.ndarray
    seed: int = 0
    paired: bool = False


@dataclass(frozen=True)
class CAVBatch:
    """Many CAVs trained on one pool: row ``t`` belongs to task ``t``.

    Attributes
    ----------
    vectors
        ``(T, D)`` float32 unit vectors.
    intercepts, accuracies
        ``(T,)`` intercepts of the unit-norm decision functions and held-out accuracies.
    n_pos, n_neg
        ``(T,)`` balanced example counts per side.
    probe
        The probe used.
    """

    vectors: np.ndarray
    intercepts: np.ndarray
    accuracies: np.ndarray
    n_pos: np.ndarray
    n_neg: np.ndarray
    probe: str

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


def _split_task(task: ProbeTask, test_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Balance a task and split each side into train/held-out rows (stratified)."""
    rng = np.random.default_rng(task.seed)
    pos = np.asarray(task.pos, dtype=np.int64)
    neg = np.asarray(task.neg, dtype=np.int64)
    n = min(len(pos), len(neg))
    if n < MIN_EXAMPLES:
        raise ConceptError(
            f"a CAV needs at least {MIN_EXAMPLES} positive and {MIN_EXAMPLES} negative examples "
            f"(got {len(pos)} and {len(neg)}) — add examples to the concept"
        )
    if task.paired and len(pos) == len(neg):
        perm = rng.permutation(n)
        pos, neg = pos[perm], neg[perm]
    else:
        pos = rng.permutation(pos)[:n]
        neg = rng.permutation(neg)[:n]
    n_test = min(max(1, round(test_size * n)), n - 2)
    return pos[n_test:], neg[n_test:], pos[:n_test], neg[:n_test]


def _coef_matrix(rows: Sequence[np.ndarray], vals: Sequence[np.ndarray], m: int) -> sparse.csr_matrix:
    """Sparse ``(T, m)`` matrix with ``vals[t]`` at columns ``rows[t]`` of row ``t`` (summed)."""
    from scipy import sparse  # here, not at import: the CLI starts without scipy

    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    ind = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    dat = np.concatenate(vals) if vals else np.zeros(0)
    mat = sparse.csr_matrix((dat, ind, indptr), shape=(len(rows), m))
    mat.sum_duplicates()
    return mat


def fit_cav_batch(
    X: np.ndarray,
    tasks: Sequence[ProbeTask],
    *,
    probe: str = "pattern",
    alpha: float = 1.0,
    test_size: float = 0.3,
    gram: np.ndarray | None = None,
) -> CAVBatch:
    """Train one probe per task on the shared activation pool ``X``.

    Parameters
    ----------
    X
        ``(M, ...)`` activations of every example any task uses (flattened to ``(M, D)``).
    tasks
        The probes: row indices of positives and negatives, and a seed each.
    probe
        One of :data:`PROBES`.
    alpha
        Regularisation (relative ridge penalty / inverse logistic ``C`` / SGD ``alpha`` x 0.01).
    test_size
        Held-out share of each balanced side.
    gram
        Optional precomputed ``X @ X.T`` (float64), shared between calls on the same pool.

    Returns
    -------
    CAVBatch
    """
    if probe not in PROBES:
        raise ConceptError(f"unknown probe {probe!r}; choose one of {list(PROBES)}")
    Xf = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    m = Xf.shape[0]
    splits = [_split_task(t, test_size) for t in tasks]
    T = len(splits)
    if T == 0:
        d = Xf.shape[1]
        z = np.zeros(0)
        return CAVBatch(np.zeros((0, d), np.float32), z, z, z.astype(int), z.astype(int), probe)
    if probe == "pattern":
        W, b = _pattern_batch(Xf, splits, m)
    elif probe == "ridge":
        W, b = _ridge_batch(Xf, splits, m, alpha, gram)
    else:
        W = np.empty((T, Xf.shape[1]), np.float64)
        b = np.empty(T)
        # one OpenMP thread: these fits are tiny, and on a busy machine spinning OpenMP workers
        # slowed lbfgs down 20-fold (measured)
        with threadpool_limits(1, user_api="openmp"):
            for t, (ptr, ntr, _, _) in enumerate(splits):
                Xtr = Xf[np.concatenate([ptr, ntr])]
                ytr = np.concatenate([np.ones(len(ptr), int), np.zeros(len(ntr), int)])
                W[t], b[t] = _fit_classic(probe, Xtr, ytr, alpha, tasks[t].seed)
    norms = np.linalg.norm(W, axis=1)
    scale = float(np.sqrt(np.mean(np.einsum("md,md->m", Xf, Xf, dtype=np.float64)))) if m else 0.0
    bad = ~np.isfinite(norms) | (norms <= 1e-6 * scale) | (norms == 0.0)
    if bad.any():
        raise ConceptError(
            f"the probe found no direction for task {int(np.flatnonzero(bad)[0])} "
            "(identical positive and negative examples?)"
        )
    V = (W / norms[:, None]).astype(np.float32)
    intercepts = b / norms
    acc = _heldout_accuracy(Xf, V, intercepts, splits)
    n_side = np.array([len(s[0]) + len(s[2]) for s in splits], dtype=np.int64)
    return CAVBatch(V, intercepts, acc, n_side, n_side.copy(), probe)


def _pattern_batch(
    Xf: np.ndarray, splits: Sequence[tuple[np.ndarray, ...]], m: int
) -> tuple[np.ndarray, np.ndarray]:
    rows = [np.concatenate([s[0], s[1]]) for s in splits]
    diff = [np.concatenate([np.full(len(s[0]), 1.0 / len(s[0])), np.full(len(s[1]), -1.0 / len(s[1]))]) for s in splits]
    mid = [np.abs(v) / 2.0 for v in diff]
    C = _coef_matrix(rows, diff, m)
    Mc = _coef_matrix(rows, mid, m)
    W = np.asarray(C @ Xf, dtype=np.float64)  # all mean differences in one product
    Mid = np.asarray(Mc @ Xf, dtype=np.float64)
    b = -np.einsum("td,td->t", W, Mid)
    return W, b


def _ridge_batch(
    Xf: np.ndarray,
    splits: Sequence[tuple[np.ndarray, ...]],
    m: int,
    alpha: float,
    gram: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    d = Xf.shape[1]
    T = len(splits)
    train = [np.concatenate([s[0], s[1]]) for s in splits]
    targets = [np.concatenate([np.ones(len(s[0])), -np.ones(len(s[1]))]) for s in splits]
    n_max = max(len(r) for r in train)
    if d <= n_max:  # narrow features: primal, one small D x D system per task
        W = np.empty((T, d))
        b = np.empty(T)
        for t, (rows, y) in enumerate(zip(train, targets, strict=True)):
            Xt = Xf[rows].astype(np.float64)
            mu = Xt.mean(0)
            Xc = Xt - mu
            yc = y - y.mean()
            cov = Xc.T @ Xc
            lam = alpha * max(float(np.trace(cov)) / len(rows), 1e-12)
            W[t] = np.linalg.solve(cov + lam * np.eye(d), Xc.T @ yc)
            b[t] = y.mean() - mu @ W[t]
        return W, b
    # dual on the shared Gram matrix
    if gram is None:
        gram = pool_gram(Xf)
    coefs: list[np.ndarray] = [np.empty(0)] * T
    b = np.empty(T)
    by_size: dict[int, list[int]] = {}
    for t, rows in enumerate(train):
        by_size.setdefault(len(rows), []).append(t)
    for n, ts in by_size.items():
        idx = np.stack([train[t] for t in ts])  # (B, n)
        K0 = gram[idx[:, :, None], idx[:, None, :]]  # (B, n, n)
        rmean = K0.mean(axis=2, keepdims=True)
        cmean = K0.mean(axis=1, keepdims=True)
        amean = K0.mean(axis=(1, 2), keepdims=True)
        K = K0 - rmean - cmean + amean
        lam = alpha * np.maximum(np.einsum("bii->b", K) / n, 1e-12)
        y = np.stack([targets[t] for t in ts])
        yc = y - y.mean(axis=1, keepdims=True)
        a = np.linalg.solve(K + lam[:, None, None] * np.eye(n)[None], yc[:, :, None])[:, :, 0]
        c = a - a.mean(axis=1, keepdims=True)  # coefficients over the task's rows
        mu_w = np.einsum("bij,bj->b", K0, c) / n  # mean(X_rows) . w through the Gram matrix
        for j, t in enumerate(ts):
            coefs[t] = c[j]
            b[t] = y[j].mean() - mu_w[j]
    C = _coef_matrix(train, coefs, m)
    W = np.asarray(C @ Xf, dtype=np.float64)  # every ridge weight vector in one product
    return W, b


def pool_gram(X: np.ndarray) -> np.ndarray:
    """The Gram matrix ``X @ X.T`` of a pool (float64), shared by all ridge tasks on it."""
    Xf = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    return (Xf @ Xf.T).astype(np.float64)


def _fit_classic(probe: str, X: np.ndarray, y: np.ndarray, alpha: float, seed: int) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression, SGDClassifier  # not at import (fast CLI)

    if probe == "logistic":
        clf = LogisticRegression(C=1.0 / alpha, max_iter=1000, random_state=seed)
        clf.fit(X, y)
        return clf.coef_[0].astype(np.float64), float(clf.intercept_[0])
    clf2 = SGDClassifier(loss="hinge", alpha=0.01 * alpha, max_iter=1000, tol=1e-3, random_state=seed)
    clf2.fit(X, y)
    return clf2.coef_[0].astype(np.float64), float(clf2.intercept_[0])


def _heldout_accuracy(
    Xf: np.ndarray, V: np.ndarray, b: np.ndarray, splits: Sequence[tuple[np.ndarray, ...]]
) -> np.ndarray:
    """Held-out accuracy of every task from one product over the rows any task holds out."""
    test_rows = np.unique(np.concatenate([np.concatenate([s[2], s[3]]) for s in splits]))
    where = np.full(Xf.shape[0], -1, dtype=np.int64)
    where[test_rows] = np.arange(len(test_rows))
    S = Xf[test_rows] @ V.T  # (U, T)
    acc = np.empty(len(splits))
    for t, s in enumerate(splits):
        sp = S[where[s[2]], t] + b[t]
        sn = S[where[s[3]], t] + b[t]
        acc[t] = (np.sum(sp > 0) + np.sum(sn <= 0)) / (len(sp) + len(sn))
    return acc
