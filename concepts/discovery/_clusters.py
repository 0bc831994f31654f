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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from concepts._errors import DataError
from concepts.discovery._clusters_result import CLUSTER_COLUMNS, ClusteringResult
from concepts.discovery._cooccurrence_stats import (
    Correction,
    adjust_pvalues,
    check_correction,
    odds_ratio_ci,
    two_by_two_test,
)
from concepts.models import finite_or_none as _num

if TYPE_CHECKING:  # pragma: no cover
    from concepts.data import Dataset
    from concepts.models import ClassifierModel
    from concepts.workspace import Workspace

__all__ = [
    "CLUSTER_COLUMNS",
    "CLUSTER_METHODS",
    "CLUSTER_SCOPES",
    "MEMBERSHIPS",
    "POOLINGS",
    "ClusteringResult",
    "cluster_activations",
    "cluster_associations",
    "cluster_dataset",
    "name_cluster",
    "pool_activations",
    "stratified_holdout",
]

#: Clustering algorithms.
CLUSTER_METHODS: tuple[str, ...] = ("kmeans", "spectral")
#: Where clusters are sought: in each class on its own, or across all cases.
CLUSTER_SCOPES: tuple[str, ...] = ("within_class", "global")
#: How a conv layer's ``(C, H, W)`` map becomes a vector.
POOLINGS: tuple[str, ...] = ("mean", "max", "meanmax", "block", "flatten")

#: From this many cases on, ``kmeans`` runs as mini-batch k-means (``partial_fit`` over row
#: chunks, labels predicted chunk by chunk) and conv maps are pooled chunk by chunk, so a large
#: (memory-mapped) activation array is never copied whole. Below it: full k-means, unchanged.
MINIBATCH_MIN_ROWS = 20_000
#: Rows per chunk of the mini-batch path.
MINIBATCH_ROWS = 4096

Method = Literal["kmeans", "spectral"]
Membership = Literal["probe", "centroid"]
#: How a held-out case counts as a member of a cluster (see :func:`cluster_activations`).
MEMBERSHIPS: tuple[str, ...] = ("probe", "centroid")
Scope = Literal["within_class", "global"]
Pooling = Literal["mean", "max", "meanmax", "block", "flatten"]


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
def _reduce(x: np.ndarray, disc: np.ndarray, n_components: int, seed: int) -> tuple[np.ndarray, int]:
    """Standardise and PCA-reduce, fitted on the discovery cases only, applied to every case."""
    # sklearn is imported where used in this module: `import graph` (workbench info) needs
    # cluster_associations only
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x[disc])
    z = scaler.transform(x)
    nc = int(min(n_components, z.shape[1], max(int(disc.sum()) - 1, 1)))
    if nc < z.shape[1]:
        z = PCA(n_components=nc, random_state=seed).fit(z[disc]).transform(z)
    return z, nc


def _fit(z: np.ndarray, k: int, method: str, seed: int, n_init: int) -> np.ndarray:
    from sklearn.cluster import KMeans, SpectralClustering

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
    from sklearn.cluster import MiniBatchKMeans

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
    from sklearn.metrics import silhouette_score

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


# ====================================================================== discovery / test split
def stratified_holdout(labels: Sequence[str] | np.ndarray, fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """A boolean mask holding out ``fraction`` of each class (seeded): the test cases.

    Parameters
    ----------
    labels
        Class name of each case.
    fraction
        Share of each class held out, in (0, 1).
    seed
        Random seed.

    Returns
    -------
    numpy.ndarray
        ``True`` for the held-out (test) cases.

    Raises
    ------
    DataError
        ``fraction`` outside (0, 1).
    """
    if not 0.0 < float(fraction) < 1.0:
        raise DataError(f"the held-out fraction must lie in (0, 1), got {fraction!r}")
    lab = np.asarray([str(v) for v in labels], dtype=object)
    rng = np.random.default_rng(seed)
    out = np.zeros(len(lab), dtype=bool)
    for c in sorted(set(lab.tolist())):
        ix = np.flatnonzero(lab == c)
        out[rng.permutation(ix)[: round(fraction * len(ix))]] = True
    return out


def _check_holdout(holdout: Sequence[bool] | np.ndarray | None, lab: np.ndarray, fraction: float,
                   seed: int) -> np.ndarray:
    if holdout is None:
        return stratified_holdout(lab, fraction, seed)
    h = np.asarray(holdout)
    if h.dtype != bool or h.shape != lab.shape:
        raise DataError(f"holdout must be a boolean mask of {len(lab)} cases, got {h.dtype} {h.shape}")
    if h.all() or not h.any():
        raise DataError(
            "holdout must leave cases on both sides: clusters are found on the other cases and "
            "tested on the held-out ones"
        )
    return h


# ====================================================================== membership rules
def _probe_rule(z_disc: np.ndarray, in_c: np.ndarray, member: np.ndarray, seed: int) -> Any:
    """Balanced logistic probe: the cluster vs the rest of its class (discovery cases only).

    The class is held fixed, so the probe learns what sets the cluster apart, not the class.
    """
    from sklearn.linear_model import LogisticRegression

    y = member[in_c]
    if y.all() or not y.any():
        return None
    probe = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed)
    probe.fit(z_disc[in_c], y)
    return probe


