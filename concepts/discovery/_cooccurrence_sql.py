"""DuckDB side of the co-occurrence tables: open a source, resolve its attributes, count.

Sources: a :class:`concepts.Dataset` (its cases table), a data-set directory or a parquet file
(read with ``read_parquet`` and the path bound as a parameter, never loaded into pandas), a
pandas DataFrame or a DuckDB relation. Column names are validated against the source's columns
and quoted; no value is ever spliced into SQL (one-hot levels are matched in numpy).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import duckdb
import numpy as np
import pandas as pd

from concepts._errors import DataError
from concepts.data import ARTIFACTS, CRITERIA, Dataset, DatasetInfo

__all__ = ["ALL_SPLITS", "AttributeSource"]

#: Name of the pseudo-split that pools every case.
ALL_SPLITS = "all"

#: A table of cases: a data set, a data-set directory or parquet file, a DataFrame, a relation.
AttributeSource: TypeAlias = Dataset | pd.DataFrame | duckdb.DuckDBPyRelation | str | Path

_SPLIT = "__cw_split"
_LABEL = "__cw_label"
_INVALID = "__cw_invalid__"
_RESERVED = ("case_id", "label", "split", "source_path")
# Columns an importer derives from the criteria (raw labels, points, the checklist score).
_DERIVED_SUFFIXES = ("_raw", "_points", "_path")
_DERIVED = ("seven_point_score", "case_num", "notes", "clinic", "derm")


@dataclass
class _Source:
    rel: duckdb.DuckDBPyRelation
    con: duckdb.DuckDBPyConnection | None  # keeps an own connection alive
    columns: list[str]
    types: dict[str, str]
    info: DatasetInfo | None = None
    name: str = "table"


@dataclass(frozen=True)
class Attr:
    name: str
    kind: str
    column: str
    level: str | None  # None: a 0/1 column


@dataclass
class Plan:
    src: _Source
    label: str
    split: str | None
    classes: tuple[str, ...]
    binary: list[tuple[str, str]]  # (column, kind) checked to be 0/1
    categorical: list[str]  # metadata columns one-hot per level
    too_many: dict[str, int] = field(default_factory=dict)  # column -> distinct levels
    label_derived: set[str] = field(default_factory=set)
    attrs: list[Attr] = field(default_factory=list)


def _q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def _open(source: AttributeSource) -> _Source:
    if isinstance(source, Dataset):
        con = duckdb.connect()
        rel = con.from_df(source.cases)
        return _Source(rel, con, list(rel.columns), _types(rel), source.info, source.info.name)
    if isinstance(source, pd.DataFrame):
        con = duckdb.connect()
        rel = con.from_df(source)
        return _Source(rel, con, list(rel.columns), _types(rel))
    if isinstance(source, duckdb.DuckDBPyRelation):
        return _Source(source, None, list(source.columns), _types(source))
    if isinstance(source, str | Path):
        p = Path(source).expanduser()
        info: DatasetInfo | None = None
        if p.is_dir():
            meta = p / "dataset.json"
            if not meta.is_file():
                raise DataError(
                    f"{p} is a folder but not a data set (dataset.json missing) — pass a data-set "
                    "directory or a parquet file of cases"
                )
            info = DatasetInfo.from_json(json.loads(meta.read_text()))
            p = p / "cases.parquet"
        if not p.is_file():
            raise DataError(f"no cases table at {p} — pass a data-set directory or a parquet file")
        con = duckdb.connect()
        try:
            rel = con.sql("SELECT * FROM read_parquet($path)", params={"path": str(p)})
            cols = list(rel.columns)
        except duckdb.Error as exc:
            raise DataError(f"{p} is not a readable parquet file ({exc})") from exc
        return _Source(rel, con, cols, _types(rel), info, info.name if info else p.stem)
    raise DataError(
        f"cannot read cases from a {type(source).__name__}: pass a Dataset, a data-set directory, "
        "a parquet path, a pandas DataFrame or a duckdb relation"
    )


def _types(rel: duckdb.DuckDBPyRelation) -> dict[str, str]:
    return {c: str(t).upper() for c, t in zip(rel.columns, rel.types, strict=True)}


def _relation(src: _Source, query: str) -> duckdb.DuckDBPyRelation:
    """``query`` over the source (visible as ``src``) as a relation."""
    try:
        rel = src.rel.query("src", query)
    except duckdb.Error as exc:  # pragma: no cover - defensive: identifiers are validated
        raise DataError(f"cannot read the cases of {src.name}: {exc}") from exc
    if rel is None:  # pragma: no cover - a SELECT always gives a relation
        raise DataError(f"cannot read the cases of {src.name}: the query returned nothing")
    return rel


def _sql(src: _Source, query: str) -> list[tuple[Any, ...]]:
    """Rows of ``query`` over the source (visible as ``src``)."""
    try:
        return _relation(src, query).fetchall()
    except duckdb.Error as exc:  # pragma: no cover - defensive: identifiers are validated
        raise DataError(f"cannot read the cases of {src.name}: {exc}") from exc


def _is_numeric(t: str) -> bool:
    return t in {"BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                 "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "REAL"} or t.startswith(
        "DECIMAL")


def _binary_expr(col: str) -> str:
    """SQL mapping a 0/1 (or boolean) column to '1' / '0' / NULL / the invalid marker."""
    q = _q(col)
    num = f"TRY_CAST(TRY_CAST({q} AS VARCHAR) AS DOUBLE)"
    boolean = f"lower(TRY_CAST({q} AS VARCHAR))"
    return (
        f"CASE WHEN {q} IS NULL THEN NULL WHEN {num} = 1 OR {boolean} = 'true' THEN '1' "
        f"WHEN {num} = 0 OR {boolean} = 'false' THEN '0' ELSE '{_INVALID}' END"
    )


def make_plan(
    source: AttributeSource,
    *,
    artifacts: Sequence[str] | None,
    criteria: Sequence[str] | None,
    metadata: Sequence[str] | None,
    classes: Sequence[str] | None,
    label_column: str,
    split_column: str,
    max_levels: int,
    label_derived: Sequence[str] | None,
) -> Plan:
    """Open ``source`` and resolve its label, classes and attribute columns.

    Raises
    ------
    DataError
        See :func:`concepts.discovery.attribute_class_table`.
    """
    src = _open(source)
    cols = src.columns
    if label_column not in cols:
        raise DataError(
            f"{src.name}: no {label_column!r} column — the cases table needs the class of every "
            "case (pass label_column= if it has another name)"
        )
    arts, crits, meta = _attribute_columns(src, artifacts, criteria, metadata, label_column, split_column)
    cls = _classes(src, classes, label_column)
    plan = Plan(src, label_column, split_column if split_column in cols else None, cls, [], [])
    plan.binary = [(c, "artifact") for c in arts] + [(c, "criterion") for c in crits]
    if meta:
        _sort_metadata(plan, meta, max_levels)
    plan.label_derived = set(label_derived) if label_derived is not None else set()
    return plan


def _attribute_columns(
    src: _Source, artifacts: Sequence[str] | None, criteria: Sequence[str] | None,
    metadata: Sequence[str] | None, label_column: str, split_column: str,
) -> tuple[list[str], list[str], list[str]]:
    """The artifact, criterion and metadata columns (given, declared by the data set, or found)."""
    cols, info = src.columns, src.info
    arts = list(artifacts) if artifacts is not None else (
        list(info.artifacts) if info else [c for c in ARTIFACTS if c in cols])
    crits = list(criteria) if criteria is not None else (
        list(info.concepts) if info else [c for c in CRITERIA if c in cols])
    taken = {*arts, *crits, label_column, split_column, *_RESERVED}
    if metadata is not None:
        meta = list(metadata)
    elif info is not None:
        meta = list(info.metadata)
    else:
        meta = [
            c for c in cols
            if c not in taken and c not in _DERIVED and not c.endswith(_DERIVED_SUFFIXES)
        ]
    seen: dict[str, str] = {}
    for kind, names in (("artifact", arts), ("criterion", crits), ("metadata", meta)):
        for c in names:
            if c not in cols:
                raise DataError(
                    f"{src.name}: the {kind} column {c!r} is not in the cases table (columns: "
                    f"{', '.join(cols[:20])})"
                )
            if c in (label_column, split_column):
                raise DataError(f"{c!r} is the label or split column, not an attribute")
            if c in seen:
                raise DataError(f"column {c!r} is named twice (as {seen[c]} and {kind})")
            seen[c] = kind
    if not seen:
        raise DataError(
            f"{src.name}: no annotated attributes to test — declare artifact/criterion/metadata "
            "columns (artifacts=, criteria=, metadata=) or import a data set that has them"
        )
    return arts, crits, meta


def _classes(src: _Source, classes: Sequence[str] | None, label_column: str) -> tuple[str, ...]:
    """The classes (given, declared or found); every case labelled with one of them, at least two."""
    n_rows, n_null = _sql(src, f"SELECT count(*), count(*) FILTER (WHERE {_q(label_column)} IS NULL) FROM src")[0]
    if n_rows == 0:
        raise DataError(f"{src.name}: the cases table is empty — there is nothing to count")
    if n_null:
        raise DataError(f"{src.name}: {n_null} case(s) have no {label_column!r} — label every case or drop them")
    found = [str(r[0]) for r in _sql(src, f"SELECT DISTINCT CAST({_q(label_column)} AS VARCHAR) FROM src ORDER BY 1")]
    if classes is not None:
        cls = tuple(str(c) for c in classes)
    elif src.info is not None:
        cls = tuple(src.info.classes)
    else:
        cls = tuple(found)
    unknown = [c for c in found if c not in cls]
    if unknown:
        raise DataError(f"{src.name}: label {unknown[0]!r} is not one of the classes {list(cls)}")
    if len(cls) < 2:
        raise DataError(
            f"{src.name}: only one class ({', '.join(cls) or 'none'}) — co-occurrence with a class "
            "needs at least two classes to compare"
        )
    return cls


def _sort_metadata(plan: Plan, meta: list[str], max_levels: int) -> None:
    """Metadata columns: too many levels (not testable), 0/1 indicators, or categorical."""
    src = plan.src
    exprs = ", ".join(f"count(DISTINCT {_q(c)})" for c in meta)
    counts = _sql(src, f"SELECT {exprs} FROM src")[0]
    for c, k in zip(meta, counts, strict=True):
        if int(k) > max_levels:
            plan.too_many[c] = int(k)
        elif _is_numeric(src.types[c]) and _levels_01(src, c):
            plan.binary.append((c, "metadata"))
        else:
            plan.categorical.append(c)


def _levels_01(src: _Source, col: str) -> bool:
    rows = _sql(src, f"SELECT DISTINCT {_binary_expr(col)} FROM src")
    return all(r[0] in ("0", "1", None) for r in rows)


def count_levels(plan: Plan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long counts (split, label, column, level, n) and class totals (split, label, n)."""
    src = plan.src
    split_expr = (
        f"COALESCE(CAST({_q(plan.split)} AS VARCHAR), '(missing)')" if plan.split else f"'{ALL_SPLITS}'"
    )
    label_expr = f"CAST({_q(plan.label)} AS VARCHAR)"
    sel = [f"{split_expr} AS {_SPLIT}", f"{label_expr} AS {_LABEL}"]
    names: list[str] = []
    for i, (c, _) in enumerate(plan.binary):
        sel.append(f"{_binary_expr(c)} AS a{i}")
        names.append(c)
    for j, c in enumerate(plan.categorical):
        sel.append(f"CAST({_q(c)} AS VARCHAR) AS m{j}")
        names.append(c)
    aliases = [f"a{i}" for i in range(len(plan.binary))] + [f"m{j}" for j in range(len(plan.categorical))]
    totals = pd.DataFrame(
        _sql(src, f"SELECT {split_expr}, {label_expr}, count(*) FROM src GROUP BY ALL"),
        columns=["split", "label", "n"],
    )
    if not aliases:
        return pd.DataFrame(columns=["split", "label", "column", "level", "n"]), totals
    query = (
        f"SELECT {_SPLIT}, {_LABEL}, attribute, level, count(*) FROM (UNPIVOT (SELECT "
        + ", ".join(sel)
        + " FROM src) ON "
        + ", ".join(aliases)
        + " INTO NAME attribute VALUE level) GROUP BY ALL"
    )
    long = pd.DataFrame(_sql(src, query), columns=["split", "label", "alias", "level", "n"])
    lut = dict(zip(aliases, names, strict=True))
    long["column"] = long["alias"].map(lut)
    bad = long[long["level"] == _INVALID]
    if len(bad):
        col = str(bad["column"].iloc[0])
        example = _sql(
            src,
            f"SELECT CAST({_q(col)} AS VARCHAR) FROM src WHERE {_binary_expr(col)} = '{_INVALID}' LIMIT 1",
        )[0][0]
        raise DataError(
            f"{src.name}: column {col!r} must hold 0/1 (or true/false) only, found {example!r} — "
            "fix the annotation or declare the column as metadata"
        )
    return long[["split", "label", "column", "level", "n"]], totals


