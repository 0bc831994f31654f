"""Annotated route: attribute x class and attribute x attribute co-occurrence tables."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from concepts import CRITERIA, DataError, Dataset, DatasetInfo
from concepts.discovery import (
    ALL_SPLITS,
    ATTRIBUTE_CLASS_COLUMNS,
    ATTRIBUTE_PAIR_COLUMNS,
    adjust_pvalues,
    attribute_class_table,
    attribute_pair_table,
    odds_ratio_ci,
    two_by_two_test,
)


def _table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Two classes; ``ink`` planted with melanoma, ``hair`` independent, ``ruler`` never present,
    ``sex`` with missing values, ``pigment_network`` riding with ``ink``."""
    rng = np.random.default_rng(seed)
    lab = np.where(rng.random(n) < 0.4, "melanoma", "nevus")
    ink = ((lab == "melanoma") & (rng.random(n) < 0.6)) | (rng.random(n) < 0.05)
    pn = np.where(ink, rng.random(n) < 0.8, rng.random(n) < 0.1)
    sex = rng.choice(np.array(["male", "female", None], dtype=object), n, p=[0.45, 0.45, 0.1])
    return pd.DataFrame(
        {
            "case_id": [f"c{i}" for i in range(n)],
            "label": lab,
            "split": rng.choice(["train", "val"], n, p=[0.7, 0.3]),
            "ink": ink.astype(int),
            "hair": (rng.random(n) < 0.3).astype(int),
            "ruler": np.zeros(n, dtype=int),
            "pigment_network": pn.astype(int),
            "sex": sex,
        }
    )


def _row(t: pd.DataFrame, split: str, attribute: str, cls: str) -> pd.Series:
    sel = t[(t["split"] == split) & (t["attribute"] == attribute) & (t["class"] == cls)]
    assert len(sel) == 1, (split, attribute, cls)
    return sel.iloc[0]


# ---------------------------------------------------------------------- statistics
def test_odds_ratio_and_haldane() -> None:
    or_, lo, hi, hal = odds_ratio_ci(20, 10, 5, 40)
    assert not hal
    assert or_ == pytest.approx(16.0)
    se = math.sqrt(1 / 20 + 1 / 10 + 1 / 5 + 1 / 40)
    assert lo == pytest.approx(16.0 * math.exp(-1.959964 * se), rel=1e-5)
    assert hi == pytest.approx(16.0 * math.exp(1.959964 * se), rel=1e-5)
    or0, lo0, hi0, hal0 = odds_ratio_ci(10, 0, 5, 20)
    assert hal0
    assert or0 == pytest.approx(10.5 * 20.5 / (0.5 * 5.5))
    assert 0 < lo0 < or0 < hi0


def test_chi2_when_large_fisher_when_small() -> None:
    test, p = two_by_two_test(30, 20, 10, 40)
    assert test == "chi2"
    assert p == pytest.approx(stats.chi2_contingency([[30, 20], [10, 40]], correction=False).pvalue)
    test, p = two_by_two_test(3, 1, 1, 3)
    assert test == "fisher"
    assert p == pytest.approx(stats.fisher_exact([[3, 1], [1, 3]]).pvalue)


