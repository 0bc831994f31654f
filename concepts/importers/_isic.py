"""ISIC-challenge importer: one-hot ground-truth CSV, image folder, optional artifact CSV.

Line numbers in error messages are 1-based physical lines of the CSV named (header = line 1),
as in :mod:`concepts.importers._folder`.

The ground-truth CSV has an image-id column (``image``, ``image_id``, ``image_name`` or
``isic_id``, or ``image_col``) and one-hot diagnosis columns, e.g.
``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` with ``0``/``1`` or ``0.0``/``1.0`` values and exactly
one ``1`` per row; every other column must be a diagnosis column.

The optional artifact CSV is joined on the image id: an id column plus 0/1 columns such as
``dark_corner, hair, gel_border, gel_bubble, ruler, ink, patches``. Names are normalised (lower
case, ``_``; ``patches`` -> ``patch``); columns that are not in :data:`concepts.ARTIFACTS`
(e.g. ``gel_border``) are kept as extra artifact columns. Ids may carry an image extension
(``ISIC_0000000.jpg``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from concepts._errors import DataError
from concepts.data import ARTIFACTS, Dataset, DatasetInfo
from concepts.importers._common import (
    ProgressCallback,
    _canonical,
    _ImageResolver,
    _parse01,
    _parse_split,
    _Problem,
    _raise_problems,
    _read_csv,
    _RowError,
    _strip_image_ext,
    _Table,
)
from concepts.importers._rows import _check_common, _check_fractions, _Rows, stratified_split

__all__ = ["BINARY_CLASSES", "ISIC_ID_COLUMNS", "import_isic"]

#: Classes of ``import_isic(..., binary=True)`` in class-index order.
BINARY_CLASSES: tuple[str, str] = ("non_melanoma", "melanoma")

#: Image-id column names recognised (in this order) when ``image_col`` is not given.
ISIC_ID_COLUMNS: tuple[str, ...] = ("image", "image_id", "image_name", "isic_id")


def _id_column(table: _Table, image_col: str | None) -> str:
    if image_col is not None:
        if image_col not in table.header:
            raise DataError(
                f"{table.path}: no image-id column {image_col!r}; the header has "
                f"{list(table.header)}"
            )
        return image_col
    for c in ISIC_ID_COLUMNS:
        if c in table.header:
            return c
    raise DataError(
        f"{table.path}: no image-id column (looked for {', '.join(ISIC_ID_COLUMNS)}); the header "
        f"has {list(table.header)} — pass image_col= (--image-col)"
    )


def _read_artifacts(
    path: str | Path, image_col: str | None
) -> tuple[dict[str, tuple[int, dict[str, int]]], tuple[str, ...], Path, list[_Problem], int]:
    """Parse the artifact CSV into ``{image id: (line, {artifact: 0/1})}``."""
    table, problems = _read_csv(path)
    id_col = _id_column(table, image_col)
    i_id = table.index(id_col)
    cols: list[tuple[int, str, str]] = []
    names: dict[str, str] = {}
    for i, col in enumerate(table.header):
        if i == i_id:
            continue
        out = _canonical(col)
        if out in names:
            raise DataError(f"{table.path}: columns {names[out]!r} and {col!r} both map to {out!r}")
        names[out] = col
        cols.append((i, col, out))
    if not cols:
        raise DataError(f"{table.path}: no artifact columns besides {id_col!r}")
    rows: dict[str, tuple[int, dict[str, int]]] = {}
    for line, cells in table.rows:
        image = _strip_image_ext(cells[i_id])
        if not image:
            problems.append(_Problem(table.path, "empty image id", line=line, column=id_col))
            continue
        if image in rows:
            problems.append(_Problem(
                table.path, f"duplicate image id {image!r} (first seen on line {rows[image][0]})",
                line=line, column=id_col,
            ))
            continue
        values: dict[str, int] = {}
        for i, col, out in cols:
            try:
                values[out] = _parse01(cells[i], col)
            except _RowError as e:
                problems.append(_Problem(table.path, e.message, line=line, column=e.column))
        rows[image] = (line, values)
    problems.sort(key=lambda p: p.line or 0)
    rank = {a: i for i, a in enumerate(ARTIFACTS)}  # workbench order first, then the extras
    ordered = tuple(sorted((o for _, _, o in cols), key=lambda o: (rank.get(o, len(rank)), o)))
    return rows, ordered, table.path, problems, table.n_records


def import_isic(
    gt_csv: str | Path, images_dir: str | Path, out_dir: str | Path, *,
    artifacts_csv: str | Path | None = None, binary: bool = False, image_col: str | None = None,
    artifacts_image_col: str | None = None, missing_artifacts: Literal["error", "drop"] = "error",
    split: str | None = None, image_size: int = 224, seed: int = 0,
    split_fractions: Sequence[float] = (0.6, 0.2, 0.2), name: str | None = None, overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Import an ISIC-challenge style data set.

    Parameters
    ----------
    gt_csv
        Ground truth: image ids and one-hot diagnosis columns (format: see this module).
    images_dir
        Folder holding ``<image>.jpg`` (any extension in
        :data:`concepts.importers._common.IMAGE_EXTENSIONS`).
    out_dir
        The data-set directory to create.
    artifacts_csv
        Optional artifact annotations joined on the image id (format: see this module).
    binary
        Map ``MEL`` to ``melanoma`` and every other diagnosis to ``non_melanoma``
        (:data:`BINARY_CLASSES`). Otherwise the classes are the diagnosis columns in CSV order.
    image_col, artifacts_image_col
        Id column names of the two CSV files (default: detected).
    missing_artifacts
        What to do with ground-truth images that have no row in ``artifacts_csv``:
        ``"error"`` (default) or ``"drop"`` the cases.
    split
        Put every case in this split (``train``, ``val`` or ``test``; e.g. for an official
        validation set); default a deterministic stratified split by ``split_fractions``.
    image_size, seed, split_fractions, name, overwrite, progress
        As for :func:`concepts.importers._folder.import_folder`.

    Returns
    -------
    Dataset
        The written data set (``kind="isic"``). ``cases`` has the original diagnosis column
        name in the metadata column ``diagnosis``.

    Raises
    ------
    DataError
        Any problem with the CSV files (zero or several hot columns, values other than 0/1,
        duplicate or unknown ids, missing images), the arguments or the output folder.
    ImageError
        When every problem is an image that cannot be decoded.
    """
    out = _check_common(image_size, out_dir, overwrite)
    _check_fractions(split_fractions)
    if missing_artifacts not in ("error", "drop"):
        raise DataError(f"missing_artifacts must be 'error' or 'drop', got {missing_artifacts!r}")
    fixed_split = _fixed_split(split)
    table, ragged = _read_csv(gt_csv)
    resolver = _ImageResolver(Path(images_dir))
    cols = _isic_columns(table, image_col, binary)
    ann = _load_annotations(artifacts_csv, artifacts_image_col, missing_artifacts)
    rows = _isic_rows(table, ragged, cols, resolver, ann)
    cases, classes = _isic_cases(rows, cols, ann, binary, fixed_split, seed, split_fractions)
    extra: dict[str, Any] = {
        "importer": "isic", "source_csv": str(table.path.resolve()), "images_dir": str(resolver.root),
        "binary": bool(binary), "split_source": "fixed" if fixed_split is not None else "stratified",
        "seed": int(seed), "split_fractions": [float(f) for f in split_fractions],
    }
    if ann is not None:
        extra.update(_annotation_extra(ann, rows))
    info = DatasetInfo(
        name=name or out.name, kind="isic", classes=classes, image_size=image_size,
        artifacts=ann.names if ann is not None else (), metadata=("diagnosis",), extra=extra,
    )
    return rows.write(out, info, cases, image_size, progress, overwrite)


