"""The unsupervised route of confounder discovery: clusters of activations that ride with a class.

No annotation is needed. Clusters are **found on one set of cases and tested on another** (a
held-out split, e.g. ``val``, or a seeded half of each class), so a cluster is never both
discovered and tested on the same cases. The activations of one layer (or any feature matrix,
e.g. concept scores) are pooled, standardised and PCA-reduced (fitted on the discovery cases);
k-means (default) or spectral clustering groups the discovery cases, with k chosen by the mean
silhouette over ``k_range`` (stated in the result). Each cluster gets a membership rule learned
on the discovery cases and applied identically to every held-out case, whatever its class; the
2 x 2 table (rule accepts x class) on the held-out cases gives the association, and the
clusters are ranked. A human looks at the exemplars (the members nearest to the centroid),
names a suspicious cluster ("ink marks"), and :func:`name_cluster` turns it into a concept of
the bank — positives the members, negatives the rest — which then goes through CAV/TCAV like
any other concept, and records its held-out association for the confounder report
(:func:`cluster_associations`).

Scopes
------
``within_class`` (default)
    Each class's discovery cases are clustered on their own (in a PCA space shared by the
    classes). An artifact that rides with one class then separates from that class's other
    cases instead of being swamped by the class difference.
``global``
    All discovery cases are clustered together; a cluster's class is the one with the largest
    lift among its discovery members.

Membership rules (held-out cases)
---------------------------------
``probe`` (default, within-class scope)
    A balanced logistic-regression probe learns to tell the cluster from the rest of its class
    on the discovery cases (the class is held fixed, so it learns what sets the cluster apart)
    and is applied to every held-out case.
``centroid`` (always for the global scope)
    The case's nearest centroid among the group's clusters is this one, within the
    ``radius_quantile`` quantile of the members' distances to it.

Ranking
-------
Per cluster, on the held-out cases: ``purity`` = share of its class among the accepted cases,
``lift`` = purity / P(class), odds ratio with a 95% interval (Haldane-Anscombe corrected when a
cell is 0), Fisher's exact or chi-square p-value (see :mod:`concepts.discovery._cooccurrence_stats`),
Holm- or BH-corrected over the clusters. Clusters are ranked by the lower end of the odds
ratio's 95% interval; clusters with fewer than ``min_size`` discovery members are ranked last
and never suspicious. A cluster is ``suspicious`` when it is large enough, over-represents its
class (lift > 1) and its corrected p-value is below ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from concepts._errors import DataError
from concepts.discovery._cluster_fit import PooledRows, _reduce, cluster_features, feature_chunks
from concepts.discovery._cluster_ranking import (
    _check_holdout,
    _find,
    _rank,
    _Settings,
)
from concepts.discovery._clusters_result import ClusteringResult
from concepts.discovery._cooccurrence_stats import Correction, check_correction

__all__ = [
    "CLUSTER_METHODS",
    "CLUSTER_SCOPES",
    "MEMBERSHIPS",
    "cluster_activations",
]

#: Clustering algorithms.
CLUSTER_METHODS: tuple[str, ...] = ("kmeans", "spectral")
#: Where clusters are sought: in each class on its own, or across all cases.
CLUSTER_SCOPES: tuple[str, ...] = ("within_class", "global")

Method = Literal["kmeans", "spectral"]
Membership = Literal["probe", "centroid"]
#: How a held-out case counts as a member of a cluster (see :func:`cluster_activations`).
MEMBERSHIPS: tuple[str, ...] = ("probe", "centroid")
Scope = Literal["within_class", "global"]
Pooling = Literal["mean", "max", "meanmax", "block", "flatten"]


@dataclass(frozen=True)
class _Cases:
    """The validated cases to cluster: pooled features, labels, classes, rows and case ids."""

    x: np.ndarray | PooledRows
    labels: np.ndarray
    classes: tuple[str, ...]
    rows: np.ndarray
    case_ids: tuple[str, ...]


def _cluster(
    x: np.ndarray | PooledRows, lab: np.ndarray, cls: tuple[str, ...], row_ix: np.ndarray, ids: tuple[str, ...],
    holdout: np.ndarray, st: _Settings, layer: str, split: str, test_split: str,
) -> ClusteringResult:
    disc = ~holdout
    lo, hi = st.k_range
    z, nc = _reduce(x, disc, st.n_components, st.seed)
    present = [c for c in cls if (disc & (lab == c)).any()]
    groups = present if st.scope == "within_class" else ["all"]
    found = _find(z, lab, disc, groups, st)
    how = "given" if st.k is not None else (
        f"best mean silhouette (euclidean) over k = {lo}..{hi}, per "
        + ("class" if st.scope == "within_class" else "data set")
    )
    rule = ("a balanced logistic probe (cluster vs the rest of its class)" if st.membership == "probe"
            else f"nearest centroid within the {st.radius_quantile:.0%} radius of its members")
    k_sel = (
        f"{st.method} with k {how}, on the standardised features reduced to {nc} PCA components "
        f"(pooling {st.pooling!r}), found on {int(disc.sum())} discovery cases ({split or 'given'}); "
        f"associations tested on {int(holdout.sum())} held-out cases ({test_split or 'given'}), "
        f"membership by {rule}, the same rule for every class; chosen: "
        + ", ".join(f"{g}: {v}" for g, v in found.k.items())
    )
    min_sz = int(st.min_size) if st.min_size is not None else max(5, math.ceil(0.02 * int(disc.sum())))
    table = _rank(z, lab, cls, holdout, found, row_ix, ids, min_sz, st)
    return ClusteringResult(
        layer=layer, split=split, method=st.method, scope=st.scope, pooling=st.pooling, k=found.k,
        k_selection=k_sel,
        silhouette=pd.DataFrame(found.silhouette, columns=["group", "k", "silhouette"]),
        rows=row_ix, case_ids=ids, labels=lab, assignments=found.assign, clusters=table,
        classes=cls, test_split=test_split, holdout=holdout, membership=st.membership,
    )



def cluster_activations(
    features: np.ndarray, labels: Sequence[str] | np.ndarray, *, classes: Sequence[str] | None = None,
    rows: Sequence[int] | np.ndarray | None = None, case_ids: Sequence[str] | None = None,
    method: Method = "kmeans", scope: Scope = "within_class", pooling: Pooling = "meanmax",
    k: int | None = None, k_range: tuple[int, int] = (2, 12), n_components: int = 32, n_exemplars: int = 8,
    min_size: int | None = None, correction: Correction = "holm", alpha: float = 0.05, seed: int = 0,
    n_init: int = 4, layer: str = "", split: str = "", holdout: Sequence[bool] | np.ndarray | None = None,
    holdout_fraction: float = 0.5, membership: Membership = "probe", radius_quantile: float = 0.9,
    test_split: str = "",
) -> ClusteringResult:
    """Cluster activations (or concept scores) on some cases; test class association on others.

    Parameters
    ----------
    features
        ``(N, D)`` vectors or ``(N, C, H, W)`` conv activations (pooled with ``pooling``).
        Concept scores (``N x K``) work as well.
    labels
        Class name of each case.
    classes
        Class names (default: the sorted labels).
    rows, case_ids
        Data-set row positions and case ids of the cases (default ``0..N-1`` and their
        string form); exemplars are reported in these terms.
    method
        ``"kmeans"`` (default) or ``"spectral"`` (nearest-neighbour affinity; its centroids are
        member means).
    scope
        ``"within_class"`` (default) or ``"global"`` (see the module docstring).
    pooling
        See :func:`pool_activations`.
    k
        Fixed number of clusters per group; default: chosen per group by the mean silhouette
        over ``k_range`` (inclusive) on the standardised, PCA-reduced features.
    n_components
        PCA components kept after standardising (fitted on all cases).
    n_exemplars
        Members nearest to the centroid reported per cluster.
    min_size
        Smallest cluster that may be suspicious (default ``max(5, 2% of N)``).
    correction, alpha
        Correction of the clusters' p-values (``holm``, ``bh``, ``none``) and the level.
    seed, n_init
        k-means seeding (deterministic) and restarts.
    layer, split, test_split
        Recorded in the result (the discovery and the test split).
    holdout
        Boolean mask of the held-out (test) cases: clusters are found on the others, and their
        association with a class is tested only on these. Default: ``holdout_fraction`` of each
        class, drawn with ``seed`` (:func:`stratified_holdout`).
    membership
        How a held-out case counts as a member, the same rule for every class: ``"probe"``
        (within-class scope: a balanced logistic probe of the cluster vs the rest of its class,
        fitted on discovery) or ``"centroid"`` (its nearest centroid among the group's clusters,
        within the ``radius_quantile`` quantile of the members' distances to it). The global
        scope always uses ``"centroid"``.

    Returns
    -------
    ClusteringResult

    Raises
    ------
    DataError
        Mismatched lengths, an unknown method/scope/pooling/class/membership, fewer than two
        classes present, an empty input, constant features, a bad ``k``/``k_range``, or a
        holdout that leaves no case on one side.
    """
    _check_options(method, scope, membership, radius_quantile, correction)
    cases = _check_cases(cluster_features(features, pooling), labels, classes, rows, case_ids)
    lo, hi = _check_k(k_range, k)
    _check_values(cases.x)
    hold = _check_holdout(holdout, cases.labels, holdout_fraction, seed)
    st = _Settings(method, scope, pooling, membership if scope == "within_class" else "centroid", k,
                   (int(lo), int(hi)), n_components, n_exemplars, min_size, correction, alpha, seed,
                   n_init, float(radius_quantile))
    # Small problems: one BLAS/OpenMP thread is faster than several fighting for busy cores.
    with threadpool_limits(limits=1 if cases.x.size < 50_000_000 else None):
        return _cluster(cases.x, cases.labels, cases.classes, cases.rows, cases.case_ids, hold, st, layer,
                        split, test_split)


def _check_options(method: str, scope: str, membership: str, radius_quantile: float, correction: str) -> None:
    if method not in CLUSTER_METHODS:
        raise DataError(f"unknown clustering method {method!r}: use one of {list(CLUSTER_METHODS)}")
    if scope not in CLUSTER_SCOPES:
        raise DataError(f"unknown scope {scope!r}: use one of {list(CLUSTER_SCOPES)}")
    if membership not in MEMBERSHIPS:
        raise DataError(f"unknown membership rule {membership!r}: use one of {list(MEMBERSHIPS)}")
    if not 0.0 < float(radius_quantile) <= 1.0:
        raise DataError(f"radius_quantile must lie in (0, 1], got {radius_quantile!r}")
    check_correction(correction)


def _check_cases(x: np.ndarray | PooledRows, labels: Sequence[str] | np.ndarray, classes: Sequence[str] | None,
                 rows: Sequence[int] | np.ndarray | None, case_ids: Sequence[str] | None) -> _Cases:
    n = len(x)
    lab = np.asarray([str(v) for v in labels], dtype=object)
    if n == 0:
        raise DataError("no cases to cluster — the split or selection is empty")
    if len(lab) != n:
        raise DataError(f"{n} activation rows but {len(lab)} labels")
    cls = tuple(classes) if classes is not None else tuple(sorted(set(lab.tolist())))
    unknown = sorted(set(lab.tolist()) - set(cls))
    if unknown:
        raise DataError(f"label {unknown[0]!r} is not one of the classes {list(cls)}")
    present = [c for c in cls if (lab == c).any()]
    if len(present) < 2:
        raise DataError(
            f"the cases hold only the class(es) {present}: clusters can only be tested against "
            "a class when at least two classes are present"
        )
    row_ix = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    ids = tuple(str(r) for r in row_ix) if case_ids is None else tuple(str(c) for c in case_ids)
    if len(row_ix) != n or len(ids) != n:
        raise DataError(f"{n} activation rows but {len(row_ix)} rows and {len(ids)} case ids")
    return _Cases(x, lab, cls, row_ix, ids)


def _check_k(k_range: tuple[int, int], k: int | None) -> tuple[int, int]:
    lo, hi = k_range
    if not (isinstance(lo, int | np.integer) and isinstance(hi, int | np.integer)) or lo < 2 or hi < lo:
        raise DataError(f"k_range must be (low, high) with 2 <= low <= high, got {k_range!r}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1):
        raise DataError(f"k must be a positive integer, got {k!r}")
    return lo, hi


def _check_values(x: np.ndarray | PooledRows) -> None:
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    for _, c in feature_chunks(x):  # one chunk for an array; large features chunk by chunk
        if not np.isfinite(c).all():
            raise DataError("the activations hold NaN or infinite values — check the model and layer")
        if len(c):
            lo = c.min(axis=0) if lo is None else np.minimum(lo, c.min(axis=0))
            hi = c.max(axis=0) if hi is None else np.maximum(hi, c.max(axis=0))
    if lo is None or hi is None or (hi - lo).max(initial=0.0) == 0.0:
        raise DataError(
            "every case has identical activations: there is nothing to cluster — choose another "
            "layer or check that the images differ"
        )
