"""The data-set files: reading ``cases.parquet`` and ``images.npy`` (a corrupt file is a one-line
:class:`DataError`), content hashes, and swapping a complete directory into place.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from concepts._errors import DataError
from concepts.data._chunks import hash_npy_file, update_hash

__all__ = ["hash_array", "swap_in_directory"]


def swap_in_directory(tmp: Path, target: Path) -> None:
    """Move the complete directory ``tmp`` to ``target``, replacing an existing ``target``.

    Readers never see a half-written ``target``: the old one is renamed aside, the new one
    renamed in, then the old one removed.
    """
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(target)


def hash_array(arr: np.ndarray, *extra: str) -> str:
    """sha256 of an array's shape, dtype and bytes (plus optional extra strings).

    Large arrays are hashed in row chunks (a memory-mapped one keeps one chunk resident).
    """
    h = hashlib.sha256()
    h.update(str(arr.shape).encode())
    h.update(str(arr.dtype).encode())
    update_hash(h, arr)
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()


_REIMPORT = "re-import it (`workbench import`) or rebuild the demo (`workbench demo --no-serve`)"


def _content_hash(images: np.ndarray, cases: pd.DataFrame) -> str:
    """The content hash of a data set: its images plus its cases table as JSON records."""
    return hash_array(images, cases.to_json(orient="records"))


def _file_content_hash(npy: Path, images: np.ndarray, cases: pd.DataFrame) -> str:
    """:func:`_content_hash` with the images read from ``npy`` in chunks (no mapping)."""
    h = hash_npy_file(npy) if isinstance(images, np.memmap) or images.size == 0 else None
    if h is None:
        return _content_hash(images, cases)
    h.update(cases.to_json(orient="records").encode())
    return str(h.hexdigest())


def _corrupt(path: Path, exc: BaseException) -> DataError:
    detail = " ".join(str(exc).split())[:160] or type(exc).__name__
    return DataError(f"{path}: cannot read it ({detail}) — the data set is corrupt; {_REIMPORT}")


def _read_cases(path: Path) -> pd.DataFrame:
    try:
        cases = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types (ArrowInvalid, OSError, ...)
        raise _corrupt(path, exc) from None
    missing = [c for c in ("case_id", "label", "split") if c not in cases.columns]
    if missing:
        raise DataError(f"{path}: lacks the column(s) {missing} — the data set is corrupt; {_REIMPORT}")
    return cases


def _read_images(path: Path, mmap: bool) -> np.ndarray:
    try:
        images = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise _corrupt(path, exc) from None
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        shape = getattr(images, "shape", "?")
        dtype = getattr(images, "dtype", "?")
        raise DataError(
            f"{path}: holds {dtype} {shape}, not uint8 images (N, S, S, 3) — the data set is "
            f"corrupt; {_REIMPORT}"
        )
    return images
