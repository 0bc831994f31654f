"""Shared pieces of the importers' front end: problem reports, CSV reading, cell parsing and
image paths. The back end (stratified split, argument checks, the row collector, the write step)
is :mod:`concepts.importers._rows`.

The importers themselves live in :mod:`concepts.importers._folder` (folder/CSV, class folders),
:mod:`concepts.importers._isic` and :mod:`concepts.importers._derm7pt`; the conventions (all problems collected,
1-based physical CSV line numbers, one atomic :meth:`Dataset.write`) are described there.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from concepts._errors import DataError, ImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "ProgressCallback",
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
    text = _read_text(p)
    header, header_line, rows, problems = _parse_records(p, text, delimiter)
    if header is None:
        raise DataError(f"{p}: the CSV file is empty — it needs a header line and one row per case")
    _check_header(p, header, header_line, delimiter)
    if not rows and not problems:
        raise DataError(f"{p}: the CSV file has a header but no data rows")
    return _Table(p, tuple(header), rows, len(rows) + len(problems)), problems


def _read_text(p: Path) -> str:
    """The file's text: UTF-8 (a leading byte-order mark dropped), no NUL byte, not empty."""
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
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = bom + exc.start
        raise DataError(
            f"{p}, line {_line_of_offset(data, at)}: byte 0x{data[at]:02x} is not valid UTF-8 — "
            "re-save the file as UTF-8 (e.g. 'CSV UTF-8' in Excel)"
        ) from exc


def _parse_records(
    p: Path, text: str, delimiter: str
) -> tuple[list[str] | None, int, list[tuple[int, list[str]]], list[_Problem]]:
    """``(header, header line, rows, ragged-row problems)``; blank lines are skipped."""
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
    return header, header_line, rows, problems


def _check_header(p: Path, header: list[str], header_line: int, delimiter: str) -> None:
    """Every column named, no name twice, and no single column that hides another separator."""
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