def test_holm_and_bh() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    holm = adjust_pvalues(p, "holm")
    # sorted 0.005, 0.01, 0.03, 0.04 -> 0.02, 0.03, 0.06, 0.06 (monotone)
    np.testing.assert_allclose(holm, [0.03, 0.06, 0.06, 0.02])
    bh = adjust_pvalues(p, "bh")
    np.testing.assert_allclose(bh, [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(adjust_pvalues(p, "none"), p)
    with pytest.raises(DataError, match="unknown correction"):
        adjust_pvalues(p, "bonferonni")


# ---------------------------------------------------------------------- attribute x class
def test_counts_prevalence_lift_or_match_hand_computation() -> None:
    df = _table()
    t = attribute_class_table(df)
    assert list(t.columns) == list(ATTRIBUTE_CLASS_COLUMNS)
    assert set(t["split"]) == {"train", "val", ALL_SPLITS}
    tr = df[df.split == "train"]
    a = int(((tr.ink == 1) & (tr.label == "melanoma")).sum())
    b = int(((tr.ink == 1) & (tr.label != "melanoma")).sum())
    c = int(((tr.ink == 0) & (tr.label == "melanoma")).sum())
    d = int(((tr.ink == 0) & (tr.label != "melanoma")).sum())
    r = _row(t, "train", "ink", "melanoma")
    assert (r.n, r.n_class, r.n_attribute, r.n_both) == (a + b + c + d, a + c, a + b, a)
    assert r.prevalence_class == pytest.approx(a / (a + c))
    assert r.prevalence_other == pytest.approx(b / (b + d))
    assert r.lift == pytest.approx(a * (a + b + c + d) / ((a + b) * (a + c)))
    assert r.odds_ratio == pytest.approx(a * d / (b * c))
    assert r.test == "chi2"
    assert r.p_value == pytest.approx(stats.chi2_contingency([[a, b], [c, d]], correction=False).pvalue)
    assert r.significant and r.testable and r.or_ci_low > 1
    # the mirrored row of a two-class problem: same test, inverse odds ratio
    m = _row(t, "train", "ink", "nevus")
    assert m.odds_ratio == pytest.approx(1 / r.odds_ratio)
    assert m.p_adjusted == pytest.approx(r.p_adjusted)
    assert not _row(t, "train", "hair", "melanoma").significant


def test_holm_family_counts_each_binary_attribute_once() -> None:
    t = attribute_class_table(_table(), splits=["train"])
    ok = t[t.testable]
    first = ok.drop_duplicates("attribute")
    expected = adjust_pvalues(first["p_value"].to_numpy(), "holm")
    got = first["p_adjusted"].to_numpy()
    np.testing.assert_allclose(got, expected)
    bh = attribute_class_table(_table(), splits=["train"], correction="bh")
    assert (bh[bh.testable]["p_adjusted"].to_numpy() <= ok["p_adjusted"].to_numpy() + 1e-12).all()


def test_categorical_metadata_one_hot_and_missing_values_excluded() -> None:
    df = _table()
    t = attribute_class_table(df, splits=[ALL_SPLITS])
    assert {"sex=female", "sex=male"} <= set(t["attribute"])
    r = _row(t, ALL_SPLITS, "sex=female", "melanoma")
    assert r.n == int(df["sex"].notna().sum())
    assert r.kind == "metadata" and r.column == "sex" and r.level == "female"
    assert r.n_attribute == int((df["sex"] == "female").sum())


def test_sources_dataframe_parquet_relation_and_dataset_agree(tmp_path: Path) -> None:
    df = _table()
    ref = attribute_class_table(df)
    pq = tmp_path / "cases.parquet"
    df.to_parquet(pq)
    con = duckdb.connect()
    rel = con.read_parquet(str(pq))
    for src in (pq, str(pq), rel):
        got = attribute_class_table(src)
        pd.testing.assert_frame_equal(got, ref)
    info = DatasetInfo("toy", "test", ("melanoma", "nevus"), 8, concepts=("pigment_network",),
                       artifacts=("ruler", "ink", "hair"), metadata=("sex",))
    ds = Dataset.write(tmp_path / "toy", info, df, np.zeros((len(df), 8, 8, 3), np.uint8))
    for src in (ds, tmp_path / "toy"):
        got = attribute_class_table(src)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), ref)


def test_not_testable_rows_say_why() -> None:
    t = attribute_class_table(_table(), splits=["train"])
    r = _row(t, "train", "ruler", "melanoma")
    assert not r.testable and math.isnan(r.p_value)
    assert "never occurs" in r.note and "'ruler'" in r.note
    assert not r.significant
    # always present
    df = _table().assign(gel_bubble=1)
    t = attribute_class_table(df, artifacts=["gel_bubble", "ink"], splits=["train"])
    r = _row(t, "train", "gel_bubble", "nevus")
    assert not r.testable and "present in every case" in r.note


