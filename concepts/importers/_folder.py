"""Importers that turn folders of images (plus a CSV) into a workbench data set.

Every importer follows the same pattern: read and validate the whole table, resolve and check
every image path, decode every image, and only then write the data set with one atomic
:meth:`Dataset.write`. A failing import raises :class:`DataError` (or :class:`ImageError` when
every problem is an unreadable image) and leaves nothing behind.

Problems are reported with the file and the **1-based physical line number** of the CSV (the
header is line 1; a quoted field spanning several lines counts as the line it starts on) and,
where it applies, the column. All problems of a file are collected; the message names the
first, says how many rows are bad and lists a few more.

The CSV of :func:`import_folder` has one row per case with

* an id column (``id_col``) and/or a path column (``path_col``). A path is relative to
  ``images_dir`` (default: the CSV's folder); an id without a path is looked up as
  ``<images_dir>/<id>.<ext>`` for the extensions in :data:`IMAGE_EXTENSIONS`. Without an
  id column the case id is the image path without its extension;
* a label column (``label_col``);
* optionally 0/1 concept and artifact columns: columns named like
  :data:`concepts.CRITERIA` / :data:`concepts.ARTIFACTS` (case-insensitive, ``-`` or space
  for ``_``, ``patches`` for ``patch``) are recognised, others can be declared with
  ``concept_cols`` / ``artifact_cols``;
* optionally a split column (``split_col``, or a column named ``split``) holding
  ``train``/``val``/``test`` (``valid``, ``validation``, ``dev``, ``training``, ``testing``
  accepted). Without one, a deterministic stratified split by ``split_fractions`` is drawn;
* any other columns, kept as metadata (numbers where every value is a plain number).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concepts._errors import DataError
from concepts.data import ARTIFACTS, CRITERIA, Dataset, DatasetInfo, name_problem
from concepts.importers._common import (
    ProgressCallback,
    _canonical,
    _ImageResolver,
    _metadata_series,
    _parse01,
    _parse_split,
    _read_csv,
    _RowError,
    _Table,
)
from concepts.importers._rows import (
    _check_classes,
    _check_common,
    _check_fractions,
    _Rows,
    stratified_split,
)

__all__ = [
    "import_folder",
]

_RESERVED = ("case_id", "label", "split", "source_path")


# ====================================================================== generic CSV importer
def _normalise_cols(cols: Iterable[str] | None, what: str) -> tuple[str, ...]:
    if cols is None:
        return ()
    if isinstance(cols, str):
        cols = [cols]
    out = tuple(str(c).strip() for c in cols)
    if any(not c for c in out):
        raise DataError(f"{what} names must be non-empty")
    return out


def _column_roles(
    src: Path,
    header: tuple[str, ...],
    structural: set[str],
    concept_cols: Sequence[str] | None,
    artifact_cols: Sequence[str] | None,
) -> dict[str, tuple[str, str]]:
    """``{header column: (role, output name)}`` for the non-structural columns.

    Roles are ``concept``, ``artifact`` (0/1 columns) and ``metadata``.
    """
    declared_c = _normalise_cols(concept_cols, "concept column")
    declared_a = _normalise_cols(artifact_cols, "artifact column")
    for col in (*declared_c, *declared_a):
        if col not in header:
            raise DataError(f"{src}: declared 0/1 column {col!r} is not in the header {list(header)}")
        if col in structural:
            raise DataError(f"{src}: column {col!r} is the id/path/label/split column, not a 0/1 column")
    overlap = set(declared_c) & set(declared_a)
    if overlap:
        raise DataError(f"column {sorted(overlap)[0]!r} is declared both a concept and an artifact")

    # column roles: header name -> (role, output name)
    roles: dict[str, tuple[str, str]] = {}
    for col in header:
        if col in structural:
            continue
        canon = _canonical(col)
        if col in declared_c:
            roles[col] = ("concept", col)
        elif col in declared_a:
            roles[col] = ("artifact", col)
        elif canon in CRITERIA:
            roles[col] = ("concept", canon)
        elif canon in ARTIFACTS:
            roles[col] = ("artifact", canon)
        else:
            roles[col] = ("metadata", col)
    seen: dict[str, str] = {}
    for col, (_role, out_name) in roles.items():
        if out_name in _RESERVED:
            raise DataError(
                f"{src}: column {col!r} clashes with the data set's own {out_name!r} column — "
                "rename it, or name it as the id/path/label/split column"
            )
        if out_name in seen:
            raise DataError(f"{src}: columns {seen[out_name]!r} and {col!r} both map to {out_name!r}")
        seen[out_name] = col
    return roles


def import_folder(
    csv_path: str | Path,
    out_dir: str | Path,
    *,
    images_dir: str | Path | None = None,
    id_col: str = "case_id",
    path_col: str = "path",
    label_col: str = "label",
    split_col: str | None = None,
    classes: Sequence[str] | None = None,
    concept_cols: Sequence[str] | None = None,
    artifact_cols: Sequence[str] | None = None,
    image_size: int = 224,
    seed: int = 0,
    split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
    delimiter: str = ",",
    name: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Import a folder of images described by a CSV file (the format: see :mod:`this module
    <concepts.importers._folder>` and docs/importers.md).

    Parameters
    ----------
    csv_path
        The CSV file (UTF-8, optionally with a byte-order mark).
    out_dir
        The data-set directory to create (must not exist unless ``overwrite``).
    images_dir
        Root folder of the images; default the CSV's folder. No image may lie outside it.
    id_col, path_col, label_col
        Column names.
    split_col
        Split column; default ``"split"`` if the CSV has one, else a generated split.
    classes
        Allowed labels in class-index order; default the sorted distinct labels.
    concept_cols, artifact_cols
        Further 0/1 columns to treat as concepts / artifacts.
    image_size, seed, split_fractions
        Side of the square images stored (centre crop, then resize); seed and train/val/test
        fractions of the generated split.
    delimiter, name, overwrite, progress
        CSV field separator; data-set name (default ``out_dir``'s name); replace an existing
        data set; called as ``progress(done, total)`` while images are decoded.

    Returns
    -------
    Dataset
        The written data set (``kind="folder"``).

    Raises
    ------
    DataError
        Any problem with the CSV, the arguments or the output folder; the message names the
        file, 1-based line and column of the first problem and counts the others.
    ImageError
        When every problem is an image that cannot be decoded.
    """
    out = _check_common(image_size, out_dir, overwrite)
    _check_fractions(split_fractions)
    allowed = _check_classes(classes)
    table, ragged = _read_csv(csv_path, delimiter=delimiter)
    resolver = _ImageResolver(Path(images_dir) if images_dir is not None else table.path.parent)
    cols = _folder_columns(table, _ColumnNames(id_col, path_col, label_col, split_col),
                           concept_cols, artifact_cols)
    rows = _Rows(table.path)
    rows.problems.extend(ragged)
    for line, cells in table.rows:
        _folder_row(rows, cols, resolver, allowed, line, cells)
    rows.check(table.n_records)
    cases, class_names = _folder_cases(rows, cols, allowed, seed, split_fractions)
    info = DatasetInfo(
        name=name or out.name, kind="folder", classes=class_names, image_size=image_size,
        concepts=cols.concept_names, artifacts=cols.artifact_names,
        metadata=tuple(o for _, o in cols.metadata),
        extra=_folder_extra(table.path, resolver.root, cols, seed, split_fractions),
    )
    return rows.write(out, info, cases, image_size, progress, overwrite)


