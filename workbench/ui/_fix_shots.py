"""The few labelled images of a new clinic that a test-time fix is fitted on (:class:`Shots`).

They come from one of the workspace's data sets (:func:`shots_from_dataset`) or are uploaded
(:func:`shots_from_upload`). Uploaded files are untrusted: at most :data:`MAX_FILES` images of
at most :data:`MAX_FILE_BYTES` each, decoded only by :func:`concepts.data.load_image_rgb` (format
allow-list, decompression-bomb limit); a zip is read member by member with the same limits and
never extracted to disk under its own names; labels must be the model's classes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import streamlit as st

from concepts import DataError, Dataset, WorkbenchError, Workspace
from concepts.data import load_image_rgb
from interventions import InterventionError, select_few_shot
from workbench.services import parts_sha256

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "MAX_K",
    "Shots",
    "clinic_datasets",
    "clinic_splits",
    "load_clinic",
    "read_labels_csv",
    "shots_from_dataset",
    "shots_from_upload",
    "unpack_zip",
]

#: Most images one upload may hold (shots and held-out images together).
MAX_FILES = 200
#: Largest uploaded image file (bytes).
MAX_FILE_BYTES = 20 * 1024 * 1024
#: Largest labels CSV (bytes).
MAX_CSV_BYTES = 1024 * 1024
#: Largest zip upload and its largest uncompressed content (bytes).
MAX_ZIP_BYTES = 200 * 1024 * 1024
MAX_UNZIPPED_BYTES = 400 * 1024 * 1024
#: Most shots per class.
MAX_K = 16
#: File suffixes read as images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


@dataclass(frozen=True)
class Shots:
    """Labelled images of the new clinic: the few shots (``few``) and the held-out rest.

    Attributes
    ----------
    source
        Where they come from, in words (``data set X, split Y`` or ``upload``).
    shots_id
        A content id of the selection (explicit cache key; recorded as the fix's data hash).
    images
        ``(N, S, S, 3)`` uint8 at the model's input size.
    labels
        Class indices.
    case_ids, sha256
        Per image: its id and the sha256 of its file (upload) or pixels (data set).
    few, rest
        Row indices of the shots and of the held-out images.
    acts_key
        Activation-cache handle for a data-set pick: ``(dataset name, content hash, split)``.
    """

    source: str
    shots_id: str
    images: np.ndarray
    labels: np.ndarray
    case_ids: tuple[str, ...]
    sha256: tuple[str, ...]
    few: np.ndarray
    rest: np.ndarray
    k: int
    acts_key: tuple[str, str, str] | None = None

    def shot_rows(self, classes: Sequence[str]) -> list[dict[str, Any]]:
        """One row per shot: case id, label, sha256 (for the record)."""
        return [{"case_id": self.case_ids[i], "label": classes[int(self.labels[i])], "sha256": self.sha256[i]}
                for i in self.few]


def _check_k(k: int, labels: np.ndarray, n_classes: int) -> int:
    if not 1 <= int(k) <= MAX_K:
        raise DataError(f"k must be between 1 and {MAX_K} images per class, got {k}")
    counts = np.bincount(labels, minlength=n_classes)
    if (counts == 0).sum() > n_classes - 2:
        raise DataError("the labelled images must cover at least two classes")
    return int(k)


def clinic_datasets(ws: Workspace, classes: Sequence[str]) -> list[str]:
    """Data sets of the workspace labelled with the model's classes, concept sets excepted (the
    active one last: a new clinic is usually another data set)."""
    out = []
    manifest = ws.manifest()
    active = str(manifest.get("dataset", ""))
    for name in ws.dataset_names():
        if name == manifest.get("concept_sets"):
            continue
        try:
            info = json.loads((ws.datasets_dir / name / "dataset.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and tuple(info.get("classes") or ()) == tuple(classes):
            out.append(name)
    return sorted(out, key=lambda n: (n == active, n))


@st.cache_resource(show_spinner="Loading the data set…", max_entries=4)
def _clinic_dataset(root: str, name: str, mtime_ns: int) -> Dataset:
    ds = Workspace(root).dataset(name)
    ds.verify()
    return ds


def load_clinic(ws: Workspace, name: str) -> Dataset:
    """The verified data set ``name`` of the workspace (cached while its ``dataset.json`` is unchanged)."""
    if name not in ws.dataset_names():
        raise DataError(f"no data set {name!r} in this workspace")
    meta = ws.datasets_dir / name / "dataset.json"
    return _clinic_dataset(str(ws.root), name, meta.stat().st_mtime_ns)


def clinic_splits(ws: Workspace, name: str) -> list[str]:
    """Splits of data set ``name``."""
    return list(load_clinic(ws, name).splits)


def shots_from_dataset(ws: Workspace, name: str, split: str, k: int, seed: int = 0) -> Shots:
    """``k`` images per class of ``split`` of data set ``name`` (drawn with ``seed``); the rest
    of the split is held out."""
    ds = load_clinic(ws, name)
    if split not in ds.splits:
        raise DataError(f"data set {name!r} has no split {split!r}; it has {', '.join(ds.splits)}")
    idx = ds.indices(split)
    labels = ds.labels(idx)
    k = _check_k(k, labels, len(ds.classes))
    try:
        few, rest = select_few_shot(labels, k, seed=seed)
    except InterventionError as exc:
        raise DataError(f"split {split!r} of {name!r}: {exc}") from None
    images = np.asarray(ds.images[idx])
    ids = tuple(str(c) for c in ds.cases["case_id"].to_numpy()[idx])
    sha = tuple(hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images)
    sid = parts_sha256("dataset", name, ds.info.content_hash, split, str(k), str(seed))
    return Shots(f"data set {name}, split {split}", sid, images, labels, ids, sha, few, rest, k,
                 (name, ds.info.content_hash, split))


def read_labels_csv(data: bytes) -> dict[str, str]:
    """``file,label`` rows of a labels CSV (header ``file``/``path``/``image`` and ``label``):
    file name (without folders) -> label."""
    if len(data) > MAX_CSV_BYTES:
        raise DataError(f"the labels CSV is larger than {MAX_CSV_BYTES // 1024} KiB")
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"the labels CSV cannot be read ({exc}); save it as UTF-8 CSV") from None
    if not rows:
        raise DataError("the labels CSV has no rows; it needs the columns file,label")
    cols = {c.strip().lower(): c for c in rows[0] if c}
    fcol = next((cols[c] for c in ("file", "path", "image", "filename") if c in cols), None)
    if fcol is None or "label" not in cols:
        raise DataError(f"the labels CSV needs the columns file,label; it has {', '.join(cols) or 'none'}")
    out: dict[str, str] = {}
    for n, r in enumerate(rows, start=2):
        name = PurePosixPath(str(r.get(fcol) or "").replace("\\", "/")).name
        if not name:
            raise DataError(f"labels CSV line {n}: the file name is empty")
        out[name] = str(r.get(cols["label"]) or "").strip()
    return out


def unpack_zip(data: bytes) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """Images and labels (``labels.csv`` inside) of an uploaded zip, read in memory.

    Members are addressed by their base name only (folders ignored, never extracted), with
    the upload limits on count and size.
    """
    if len(data) > MAX_ZIP_BYTES:
        raise DataError(f"the zip is larger than {MAX_ZIP_BYTES >> 20} MiB")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DataError(f"the upload is not a readable zip file ({exc})") from None
    files: list[tuple[str, bytes]] = []
    labels: dict[str, str] | None = None
    total = 0
    with zf:
        for info in infos:
            name = PurePosixPath(info.filename.replace("\\", "/")).name
            low = name.lower()
            if name.startswith(".") or not (low.endswith(IMAGE_SUFFIXES) or low.endswith(".csv")):
                continue
            total += info.file_size
            if info.file_size > MAX_FILE_BYTES or total > MAX_UNZIPPED_BYTES:
                raise DataError(f"zip member {name!r} is too large (limits: {MAX_FILE_BYTES >> 20} MiB a "
                                f"file, {MAX_UNZIPPED_BYTES >> 20} MiB in all)")
            try:
                body = zf.read(info)
            except (zipfile.BadZipFile, OSError, ValueError, RuntimeError) as exc:
                raise DataError(f"zip member {name!r} cannot be read ({exc})") from None
            if low.endswith(".csv"):
                labels = read_labels_csv(body)
            else:
                files.append((name, body))
    if labels is None:
        raise DataError("the zip holds no labels CSV (labels.csv with the columns file,label)")
    return files, labels


def _decode(files: Sequence[tuple[str, bytes]], size: int) -> tuple[np.ndarray, list[str]]:
    """Decode uploaded images safely (via a private temporary folder and load_image_rgb)."""
    out: list[np.ndarray] = []
    with tempfile.TemporaryDirectory(prefix="wb-fix-") as tmp:
        for n, (name, body) in enumerate(files):
            suffix = PurePosixPath(name).suffix.lower()
            if suffix not in IMAGE_SUFFIXES:
                raise DataError(f"{name!r}: not an image file (use {', '.join(IMAGE_SUFFIXES)})")
            if len(body) > MAX_FILE_BYTES:
                raise DataError(f"{name!r} is larger than {MAX_FILE_BYTES >> 20} MiB")
            path = Path(tmp) / f"{n:04d}{suffix}"  # never the uploaded name
            path.write_bytes(body)
            try:
                out.append(load_image_rgb(path, size=size))
            except WorkbenchError as exc:
                raise DataError(f"{name!r} cannot be used: {str(exc).replace(str(path), 'the image')}") from None
    return np.stack(out), [name for name, _ in files]


def shots_from_upload(
    files: Sequence[tuple[str, bytes]], labels: Mapping[str, str], classes: Sequence[str], size: int,
    k: int, seed: int = 0,
) -> Shots:
    """Uploaded images with a label each: ``k`` per class are the shots, the rest held out."""
    if not files:
        raise DataError("upload the labelled images first")
    if len(files) > MAX_FILES:
        raise DataError(f"{len(files)} images uploaded; the limit is {MAX_FILES}")
    names = [n for n, _ in files]
    if len(set(names)) != len(names):
        raise DataError("two uploaded images have the same file name; rename one")
    y = []
    for name in names:
        lab = labels.get(name)
        if not lab:
            raise DataError(f"{name!r} has no label; give every image one of: {', '.join(classes)}")
        if lab not in classes:
            raise DataError(f"{name!r}: unknown label {lab!r}; use one of: {', '.join(classes)}")
        y.append(classes.index(lab))
    yy = np.asarray(y, dtype=np.int64)
    k = _check_k(k, yy, len(classes))
    try:
        few, rest = select_few_shot(yy, k, seed=seed)
    except InterventionError as exc:
        raise DataError(str(exc).replace("class index", "a class")) from None
    images, ids = _decode(files, size)
    sha = tuple(hashlib.sha256(b).hexdigest() for _, b in files)
    sid = parts_sha256("upload", *sha, *map(str, y), str(k), str(seed))
    return Shots("upload", sid, images, yy, tuple(ids), sha, few, rest, k)