def test_class_without_examples_in_a_split(tmp_path: Path) -> None:
    df = _table()
    df.loc[(df.split == "val") & (df.label == "nevus"), "label"] = "melanoma"
    t = attribute_class_table(df, classes=["melanoma", "nevus", "seborrheic_keratosis"])
    r = _row(t, "train", "ink", "seborrheic_keratosis")
    assert not r.testable and "has no cases" in r.note
    assert r.n_class == 0
    v = _row(t, "val", "ink", "melanoma")
    assert not v.testable and "only class 'melanoma'" in v.note
    assert _row(t, "train", "ink", "melanoma").testable


def test_fisher_and_haldane_on_small_counts() -> None:
    df = pd.DataFrame({"label": ["a"] * 6 + ["b"] * 6, "ink": [1] * 5 + [0] + [0] * 6})
    t = attribute_class_table(df, artifacts=["ink"])
    r = _row(t, ALL_SPLITS, "ink", "a")
    assert r.test == "fisher" and r.haldane
    assert "Haldane-Anscombe" in r.note
    assert r.p_value == pytest.approx(stats.fisher_exact([[5, 0], [1, 6]]).pvalue)
    assert r.odds_ratio == pytest.approx(5.5 * 6.5 / (0.5 * 1.5))


def test_label_derived_and_high_cardinality_metadata() -> None:
    df = _table()
    df["diagnosis"] = np.where(df.label == "melanoma", "melanoma in situ", "clark nevus")
    df["age"] = np.arange(len(df))
    t = attribute_class_table(df, splits=[ALL_SPLITS])
    d = t[t.column == "diagnosis"]
    assert len(d) and not d.testable.any()
    assert d.note.str.contains("refines the label").all()
    a = t[t.column == "age"]
    assert len(a) == 2 and not a.testable.any() and a.note.str.contains("levels").all()
    t2 = attribute_class_table(df, splits=[ALL_SPLITS], label_derived=())
    assert t2[t2.column == "diagnosis"].testable.all()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.drop(columns="label"), "no 'label' column"),
        (lambda d: d.iloc[:0], "empty"),
        (lambda d: d.assign(ink=d.ink.replace(1, 2)), "0/1"),
        (lambda d: d.assign(label="nevus"), "only one class"),
        (lambda d: d.assign(label=d.label.where(d.index > 0, None)), "have no 'label'"),
    ],
)
def test_data_errors(mutate, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=match):
        attribute_class_table(mutate(_table()))


def test_more_data_errors(tmp_path: Path) -> None:
    df = _table()
    with pytest.raises(DataError, match="unknown split"):
        attribute_class_table(df, splits=["test"])
    with pytest.raises(DataError, match="not in the cases table"):
        attribute_class_table(df, artifacts=["dark_corner"])
    with pytest.raises(DataError, match="no annotated attributes"):
        attribute_class_table(df[["label", "split"]])
    with pytest.raises(DataError, match="not one of the classes"):
        attribute_class_table(df, classes=["melanoma"])
    with pytest.raises(DataError, match="no cases table"):
        attribute_class_table(tmp_path / "missing.parquet")
    with pytest.raises(DataError, match="cannot read cases"):
        attribute_class_table([1, 2, 3])  # type: ignore[arg-type]


# ---------------------------------------------------------------------- attribute x attribute
def test_pairs_phi_counts_and_riding_artifact() -> None:
    df = _table()
    t = attribute_pair_table(df, splits=[ALL_SPLITS])
    assert list(t.columns) == list(ATTRIBUTE_PAIR_COLUMNS)
    r = t[(t.a == "ink") & (t.b == "pigment_network")].iloc[0]
    x, y = df.ink.to_numpy(), df.pigment_network.to_numpy()
    assert (r.n11, r.n10, r.n01, r.n00) == (
        int((x & y).sum()), int((x & (1 - y)).sum()), int(((1 - x) & y).sum()), int(((1 - x) & (1 - y)).sum()))
    assert r.phi == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert r.significant and r.phi > 0.5
    # levels of one column are never paired; a constant attribute is not testable
    assert t[(t.a == "sex=female") & (t.b == "sex=male")].empty
    const = t[(t.a == "ruler") | (t.b == "ruler")]
    assert len(const) and not const.testable.any() and const.note.str.contains("constant").all()
    # pairs with a missing sex count only cases where both are annotated
    s = t[(t.a == "ink") & (t.b == "sex=male")].iloc[0]
    assert s.n == int(df.sex.notna().sum())


