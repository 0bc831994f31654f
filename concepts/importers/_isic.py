"""ISIC-challenge importer: one-hot ground-truth CSV, image folder, optional artifact CSV.

Line numbers in error messages are 1-based physical lines of the CSV named (header = line 1),
as in :mod:`concepts.importers._folder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from concepts._errors import DataError
from concepts.data import ARTIFACTS, Dataset, DatasetInfo
from concepts.importers._common import (
    ProgressCallback,
    _canonical,
    _check_common,
    _check_fractions,
    _ImageResolver,
    _ImageSource,
    _parse01,
    _parse_split,
    _Problem,
    _raise_problems,
    _read_csv,
    _RowError,
    _strip_image_ext,
    _Table,
    _write,
    stratified_split,
)

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
    gt_csv: str | Path,
    images_dir: str | Path,
    out_dir: str | Path,
    *,
    artifacts_csv: str | Path | None = None,
    binary: bool = False,
    image_col: str | None = None,
    artifacts_image_col: str | None = None,
    missing_artifacts: Literal["error", "drop"] = "error",
    split: str | None = None,
    image_size: int = 224,
    seed: int = 0,
    split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
    name: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Import an ISIC-challenge style data set.

    Parameters
    ----------
    gt_csv
        Ground truth: an image-id column (``image``, ``image_id``, ``image_name`` or
        ``isic_id``, or ``image_col``) and one-hot diagnosis columns, e.g.
        ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` with ``0``/``1`` or ``0.0``/``1.0`` values and
        exactly one ``1`` per row. Every other column must be a diagnosis column.
    images_dir
        Folder holding ``<image>.jpg`` (any extension in
        :data:`concepts.importers._folder.IMAGE_EXTENSIONS`).
    out_dir
        The data-set directory to create.
    artifacts_csv
        Optional artifact annotations joined on the image id: an id column plus 0/1 columns
        such as ``dark_corner, hair, gel_border, gel_bubble, ruler, ink, patches``. Names are
        normalised (lower case, ``_``; ``patches`` -> ``patch``); columns that are not in
        :data:`concepts.ARTIFACTS` (e.g. ``gel_border``) are kept as extra artifact columns.
        Ids may carry an image extension (``ISIC_0000000.jpg``).
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
        Any problem with the CSV files, the arguments or the output folder: rows with zero or
        several hot columns, values other than 0/1, duplicate or unknown ids, missing images.
        The message names the file, the 1-based line and column of the first problem and
        counts the others.
    ImageError
        When every problem is an image that cannot be decoded.
    """
    out = _check_common(image_size, out_dir, overwrite)
    _check_fractions(split_fractions)
    if missing_artifacts not in ("error", "drop"):
        raise DataError(f"missing_artifacts must be 'error' or 'drop', got {missing_artifacts!r}")
    fixed_split: str | None = None
    if split is not None:
        try:
            fixed_split = _parse_split(str(split).strip(), "split")
        except _RowError as e:
            raise DataError(f"split= {e.message}") from None
    table, problems = _read_csv(gt_csv)
    src = table.path
    resolver = _ImageResolver(Path(images_dir))
    id_col = _id_column(table, image_col)
    i_id = table.index(id_col)
    diag_cols = [(i, c) for i, c in enumerate(table.header) if i != i_id]
    if not diag_cols:
        raise DataError(f"{src}: no diagnosis columns besides {id_col!r}")
    diag_names = [c for _, c in diag_cols]
    if binary and "MEL" not in diag_names:
        raise DataError(f"{src}: binary=True needs a 'MEL' column; the header has {list(table.header)}")

    art_rows: dict[str, tuple[int, dict[str, int]]] = {}
    art_names: tuple[str, ...] = ()
    art_src: Path | None = None
    if artifacts_csv is not None:
        art_rows, art_names, art_src, art_problems, art_n = _read_artifacts(
            artifacts_csv, artifacts_image_col
        )
        _raise_problems(art_problems, art_n)

    ids: list[str] = []
    lines: list[int] = []
    paths: list[Path] = []
    rels: list[str] = []
    diagnoses: list[str] = []
    art_values: dict[str, list[int]] = {a: [] for a in art_names}
    first_line: dict[str, int] = {}
    dropped = 0
    for line, cells in table.rows:
        row: list[_RowError] = []
        image = _strip_image_ext(cells[i_id])
        path: Path | None = None
        rel = ""
        if not image:
            row.append(_RowError("empty image id", id_col))
        elif image in first_line:
            row.append(_RowError(
                f"duplicate image id {image!r} (first seen on line {first_line[image]})", id_col
            ))
        else:
            first_line[image] = line
        hot: list[str] = []
        parsed = True
        for i, col in diag_cols:
            try:
                if _parse01(cells[i], col):
                    hot.append(col)
            except _RowError as e:
                row.append(e)
                parsed = False
        if parsed and len(hot) != 1:
            row.append(_RowError(
                f"no diagnosis column is 1 — exactly one of {diag_names} must be 1"
                if not hot
                else f"several diagnosis columns are 1 ({', '.join(hot)}) — exactly one must be 1"
            ))
        annotation: dict[str, int] | None = None
        if artifacts_csv is not None and image:
            found = art_rows.get(image)
            if found is None:
                if missing_artifacts == "drop":
                    dropped += 1
                    continue
                row.append(_RowError(
                    f"image {image!r} has no row in the artifact file {art_src} — annotate it, "
                    "or pass missing_artifacts='drop' (--drop-unannotated)",
                    id_col,
                ))
            else:
                annotation = found[1]
        if image and not any(e.column == id_col for e in row):
            try:
                path, rel = resolver.by_id(image, id_col)
            except _RowError as e:
                row.append(e)
        if row or path is None:
            problems.extend(_Problem(src, e.message, line=line, column=e.column) for e in row)
            continue
        ids.append(image)
        lines.append(line)
        paths.append(path)
        rels.append(rel)
        diagnoses.append(hot[0])
        if annotation is not None:
            for a in art_names:
                art_values[a].append(annotation[a])
    problems.sort(key=lambda p: p.line or 0)
    _raise_problems(problems, table.n_records)
    if not ids:
        raise DataError(
            f"{src}: no case left to import ({dropped} dropped for lack of artifact annotations) "
            "— check that the two files use the same image ids"
        )

    if binary:
        classes: tuple[str, ...] = BINARY_CLASSES
        labels = [BINARY_CLASSES[1] if d == "MEL" else BINARY_CLASSES[0] for d in diagnoses]
    else:
        classes = tuple(diag_names)
        labels = list(diagnoses)
    splits = (
        np.full(len(ids), fixed_split, dtype=object)
        if fixed_split is not None
        else stratified_split(labels, ids, fractions=split_fractions, seed=seed)
    )
    data: dict[str, Any] = {
        "case_id": ids,
        "label": labels,
        "split": [str(s) for s in splits],
        "source_path": rels,
    }
    for a in art_names:
        data[a] = pd.Series(art_values[a], dtype="int64")
    data["diagnosis"] = diagnoses
    used = set(ids)
    extra: dict[str, Any] = {
        "importer": "isic",
        "source_csv": str(src.resolve()),
        "images_dir": str(resolver.root),
        "binary": bool(binary),
        "split_source": "fixed" if fixed_split is not None else "stratified",
        "seed": int(seed),
        "split_fractions": [float(f) for f in split_fractions],
    }
    if art_src is not None:
        extra["artifacts_csv"] = str(art_src.resolve())
        extra["artifacts_unmatched"] = sum(1 for k in art_rows if k not in used)
        extra["dropped_unannotated"] = dropped
    info = DatasetInfo(
        name=name or out.name,
        kind="isic",
        classes=classes,
        image_size=image_size,
        artifacts=art_names,
        metadata=("diagnosis",),
        extra=extra,
    )
    images = _ImageSource(paths, image_size, lambda i: (src, lines[i]), progress)
    return _write(out, info, pd.DataFrame(data), images, overwrite)
