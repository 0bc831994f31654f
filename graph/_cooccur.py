"""Criterion co-occurrence learned from a data set: counts, phi coefficient, p-value."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from concepts import DataError
from concepts.discovery import Correction, adjust_pvalues, check_correction, two_by_two_test
from graph._model import ClinicalGraph
from graph._schema import add_edge, py_scalar

__all__ = ["COOCCURRENCE_COLUMNS", "add_cooccurrence", "cooccurrence_table"]

#: Columns of :func:`cooccurrence_table`.
COOCCURRENCE_COLUMNS: tuple[str, ...] = (
    "a", "b", "n", "n11", "n10", "n01", "n00", "phi", "test", "p_value", "p_adjusted", "testable",
)


def cooccurrence_table(
    cases: pd.DataFrame, columns: Sequence[str], correction: Correction = "holm"
) -> pd.DataFrame:
    """Pairwise co-occurrence of binary columns.

    The test and the correction are the confounder module's (:mod:`concepts.discovery._cooccurrence_stats`):
    Pearson's chi-square (no continuity correction) when every expected count is at least 5,
    else Fisher's exact test (two-sided); Holm (or ``"bh"``) over the testable pairs.

    Parameters
    ----------
    cases
        A table with 0/1 columns (e.g. a data set's cases table, criteria named as
        :data:`concepts.CRITERIA`).
    columns
        The columns to pair, in order; each pair ``(a, b)`` appears once, ``a`` before ``b``.
    correction
        ``"holm"``, ``"bh"`` or ``"none"``.

    Returns
    -------
    pandas.DataFrame
        :data:`COOCCURRENCE_COLUMNS`: ``n11`` both present, ``n10`` only ``a``, ``n01`` only
        ``b``, ``n00`` neither; ``phi`` = (n11 n00 - n10 n01) / sqrt(n1. n0. n.1 n.0);
        ``test`` (``"chi2"``/``"fisher"``), ``p_value``, ``p_adjusted``. A pair with a constant
        column cannot be tested: ``testable`` is False, ``test`` ``"none"``, ``phi`` 0.0 and
        both p-values 1.0 (finite, so graph exports stay valid JSON/GraphML).

    Raises
    ------
    DataError
        A missing column or a value other than 0/1.
    """
    check_correction(correction)
    cols = list(dict.fromkeys(columns))
    mats = _binary_columns(cases, cols)
    rows = [_pair_row(a, b, mats[a], mats[b]) for a, b in itertools.combinations(cols, 2)]
    df = pd.DataFrame(rows, columns=list(COOCCURRENCE_COLUMNS))
    ok = df["testable"].to_numpy(dtype=bool)
    adjusted = df["p_value"].to_numpy(dtype=float, copy=True)
    adjusted[ok] = adjust_pvalues(adjusted[ok], correction)
    df["p_adjusted"] = adjusted
    return df


def _binary_columns(cases: pd.DataFrame, cols: Sequence[str]) -> dict[str, np.ndarray]:
    """Each column as a boolean vector (every value must be 0/1)."""
    mats: dict[str, np.ndarray] = {}
    for c in cols:
        if c not in cases.columns:
            raise DataError(f"the cases table lacks the column {c!r} needed for co-occurrence")
        v = cases[c]
        bad = ~v.isin([0, 1])
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"row {i}, column {c!r}: {py_scalar(v.iloc[i])!r} is not 0/1")
        mats[c] = v.to_numpy().astype(bool)
    return mats


def _pair_row(a: str, b: str, x: np.ndarray, y: np.ndarray) -> tuple[Any, ...]:
    """One row of the table (``p_adjusted`` still the raw p-value)."""
    n11 = int(np.sum(x & y))
    n10 = int(np.sum(x & ~y))
    n01 = int(np.sum(~x & y))
    n00 = int(np.sum(~x & ~y))
    margins = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    if margins:
        phi = (n11 * n00 - n10 * n01) / math.sqrt(margins)
        test, p = two_by_two_test(n11, n10, n01, n00)
    else:
        phi, test, p = 0.0, "none", 1.0
    return (a, b, len(x), n11, n10, n01, n00, float(phi), test, p, p, bool(margins))


def add_cooccurrence(
    graph: ClinicalGraph,
    cases: pd.DataFrame,
    *,
    source: str = "data",
    columns: Sequence[str] | None = None,
    correction: Correction = "holm",
) -> ClinicalGraph:
    """A copy of ``graph`` with ``co_occurs`` edges between criteria learned from ``cases``.

    Parameters
    ----------
    graph
        The graph to extend (left unchanged).
    cases
        A table with one 0/1 column per criterion.
    source
        Recorded on each edge (e.g. the data set's name).
    columns
        Criteria to pair (default: every criterion of the graph with a column in ``cases``).
    correction
        Multiple-testing correction over the pairs (see :func:`cooccurrence_table`).

    Returns
    -------
    ClinicalGraph
        Existing ``co_occurs`` edges between the same pair are replaced. Each edge stores
        ``n``, ``n11``, ``n10``, ``n01``, ``n00``, ``phi``, ``test``, ``p_value``,
        ``p_adjusted``, ``testable``, ``symmetric`` and ``provenance`` (= ``source``); it is
        stored once (``a -> b``, graph criterion order) and is symmetric.
    """
    crits = graph.criteria()
    if columns is None:
        cols = [c for c in crits if c in cases.columns]
    else:
        cols = [graph.node(c) for c in columns]
        not_crit = [c for c in cols if c not in crits]
        if not_crit:
            raise DataError(f"co-occurrence edges join criteria; {not_crit} are not criteria")
    if len(cols) < 2:
        raise DataError(
            f"need at least two criterion columns for co-occurrence; found {cols} among "
            f"{list(cases.columns)[:12]}"
        )
    table = cooccurrence_table(cases, cols, correction)
    out = graph.copy()
    for r in table.itertuples(index=False):
        a, b = str(r.a), str(r.b)
        if out.nx.has_edge(b, a, key="co_occurs"):
            out.nx.remove_edge(b, a, key="co_occurs")
        add_edge(
            out.nx, a, b, "co_occurs",
            n=int(r.n), n11=int(r.n11), n10=int(r.n10), n01=int(r.n01), n00=int(r.n00),
            phi=float(r.phi), test=str(r.test), p_value=float(r.p_value),
            p_adjusted=float(r.p_adjusted), testable=bool(r.testable), symmetric=True,
            provenance=source,
        )
    return out