def _folder_extra(
    src: Path, root: Path, cols: _FolderColumns, seed: int, split_fractions: Sequence[float]
) -> dict[str, Any]:
    """The import's provenance recorded in ``info.extra``."""
    return {
        "importer": "folder",
        "source_csv": str(src.resolve()),
        "images_dir": str(root),
        "split_source": "column" if cols.i_split is not None else "stratified",
        "seed": int(seed),
        "split_fractions": [float(f) for f in split_fractions],
    }


@dataclass(frozen=True)
class _ColumnNames:
    """The structural column names asked for (internal)."""

    id_col: str
    path_col: str
    label_col: str
    split_col: str | None


@dataclass(frozen=True)
class _FolderColumns:
    """Where each role lives in the CSV of :func:`import_folder` (internal)."""

    names: _ColumnNames
    i_id: int | None
    i_path: int | None
    i_label: int
    i_split: int | None
    binary: tuple[tuple[int, str, str], ...]  # (index, header name, output name) of 0/1 columns
    metadata: tuple[tuple[int, str], ...]  # (index, output name)
    concept_names: tuple[str, ...]
    artifact_names: tuple[str, ...]


def _folder_columns(
    table: _Table,
    names: _ColumnNames,
    concept_cols: Sequence[str] | None,
    artifact_cols: Sequence[str] | None,
) -> _FolderColumns:
    """Check the header of :func:`import_folder`'s CSV and find every column's role."""
    src, header = table.path, table.header
    id_col, path_col, label_col, split_col = names.id_col, names.path_col, names.label_col, names.split_col
    has_id, has_path = id_col in header, path_col in header
    if not has_id and not has_path:
        raise DataError(
            f"{src}: needs an id column {id_col!r} or a path column {path_col!r}; the header has "
            f"{list(header)} — pass id_col=/path_col= (--id-col/--path-col)"
        )
    if label_col not in header:
        raise DataError(
            f"{src}: no label column {label_col!r}; the header has {list(header)} — pass "
            "label_col= (--label-col)"
        )
    if split_col is None and "split" in header:
        split_col = "split"
    if split_col is not None and split_col not in header:
        raise DataError(f"{src}: no split column {split_col!r}; the header has {list(header)}")
    structural = {c for c in (id_col, path_col, label_col, split_col) if c is not None and c in header}
    roles = _column_roles(src, header, structural, concept_cols, artifact_cols)
    return _FolderColumns(
        names=_ColumnNames(id_col, path_col, label_col, split_col),
        i_id=table.index(id_col) if has_id else None,
        i_path=table.index(path_col) if has_path else None,
        i_label=table.index(label_col),
        i_split=table.index(split_col) if split_col is not None else None,
        binary=tuple((table.index(c), c, o) for c, (r, o) in roles.items() if r != "metadata"),
        metadata=tuple((table.index(c), o) for c, (r, o) in roles.items() if r == "metadata"),
        concept_names=tuple(o for _, (r, o) in roles.items() if r == "concept"),
        artifact_names=tuple(o for _, (r, o) in roles.items() if r == "artifact"),
    )


