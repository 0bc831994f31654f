"""The annotated route of confounder discovery: how annotated attributes co-occur with classes.

Every annotated attribute — artifact flags, checklist criteria, and metadata such as skin tone,
site or sex (categorical metadata one-hot, one indicator per level) — is crossed with every class
(one class against the rest) in every split, and with every other attribute.

Counting runs in DuckDB, so a table need not fit in memory: the source can be a
:class:`concepts.Dataset`, a data-set directory, a parquet file (read with ``read_parquet`` and a
bound path parameter), a pandas DataFrame or a DuckDB relation. Attribute x class counts come
from one ``GROUP BY`` over an ``UNPIVOT`` of the attribute columns; attribute x attribute counts
are accumulated batch by batch from a streamed indicator matrix. Column names are validated
against the source's columns and quoted, a parquet path is a bound parameter, and no value is
ever spliced into SQL (one-hot levels are matched in numpy).

Statistics of a 2 x 2 table ``[[a, b], [c, d]]`` (rows: attribute present / absent; columns:
the class / the other classes):

- prevalence in the class ``a / (a + c)``, in the other classes ``b / (b + d)``;
- lift ``P(attribute and class) / (P(attribute) P(class)) = a n / ((a + b)(a + c))``;
- odds ratio ``a d / (b c)`` with a 95% Wald (Woolf) interval on the log scale; when a cell is 0
  every cell gets +0.5 first (the Haldane-Anscombe correction; column ``haldane`` says so);
- p-value: Pearson's chi-square (1 degree of freedom, no continuity correction) when every
  expected count is at least ``min_expected`` (default 5), else Fisher's exact test (two-sided);
  column ``test`` names the one used;
- ``p_adjusted``: corrected for the number of tests within the split (Holm by default,
  Benjamini-Hochberg with ``correction="bh"``). With two classes the two one-vs-rest tables of
  an attribute are the same test and count once.

A row that cannot be tested (an attribute that never occurs or is always present, a class with no
cases in the split, a metadata column that merely refines the label) is kept, with
``testable=False`` and a ``note`` saying why, instead of NaN statistics passing silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from concepts.discovery._cooccurrence_sql import (
    ALL_SPLITS,
    Attr,
    AttributeSource,
    Plan,
    count_levels,
    detect_label_derived,
    make_plan,
    pair_counts,
    resolve_attrs,
    splits_of,
)
from concepts.discovery._cooccurrence_stats import (
    Correction,
    check_correction,
    odds_ratio_ci,
    two_by_two_test,
)
from concepts.tcav import adjust_pvalues

__all__ = [
    "ATTRIBUTE_CLASS_COLUMNS",
    "ATTRIBUTE_PAIR_COLUMNS",
    "attribute_class_table",
    "attribute_pair_table",
]

#: Columns of :func:`attribute_class_table`.
ATTRIBUTE_CLASS_COLUMNS: tuple[str, ...] = (
    "split", "attribute", "kind", "column", "level", "class",
    "n", "n_class", "n_attribute", "n_both",
    "prevalence_class", "prevalence_other", "lift",
    "odds_ratio", "or_ci_low", "or_ci_high", "haldane",
    "test", "p_value", "p_adjusted", "significant", "testable", "note",
)

#: Columns of :func:`attribute_pair_table`.
ATTRIBUTE_PAIR_COLUMNS: tuple[str, ...] = (
    "split", "a", "b", "kind_a", "kind_b", "n", "n11", "n10", "n01", "n00",
    "phi", "odds_ratio", "haldane", "test", "p_value", "p_adjusted", "significant",
    "testable", "note",
)

# ====================================================================== attribute x class
def attribute_class_table(
    source: AttributeSource,
    *,
    artifacts: Sequence[str] | None = None,
    criteria: Sequence[str] | None = None,
    metadata: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    label_column: str = "label",
    split_column: str = "split",
    correction: Correction = "holm",
    alpha: float = 0.05,
    min_expected: float = 5.0,
    max_levels: int = 20,
    label_derived: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Co-occurrence of every annotated attribute with every class, per split.

    Parameters
    ----------
    source
        A :class:`concepts.Dataset`, a data-set directory, a parquet file of cases, a DataFrame
        or a DuckDB relation. The table needs a label column; a split column is optional.
    artifacts, criteria, metadata
        The attribute columns. Default: those a data set declares; for a plain table the known
        :data:`concepts.ARTIFACTS` / :data:`concepts.CRITERIA` columns it has, and every other
        column as metadata (except ids, paths and columns derived from the criteria).
        Artifact and criterion columns must be 0/1 (or boolean; NULL = not annotated).
        Metadata with only 0/1 values is one indicator; other metadata is one-hot per level
        (``"sex=female"``); metadata with more than ``max_levels`` levels is reported as not
        testable (bin it first).
    classes
        Class names (default: the data set's classes, else the labels found). A class with no
        cases in a split gives not-testable rows.
    splits
        Splits to report (default: every split plus :data:`ALL_SPLITS`, the pooled cases).
    label_column, split_column
        Column names of the class label and the split.
    correction
        ``"holm"`` (default), ``"bh"`` or ``"none"``, applied per split over the testable rows.
    alpha
        Level for the ``significant`` column (``p_adjusted < alpha``).
    min_expected
        Fisher's exact test replaces the chi-square test when an expected count is below this.
    max_levels
        Most levels a metadata column may have to be one-hot encoded.
    label_derived
        Metadata columns that refine the label (reported as not testable). Default: detected —
        a metadata column every level of which occurs in one class only (e.g. a diagnosis
        column next to a melanoma/non-melanoma label). Pass ``()`` to test every column.

    Returns
    -------
    pandas.DataFrame
        One row per (split, attribute, class), columns :data:`ATTRIBUTE_CLASS_COLUMNS` (see the
        module docstring for the formulas). Counts are always filled; statistics of rows with
        ``testable=False`` are missing and ``note`` says why.

    Raises
    ------
    DataError
        No label column, an empty table, unlabelled cases, a label outside ``classes``, fewer
        than two classes, a missing attribute column, a non-0/1 artifact or criterion value, no
        attribute at all, an unknown split or correction.
    """
    check_correction(correction)
    plan = make_plan(source, artifacts=artifacts, criteria=criteria, metadata=metadata, classes=classes,
                 label_column=label_column, split_column=split_column, max_levels=max_levels,
                 label_derived=label_derived)
    long, totals = count_levels(plan)
    resolve_attrs(plan, long)
    detect_label_derived(plan, long, label_derived)
    want = splits_of(plan, totals, splits)
    rows: list[dict[str, Any]] = []
    for split in want:
        sub = long if split == ALL_SPLITS else long[long["split"] == split]
        rows.extend(_class_rows(plan, sub, split, min_expected))
    df = pd.DataFrame(rows, columns=list(ATTRIBUTE_CLASS_COLUMNS))
    return _adjust(df, ["split"], correction, alpha, dedupe_binary=len(plan.classes) == 2)


