"""The import pipeline's shared back end: the stratified split, the argument checks, the row
collector every importer hands its rows to, and the atomic write of the data set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concepts._errors import DataError, ImageError
from concepts.data import Dataset, DatasetInfo, check_name, load_image_rgb
from concepts.importers._common import (
    SPLITS,
    ProgressCallback,
    _Problem,
    _raise_problems,
    _RowError,
)

__all__ = ["stratified_split"]


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
    for c in cl:
        check_name(c, "class name")
    return cl


@dataclass(frozen=True)
class _ImageSource:
    """The image files of an import, decoded straight into the data set being written (internal).

    ``where(i)`` names the file and CSV line a problem with image ``i`` is reported against;
    ``what`` is the noun of the problem count ("rows" or "images").
    """

    paths: Sequence[Path]
    size: int
    where: Callable[[int], tuple[Path, int | None]]
    progress: ProgressCallback | None = None
    what: str = "rows"


def _decode_into(dest: Any, src: _ImageSource) -> list[_Problem]:
    """Decode every image of ``src`` into ``dest[i]``; returns the problems (file, line, error)."""
    problems: list[_Problem] = []
    n = len(src.paths)
    for i, path in enumerate(src.paths):
        try:
            dest[i] = load_image_rgb(path, src.size)
        except ImageError as exc:
            file, line = src.where(i)
            problems.append(_Problem(file, str(exc), line=line, image=True))
        if src.progress is not None:
            src.progress(i + 1, n)
    return problems


def _write(
    out: Path,
    info: DatasetInfo,
    cases: pd.DataFrame,
    images: _ImageSource,
    overwrite: bool,
) -> Dataset:
    """Decode the images chunk by chunk into the new data set and write it atomically.

    Memory stays flat as the number of images grows: each image goes straight into
    ``images.npy`` in the temporary directory; an image problem removes everything written.
    """
    shape = (len(images.paths), images.size, images.size, 3)
    try:
        with Dataset.create(out, shape, overwrite=overwrite) as writer:
            _raise_problems(_decode_into(writer.images, images), len(images.paths), images.what)
            return writer.commit(info, cases)
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot write the data set to {out}: {exc}") from exc


# ====================================================================== the row collector
class _Rows:
    """The rows of one import: accepted cases, the problems of the others, skips, the images.

    Every importer reads its input row by row (a CSV line, an image file), checks the row's
    image and fields, and hands the result here: :meth:`accept` keeps a good row (its id, the
    file and line it came from, its image and its named fields), :meth:`reject` records a bad
    row's problems, :meth:`skip` counts a row left out on purpose. :meth:`check` raises one
    error for all problems; :meth:`write` decodes the images chunk by chunk into the data set.
    """

    def __init__(self, src: Path, what: str = "rows"):
        self.src = src
        self.what = what
        self.problems: list[_Problem] = []
        self.ids: list[str] = []
        self.paths: list[Path] = []
        self.rels: list[str] = []
        self.fields: dict[str, list[Any]] = {}
        self.skipped: dict[str, int] = {}
        self._where: list[tuple[Path, int | None]] = []
        self._first: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def claim(self, case_id: str, line: int, noun: str, column: str | None) -> _RowError | None:
        """Register ``case_id`` as seen on ``line``; the problem when it was seen before."""
        if case_id in self._first:
            return _RowError(f"duplicate {noun} {case_id!r} (first seen on line {self._first[case_id]})",
                             column)
        self._first[case_id] = line
        return None

    def reject(self, errors: Sequence[_RowError], line: int | None = None, file: Path | None = None) -> None:
        """Record the problems of a row left out (``file`` default: the source)."""
        where = self.src if file is None else file
        self.problems.extend(_Problem(where, e.message, line=line, column=e.column) for e in errors)

    def skip(self, reason: str) -> None:
        """Count a row left out on purpose, by reason."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def accept(self, case_id: str, path: Path, rel: str, line: int | None, **fields: Any) -> None:
        """Keep a good row: its id, image (absolute and relative path), line and named fields."""
        self.ids.append(case_id)
        self.paths.append(path)
        self.rels.append(rel)
        self._where.append((self.src, line) if line is not None else (path, None))
        for name, value in fields.items():
            self.fields.setdefault(name, []).append(value)

    def field(self, name: str) -> list[Any]:
        """The values of a named field, one per accepted row."""
        return self.fields.get(name, [])

    def check(self, n_records: int | None = None, *, by_line: bool = True) -> None:
        """Raise one error for every problem recorded (sorted by line), if any."""
        if by_line:
            self.problems.sort(key=lambda p: p.line or 0)
        _raise_problems(self.problems, len(self.ids) if n_records is None else n_records, self.what)

    def write(self, out: Path, info: DatasetInfo, cases: pd.DataFrame, size: int,
              progress: ProgressCallback | None, overwrite: bool) -> Dataset:
        """Decode the accepted rows' images into the data set at ``out`` and write it atomically."""
        images = _ImageSource(self.paths, size, lambda i: self._where[i], progress, self.what)
        return _write(out, info, cases, images, overwrite)
