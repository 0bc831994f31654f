"""Criterion co-occurrence edges on synthetic tables with known phi."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from concepts import CRITERIA, DataError
from graph import ClinicalGraph, add_cooccurrence
from graph._cooccur import cooccurrence_table

G = ClinicalGraph.default()


def _pair(n11: int, n10: int, n01: int, n00: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1] * n11 + [1] * n10 + [0] * n01 + [0] * n00)
    b = np.array([1] * n11 + [0] * n10 + [1] * n01 + [0] * n00)
    return a, b


def _table() -> pd.DataFrame:
    """100 cases: network/streaks phi = 1000/sqrt(6e6); veil = network (phi 1);
    dots = not network (phi -1); regression constant (phi undefined -> 0)."""
    pn, st = _pair(30, 20, 10, 40)
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "pigment_network": pn,
            "streaks": st,
            "blue_whitish_veil": pn,
            "dots_and_globules": 1 - pn,
            "regression_structures": np.zeros(100, dtype=int),
            "pigmentation": rng.integers(0, 2, 100),
            "vascular_structures": rng.integers(0, 2, 100),
            "ink": rng.integers(0, 2, 100),
        }
    )


def test_table_counts_phi_and_p() -> None:
    t = cooccurrence_table(_table(), ["pigment_network", "streaks", "blue_whitish_veil",
                                      "dots_and_globules", "regression_structures"])
    assert len(t) == 10
    row = t[(t.a == "pigment_network") & (t.b == "streaks")].iloc[0]
    assert (row.n, row.n11, row.n10, row.n01, row.n00) == (100, 30, 20, 10, 40)
    assert row.phi == pytest.approx(1000 / math.sqrt(50 * 50 * 40 * 60))
    assert row.phi == pytest.approx(0.408248, abs=1e-6)
    # every expected count >= 5: Pearson chi-square (1 df, no continuity correction) = n phi^2
    assert row.test == "chi2"
    assert row.p_value == pytest.approx(stats.chi2.sf(100 * row.phi**2, 1))
    assert row.p_value == pytest.approx(stats.chi2_contingency([[30, 20], [10, 40]], correction=False).pvalue)
    assert row.p_value < 1e-3
    same = t[(t.a == "pigment_network") & (t.b == "blue_whitish_veil")].iloc[0]
    assert same.phi == pytest.approx(1.0)
    opposite = t[(t.a == "pigment_network") & (t.b == "dots_and_globules")].iloc[0]
    assert opposite.phi == pytest.approx(-1.0)
    const = t[t.b == "regression_structures"]
    assert len(const) == 4 and not const.testable.any() and (const.test == "none").all()
    assert (const.phi == 0.0).all() and (const.p_value == 1.0).all() and (const.p_adjusted == 1.0).all()
    # Holm over the 6 testable pairs: the smallest p is multiplied by 6
    ok = t[t.testable]
    assert len(ok) == 6
    assert ok.p_adjusted.min() == pytest.approx(min(1.0, 6 * ok.p_value.min()))
    assert (ok.p_adjusted >= ok.p_value - 1e-15).all() and (ok.p_adjusted <= 1).all()
    bh = cooccurrence_table(_table(), ["pigment_network", "streaks", "pigmentation"], correction="bh")
    assert bh.p_adjusted.max() == pytest.approx(bh.p_value.max())  # BH leaves the largest p as is
    x, y = _pair(3, 1, 1, 11)
    small = cooccurrence_table(pd.DataFrame({"x": x, "y": y}), ["x", "y"])
    assert small.test.iloc[0] == "fisher"  # expected counts below 5
    assert small.p_value.iloc[0] == pytest.approx(stats.fisher_exact([[3, 1], [1, 11]]).pvalue)


def test_edges_in_the_graph() -> None:
    g = add_cooccurrence(G, _table(), source="synthetic")
    co = [(u, v, d) for u, v, k, d in g.nx.edges(keys=True, data=True) if k == "co_occurs"]
    assert len(co) == 21  # every pair of the seven criteria, once; the artifact column is ignored
    d = g.nx.edges["pigment_network", "streaks", "co_occurs"]
    assert d["phi"] == pytest.approx(0.408248, abs=1e-6) and d["provenance"] == "synthetic"
    assert not g.nx.has_edge("streaks", "pigment_network", key="co_occurs")
    # symmetric for queries: both ends see it
    assert any(n.node == "pigment_network" for n in g.neighbors("streaks", "co_occurs"))
    assert "co_occurs" not in {k for _, _, k in G.nx.edges(keys=True)}  # original untouched
    # relearning replaces, never duplicates
    g2 = add_cooccurrence(g, _table().assign(streaks=1 - _table()["streaks"]), source="again")
    assert sum(1 for *_, k in g2.nx.edges(keys=True) if k == "co_occurs") == 21
    assert g2.nx.edges["pigment_network", "streaks", "co_occurs"]["phi"] == pytest.approx(-0.408248, abs=1e-6)


def test_columns_subset_and_errors() -> None:
    g = add_cooccurrence(G, _table(), columns=["Pigment Network", "streaks"])
    assert sum(1 for *_, k in g.nx.edges(keys=True) if k == "co_occurs") == 1
    with pytest.raises(DataError, match="join criteria; \\['ink'\\] are not criteria"):
        add_cooccurrence(G, _table(), columns=["ink", "streaks"])
    with pytest.raises(DataError, match="at least two criterion columns"):
        add_cooccurrence(G, _table()[["streaks", "ink"]])
    bad = _table()
    bad.loc[7, "streaks"] = 2
    with pytest.raises(DataError, match=r"row 7, column 'streaks': 2 is not 0/1"):
        add_cooccurrence(G, bad)
    with pytest.raises(DataError, match="lacks the column 'hair'"):
        cooccurrence_table(_table(), ["streaks", "hair"])
    with pytest.raises(DataError, match="unknown correction"):
        cooccurrence_table(_table(), ["streaks", "pigmentation"], correction="bonferroni")  # type: ignore[arg-type]
    assert list(CRITERIA) == list(G.criteria())