def _class_rows(plan: Plan, long: pd.DataFrame, split: str, min_expected: float) -> Iterator[dict[str, Any]]:
    by_col = {c: g for c, g in long.groupby("column", sort=False)}
    for at in plan.attrs:
        g = by_col.get(at.column)
        n_by_class = (
            g.groupby("label")["n"].sum() if g is not None else pd.Series(dtype="int64")
        )
        if at.level is None:
            present = g[g["level"] == "1"] if g is not None else None
        elif g is not None and at.level:
            present = g[g["level"] == at.level]
        else:
            present = None
        a_by_class = (
            present.groupby("label")["n"].sum() if present is not None else pd.Series(dtype="int64")
        )
        n = int(n_by_class.sum())
        n_attr = int(a_by_class.sum())
        for cls in plan.classes:
            n_cls = int(n_by_class.get(cls, 0))
            a = int(a_by_class.get(cls, 0))
            row: dict[str, Any] = {
                "split": split, "attribute": at.name, "kind": at.kind, "column": at.column,
                "level": at.level if at.level is not None else "1", "class": cls,
                "n": n, "n_class": n_cls, "n_attribute": n_attr, "n_both": a,
                "prevalence_class": a / n_cls if n_cls else math.nan,
                "prevalence_other": (n_attr - a) / (n - n_cls) if n - n_cls else math.nan,
                "lift": a * n / (n_attr * n_cls) if n_attr and n_cls else math.nan,
                "odds_ratio": math.nan, "or_ci_low": math.nan, "or_ci_high": math.nan,
                "haldane": False, "test": None, "p_value": math.nan, "p_adjusted": math.nan,
                "significant": False, "testable": False, "note": "",
            }
            note = _untestable(plan, at, split, cls, n, n_cls, n_attr)
            if note:
                row["note"] = note
            else:
                b, c = n_attr - a, n_cls - a
                d = n - n_attr - c
                or_, lo, hi, hal = odds_ratio_ci(a, b, c, d)
                test, p = two_by_two_test(a, b, c, d, min_expected)
                row.update(odds_ratio=or_, or_ci_low=lo, or_ci_high=hi, haldane=hal, test=test,
                           p_value=p, testable=True)
                if hal:
                    row["note"] = "a cell is 0: odds ratio with the Haldane-Anscombe +0.5 correction"
            yield row


