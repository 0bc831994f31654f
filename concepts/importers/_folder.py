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

import contextlib
import os
import posixpath
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concepts._errors import DataError
from concepts.data import ARTIFACTS, CRITERIA, Dataset, DatasetInfo, check_name, name_problem
from concepts.importers._common import (
    _SPLIT_ALIASES,
    IMAGE_EXTENSIONS,
    SPLITS,
    ProgressCallback,
    _canonical,
    _check_classes,
    _check_common,
    _check_fractions,
    _ImageResolver,
    _metadata_series,
    _parse01,
    _parse_split,
    _read_csv,
    _RowError,
    _Rows,
    stratified_split,
)

# Re-exported for code that imported them from here before the shared helpers moved to
# concepts.importers._common.
from concepts.importers._common import _strip_image_ext as _strip_image_ext
from concepts.importers._common import _Table as _Table

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "ProgressCallback",
    "import_class_folders",
    "import_folder",
    "stratified_split",
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
        name=name or out.name,
        kind="folder",
        classes=class_names,
        image_size=image_size,
        concepts=cols.concept_names,
        artifacts=cols.artifact_names,
        metadata=tuple(o for _, o in cols.metadata),
        extra={
            "importer": "folder",
            "source_csv": str(table.path.resolve()),
            "images_dir": str(resolver.root),
            "split_source": "column" if cols.i_split is not None else "stratified",
            "seed": int(seed),
            "split_fractions": [float(f) for f in split_fractions],
        },
    )
    return rows.write(out, info, cases, image_size, progress, overwrite)


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


# ====================================================================== class sub-folders
def import_class_folders(
    images_dir: str | Path,
    out_dir: str | Path,
    *,
    classes: Sequence[str] | None = None,
    image_size: int = 224,
    seed: int = 0,
    split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
    name: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Import ``images_dir/<class>/**/<image>`` (no CSV) as a data set.

    If every sub-folder of ``images_dir`` is a split name (``train``, ``val``, ``test`` or an
    alias such as ``validation``), the layout is ``images_dir/<split>/<class>/**/<image>`` and
    the splits are kept; otherwise a deterministic stratified split is drawn. Files whose
    extension is not in :data:`IMAGE_EXTENSIONS` and hidden files/folders are ignored (their
    number is recorded in ``info.extra["ignored_files"]``). Case ids are image paths relative
    to ``images_dir`` without the extension.

    Parameters
    ----------
    images_dir
        The root folder.
    out_dir
        The data-set directory to create.
    classes
        Class names in class-index order; each must have a folder. Default: the sorted folder
        names.
    image_size, seed, split_fractions, name, overwrite, progress
        As for :func:`import_folder`.

    Returns
    -------
    Dataset
        The written data set (``kind="class_folders"``).

    Raises
    ------
    DataError
        Missing folder, images outside class folders, empty class folders, folder names
        outside ``classes``, or images that escape the root through symbolic links.
    ImageError
        When every problem is an image that cannot be decoded.
    """
    out = _check_common(image_size, out_dir, overwrite)
    _check_fractions(split_fractions)
    allowed = _check_classes(classes)
    resolver = _ImageResolver(Path(images_dir))
    root = resolver.root
    top, split_layout, groups = _class_groups(root)
    folder_classes = _check_class_folders(root, top, split_layout, groups, allowed)
    rows, ignored = _collect_class_images(resolver, groups)
    rows.check(by_line=False)
    labels = rows.field("label")
    split_arr = (
        np.asarray(rows.field("split"), dtype=object)
        if split_layout
        else stratified_split(labels, rows.ids, fractions=split_fractions, seed=seed)
    )
    cases = pd.DataFrame({
        "case_id": rows.ids,
        "label": labels,
        "split": [str(x) for x in split_arr],
        "source_path": rows.rels,
    })
    info = DatasetInfo(
        name=name or out.name,
        kind="class_folders",
        classes=allowed if allowed is not None else tuple(folder_classes),
        image_size=image_size,
        extra={
            "importer": "class_folders",
            "images_dir": str(root),
            "split_source": "folders" if split_layout else "stratified",
            "seed": int(seed),
            "split_fractions": [float(f) for f in split_fractions],
            "ignored_files": ignored,
        },
    )
    return rows.write(out, info, cases, image_size, progress, overwrite)


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({exc})") from exc


def _class_groups(root: Path) -> tuple[list[Path], bool, list[tuple[str | None, Path]]]:
    """``(top folders, split layout?, [(split, class folder)])`` of :func:`import_class_folders`."""
    top = _subdirs(root)
    split_layout = bool(top) and all(d.name.lower() in _SPLIT_ALIASES for d in top)
    groups: list[tuple[str | None, Path]] = []  # (split, class folder)
    if split_layout:
        for d in top:
            groups.extend((_SPLIT_ALIASES[d.name.lower()], c) for c in _subdirs(d))
    else:
        groups.extend((None, c) for c in top)
    if not groups:
        raise DataError(f"{root}: no class sub-folders — expected {root}/<class>/<image files>")
    return top, split_layout, groups


def _check_class_folders(
    root: Path,
    top: list[Path],
    split_layout: bool,
    groups: list[tuple[str | None, Path]],
    allowed: tuple[str, ...] | None,
) -> list[str]:
    """No image outside the class folders, valid folder names matching ``allowed``; the classes."""
    stray: list[str] = []
    for folder in [root, *(top if split_layout else [])]:
        with contextlib.suppress(OSError):
            stray.extend(
                f.name for f in folder.iterdir()
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
            )
    if stray:
        raise DataError(
            f"{root}: image files outside class folders ({', '.join(sorted(stray)[:3])}) — move "
            f"them into {root}/<class>/"
        )
    folder_classes = sorted({c.name for _, c in groups})
    for c in folder_classes:
        check_name(c, f"{root}: class folder")
    if allowed is not None:
        for c in folder_classes:
            if c not in allowed:
                raise DataError(f"{root}: folder {c!r} is not one of the classes {list(allowed)}")
        for c in allowed:
            if c not in folder_classes:
                raise DataError(f"{root}: no folder for class {c!r}")
    return folder_classes


def _collect_class_images(
    resolver: _ImageResolver, groups: list[tuple[str | None, Path]]
) -> tuple[_Rows, int]:
    """Every image of every class folder (sorted walk), and the number of files ignored."""
    root = resolver.root
    rows = _Rows(root, "images")
    ignored = 0
    for split, folder in groups:
        found = 0
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fname in sorted(filenames):
                if fname.startswith(".") or os.path.splitext(fname)[1].lower() not in IMAGE_EXTENSIONS:
                    ignored += 1
                    continue
                rel = (Path(dirpath) / fname).relative_to(root).as_posix()
                try:
                    path, rel = resolver.by_path(rel, "path")
                except _RowError as e:
                    rows.reject([_RowError(e.message)], file=Path(dirpath) / fname)
                    continue
                found += 1
                rows.accept(posixpath.splitext(rel)[0], path, rel, None, label=folder.name,
                            split=split or "")
        if not found:
            rows.reject([_RowError("class folder has no images")], file=folder)
    for dup_id in sorted(i for i, n in Counter(rows.ids).items() if n > 1):
        rows.reject([_RowError(f"several images share the id {dup_id!r} (same name, different extension)")])
    return rows, ignored
