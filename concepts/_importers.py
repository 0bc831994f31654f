"""Importers that turn folders of images (plus a CSV) into a workbench data set.

Every importer follows the same pattern: read and validate the whole table, resolve and check
every image path, decode every image, and only then write the data set with one atomic
:meth:`Dataset.write`. A failing import raises :class:`DataError` (or :class:`ImageError` when
every problem is an unreadable image) and leaves nothing behind.

Problems are reported with the file and the **1-based physical line number** of the CSV (the
header is line 1; a quoted field spanning several lines counts as the line it starts on) and,
where it applies, the column. All problems of a file are collected; the message names the
first, says how many rows are bad and lists a few more.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import posixpath
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concepts._dataset import ARTIFACTS, CRITERIA, Dataset, DatasetInfo
from concepts._errors import DataError, ImageError
from concepts._images import load_image_rgb

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "ProgressCallback",
    "import_class_folders",
    "import_folder",
    "stratified_split",
]

#: File extensions (lower case) looked up when a case is named by id rather than by path.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".ppm",
)

#: The split names a data set uses.
SPLITS: tuple[str, ...] = ("train", "val", "test")

#: Called as ``progress(done, total)`` after each decoded image.
ProgressCallback = Callable[[int, int], None]

_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}
#: Alternative spellings of the shared artifact columns (after lower-casing, ``-``/space -> ``_``).
_COLUMN_ALIASES = {"patches": "patch", "dark_corners": "dark_corner", "gel_bubbles": "gel_bubble",
                   "rulers": "ruler"}
_RESERVED = ("case_id", "label", "split", "source_path")
_MAX_LISTED = 5
_INT_RE = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
_FLOAT_RE = re.compile(r"[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


# ====================================================================== problems
@dataclass(frozen=True)
class _Problem:
    """One thing wrong with the input (internal)."""

    file: Path
    message: str
    line: int | None = None
    column: str | None = None
    image: bool = False

    def where(self, with_file: bool = True) -> str:
        parts = [str(self.file)] if with_file or self.line is None else []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)

    def text(self, with_file: bool = True) -> str:
        return f"{self.where(with_file)}: {self.message}"


class _RowError(Exception):
    """Internal: a problem found while checking one cell; always caught in this module."""

    def __init__(self, message: str, column: str | None = None):
        super().__init__(message)
        self.message = message
        self.column = column


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _raise_problems(problems: Sequence[_Problem], n_rows: int, what: str = "rows") -> None:
    """Raise one error summarising ``problems`` (no-op when empty)."""
    if not problems:
        return
    first = problems[0]
    msg = _one_line(first.text())
    bad_rows = {(p.file, p.line) for p in problems if p.line is not None}
    if len(problems) > 1:
        counted = f"{len(bad_rows)} of {n_rows} {what}" if bad_rows else f"{n_rows} {what}"
        more = "; ".join(
            _one_line(p.text(with_file=p.file != first.file)) for p in problems[1 : 1 + _MAX_LISTED]
        )
        rest = len(problems) - 1 - _MAX_LISTED
        tail = f"; and {rest} more" if rest > 0 else ""
        msg += f" [{len(problems)} problems in {counted}; also: {more}{tail}]"
    if all(p.image for p in problems):
        raise ImageError(msg)
    raise DataError(msg)


# ====================================================================== CSV reading
@dataclass(frozen=True)
class _Table:
    """A parsed CSV: stripped header names and ``(line, cells)`` rows (internal)."""

    path: Path
    header: tuple[str, ...]
    rows: list[tuple[int, list[str]]]
    n_records: int  # data records, including the ragged ones left out of ``rows``

    def index(self, column: str) -> int:
        return self.header.index(column)


def _line_of_offset(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _read_csv(path: str | Path, *, delimiter: str = ",") -> tuple[_Table, list[_Problem]]:
    """Read and structurally validate a CSV file.

    Returns the table (rows that parsed with the right number of fields) and the problems of
    rows that did not (ragged rows). Fatal problems (unreadable, not UTF-8, no header, broken
    quoting) raise :class:`DataError` at once.
    """
    p = Path(path)
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
        raise DataError(f"delimiter must be one character such as ',' or ';', got {delimiter!r}")
    try:
        if not p.is_file():
            raise DataError(f"CSV file not found: {p} — check the path")
        data = p.read_bytes()
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{p}: cannot read the CSV file ({exc})") from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{p}: the file is UTF-16 encoded — save it as UTF-8 CSV")
    if not data.strip():
        raise DataError(f"{p}: the CSV file is empty — it needs a header line and one row per case")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"{p}, line {_line_of_offset(data, nul)}: contains NUL bytes — this is not a UTF-8 "
            "text CSV (UTF-16 or a binary file?) — re-save it as UTF-8 CSV"
        )
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # a leading byte-order mark is dropped
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = bom + exc.start
        raise DataError(
            f"{p}, line {_line_of_offset(data, at)}: byte 0x{data[at]:02x} is not valid UTF-8 — "
            "re-save the file as UTF-8 (e.g. 'CSV UTF-8' in Excel)"
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    header_line = 1
    rows: list[tuple[int, list[str]]] = []
    problems: list[_Problem] = []
    line = 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            cells = [c.strip() for c in record]
            if not any(cells):
                continue  # blank line (or only separators)
            if header is None:
                header, header_line = cells, start
                continue
            if len(cells) > len(header) and not any(cells[len(header) :]):
                cells = cells[: len(header)]  # trailing empty cells (spreadsheet export)
            if len(cells) != len(header):
                problems.append(_Problem(
                    p, f"{len(cells)} fields but the header has {len(header)} — check for missing "
                    f"or extra {delimiter!r} separators and unquoted values containing them",
                    line=start,
                ))
                continue
            rows.append((start, cells))
    except csv.Error as exc:
        raise DataError(
            f"{p}, line {line}: malformed CSV ({exc}) — check the quoting on this line"
        ) from exc
    if header is None:
        raise DataError(f"{p}: the CSV file is empty — it needs a header line and one row per case")
    for i, name in enumerate(header):
        if not name:
            raise DataError(
                f"{p}, line {header_line}: header field {i + 1} is empty — every column needs a "
                "name (remove a saved index column or name it)"
            )
    dup = [n for i, n in enumerate(header) if n in header[:i]]
    if dup:
        raise DataError(f"{p}, line {header_line}: duplicate column name {dup[0]!r} in the header")
    if len(header) == 1:
        for guess in (";", "\t", "|", ","):
            if guess != delimiter and guess in header[0]:
                raise DataError(
                    f"{p}, line {header_line}: the header has a single column {header[0]!r} — the "
                    f"file looks {guess!r}-separated; save it with {delimiter!r} separators or pass "
                    f"delimiter={guess!r} (--delimiter on the command line)"
                )
    if not rows and not problems:
        raise DataError(f"{p}: the CSV file has a header but no data rows")
    return _Table(p, tuple(header), rows, len(rows) + len(problems)), problems


# ====================================================================== cell parsing
def _parse01(value: str, column: str) -> int:
    """Parse a 0/1 cell (``0``, ``1``, ``0.0``, ``1.0``) or raise :class:`_RowError`."""
    if _FLOAT_RE.fullmatch(value):
        f = float(value)
        if f in (0.0, 1.0):
            return int(f)
    shown = value if len(value) <= 40 else value[:37] + "..."
    raise _RowError(
        f"value {shown!r} is not 0 or 1 — 0/1 columns must hold 0 or 1 in every row (an empty "
        "cell is not allowed)" if value else "empty cell — 0/1 columns must hold 0 or 1 in every row",
        column,
    )


def _parse_split(value: str, column: str) -> str:
    split = _SPLIT_ALIASES.get(value.lower())
    if split is None:
        raise _RowError(
            f"split {value!r} is not one of {list(SPLITS)}" if value else "empty split value",
            column,
        )
    return split


def _canonical(name: str) -> str:
    """Lower-case, ``-``/space -> ``_``, then the artifact aliases (``patches`` -> ``patch``)."""
    c = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return _COLUMN_ALIASES.get(c, c)


def _strip_image_ext(name: str) -> str:
    root, ext = os.path.splitext(name)
    return root if ext.lower() in IMAGE_EXTENSIONS else name


def _metadata_series(values: list[str]) -> pd.Series:
    """A metadata column: int64 / float64 when every non-empty value is a plain number."""
    present = [v for v in values if v != ""]
    if present and all(_INT_RE.fullmatch(v) for v in present):
        ints = [int(v) for v in present]
        if not all(-(2**53) <= i <= 2**53 for i in ints):
            pass  # long digit strings (ids, accession numbers) stay text
        elif len(present) == len(values):
            return pd.Series(ints, dtype="int64")
        else:
            return pd.Series([float(v) if v != "" else np.nan for v in values], dtype="float64")
    elif present and all(_FLOAT_RE.fullmatch(v) for v in present):
        floats = [float(v) if v != "" else np.nan for v in values]
        if all(np.isfinite(f) for f in floats if f == f):
            return pd.Series(floats, dtype="float64")
    return pd.Series([v if v != "" else None for v in values])


# ====================================================================== image paths
class _ImageResolver:
    """Resolves CSV paths and ids to image files strictly inside one root folder (internal).

    Paths are refused when they leave the root, lexically (``..``, absolute paths elsewhere) or
    through symbolic links.
    """

    def __init__(self, root: Path):
        try:
            self.root = root.expanduser().resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            raise DataError(f"{root}: cannot access the image folder ({exc})") from exc
        try:
            ok = self.root.is_dir()
        except (OSError, ValueError):
            ok = False
        if not ok:
            raise DataError(f"image folder not found: {root} — pass an existing folder")
        self._listings: dict[Path, dict[str, list[str]]] = {}

    def _inside(self, rel: str, column: str) -> tuple[Path, str]:
        """Lexically normalise ``rel`` and check it stays inside the root."""
        if "\x00" in rel:
            raise _RowError("path contains a NUL character", column)
        rel = rel.replace("\\", "/")
        raw = Path(rel)
        candidate = Path(os.path.normpath(raw if raw.is_absolute() else self.root / raw))
        if not candidate.is_relative_to(self.root):
            raise _RowError(
                f"path {rel!r} points outside the image folder {self.root} — image paths must "
                "stay inside it (no '..', no absolute paths elsewhere)",
                column,
            )
        return candidate, candidate.relative_to(self.root).as_posix()

    def _file(self, candidate: Path, rel: str, column: str) -> Path:
        """Check that ``candidate`` is a file whose real location is inside the root."""
        try:
            real = candidate.resolve()
            inside = real.is_relative_to(self.root)
            exists = real.is_file()
        except (OSError, RuntimeError, ValueError) as exc:
            raise _RowError(f"cannot access image {rel!r} ({exc})", column) from exc
        if not inside:
            raise _RowError(
                f"image {rel!r} is a symbolic link to {real}, outside the image folder "
                f"{self.root} — copy the file into the folder instead",
                column,
            )
        if not exists:
            raise _RowError(f"image file not found: {candidate}", column)
        return candidate

    def by_path(self, value: str, column: str) -> tuple[Path, str]:
        """``(absolute path, path relative to the root)`` of a path cell."""
        if not value:
            raise _RowError("empty image path", column)
        candidate, rel = self._inside(value, column)
        if rel == ".":
            raise _RowError(f"path {value!r} is the image folder itself, not an image", column)
        return self._file(candidate, rel, column), rel

    def _listing(self, folder: Path) -> dict[str, list[str]]:
        if folder not in self._listings:
            index: dict[str, list[str]] = {}
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        stem, ext = os.path.splitext(entry.name)
                        if ext.lower() in IMAGE_EXTENSIONS:
                            index.setdefault(stem, []).append(entry.name)
            except (OSError, ValueError):
                pass  # a missing sub-folder simply has no images
            self._listings[folder] = index
        return self._listings[folder]

    def by_id(self, case_id: str, column: str) -> tuple[Path, str]:
        """Find ``<root>/<id>.<ext>`` (or ``<root>/<id>`` when the id has an extension)."""
        if not case_id:
            raise _RowError("empty id", column)
        candidate, rel = self._inside(case_id, column)
        if rel == ".":
            raise _RowError(f"id {case_id!r} does not name an image", column)
        try:
            direct = candidate.is_file()
        except (OSError, ValueError):
            direct = False
        if direct:
            return self._file(candidate, rel, column), rel
        names = sorted(self._listing(candidate.parent).get(candidate.name, []))
        if not names:
            raise _RowError(
                f"no image named {candidate.name}.<ext> in {candidate.parent} (looked for "
                f"{', '.join(IMAGE_EXTENSIONS)})",
                column,
            )
        if len(names) > 1:
            raise _RowError(
                f"several images match id {case_id!r}: {', '.join(names)} — keep one", column
            )
        found = candidate.parent / names[0]
        found_rel = found.relative_to(self.root).as_posix()
        return self._file(found, found_rel, column), found_rel


# ====================================================================== splits
def stratified_split(
    labels: Sequence[str] | np.ndarray,
    ids: Sequence[str] | np.ndarray,
    *,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> np.ndarray:
    """Deterministic stratified train/val/test assignment.

    Within each class the cases are sorted by id and shuffled with a generator seeded by
    ``seed`` and the class name, then cut by the largest-remainder rounding of ``fractions``.
    The result therefore depends neither on the row order nor on the other classes.

    Parameters
    ----------
    labels
        Class of each case.
    ids
        Unique id of each case (same length as ``labels``).
    fractions
        Train, val and test fractions (non-negative, summing to 1, train > 0).
    seed
        Random seed.

    Returns
    -------
    numpy.ndarray
        Object array of ``"train"``, ``"val"`` or ``"test"``, aligned with ``labels``.

    Raises
    ------
    DataError
        Bad fractions or mismatched lengths.
    """
    fr = _check_fractions(fractions)
    lab = np.asarray(labels, dtype=object)
    idv = np.asarray(ids, dtype=object)
    if lab.shape != idv.shape or lab.ndim != 1:
        raise DataError(f"labels and ids must be 1-D and of equal length, got {lab.shape} and {idv.shape}")
    out = np.empty(len(lab), dtype=object)
    labs = np.array([str(x) for x in lab], dtype=object)
    for cls in sorted(set(labs.tolist())):
        members = np.flatnonzero(labs == cls)
        members = members[np.argsort(np.array([str(i) for i in idv[members]]), kind="stable")]
        digest = int.from_bytes(hashlib.sha256(cls.encode()).digest()[:8], "little")
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, digest])
        members = members[rng.permutation(len(members))]
        counts = _largest_remainder(len(members), fr)
        start = 0
        for split, k in zip(SPLITS, counts, strict=True):
            out[members[start : start + k]] = split
            start += k
    return out


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    try:
        fr = tuple(float(f) for f in fractions)
    except (TypeError, ValueError) as exc:
        raise DataError(f"split fractions must be three numbers, got {fractions!r}") from exc
    if len(fr) != 3 or any(not np.isfinite(f) or f < 0 for f in fr) or abs(sum(fr) - 1) > 1e-6 or fr[0] <= 0:
        raise DataError(
            f"split fractions must be three non-negative numbers (train, val, test) summing to 1 "
            f"with train > 0, got {fractions!r}"
        )
    return fr[0], fr[1], fr[2]


def _largest_remainder(n: int, fractions: tuple[float, float, float]) -> list[int]:
    exact = [n * f for f in fractions]
    counts = [int(np.floor(e)) for e in exact]
    order = sorted(range(3), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


# ====================================================================== shared helpers
def _check_common(image_size: int, out_dir: str | Path, overwrite: bool) -> Path:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 8 <= image_size <= 4096:
        raise DataError(f"image_size must be an integer between 8 and 4096, got {image_size!r}")
    out = Path(out_dir)
    try:
        exists = out.exists()
    except (OSError, ValueError) as exc:
        raise DataError(f"{out}: cannot use this output folder ({exc})") from exc
    if exists and not overwrite:
        raise DataError(
            f"{out} already exists — choose another name or pass overwrite=True (--overwrite)"
        )
    return out


def _check_classes(classes: Sequence[str] | None) -> tuple[str, ...] | None:
    if classes is None:
        return None
    if isinstance(classes, str):
        raise DataError(f"classes must be a list of names, got the string {classes!r}")
    cl = tuple(str(c).strip() for c in classes)
    if not cl or any(not c for c in cl) or len(set(cl)) != len(cl):
        raise DataError(f"classes must be non-empty, distinct names, got {list(classes)!r}")
    return cl


def _load_images(
    paths: Sequence[Path],
    size: int,
    where: Callable[[int], tuple[Path, int | None]],
    progress: ProgressCallback | None,
) -> tuple[np.ndarray, list[_Problem]]:
    """Decode every image; problems name ``where(i)`` (file and line) and the image error."""
    try:
        images = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    except (MemoryError, ValueError) as exc:
        raise DataError(
            f"not enough memory for {len(paths)} images of {size}x{size} px — use a smaller "
            "image_size"
        ) from exc
    problems: list[_Problem] = []
    for i, path in enumerate(paths):
        try:
            images[i] = load_image_rgb(path, size)
        except ImageError as exc:
            file, line = where(i)
            problems.append(_Problem(file, str(exc), line=line, image=True))
        if progress is not None:
            progress(i + 1, len(paths))
    return images, problems


def _write(
    out: Path,
    info: DatasetInfo,
    cases: pd.DataFrame,
    images: np.ndarray,
    overwrite: bool,
) -> Dataset:
    try:
        return Dataset.write(out, info, cases, images, overwrite=overwrite)
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot write the data set to {out}: {exc}") from exc


def _normalise_cols(cols: Iterable[str] | None, what: str) -> tuple[str, ...]:
    if cols is None:
        return ()
    if isinstance(cols, str):
        cols = [cols]
    out = tuple(str(c).strip() for c in cols)
    if any(not c for c in out):
        raise DataError(f"{what} names must be non-empty")
    return out


# ====================================================================== generic CSV importer
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
    """Import a folder of images described by a CSV file.

    The CSV has one row per case with

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
    image_size
        Side of the square images stored (centre crop, then resize).
    seed
        Seed of the generated split.
    split_fractions
        Train/val/test fractions of the generated split.
    delimiter
        CSV field separator.
    name
        Data-set name; default ``out_dir``'s name.
    overwrite
        Replace an existing data set at ``out_dir``.
    progress
        Called as ``progress(done, total)`` while images are decoded.

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
    table, problems = _read_csv(csv_path, delimiter=delimiter)
    src = table.path
    header = table.header
    root = Path(images_dir) if images_dir is not None else src.parent
    resolver = _ImageResolver(root)

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

    i_id = table.index(id_col) if has_id else None
    i_path = table.index(path_col) if has_path else None
    i_label = table.index(label_col)
    i_split = table.index(split_col) if split_col is not None else None
    binary_cols = [(table.index(c), c, o) for c, (r, o) in roles.items() if r != "metadata"]

    ids: list[str] = []
    lines: list[int] = []
    paths: list[Path] = []
    rels: list[str] = []
    labels: list[str] = []
    splits: list[str] = []
    bin_values: dict[str, list[int]] = {o: [] for _, _, o in binary_cols}
    meta_rows: list[list[str]] = []
    first_line: dict[str, int] = {}
    for line, cells in table.rows:
        row_problems: list[_RowError] = []
        case_id = rel = ""
        path: Path | None = None
        try:
            if i_path is not None:
                path, rel = resolver.by_path(cells[i_path], path_col)
                case_id = posixpath.splitext(rel)[0]
            if i_id is not None:
                case_id = cells[i_id]
                if not case_id:
                    raise _RowError("empty id", id_col)
                if path is None:
                    path, rel = resolver.by_id(case_id, id_col)
        except _RowError as e:
            row_problems.append(e)
        if case_id:
            if case_id in first_line:
                row_problems.append(_RowError(
                    f"duplicate id {case_id!r} (first seen on line {first_line[case_id]})",
                    id_col if i_id is not None else path_col,
                ))
            else:
                first_line[case_id] = line
        label = cells[i_label]
        if not label:
            row_problems.append(_RowError("empty label — every case needs a class", label_col))
        elif allowed is not None and label not in allowed:
            row_problems.append(_RowError(f"label {label!r} is not one of {list(allowed)}", label_col))
        split = ""
        if i_split is not None and split_col is not None:
            try:
                split = _parse_split(cells[i_split], split_col)
            except _RowError as e:
                row_problems.append(e)
        values: dict[str, int] = {}
        for idx, col, out_name in binary_cols:
            try:
                values[out_name] = _parse01(cells[idx], col)
            except _RowError as e:
                row_problems.append(e)
        if row_problems or path is None:
            problems.extend(_Problem(src, e.message, line=line, column=e.column) for e in row_problems)
            continue
        ids.append(case_id)
        lines.append(line)
        paths.append(path)
        rels.append(rel)
        labels.append(label)
        splits.append(split)
        for out_name, v in values.items():
            bin_values[out_name].append(v)
        meta_rows.append([cells[table.index(c)] for c, (r, _) in roles.items() if r == "metadata"])

    problems.sort(key=lambda p: p.line or 0)
    _raise_problems(problems, table.n_records)

    images, image_problems = _load_images(
        paths, image_size, lambda i: (src, lines[i]), progress
    )
    _raise_problems(image_problems, len(paths))

    class_names = allowed if allowed is not None else tuple(sorted(set(labels)))
    split_source = "column" if i_split is not None else "stratified"
    split_arr = (
        np.asarray(splits, dtype=object)
        if i_split is not None
        else stratified_split(labels, ids, fractions=split_fractions, seed=seed)
    )
    meta_names = [o for _, (r, o) in roles.items() if r == "metadata"]
    concept_names = tuple(o for _, (r, o) in roles.items() if r == "concept")
    artifact_names = tuple(o for _, (r, o) in roles.items() if r == "artifact")
    data: dict[str, Any] = {
        "case_id": ids,
        "label": labels,
        "split": [str(x) for x in split_arr],
        "source_path": rels,
    }
    for o in (*concept_names, *artifact_names):
        data[o] = pd.Series(bin_values[o], dtype="int64")
    for j, o in enumerate(meta_names):
        data[o] = _metadata_series([r[j] for r in meta_rows])
    cases = pd.DataFrame(data)
    info = DatasetInfo(
        name=name or out.name,
        kind="folder",
        classes=class_names,
        image_size=image_size,
        concepts=concept_names,
        artifacts=artifact_names,
        metadata=tuple(meta_names),
        extra={
            "importer": "folder",
            "source_csv": str(src.resolve()),
            "images_dir": str(resolver.root),
            "split_source": split_source,
            "seed": int(seed),
            "split_fractions": [float(f) for f in split_fractions],
        },
    )
    return _write(out, info, cases, images, overwrite)


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

    def subdirs(folder: Path) -> list[Path]:
        try:
            return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError as exc:
            raise DataError(f"{folder}: cannot list the folder ({exc})") from exc

    problems: list[_Problem] = []
    top = subdirs(root)
    split_layout = bool(top) and all(d.name.lower() in _SPLIT_ALIASES for d in top)
    groups: list[tuple[str | None, Path]] = []  # (split, class folder)
    if split_layout:
        for d in top:
            groups.extend((_SPLIT_ALIASES[d.name.lower()], c) for c in subdirs(d))
    else:
        groups.extend((None, c) for c in top)
    if not groups:
        raise DataError(f"{root}: no class sub-folders — expected {root}/<class>/<image files>")

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
    if allowed is not None:
        for c in folder_classes:
            if c not in allowed:
                raise DataError(f"{root}: folder {c!r} is not one of the classes {list(allowed)}")
        for c in allowed:
            if c not in folder_classes:
                raise DataError(f"{root}: no folder for class {c!r}")

    ids: list[str] = []
    labels: list[str] = []
    splits: list[str] = []
    paths: list[Path] = []
    rels: list[str] = []
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
                    problems.append(_Problem(Path(dirpath) / fname, e.message))
                    continue
                found += 1
                ids.append(posixpath.splitext(rel)[0])
                labels.append(folder.name)
                splits.append(split or "")
                paths.append(path)
                rels.append(rel)
        if not found:
            problems.append(_Problem(folder, "class folder has no images"))
    for dup_id in sorted(i for i, n in Counter(ids).items() if n > 1):
        problems.append(_Problem(
            root, f"several images share the id {dup_id!r} (same name, different extension)"
        ))
    _raise_problems(problems, len(ids), "images")

    images, image_problems = _load_images(paths, image_size, lambda i: (paths[i], None), progress)
    _raise_problems(image_problems, len(paths), "images")
    split_arr = (
        np.asarray(splits, dtype=object)
        if split_layout
        else stratified_split(labels, ids, fractions=split_fractions, seed=seed)
    )
    cases = pd.DataFrame({
        "case_id": ids,
        "label": labels,
        "split": [str(x) for x in split_arr],
        "source_path": rels,
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
    return _write(out, info, cases, images, overwrite)