def _untestable(plan: Plan, at: Attr, split: str, cls: str, n: int, n_cls: int, n_attr: int) -> str:
    where = "across all splits" if split == ALL_SPLITS else f"in split {split!r}"
    if at.column in plan.too_many:
        return (f"not testable: {at.column!r} has {plan.too_many[at.column]} levels, more than "
                "max_levels — bin it into a few categories first")
    if at.column in plan.label_derived:
        return (f"not testable: {at.column!r} refines the label (each of its levels occurs in one "
                "class only), so it co-occurs with the classes by construction")
    if n == 0:
        return f"not testable: no case {where} has {at.column!r} annotated"
    if n_cls == 0:
        return f"not testable: class {cls!r} has no cases {where}"
    if n_cls == n:
        return f"not testable: only class {cls!r} occurs {where} — nothing to compare it with"
    if n_attr == 0:
        return f"not testable: {at.name!r} never occurs {where}"
    if n_attr == n:
        return f"not testable: {at.name!r} is present in every case {where} (constant)"
    return ""


def _adjust(df: pd.DataFrame, family: list[str], correction: str, alpha: float, *,
            dedupe_binary: bool) -> pd.DataFrame:
    df = df.copy()
    for _, g in df[df["testable"]].groupby(family, sort=False):
        if dedupe_binary and "attribute" in g.columns:
            first = g.drop_duplicates(["split", "attribute"])
            adj = pd.Series(adjust_pvalues(first["p_value"].to_numpy(), correction),
                            index=first["attribute"].to_numpy())
            df.loc[g.index, "p_adjusted"] = g["attribute"].map(adj).to_numpy()
        else:
            df.loc[g.index, "p_adjusted"] = adjust_pvalues(g["p_value"].to_numpy(), correction)
    df["significant"] = df["testable"] & (df["p_adjusted"] < alpha)
    df["significant"] = df["significant"].astype(bool)
    return df.reset_index(drop=True)


# ====================================================================== attribute x attribute
def attribute_pair_table(
    source: AttributeSource,
    *,
    artifacts: Sequence[str] | None = None,
    criteria: Sequence[str] | None = None,
    metadata: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    label_column: str = "label",
    split_column: str = "split",
    correction: Correction = "holm",
    alpha: float = 0.05,
    min_expected: float = 5.0,
    max_levels: int = 20,
    batch_size: int = 65536,
) -> pd.DataFrame:
    """Co-occurrence of every pair of annotated attributes (counts, phi, test), per split.

    Attributes are resolved as in :func:`attribute_class_table` (one indicator per binary
    column, one per level of categorical metadata; levels of the same column are not paired).
    The indicator matrix is streamed from DuckDB in batches of ``batch_size`` rows and the pair
    counts accumulated, so the table need not fit in memory.

    Returns
    -------
    pandas.DataFrame
        One row per (split, pair), columns :data:`ATTRIBUTE_PAIR_COLUMNS`: ``n11`` both
        present, ``n10`` only ``a``, ``n01`` only ``b``, ``n00`` neither (cases where both are
        annotated); ``phi`` = (n11 n00 - n10 n01) / sqrt(product of the margins); the odds ratio
        (Haldane-Anscombe corrected when a cell is 0); chi-square or Fisher p-value and its
        correction per split. A pair in which one attribute is constant is not testable
        (``note`` says why). Sort by ``phi`` to see which artifact rides along with which
        criterion.

    Raises
    ------
    DataError
        As :func:`attribute_class_table`.
    """
    check_correction(correction)
    plan = make_plan(source, artifacts=artifacts, criteria=criteria, metadata=metadata, classes=classes,
                 label_column=label_column, split_column=split_column, max_levels=max_levels,
                 label_derived=())
    long, totals = count_levels(plan)
    resolve_attrs(plan, long)
    attrs = [a for a in plan.attrs if a.column not in plan.too_many and a.level != ""]
    want = splits_of(plan, totals, splits)
    counts = pair_counts(plan, attrs, batch_size)
    rows: list[dict[str, Any]] = []
    for split in want:
        rows.extend(_pair_rows(attrs, _split_counts(counts, split, len(attrs)), split, min_expected))
    df = pd.DataFrame(rows, columns=list(ATTRIBUTE_PAIR_COLUMNS))
    return _adjust(df, ["split"], correction, alpha, dedupe_binary=False)


