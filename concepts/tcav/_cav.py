"""Concept activation vectors: linear probes separating a concept's examples from a negative set.

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

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from threadpoolctl import threadpool_limits

from concepts._errors import ConceptError
from concepts.bank import MIN_EXAMPLES

if TYPE_CHECKING:
    from scipy import sparse

__all__ = [
    "CAV",
    "PROBES",
    "CAVBatch",
    "CAVSet",
    "CAVTrainer",
    "ProbeTask",
    "cav_cosine",
    "fit_cav_batch",
    "fit_cavs",
    "mean_pairwise_cosine",
]

Probe = Literal["pattern", "ridge", "logistic", "sgd"]
PROBES: tuple[str, ...] = ("pattern", "ridge", "logistic", "sgd")



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
    from scipy import sparse  # imported where used: `workbench --help` needs PROBES, not scipy

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
    # imported here: `workbench --help` needs PROBES from this module, not sklearn
    from sklearn.linear_model import LogisticRegression, SGDClassifier

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