def resolve_attrs(plan: Plan, long: pd.DataFrame) -> None:
    attrs: list[Attr] = []
    for c, kind in plan.binary:
        attrs.append(Attr(c, kind, c, None))
    for c in plan.categorical:
        levels = sorted(pd.unique(long.loc[long["column"] == c, "level"]).tolist(), key=_natural)
        attrs.extend(Attr(f"{c}={lv}", "metadata", c, str(lv)) for lv in levels)
        if not levels:
            attrs.append(Attr(c, "metadata", c, ""))
    attrs.extend(Attr(c, "metadata", c, "") for c in plan.too_many)
    plan.attrs = attrs


def _natural(s: object) -> tuple[int, float, str]:
    try:
        return (0, float(str(s)), "")
    except ValueError:
        return (1, 0.0, str(s))


def detect_label_derived(plan: Plan, long: pd.DataFrame, label_derived: Sequence[str] | None) -> None:
    """Metadata columns every level of which occurs in one class only (label refinements)."""
    if label_derived is not None:
        plan.label_derived = set(label_derived)
        return
    out: set[str] = set()
    meta_cols = [c for c, k in plan.binary if k == "metadata"] + plan.categorical
    for c in meta_cols:
        sub = long[(long["column"] == c) & (long["n"] > 0)]
        if sub.empty or sub["level"].nunique() < 2 or sub["label"].nunique() < 2:
            continue
        if (sub.groupby("level")["label"].nunique() == 1).all():
            out.add(c)
    plan.label_derived = out