def _radius(z_disc: np.ndarray, member: np.ndarray, centroid: np.ndarray, quantile: float) -> float:
    d = np.sqrt(((z_disc[member] - centroid) ** 2).sum(axis=1))
    return float(np.quantile(d, quantile)) if len(d) else 0.0


def _centroid_hits(z: np.ndarray, cid: int, rivals: list[int], centroids: dict[int, np.ndarray],
                   radius: float) -> np.ndarray:
    """Nearest centroid among ``rivals`` is ``cid`` and within ``radius`` of it."""
    cent = np.stack([centroids[r] for r in rivals])
    d = np.sqrt(((z[:, None, :] - cent[None, :, :]) ** 2).sum(axis=2))
    nearest = np.asarray(rivals)[d.argmin(axis=1)]
    return (nearest == cid) & (d[:, rivals.index(cid)] <= radius)


# ====================================================================== clustering core
@dataclass(frozen=True)
class _Settings:
    method: str
    scope: str
    pooling: str
    membership: str
    k: int | None
    k_range: tuple[int, int]
    n_components: int
    n_exemplars: int
    min_size: int | None
    correction: str
    alpha: float
    seed: int
    n_init: int
    radius_quantile: float


@dataclass(frozen=True)
class _Found:
    """Clusters found on the discovery cases (ids unique across groups)."""

    assign: np.ndarray
    centroids: dict[int, np.ndarray]
    group_of: dict[int, str]
    notes: dict[int, str]
    k: dict[str, int]
    silhouette: list[dict[str, Any]]


def _find(z: np.ndarray, lab: np.ndarray, disc: np.ndarray, groups: list[str], st: _Settings) -> _Found:
    n = len(z)
    assign = np.full(n, -1, dtype=np.int64)
    ks: dict[str, int] = {}
    sil_rows: list[dict[str, Any]] = []
    notes: dict[int, str] = {}
    centroids: dict[int, np.ndarray] = {}
    group_of: dict[int, str] = {}
    next_id = 0
    for g in groups:
        sel = disc.copy() if g == "all" else (disc & (lab == g))
        kk, la, srows, note = _choose_k(z[sel], st.k_range, st.k, st.method, st.seed, st.n_init, g)
        ks[g] = kk
        sil_rows.extend(srows)
        ids_here = np.unique(la)
        remap = {int(c): next_id + i for i, c in enumerate(ids_here)}
        assign[sel] = np.array([remap[int(c)] for c in la], dtype=np.int64)
        for c in remap.values():
            centroids[c] = z[assign == c].mean(axis=0)
            group_of[c] = g
            if note:
                notes[c] = note
        next_id += len(ids_here)
    return _Found(assign, centroids, group_of, notes, ks, sil_rows)