@dataclass(frozen=True)
class _PairCounts:
    """Pair counts of one split: ``annotated[i, j]`` cases with both annotated, ``present_a``
    with ``i`` present (and ``j`` annotated), ``present_b`` with ``j`` present, ``both``."""

    annotated: np.ndarray  # O'O
    present_a: np.ndarray  # X'O
    present_b: np.ndarray  # O'X
    both: np.ndarray  # X'X


def _split_counts(counts: dict[str, list[np.ndarray]], split: str, k: int) -> _PairCounts:
    """The pair counts of ``split`` (summed over every split for :data:`ALL_SPLITS`)."""
    mats = [np.zeros((k, k), dtype=np.int64) for _ in range(4)]
    for s, m in counts.items():
        if split in (ALL_SPLITS, s):
            for i in range(4):
                mats[i] += m[i]
    return _PairCounts(*mats)


def _pair_rows(attrs: Sequence[Attr], pc: _PairCounts, split: str, min_expected: float) -> Iterator[dict[str, Any]]:
    where = "across all splits" if split == ALL_SPLITS else f"in split {split!r}"
    k = len(attrs)
    for i in range(k):
        for j in range(i + 1, k):
            ai, aj = attrs[i], attrs[j]
            if ai.column == aj.column:
                continue
            n = int(pc.annotated[i, j])
            n11 = int(pc.both[i, j])
            n10 = int(pc.present_a[i, j]) - n11
            n01 = int(pc.present_b[i, j]) - n11
            yield _pair_row(split, where, ai, aj, (n11, n10, n01, n - n11 - n10 - n01), min_expected)


def _pair_row(split: str, where: str, ai: Attr, aj: Attr, cells: tuple[int, int, int, int],
              min_expected: float) -> dict[str, Any]:
    """One row of :func:`attribute_pair_table` from the 2 x 2 cells ``(n11, n10, n01, n00)``."""
    n11, n10, n01, n00 = cells
    n = n11 + n10 + n01 + n00
    row: dict[str, Any] = {
        "split": split, "a": ai.name, "b": aj.name, "kind_a": ai.kind, "kind_b": aj.kind,
        "n": n, "n11": n11, "n10": n10, "n01": n01, "n00": n00,
        "phi": math.nan, "odds_ratio": math.nan, "haldane": False, "test": None,
        "p_value": math.nan, "p_adjusted": math.nan, "significant": False,
        "testable": False, "note": "",
    }
    margins = (n11 + n10, n01 + n00, n11 + n01, n10 + n00)
    if n == 0:
        row["note"] = f"not testable: no case {where} has both annotated"
    elif min(margins) == 0:
        const = ai.name if min(margins[:2]) == 0 else aj.name
        row["note"] = f"not testable: {const!r} is constant {where}"
    else:
        phi = (n11 * n00 - n10 * n01) / math.sqrt(float(np.prod(np.array(margins, dtype=float))))
        or_, _, _, hal = odds_ratio_ci(n11, n10, n01, n00)
        test, p = two_by_two_test(n11, n10, n01, n00, min_expected)
        row.update(phi=phi, odds_ratio=or_, haldane=hal, test=test, p_value=p, testable=True)
    return row