def test_pairs_identical_attributes_and_batching() -> None:
    df = _table().assign(hair=lambda d: d.ink)
    full = attribute_pair_table(df)
    r = full[(full.split == "train") & (full.a == "ink") & (full.b == "hair")].iloc[0]
    assert r.phi == pytest.approx(1.0) and r.n10 == 0 and r.n01 == 0 and r.haldane
    small = attribute_pair_table(df, batch_size=7)
    pd.testing.assert_frame_equal(small, full)


# ---------------------------------------------------------------------- derm7pt-format data set
def _derm7pt_like(tmp_path: Path) -> Dataset:
    rng = np.random.default_rng(3)
    n = 40
    mel = np.array([True] * 16 + [False] * 24)
    diag = np.where(mel, rng.choice(["melanoma", "melanoma (in situ)"], n),
                    rng.choice(["clark nevus", "seborrheic keratosis", "blue nevus"], n))
    cases = pd.DataFrame({
        "case_id": [str(i) for i in range(n)],
        "label": np.where(mel, "melanoma", "non_melanoma"),
        "split": np.array(["train", "val", "test", "train"] * 10),
        **{c: (rng.random(n) < np.where(mel, 0.6, 0.15)).astype(int) for c in CRITERIA},
        "diagnosis": diag,
        "level_of_diagnostic_difficulty": rng.choice(["low", "medium", "high"], n),
        "elevation": rng.choice(["flat", "palpable", "nodular"], n),
        "location": rng.choice(["back", "lower limbs", "abdomen", "acral"], n),
        "sex": rng.choice(["male", "female"], n),
        "management": rng.choice(["excision", "clinical follow up"], n),
    })
    meta = ("diagnosis", "level_of_diagnostic_difficulty", "elevation", "location", "sex", "management")
    info = DatasetInfo("d7", "derm7pt", ("melanoma", "non_melanoma"), 8, concepts=CRITERIA,
                       artifacts=(), metadata=meta)
    return Dataset.write(tmp_path / "d7", info, cases, np.zeros((n, 8, 8, 3), np.uint8))


def test_derm7pt_format_dataset(tmp_path: Path) -> None:
    ds = _derm7pt_like(tmp_path)
    t = attribute_class_table(ds)
    assert set(t["split"]) == {"train", "val", "test", ALL_SPLITS}
    assert set(t[t.kind == "criterion"]["attribute"]) == set(CRITERIA)
    assert {"location=acral", "sex=female", "elevation=nodular"} <= set(t["attribute"])
    diag = t[t.column == "diagnosis"]
    assert not diag.testable.any()  # a diagnosis refines the melanoma label
    # small splits: Fisher's exact test decides
    tested = t[t.testable & (t.split == "val")]
    assert (tested["test"] == "fisher").all()
    assert t[t.testable].p_value.between(0, 1).all()
    pairs = attribute_pair_table(ds, splits=["train"])
    assert len(pairs) and pairs.testable.any()


# ---------------------------------------------------------------------- properties
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=2, max_value=60),
    st.integers(min_value=0, max_value=2**31 - 1),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_property_counts_and_pvalues(n: int, seed: int, rate: float) -> None:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "label": rng.choice(["a", "b", "c"], n),
        "ink": (rng.random(n) < rate).astype(int),
        "hair": rng.integers(0, 2, n),
    })
    if df.label.nunique() < 2:
        with pytest.raises(DataError):
            attribute_class_table(df)
        return
    t = attribute_class_table(df)
    assert (t.n == n).all()
    ok = t[t.testable]
    assert ok.p_value.between(0, 1).all()
    assert (ok.p_adjusted >= ok.p_value - 1e-12).all()
    assert (ok.or_ci_low <= ok.odds_ratio + 1e-9).all() and (ok.odds_ratio <= ok.or_ci_high + 1e-9).all()
    bad = t[~t.testable]
    assert (bad.note.str.startswith("not testable")).all()
    for (_, _), g in t.groupby(["attribute", "split"]):
        assert g.n_class.sum() == n
        assert g.n_both.sum() == g.n_attribute.iloc[0]
