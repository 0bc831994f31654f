"""Testing clusters on held-out cases: the discovery/test split, the membership rules that decide
whether a held-out case belongs to a cluster, and the ranking table (2 x 2 test per cluster).

See :mod:`concepts.discovery._clusters` for the method as a whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from concepts._errors import DataError
from concepts.discovery._cluster_fit import _choose_k
from concepts.discovery._clusters_result import CLUSTER_COLUMNS
from concepts.discovery._cooccurrence_stats import odds_ratio_ci, two_by_two_test
from concepts.tcav import adjust_pvalues

__all__ = ["stratified_holdout"]


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
