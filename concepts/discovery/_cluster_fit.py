"""Features and clustering of the discovery cases: pooling conv maps, standardise + PCA, k-means or
spectral clustering, mini-batch k-means for large inputs, and the choice of k by silhouette.

Large inputs (from :data:`MINIBATCH_MIN_ROWS` cases on) are never held whole: the features stay a
:class:`PooledRows` (the activations, often memory-mapped, pooled chunk by chunk when read), the
scaler is fitted with ``partial_fit`` and the PCA is an ``IncrementalPCA`` fitted chunk by chunk,
so the only array of N rows is the ``(N, components)`` scores.

See :mod:`concepts.discovery._clusters` for the method as a whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans, SpectralClustering
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from concepts._errors import DataError
from concepts.data import release_pages

__all__ = [
    "MINIBATCH_MIN_ROWS",
    "MINIBATCH_ROWS",
    "POOLINGS",
    "PooledRows",
    "cluster_features",
    "feature_chunks",
    "pool_activations",
]

#: How a conv layer's ``(C, H, W)`` map becomes a vector.
POOLINGS: tuple[str, ...] = ("mean", "max", "meanmax", "block", "flatten")

#: From this many cases on, ``kmeans`` runs as mini-batch k-means (``partial_fit`` over row
#: chunks, labels predicted chunk by chunk) and conv maps are pooled chunk by chunk, so a large
#: (memory-mapped) activation array is never copied whole. Below it: full k-means, unchanged.
MINIBATCH_MIN_ROWS = 20_000
#: Rows per chunk of the mini-batch path.
MINIBATCH_ROWS = 4096
#: Largest chunk of raw activations (float64 bytes) a :class:`PooledRows` reads at once.
POOL_CHUNK_BYTES = 64 * 2**20


# ====================================================================== features
def pool_activations(acts: np.ndarray, pooling: str = "meanmax") -> np.ndarray:
    """Turn activations into one vector per case.

    Parameters
    ----------
    acts
        ``(N, D)`` vectors (returned as float64, unchanged) or ``(N, C, H, W)`` conv maps.
    pooling
        For conv maps: ``"mean"`` (global average, ``C``), ``"max"`` (global max, ``C``),
        ``"meanmax"`` (both, ``2C``: averages see large structures, maxima small salient ones
        such as a marker dot), ``"block"`` (average over a 2 x 2 grid of blocks, ``4C``) or
        ``"flatten"`` (``C H W``).

    Returns
    -------
    numpy.ndarray
        ``(N, D')`` float64.

    Raises
    ------
    DataError
        Unknown pooling or an array of another rank.
    """
    if pooling not in POOLINGS:
        raise DataError(f"unknown pooling {pooling!r}: use one of {list(POOLINGS)}")
    a = acts if isinstance(acts, np.ndarray) else np.asarray(acts)
    if a.ndim == 2:
        return a.astype(np.float64)
    if a.ndim != 4:
        raise DataError(f"activations must be (N, D) or (N, C, H, W), got shape {a.shape}")
    if len(a) >= MINIBATCH_MIN_ROWS:  # chunk by chunk: a memory-mapped array is never read whole
        return np.concatenate([_pool(a[i : i + MINIBATCH_ROWS], pooling)
                               for i in range(0, len(a), MINIBATCH_ROWS)], axis=0)
    return _pool(a, pooling)


@dataclass(frozen=True)
class PooledRows:
    """Activations pooled on demand, chunk by chunk: the features of a large clustering problem.

    ``acts`` is an ``(N, D)`` or ``(N, C, H, W)`` array, typically memory-mapped; :meth:`chunks`
    yields consecutive pooled row chunks (float64) and releases a memory map's pages behind
    them, so the features of every case are never in memory at once.
    """

    acts: Any
    pooling: str

    def __len__(self) -> int:
        return int(self.acts.shape[0])

    @property
    def n_features(self) -> int:
        """Width of a pooled row."""
        return int(self._pooled(self.acts[:1]).shape[1])

    @property
    def size(self) -> int:
        """Number of pooled values (``N x n_features``), as ``ndarray.size``."""
        return len(self) * self.n_features

    def _pooled(self, rows: Any) -> np.ndarray:
        a = np.asarray(rows)
        return a.astype(np.float64) if a.ndim == 2 else _pool(a, self.pooling)

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, pooled rows)`` over the whole array, in order."""
        row_bytes = 8 * int(np.prod(self.acts.shape[1:], dtype=np.int64))
        step = max(1, min(MINIBATCH_ROWS, POOL_CHUNK_BYTES // max(row_bytes, 1)))
        for start in range(0, len(self), step):
            yield start, self._pooled(self.acts[start : start + step])
            release_pages(self.acts)


def cluster_features(acts: np.ndarray, pooling: str) -> np.ndarray | PooledRows:
    """The features to cluster: pooled in memory (:func:`pool_activations`) below
    :data:`MINIBATCH_MIN_ROWS` cases, a :class:`PooledRows` read chunk by chunk from there on.

    Raises
    ------
    DataError
        Unknown pooling or an array of another rank.
    """
    a = acts if hasattr(acts, "shape") else np.asarray(acts)
    if len(a) < MINIBATCH_MIN_ROWS:
        return pool_activations(a, pooling)
    if pooling not in POOLINGS:
        raise DataError(f"unknown pooling {pooling!r}: use one of {list(POOLINGS)}")
    if a.ndim not in (2, 4):
        raise DataError(f"activations must be (N, D) or (N, C, H, W), got shape {a.shape}")
    return PooledRows(a, pooling)


def feature_chunks(x: np.ndarray | PooledRows) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, rows)`` of the features: the whole array at once, or a :class:`PooledRows` by chunks."""
    if isinstance(x, PooledRows):
        yield from x.chunks()
    else:
        yield 0, x


def _pool(a: np.ndarray, pooling: str) -> np.ndarray:
    a = np.asarray(a).astype(np.float64, copy=False)
    if pooling == "mean":
        return a.mean(axis=(2, 3))
    if pooling == "max":
        return a.max(axis=(2, 3))
    if pooling == "meanmax":
        return np.concatenate([a.mean(axis=(2, 3)), a.max(axis=(2, 3))], axis=1)
    if pooling == "block":
        h, w = a.shape[2], a.shape[3]
        hs = [(0, max(h // 2, 1)), (h // 2, h)] if h > 1 else [(0, 1)]
        ws = [(0, max(w // 2, 1)), (w // 2, w)] if w > 1 else [(0, 1)]
        parts = [a[:, :, r0:r1, c0:c1].mean(axis=(2, 3)) for r0, r1 in hs for c0, c1 in ws]
        return np.concatenate(parts, axis=1)
    return a.reshape(len(a), -1)


# ====================================================================== clustering
def _reduce(x: np.ndarray | PooledRows, disc: np.ndarray, n_components: int, seed: int) -> tuple[np.ndarray, int]:
    """Standardise and PCA-reduce, fitted on the discovery cases only, applied to every case."""
    if isinstance(x, PooledRows):
        return _reduce_streaming(x, disc, n_components)
    scaler = StandardScaler().fit(x[disc])
    z = scaler.transform(x)
    nc = int(min(n_components, z.shape[1], max(int(disc.sum()) - 1, 1)))
    if nc < z.shape[1]:
        z = PCA(n_components=nc, random_state=seed).fit(z[disc]).transform(z)
    return z, nc


def _reduce_streaming(x: PooledRows, disc: np.ndarray, n_components: int) -> tuple[np.ndarray, int]:
    """:func:`_reduce` chunk by chunk: ``partial_fit`` of the scaler and of an ``IncrementalPCA``
    on the discovery rows of each chunk, then every chunk transformed into the ``(N, nc)`` scores.
    """
    scaler = StandardScaler()
    for start, c in x.chunks():
        d = disc[start : start + len(c)]
        if d.any():
            scaler.partial_fit(c[d])
    width = x.n_features
    nc = int(min(n_components, width, max(int(disc.sum()) - 1, 1)))
    pca = _incremental_pca(x, disc, scaler, nc) if nc < width else None
    z = np.empty((len(x), nc), dtype=np.float64)
    for start, c in x.chunks():
        s = scaler.transform(c)
        z[start : start + len(c)] = pca.transform(s) if pca is not None else s
    return z, nc


def _incremental_pca(x: PooledRows, disc: np.ndarray, scaler: StandardScaler, nc: int) -> IncrementalPCA:
    """An ``IncrementalPCA`` fitted on the standardised discovery rows, a batch of at least
    :data:`MINIBATCH_ROWS` (and ``nc``) rows at a time (deterministic: no random solver)."""
    pca = IncrementalPCA(n_components=nc)
    held: list[np.ndarray] = []
    n_held = 0
    for start, c in x.chunks():
        d = disc[start : start + len(c)]
        if d.any():
            held.append(scaler.transform(c[d]))
            n_held += int(d.sum())
        if n_held >= max(MINIBATCH_ROWS, nc):
            pca.partial_fit(np.concatenate(held))
            held, n_held = [], 0
    if n_held:  # the rest (only the first call needs nc rows; nc < discovery rows)
        pca.partial_fit(np.concatenate(held))
    return pca


def _fit(z: np.ndarray, k: int, method: str, seed: int, n_init: int) -> np.ndarray:
    if k == 1:
        return np.zeros(len(z), dtype=np.int64)
    if method == "kmeans" and len(z) >= MINIBATCH_MIN_ROWS:
        return _fit_minibatch(z, k, seed, n_init)
    if method == "kmeans":
        return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(z).astype(np.int64)
    nn = int(min(10, len(z) - 1))
    sc = SpectralClustering(n_clusters=k, affinity="nearest_neighbors", n_neighbors=nn,
                            random_state=seed, assign_labels="cluster_qr")
    return sc.fit_predict(z).astype(np.int64)


def _fit_minibatch(z: np.ndarray, k: int, seed: int, n_init: int, epochs: int = 3) -> np.ndarray:
    """Mini-batch k-means: ``partial_fit`` over shuffled row chunks, then predicted chunk by chunk.

    The ``n_init`` restarts are kept: each runs from its own seed and the one with the lowest
    inertia (summed over the chunks) is used. Deterministic for a given ``seed``.
    """
    n = len(z)
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray] | None = None
    for r in range(max(1, n_init)):
        km = MiniBatchKMeans(n_clusters=k, random_state=seed + r, n_init=1,
                             batch_size=MINIBATCH_ROWS)
        for _ in range(epochs):
            order = rng.permutation(n)
            for i in range(0, n, MINIBATCH_ROWS):
                rows = np.sort(order[i : i + MINIBATCH_ROWS])
                if len(rows) >= k:
                    km.partial_fit(z[rows])
        labels = np.empty(n, dtype=np.int64)
        inertia = 0.0
        for i in range(0, n, MINIBATCH_ROWS):
            chunk = np.asarray(z[i : i + MINIBATCH_ROWS])
            labels[i : i + len(chunk)] = km.predict(chunk)
            inertia += float(-km.score(chunk))
        if best is None or inertia < best[0]:
            best = (inertia, labels)
    assert best is not None  # n_init >= 1
    return best[1]


def _choose_k(
    z: np.ndarray, k_range: tuple[int, int], k: int | None, method: str, seed: int, n_init: int,
    group: str,
) -> tuple[int, np.ndarray, list[dict[str, Any]], str]:
    """(k, assignments, silhouette rows, note) for one group of cases."""
    n = len(z)
    distinct = len(np.unique(np.round(z, 9), axis=0)) if n else 0
    if n < 4 or distinct < 2:
        why = "fewer than 4 cases" if n < 4 else "identical activations"
        return 1, np.zeros(n, dtype=np.int64), [], f"not clustered: {why} in {group!r}"
    if k is not None:
        kk = int(min(k, distinct, n - 1))
        lab = _fit(z, kk, method, seed, n_init)
        return kk, lab, [], "" if kk == k else f"k lowered to {kk} (only {n} cases)"
    lo, hi = k_range
    hi = int(min(hi, n - 1, distinct))
    rows: list[dict[str, Any]] = []
    best: tuple[float, int, np.ndarray] | None = None
    sample = min(n, 2000)
    for kk in range(lo, hi + 1):
        lab = _fit(z, kk, method, seed, n_init)
        if len(np.unique(lab)) < 2:
            continue
        s = float(silhouette_score(z, lab, sample_size=sample, random_state=seed))
        rows.append({"group": group, "k": kk, "silhouette": s})
        if best is None or s > best[0] + 1e-12:
            best = (s, kk, lab)
    if best is None:
        return 1, np.zeros(n, dtype=np.int64), rows, f"not clustered: no k in {lo}..{hi} split {group!r}"
    return best[1], best[2], rows, ""
