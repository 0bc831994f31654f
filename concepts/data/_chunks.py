"""Out-of-core helpers: image arrays written and read in chunks so memory stays flat as N grows.

* :class:`ImageWriter` fills an ``images.npy`` in place through a memory map, handing the
  written pages back to the operating system every :data:`RELEASE_BYTES`, so the resident set of
  the writing process does not grow with the file.
* :func:`iter_rows` walks an array in row chunks, doing the same for a memory-mapped one.
* :func:`take_rows` gathers scattered rows (``arr[rows]``) in sorted windows, and
  :class:`RowView` is such a gather done lazily, one slice (a batch) at a time.
* :func:`hash_npy_file` hashes an ``.npy`` file from disk with buffered reads (no mapping at all).

A memory map's touched pages count in a process's resident set (``ru_maxrss``) until they are
unmapped; ``madvise(MADV_DONTNEED)`` drops them from the process while the page cache keeps the
data, so nothing is lost or re-read from a dirty page.
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHUNK_BYTES",
    "RELEASE_BYTES",
    "ImageWriter",
    "RowView",
    "hash_npy_file",
    "iter_rows",
    "release_pages",
    "take_rows",
]

#: Bytes read or hashed per chunk.
CHUNK_BYTES = 16 * 2**20
#: Bytes written through a memory map between two hand-backs of its pages.
RELEASE_BYTES = 64 * 2**20


def release_pages(arr: Any) -> None:
    """Drop the resident pages of a memory-mapped array from this process (no-op otherwise).

    Written pages are synced to the file first. Copy-on-write maps (mode ``"c"``) are left
    alone: dropping their pages would discard the private changes.
    """
    mm = getattr(arr, "_mmap", None)
    if not isinstance(arr, np.memmap) or mm is None or getattr(arr, "mode", "c") == "c":
        return
    try:
        if arr.mode != "r":
            mm.flush()
        mm.madvise(mmap.MADV_DONTNEED)
    except (AttributeError, OSError, ValueError):  # no madvise on this platform / closed map
        return


def _rows_per_chunk(arr: np.ndarray) -> int:
    row = int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.dtype.itemsize if arr.ndim > 1 else arr.dtype.itemsize
    return max(1, CHUNK_BYTES // max(row, 1))


def iter_rows(arr: np.ndarray) -> Iterator[np.ndarray]:
    """Contiguous row chunks of ``arr`` (about :data:`CHUNK_BYTES` each), in order.

    For a memory-mapped array the pages of each chunk are released once the next one is asked
    for, so walking the whole array keeps one chunk resident.
    """
    if arr.ndim == 0:
        yield np.ascontiguousarray(arr)
        return
    step = _rows_per_chunk(arr)
    for start in range(0, int(arr.shape[0]), step):
        yield np.ascontiguousarray(arr[start : start + step])
        release_pages(arr)


def take_rows(arr: np.ndarray, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """``arr[rows]`` (any order, repeats allowed), read in sorted windows from a memory map.

    An in-memory array is simply indexed. For a memory-mapped one the rows are visited in
    increasing order, a window of about :data:`CHUNK_BYTES` at a time (one contiguous read when
    the window's rows lie close together), and the map's pages are released after each window:
    the process holds the gathered rows, not the pages they came from.

    Raises
    ------
    IndexError
        A row outside ``-len(arr) .. len(arr) - 1`` (as ``arr[rows]`` would).
    """
    ix = np.asarray(rows, dtype=np.int64).reshape(-1)
    if not isinstance(arr, np.memmap):
        return np.asarray(arr[ix])
    n = int(arr.shape[0])
    if len(ix) and (int(ix.min()) < -n or int(ix.max()) >= n):
        raise IndexError(f"row index out of range for {n} rows")
    return _take_sorted(arr, np.where(ix < 0, ix + n, ix))


def _take_sorted(arr: np.ndarray, ix: np.ndarray) -> np.ndarray:
    out = np.empty((len(ix), *arr.shape[1:]), dtype=arr.dtype)
    order = np.argsort(ix, kind="stable")
    step = _rows_per_chunk(arr)
    for i in range(0, len(ix), step):
        pos = order[i : i + step]
        want = ix[pos]
        lo, hi = int(want[0]), int(want[-1]) + 1
        # close rows: one contiguous read of the window; far apart: read just those rows
        out[pos] = arr[lo:hi][want - lo] if hi - lo <= 4 * step else arr[want]
        release_pages(arr)
    return out


class RowView:
    """Rows ``rows`` of ``arr``, gathered only when read: ``view[a:b]`` is ``arr[rows[a:b]]``.

    Hand it to code that walks images in batches (activation extraction, ``predict_proba``) in
    place of ``arr[rows]``: one batch of rows is in memory at a time, not all of them. Indexing
    by a slice, an integer or an integer array reads just those rows (:func:`take_rows`);
    ``np.asarray(view)`` and ``view.astype(dtype)`` gather them all; ``shape``, ``dtype``,
    ``ndim`` and ``len`` are those of the gathered array.
    """

    def __init__(self, arr: np.ndarray, rows: Sequence[int] | np.ndarray):
        self.arr = arr
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        n = int(arr.shape[0])
        if len(self.rows) and (int(self.rows.min()) < -n or int(self.rows.max()) >= n):
            raise IndexError(f"row index out of range for {n} rows")
        self.shape: tuple[int, ...] = (len(self.rows), *arr.shape[1:])
        self.dtype = arr.dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(index, int | np.integer):
            return np.asarray(self.arr[int(self.rows[index])])
        return take_rows(self.arr, self.rows[index])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = take_rows(self.arr, self.rows)
        return out if dtype is None else out.astype(dtype, copy=False)

    def astype(self, dtype: Any) -> np.ndarray:
        """All rows gathered as a new array of ``dtype`` (like :meth:`numpy.ndarray.astype`)."""
        return take_rows(self.arr, self.rows).astype(dtype)


def update_hash(h: Any, arr: np.ndarray) -> None:
    """Feed the C-order bytes of ``arr`` to the hash ``h`` chunk by chunk."""
    if arr.nbytes <= CHUNK_BYTES or arr.ndim == 0:
        h.update(np.ascontiguousarray(arr).data)
        return
    for chunk in iter_rows(arr):
        h.update(chunk.data)


def hash_npy_file(path: Path) -> Any | None:
    """A sha256 object fed with an ``.npy`` file's shape, dtype and data bytes, read in chunks.

    This is what ``hash_array`` computes for the array the file holds. ``None`` when the file is
    stored in Fortran order or holds objects (the caller then hashes the loaded array instead).
    """
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            return None
        if fortran or dtype.hasobject:
            return None
        h = hashlib.sha256()
        h.update(str(tuple(shape)).encode())
        h.update(str(dtype).encode())
        remaining = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        buf = bytearray(CHUNK_BYTES)
        view = memoryview(buf)
        while remaining > 0:
            n = f.readinto(view[: min(CHUNK_BYTES, remaining)])
            if not n:
                raise EOFError(f"{path}: the file ends {remaining} bytes early")
            h.update(view[:n])
            remaining -= n
    return h


class ImageWriter:
    """Rows of an ``.npy`` file written in place: ``writer[i] = image``, ``writer[a:b] = rows``.

    Backed by :func:`numpy.lib.format.open_memmap` (the file is byte-identical to ``np.save`` of
    the same array); written pages are handed back every :data:`RELEASE_BYTES`, so memory stays
    flat however many rows there are.
    """

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.path = path
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(np.uint8)
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64))
        self._since_release = 0
        self._arr: np.ndarray | None
        if self.shape[0] == 0:  # an empty file cannot be memory-mapped
            np.save(path, np.zeros(self.shape, dtype=np.uint8))
            self._arr = None
        else:
            self._arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, index: int | slice, rows: np.ndarray) -> None:
        if self._arr is None:
            if self.shape[0] == 0:
                raise IndexError("this image file has no rows")
            raise ValueError(f"{self.path} is already closed")
        self._arr[index] = rows
        n = len(range(*index.indices(self.shape[0]))) if isinstance(index, slice) else 1
        self._since_release += n * self._row_bytes
        if self._since_release >= RELEASE_BYTES:
            release_pages(self._arr)
            self._since_release = 0

    def close(self) -> None:
        """Flush the rows to the file and unmap it (idempotent)."""
        if self._arr is not None:
            arr, self._arr = self._arr, None
            release_pages(arr)
            arr.flush()  # type: ignore[attr-defined]
            del arr