def splits_of(plan: Plan, totals: pd.DataFrame, splits: Sequence[str] | None) -> list[str]:
    present = sorted(pd.unique(totals["split"]).tolist(), key=_split_order)
    if splits is None:
        return [*present, ALL_SPLITS] if plan.split and ALL_SPLITS not in present else present
    out = []
    for s in splits:
        if s != ALL_SPLITS and s not in present:
            raise DataError(f"unknown split {s!r}; this table has {present} (and {ALL_SPLITS!r})")
        out.append(str(s))
    return out


def _split_order(s: str) -> tuple[int, str]:
    order = {"train": 0, "val": 1, "valid": 1, "test": 2}
    return (order.get(s, 3), s)


def pair_counts(plan: Plan, attrs: list[Attr], batch_size: int) -> dict[str, list[np.ndarray]]:
    """Per split: O'O, X'O, O'X, X'X of the observed (O) and present (X) indicator matrices."""
    src = plan.src
    k = len(attrs)
    out: dict[str, list[np.ndarray]] = {}
    if k == 0:
        return out
    split_expr = (
        f"COALESCE(CAST({_q(plan.split)} AS VARCHAR), '(missing)')" if plan.split else f"'{ALL_SPLITS}'"
    )
    columns = list(dict.fromkeys(a.column for a in attrs))
    alias = {c: f"c{i}" for i, c in enumerate(columns)}
    binary = {c for c, _ in plan.binary}
    sel = [f"{split_expr} AS {_SPLIT}"]
    for c in columns:
        expr = _binary_expr(c) if c in binary else f"CAST({_q(c)} AS VARCHAR)"
        sel.append(f"{expr} AS {alias[c]}")
    try:
        reader = _relation(src, "SELECT " + ", ".join(sel) + " FROM src").to_arrow_reader(batch_size)
    except duckdb.Error as exc:  # pragma: no cover - defensive
        raise DataError(f"cannot read the cases of {src.name}: {exc}") from exc
    for batch in reader:
        frame = batch.to_pandas()
        splits = frame[_SPLIT].astype(str).to_numpy()
        o = np.empty((len(frame), k), dtype=np.int64)
        x = np.empty((len(frame), k), dtype=np.int64)
        for i, at in enumerate(attrs):
            col = frame[alias[at.column]]
            o[:, i] = col.notna().to_numpy()
            x[:, i] = (col == ("1" if at.level is None else at.level)).fillna(False).to_numpy()
        for s in np.unique(splits):
            sel_rows = splits == s
            os_, xs = o[sel_rows], x[sel_rows]
            mats = out.setdefault(str(s), [np.zeros((k, k), dtype=np.int64) for _ in range(4)])
            mats[0] += os_.T @ os_
            mats[1] += xs.T @ os_
            mats[2] += os_.T @ xs
            mats[3] += xs.T @ xs
    return out