def _cluster(
    x: np.ndarray, lab: np.ndarray, cls: tuple[str, ...], row_ix: np.ndarray, ids: tuple[str, ...],
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


def _hits(z: np.ndarray, lab: np.ndarray, holdout: np.ndarray, found: _Found, cid: int, c: str,
          st: _Settings) -> np.ndarray:
    """Held-out cases that the cluster's membership rule (learned on discovery) accepts."""
    disc = ~holdout
    member = found.assign == cid
    g = found.group_of[cid]
    if st.membership == "probe" and st.scope == "within_class":
        in_c = disc & (lab == c)
        probe = _probe_rule(z, in_c, member, st.seed)
        if probe is None:  # the cluster is its whole class: look-alike = nearest the centroid
            return holdout & _centroid_hits(z, cid, [cid], found.centroids,
                                            _radius(z, member, found.centroids[cid], st.radius_quantile))
        out = np.zeros(len(z), dtype=bool)
        out[holdout] = probe.predict(z[holdout]).astype(bool)
        return out
    rivals = [r for r in found.centroids if found.group_of[r] == g]
    radius = _radius(z, member, found.centroids[cid], st.radius_quantile)
    return holdout & _centroid_hits(z, cid, rivals, found.centroids, radius)


def _cluster_class(lab: np.ndarray, member: np.ndarray, g: str, classes: Sequence[str]) -> str:
    if g != "all":
        return g
    lifts = {c_: (member & (lab == c_)).sum() / max((lab == c_).sum(), 1) for c_ in classes}
    return max(lifts, key=lambda k_: (lifts[k_], -list(classes).index(k_)))


def _row(z: np.ndarray, lab: np.ndarray, holdout: np.ndarray, found: _Found, cid: int,
         classes: Sequence[str], rows: np.ndarray, ids: tuple[str, ...], st: _Settings) -> dict[str, Any]:
    """Ranking row of one cluster: 2 x 2 table (rule accepts x class) on the held-out cases."""
    disc = ~holdout
    member = found.assign == cid
    g = found.group_of[cid]
    c = _cluster_class(lab[disc], member[disc], g, classes)
    hit = _hits(z, lab, holdout, found, cid, c, st)[holdout]
    in_c = lab[holdout] == c
    a, b = int((hit & in_c).sum()), int((hit & ~in_c).sum())
    cc, d = int((~hit & in_c).sum()), int((~hit & ~in_c).sum())
    n_t = a + b + cc + d
    mem_ix = np.flatnonzero(member)
    dist = ((z[mem_ix] - found.centroids[cid]) ** 2).sum(axis=1)
    ex = mem_ix[np.argsort(dist, kind="stable")[: st.n_exemplars]]
    row: dict[str, Any] = {
        "cluster": cid, "group": g, "size": int(member.sum()), "class": c,
        "n_test": n_t, "n_test_class": a + cc, "n_test_hits": a + b, "n_assigned_other": b,
        "purity": a / (a + b) if a + b else math.nan,
        "lift": a * n_t / ((a + b) * (a + cc)) if (a + b) and (a + cc) else math.nan,
        "odds_ratio": math.nan, "or_ci_low": math.nan, "or_ci_high": math.nan,
        "haldane": False, "test": None, "p_value": math.nan, "p_adjusted": math.nan,
        "suspicious": False,
        "exemplar_rows": tuple(int(r) for r in rows[ex]),
        "exemplar_case_ids": tuple(ids[i] for i in ex),
        "note": found.notes.get(cid, ""),
    }
    if min(a + b, cc + d, a + cc, b + d) == 0:
        row["note"] = row["note"] or (
            "not testable: on the held-out cases the rule accepts every case or none, or a class "
            "is absent")
    else:
        or_, lo_, hi_, hal = odds_ratio_ci(a, b, cc, d)
        test, p = two_by_two_test(a, b, cc, d)
        row.update(odds_ratio=or_, or_ci_low=lo_, or_ci_high=hi_, haldane=hal, test=test, p_value=p)
    return row


def _rank(z: np.ndarray, lab: np.ndarray, classes: Sequence[str], holdout: np.ndarray, found: _Found,
          rows: np.ndarray, ids: tuple[str, ...], min_size: int, st: _Settings) -> pd.DataFrame:
    out = [_row(z, lab, holdout, found, cid, classes, rows, ids, st) for cid in sorted(found.centroids)]
    df = pd.DataFrame(out)
    ok = df["p_value"].notna()
    df.loc[ok, "p_adjusted"] = adjust_pvalues(df.loc[ok, "p_value"].to_numpy(), st.correction)
    big = df["size"] >= min_size
    df["suspicious"] = (big & ok & (df["lift"] > 1) & (df["p_adjusted"] < st.alpha)).astype(bool)
    df.loc[~big, "note"] = df.loc[~big, "note"].where(
        df.loc[~big, "note"] != "", f"smaller than min_size={min_size}: not ranked as suspicious")
    key = np.where(big & ok, np.log(df["or_ci_low"].where(ok, 1.0).clip(lower=1e-300)), -np.inf)
    order = np.lexsort((df["cluster"].to_numpy(), -df["purity"].fillna(0).to_numpy(), -key))
    df = df.iloc[order].reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df[list(CLUSTER_COLUMNS)]


def cluster_activations(
    features: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    *,
    classes: Sequence[str] | None = None,
    rows: Sequence[int] | np.ndarray | None = None,
    case_ids: Sequence[str] | None = None,
    method: Method = "kmeans",
    scope: Scope = "within_class",
    pooling: Pooling = "meanmax",
    k: int | None = None,
    k_range: tuple[int, int] = (2, 12),
    n_components: int = 32,
    n_exemplars: int = 8,
    min_size: int | None = None,
    correction: Correction = "holm",
    alpha: float = 0.05,
    seed: int = 0,
    n_init: int = 4,
    layer: str = "",
    split: str = "",
    holdout: Sequence[bool] | np.ndarray | None = None,
    holdout_fraction: float = 0.5,
    membership: Membership = "probe",
    radius_quantile: float = 0.9,
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
    if method not in CLUSTER_METHODS:
        raise DataError(f"unknown clustering method {method!r}: use one of {list(CLUSTER_METHODS)}")
    if scope not in CLUSTER_SCOPES:
        raise DataError(f"unknown scope {scope!r}: use one of {list(CLUSTER_SCOPES)}")
    if membership not in MEMBERSHIPS:
        raise DataError(f"unknown membership rule {membership!r}: use one of {list(MEMBERSHIPS)}")
    if not 0.0 < float(radius_quantile) <= 1.0:
        raise DataError(f"radius_quantile must lie in (0, 1], got {radius_quantile!r}")
    check_correction(correction)
    x = pool_activations(features, pooling)
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
    lo, hi = k_range
    if not (isinstance(lo, int | np.integer) and isinstance(hi, int | np.integer)) or lo < 2 or hi < lo:
        raise DataError(f"k_range must be (low, high) with 2 <= low <= high, got {k_range!r}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1):
        raise DataError(f"k must be a positive integer, got {k!r}")
    if not np.isfinite(x).all():
        raise DataError("the activations hold NaN or infinite values — check the model and layer")
    if np.ptp(x, axis=0).max(initial=0.0) == 0.0:
        raise DataError(
            "every case has identical activations: there is nothing to cluster — choose another "
            "layer or check that the images differ"
        )
    hold = _check_holdout(holdout, lab, holdout_fraction, seed)
    st = _Settings(method, scope, pooling, membership if scope == "within_class" else "centroid", k,
                   (int(lo), int(hi)), n_components, n_exemplars, min_size, correction, alpha, seed,
                   n_init, float(radius_quantile))
    # Small problems: one BLAS/OpenMP thread is faster than several fighting for busy cores.
    with threadpool_limits(limits=1 if x.size < 50_000_000 else None):
        return _cluster(x, lab, cls, row_ix, ids, hold, st, layer, split, test_split)


# ====================================================================== workspace glue
def cluster_dataset(
    dataset: Dataset,
    model: ClassifierModel,
    layer: str,
    *,
    split: str | None = "train",
    test_split: str | None = "auto",
    cache: Any = None,
    progress: Any = None,
    **kwargs: Any,
) -> ClusteringResult:
    """Cluster the activations of ``layer`` on one split and test the clusters on another.

    Parameters
    ----------
    dataset, model, layer
        What to cluster. Activations come from ``cache`` (an :class:`ActivationCache`) when
        given, else are extracted.
    split
        The discovery split (``None``: every case).
    test_split
        The split the clusters' associations are tested on: ``"auto"`` (default) takes
        ``val`` when the data set has it (and it is not ``split``), else holds out half of
        each class of ``split``; ``None`` always holds out half of ``split``.
    cache, progress
        Activation cache and progress callback.
    **kwargs
        Passed to :func:`cluster_activations` (method, scope, pooling, k, k_range, membership, ...).

    Raises
    ------
    DataError
        An unknown or empty split, or a test split equal to the discovery split.
    """
    model.check_layer(layer)
    disc = dataset.indices(split) if split is not None else np.arange(len(dataset))
    if len(disc) == 0:
        raise DataError(f"split {split!r} of {dataset.info.name} has no cases to cluster")
    ts = test_split
    if ts == "auto":
        ts = "val" if "val" in dataset.splits and split not in ("val", None) else None
    if ts is not None and ts == split:
        raise DataError(f"the test split must differ from the discovery split {split!r}")
    test = dataset.indices(ts) if ts is not None else np.zeros(0, dtype=np.int64)
    if ts is not None and len(test) == 0:
        raise DataError(f"test split {ts!r} of {dataset.info.name} has no cases")
    idx = np.concatenate([disc, test]).astype(np.int64)
    acts = _activations(dataset, model, layer, idx, f"{split or 'all'}+{ts or 'half'}", cache, progress)
    cases = dataset.cases.iloc[idx]
    labels = cases["label"].astype(str).to_numpy()
    holdout = np.r_[np.zeros(len(disc), bool), np.ones(len(test), bool)] if ts is not None else None
    res = cluster_activations(
        acts, labels, classes=dataset.classes, rows=idx,
        case_ids=cases["case_id"].astype(str).tolist(), layer=layer, split=split or "all",
        holdout=holdout, test_split=ts or f"half of {split or 'all'} (held out)", **kwargs,
    )
    return _with_dataset(res, dataset)


def _activations(dataset: Dataset, model: ClassifierModel, layer: str, idx: np.ndarray, tag: str,
                 cache: Any, progress: Any) -> np.ndarray:
    from concepts.models import extract_activations

    if cache is not None:
        iset = dataset.image_set(idx, name=f"{dataset.info.name}:{tag}")
        return np.asarray(cache.get(model, layer, iset, progress=progress)[layer])
    return np.asarray(
        extract_activations(model, np.asarray(dataset.images[idx]), [layer], progress=progress)[layer])


def _with_dataset(res: ClusteringResult, dataset: Dataset) -> ClusteringResult:
    from dataclasses import replace

    return replace(res, dataset=dataset.info.name, dataset_hash=dataset.info.content_hash)


def _bank_for(ws: Workspace, ds: Dataset) -> Any:
    """The workspace's bank; an empty one (random pool from the data set) when the data set has
    no annotated concept to build a default bank from — a named cluster is then its first."""
    from concepts._errors import ConceptError
    from concepts.bank import ConceptBank

    try:
        return ConceptBank.for_workspace(ws)
    except ConceptError:
        if (ws.concepts_dir / ConceptBank.FILE).is_file():
            raise
    bank = ConceptBank([], root=ws.concepts_dir, datasets_dir=ws.datasets_dir)
    bank.set_random_pool_from_dataset(ds)
    return bank


def name_cluster(
    workspace: Workspace | str | Path,
    clustering_result: ClusteringResult,
    cluster_id: int,
    name: str,
    description: str,
    actor: Any = None,
    *,
    group: str = "custom",
    negatives: Literal["rest", "random"] = "rest",
    store: Any = None,
    replace: bool = False,
) -> Any:
    """Turn a cluster a human has named into a concept of the workspace's bank.

    Parameters
    ----------
    workspace
        The workspace (its bank is loaded, extended and saved).
    clustering_result
        A result of :func:`cluster_dataset` on one of the workspace's data sets.
    cluster_id
        The cluster (column ``cluster`` of the ranking).
    name, description
        The concept's name (e.g. ``"ink_marks"``) and what the human saw.
    actor
        A :class:`store.Actor`; when given, a ``concept_named`` event is appended to the
        workspace's store (or to ``store``).
    group
        Bank group: ``"custom"`` (default), ``"artifact"`` or ``"criterion"``.
    negatives
        ``"rest"``: the non-members (of the cluster's class for a within-class clustering, so the
        concept is not confounded with the class) as explicit negatives; ``"random"``: random
        counterparts from the bank's pool.
    store
        A :class:`store.Store` to record in (default: the workspace's).
    replace
        Replace an existing concept of the same name.

    Returns
    -------
    concepts.Concept
        The new concept (saved in ``<workspace>/concepts/bank.json``).

    Raises
    ------
    DataError
        An unknown cluster, a result computed on another data set (or another version of it),
        an empty cluster, or unknown ``negatives``.
    ConceptError
        An invalid or existing concept name.
    """
    from concepts.workspace import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    res = clustering_result
    if negatives not in ("rest", "random"):
        raise DataError(f"negatives must be 'rest' or 'random', got {negatives!r}")
    if not res.dataset:
        raise DataError(
            "this clustering was computed on bare arrays: use cluster_dataset(...) on a workspace "
            "data set so that its members can be named"
        )
    ds = ws.dataset(res.dataset)
    if res.dataset_hash and ds.info.content_hash != res.dataset_hash:
        raise DataError(
            f"data set {res.dataset!r} changed since it was clustered (content hash differs) — "
            "cluster it again"
        )
    pos = res.member_case_ids(cluster_id)
    if not pos:
        raise DataError(f"cluster {cluster_id} has no members")
    neg = res.rest_case_ids(cluster_id) if negatives == "rest" else None
    if neg is not None and not neg:
        neg = None
    info = res.cluster(cluster_id)
    bank = _bank_for(ws, ds)
    concept = bank.add_from_cases(name, group, description, ds, pos, neg, replace=replace)
    bank.save()
    _record_association(ws, res, int(cluster_id), name, group)
    if actor is not None:
        from store import Store

        st = store if store is not None else Store.for_workspace(ws.root)
        st.append_event(
            actor, "concept_named", concept=name,
            spec={
                "source": "cluster", "dataset": res.dataset, "layer": res.layer,
                "split": res.split, "method": res.method, "scope": res.scope,
                "pooling": res.pooling, "cluster": int(cluster_id), "group": group,
                "negatives": negatives, "concept_id": concept.id,
                "n_positive": len(pos), "n_negative": len(neg or ()),
                "description": description,
            },
            evidence={
                "class": str(info["class"]), "purity": _num(info["purity"]),
                "lift": _num(info["lift"]), "odds_ratio": _num(info["odds_ratio"]),
                "p_adjusted": _num(info["p_adjusted"]),
                "exemplar_case_ids": [str(c) for c in info["exemplar_case_ids"]],
            },
            dataset_hash=res.dataset_hash or None,
        )
    return concept




# ====================================================================== named clusters' associations
#: Where :func:`name_cluster` records each named cluster's held-out association (results folder).
NAMED_CLUSTERS_FILE = "named_clusters.json"


def _record_association(ws: Workspace, res: ClusteringResult, cluster_id: int, name: str, group: str) -> None:
    import json

    info = res.cluster(cluster_id)
    path = ws.results_dir / NAMED_CLUSTERS_FILE
    try:
        book = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        book = {}
    a = int(info["n_test_hits"]) - int(info["n_assigned_other"])
    book[name] = {
        "dataset": res.dataset, "dataset_hash": res.dataset_hash, "layer": res.layer,
        "cluster": int(cluster_id), "group": group, "class": str(info["class"]),
        "split": res.test_split or res.split, "n": int(info["n_test"]),
        "n_class": int(info["n_test_class"]), "n_both": a, "n_hits": int(info["n_test_hits"]),
        **{k: _num(info[k]) for k in ("lift", "odds_ratio", "or_ci_low", "or_ci_high", "p_adjusted")},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(book, indent=1))
    tmp.replace(path)


def cluster_associations(workspace: Workspace | str | Path, dataset: str | None = None) -> pd.DataFrame:
    """The held-out class associations of the workspace's named clusters, as co-occurrence rows.

    Each cluster named with :func:`name_cluster` contributes one row (its concept x its class)
    in the columns of :func:`concepts.attribute_class_table`, measured on the split the cluster
    was tested on (never the one it was found on), so an unannotated concept enters the
    confounder ranking like an annotated attribute.

    Parameters
    ----------
    workspace
        The workspace.
    dataset
        Only clusters of this data set (default: the active one); clusters of an older version
        of it (content hash differs) are left out.

    Returns
    -------
    pandas.DataFrame
        Possibly empty.
    """
    import json

    from concepts.workspace import Workspace

    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    ds = ws.dataset(dataset)
    path = ws.results_dir / NAMED_CLUSTERS_FILE
    cols = ["split", "attribute", "kind", "column", "class", "n", "n_class", "n_both", "lift",
            "odds_ratio", "or_ci_low", "or_ci_high", "p_adjusted", "prevalence_class",
            "prevalence_other", "testable", "note"]
    try:
        book = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is corrupt ({exc}) — name the clusters again") from exc
    rows = []
    for name, e in book.items():
        if e.get("dataset") != ds.info.name or (e.get("dataset_hash") and e["dataset_hash"] != ds.info.content_hash):
            continue
        n, n_c, a, hits = int(e["n"]), int(e["n_class"]), int(e["n_both"]), int(e["n_hits"])
        rows.append({
            "split": str(e["split"]), "attribute": str(name),
            "kind": "artifact" if e.get("group") == "artifact" else "concept", "column": str(name),
            "class": str(e["class"]), "n": n, "n_class": n_c, "n_both": a,
            **{k: e.get(k) for k in ("lift", "odds_ratio", "or_ci_low", "or_ci_high", "p_adjusted")},
            "prevalence_class": a / n_c if n_c else None,
            "prevalence_other": (hits - a) / (n - n_c) if n - n_c else None,
            "testable": e.get("or_ci_low") is not None,
            "note": f"named cluster {e['cluster']} of {e['layer']} (held-out {e['split']} cases)",
        })
    return pd.DataFrame(rows, columns=cols)