def _folder_image(
    rows: _Rows, cols: _FolderColumns, resolver: _ImageResolver, line: int, cells: list[str]
) -> tuple[str, Path | None, str, list[_RowError]]:
    """``(case id, image path, relative path, problems)`` of one CSV row."""
    names = cols.names
    problems: list[_RowError] = []
    case_id = rel = ""
    path: Path | None = None
    try:
        if cols.i_path is not None:
            path, rel = resolver.by_path(cells[cols.i_path], names.path_col)
            case_id = posixpath.splitext(rel)[0]
        if cols.i_id is not None:
            case_id = cells[cols.i_id]
            if not case_id:
                raise _RowError("empty id", names.id_col)
            if path is None:
                path, rel = resolver.by_id(case_id, names.id_col)
    except _RowError as e:
        problems.append(e)
    if case_id:
        dup = rows.claim(case_id, line, "id", names.id_col if cols.i_id is not None else names.path_col)
        if dup is not None:
            problems.append(dup)
    return case_id, path, rel, problems


def _folder_row(
    rows: _Rows,
    cols: _FolderColumns,
    resolver: _ImageResolver,
    allowed: tuple[str, ...] | None,
    line: int,
    cells: list[str],
) -> None:
    """Check one CSV row of :func:`import_folder` and hand it to ``rows``."""
    names = cols.names
    case_id, path, rel, problems = _folder_image(rows, cols, resolver, line, cells)
    label = cells[cols.i_label]
    if not label:
        problems.append(_RowError("empty label — every case needs a class", names.label_col))
    elif name_problem(label):
        problems.append(_RowError(f"label {name_problem(label)} — every case needs a class", names.label_col))
    elif allowed is not None and label not in allowed:
        problems.append(_RowError(f"label {label!r} is not one of {list(allowed)}", names.label_col))
    split = ""
    if cols.i_split is not None and names.split_col is not None:
        try:
            split = _parse_split(cells[cols.i_split], names.split_col)
        except _RowError as e:
            problems.append(e)
    values: dict[str, int] = {}
    for idx, col, out_name in cols.binary:
        try:
            values[out_name] = _parse01(cells[idx], col)
        except _RowError as e:
            problems.append(e)
    if problems or path is None:
        rows.reject(problems, line)
        return
    rows.accept(case_id, path, rel, line, label=label, split=split, values=values,
                meta=[cells[i] for i, _ in cols.metadata])


def _folder_cases(
    rows: _Rows,
    cols: _FolderColumns,
    allowed: tuple[str, ...] | None,
    seed: int,
    split_fractions: Sequence[float],
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The cases table of the accepted rows and the class names."""
    labels = rows.field("label")
    class_names = allowed if allowed is not None else tuple(sorted(set(labels)))
    split_arr = (
        np.asarray(rows.field("split"), dtype=object)
        if cols.i_split is not None
        else stratified_split(labels, rows.ids, fractions=split_fractions, seed=seed)
    )
    data: dict[str, Any] = {
        "case_id": rows.ids,
        "label": labels,
        "split": [str(x) for x in split_arr],
        "source_path": rows.rels,
    }
    values = rows.field("values")
    for o in (*cols.concept_names, *cols.artifact_names):
        data[o] = pd.Series([v[o] for v in values], dtype="int64")
    meta_rows = rows.field("meta")
    for j, (_, o) in enumerate(cols.metadata):
        data[o] = _metadata_series([r[j] for r in meta_rows])
    return pd.DataFrame(data), class_names