def _isic_rows(
    table: _Table, ragged: list[_Problem], cols: _IsicColumns, resolver: _ImageResolver,
    ann: _Annotations | None,
) -> _Rows:
    """Every ground-truth row checked; raises for all problems, or when no case is left."""
    rows = _Rows(table.path)
    rows.problems.extend(ragged)
    for line, cells in table.rows:
        _isic_row(rows, cols, resolver, ann, line, cells)
    rows.check(table.n_records)
    if not rows.ids:
        raise DataError(
            f"{table.path}: no case left to import ({rows.skipped.get('unannotated', 0)} dropped "
            "for lack of artifact annotations) — check that the two files use the same image ids"
        )
    return rows


def _annotation_extra(ann: _Annotations, rows: _Rows) -> dict[str, Any]:
    """What ``info.extra`` records about the artifact file's join."""
    used = set(rows.ids)
    return {
        "artifacts_csv": str(ann.src.resolve()),
        "artifacts_unmatched": sum(1 for k in ann.rows if k not in used),
        "dropped_unannotated": rows.skipped.get("unannotated", 0),
    }


def _fixed_split(split: str | None) -> str | None:
    if split is None:
        return None
    try:
        return _parse_split(str(split).strip(), "split")
    except _RowError as e:
        raise DataError(f"split= {e.message}") from None


@dataclass(frozen=True)
class _IsicColumns:
    """The id and diagnosis columns of the ground-truth CSV (internal)."""

    id_col: str
    i_id: int
    diagnoses: tuple[tuple[int, str], ...]  # (index, name)

    @property
    def names(self) -> list[str]:
        return [c for _, c in self.diagnoses]


def _isic_columns(table: _Table, image_col: str | None, binary: bool) -> _IsicColumns:
    id_col = _id_column(table, image_col)
    i_id = table.index(id_col)
    cols = _IsicColumns(id_col, i_id, tuple((i, c) for i, c in enumerate(table.header) if i != i_id))
    if not cols.diagnoses:
        raise DataError(f"{table.path}: no diagnosis columns besides {id_col!r}")
    if binary and "MEL" not in cols.names:
        raise DataError(f"{table.path}: binary=True needs a 'MEL' column; the header has {list(table.header)}")
    return cols


@dataclass(frozen=True)
class _Annotations:
    """The parsed artifact CSV (internal): ``{image id: (line, {artifact: 0/1})}``."""

    rows: dict[str, tuple[int, dict[str, int]]]
    names: tuple[str, ...]
    src: Path
    drop_missing: bool


def _load_annotations(
    path: str | Path | None, image_col: str | None, missing: str
) -> _Annotations | None:
    if path is None:
        return None
    rows, names, src, problems, n = _read_artifacts(path, image_col)
    _raise_problems(problems, n)
    return _Annotations(rows, names, src, missing == "drop")


def _diagnosis(cols: _IsicColumns, cells: list[str], problems: list[_RowError]) -> str | None:
    """The one hot diagnosis column of a row (``None`` and a problem when not exactly one)."""
    hot: list[str] = []
    parsed = True
    for i, col in cols.diagnoses:
        try:
            if _parse01(cells[i], col):
                hot.append(col)
        except _RowError as e:
            problems.append(e)
            parsed = False
    if parsed and len(hot) != 1:
        problems.append(_RowError(
            f"no diagnosis column is 1 — exactly one of {cols.names} must be 1"
            if not hot
            else f"several diagnosis columns are 1 ({', '.join(hot)}) — exactly one must be 1"
        ))
    return hot[0] if parsed and len(hot) == 1 else None


def _isic_row(
    rows: _Rows,
    cols: _IsicColumns,
    resolver: _ImageResolver,
    ann: _Annotations | None,
    line: int,
    cells: list[str],
) -> None:
    """Check one ground-truth row of :func:`import_isic` and hand it to ``rows``."""
    problems: list[_RowError] = []
    image = _strip_image_ext(cells[cols.i_id])
    if not image:
        problems.append(_RowError("empty image id", cols.id_col))
    else:
        dup = rows.claim(image, line, "image id", cols.id_col)
        if dup is not None:
            problems.append(dup)
    diagnosis = _diagnosis(cols, cells, problems)
    annotation: dict[str, int] | None = None
    if ann is not None and image:
        found = ann.rows.get(image)
        if found is None:
            if ann.drop_missing:
                rows.skip("unannotated")
                return
            problems.append(_RowError(
                f"image {image!r} has no row in the artifact file {ann.src} — annotate it, "
                "or pass missing_artifacts='drop' (--drop-unannotated)",
                cols.id_col,
            ))
        else:
            annotation = found[1]
    path: Path | None = None
    rel = ""
    if image and not any(e.column == cols.id_col for e in problems):
        try:
            path, rel = resolver.by_id(image, cols.id_col)
        except _RowError as e:
            problems.append(e)
    if problems or path is None:
        rows.reject(problems, line)
        return
    rows.accept(image, path, rel, line, diagnosis=diagnosis, annotation=annotation)


def _isic_cases(
    rows: _Rows,
    cols: _IsicColumns,
    ann: _Annotations | None,
    binary: bool,
    fixed_split: str | None,
    seed: int,
    split_fractions: Sequence[float],
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The cases table of the accepted rows and the classes."""
    diagnoses = rows.field("diagnosis")
    if binary:
        classes: tuple[str, ...] = BINARY_CLASSES
        labels = [BINARY_CLASSES[1] if d == "MEL" else BINARY_CLASSES[0] for d in diagnoses]
    else:
        classes = tuple(cols.names)
        labels = list(diagnoses)
    splits = (
        np.full(len(rows.ids), fixed_split, dtype=object)
        if fixed_split is not None
        else stratified_split(labels, rows.ids, fractions=split_fractions, seed=seed)
    )
    data: dict[str, Any] = {
        "case_id": rows.ids,
        "label": labels,
        "split": [str(s) for s in splits],
        "source_path": rows.rels,
    }
    for a in ann.names if ann is not None else ():
        data[a] = pd.Series([v[a] for v in rows.field("annotation")], dtype="int64")
    data["diagnosis"] = diagnoses
    return pd.DataFrame(data), classes
