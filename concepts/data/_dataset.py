"""The on-disk data-set format every importer and the DermSynth generator write.

A data set is a directory::

    dataset.json     DatasetInfo (name, kind, classes, concept/artifact/metadata columns, hash)
    cases.parquet    one row per case: case_id, label, split, [source_path], 0/1 concept and
                     artifact columns, metadata columns
    images.npy       uint8 array (N, S, S, 3), row-aligned with cases.parquet

Writes are atomic: everything goes to a temporary sibling directory that is renamed into place
only once complete, so a failed import never leaves a half-written data set.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concepts._errors import DataError, WorkspaceError
from concepts.data._chunks import ImageWriter, RowView, hash_npy_file, iter_rows
from concepts.data._dataset_files import (
    _REIMPORT,
    _corrupt,
    _file_content_hash,
    _read_cases,
    _read_images,
    hash_array,
    swap_in_directory,
)
from concepts.data._names import check_name

__all__ = [
    "ARTIFACTS",
    "CRITERIA",
    "Dataset",
    "DatasetInfo",
    "DatasetWriter",
    "ImageSet",
]

#: The seven 7-point-checklist criteria, named as derm7pt's columns (binary presence of the
#: scoring variant in a data set's cases table).
CRITERIA: tuple[str, ...] = (
    "pigment_network",
    "blue_whitish_veil",
    "vascular_structures",
    "pigmentation",
    "streaks",
    "dots_and_globules",
    "regression_structures",
)

#: Artifacts known to confound dermoscopy classifiers (0/1 columns).
ARTIFACTS: tuple[str, ...] = ("ruler", "ink", "hair", "dark_corner", "patch", "gel_bubble")



@dataclass(frozen=True)
class _FilesKey:
    """Identity of a data set's files on disk: path, modification time and size of each."""

    root: str
    stats: tuple[tuple[str, int, int], ...]

    @classmethod
    def of(cls, root: Path) -> _FilesKey | None:
        try:
            stats = tuple(
                (n, (st := (root / n).stat()).st_mtime_ns, st.st_size)
                for n in ("dataset.json", "cases.parquet", "images.npy")
            )
        except OSError:
            return None
        return cls(str(root.resolve()), stats)


#: Content hashes verified in this process, by the files they were computed from.
_VERIFIED: dict[_FilesKey, str] = {}


def _read_info(meta: Path) -> DatasetInfo:
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        info = DatasetInfo.from_json(data)
        if not all(isinstance(c, str) for c in (*info.classes, *info.concepts, *info.artifacts)):
            raise ValueError("class, concept and artifact names must be strings")
        return info
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _corrupt(meta, exc) from None



@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of a data set (``dataset.json``)."""

    name: str
    kind: str
    classes: tuple[str, ...]
    image_size: int
    concepts: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = ()
    metadata: tuple[str, ...] = ()
    content_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("classes", "concepts", "artifacts", "metadata"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DatasetInfo:
        return cls(
            name=str(d["name"]),
            kind=str(d["kind"]),
            classes=tuple(d["classes"]),
            image_size=int(d["image_size"]),
            concepts=tuple(d.get("concepts", ())),
            artifacts=tuple(d.get("artifacts", ())),
            metadata=tuple(d.get("metadata", ())),
            content_hash=str(d.get("content_hash", "")),
            extra=dict(d.get("extra", {})),
        )


@dataclass(frozen=True)
class ImageSet:
    """A named set of images with a content key (used to key the activation cache)."""

    name: str
    images: np.ndarray | RowView  # (N, S, S, 3) uint8; scattered rows of a memory map: a RowView
    key: str

    @classmethod
    def from_array(cls, name: str, images: np.ndarray) -> ImageSet:
        return cls(name=name, images=images, key=hash_array(np.asarray(images)))

    def __len__(self) -> int:
        return int(self.images.shape[0])


class Dataset:
    """A loaded data set: ``info``, the ``cases`` table and the ``images`` array.

    Use :meth:`load` to open one and :meth:`write` to create one.
    """

    def __init__(self, root: Path, info: DatasetInfo, cases: pd.DataFrame, images: np.ndarray):
        self.root = root
        self.info = info
        self.cases = cases
        self.images = images

    # ------------------------------------------------------------------ IO
    @classmethod
    def load(cls, root: str | Path, *, mmap: bool = True, verify: bool = True) -> Dataset:
        """Open a data set directory written by :meth:`write`.

        Parameters
        ----------
        root
            The data-set directory.
        mmap
            Memory-map ``images.npy`` (read-only) instead of reading it.
        verify
            Check the stored content hash (:meth:`verify`; the first time in a process costs
            one pass over the images, about 0.1 s per 1,000 images of 128 px).

        Raises
        ------
        WorkspaceError
            No ``dataset.json`` in ``root``.
        DataError
            A corrupt or inconsistent ``dataset.json``, ``cases.parquet`` or ``images.npy``
            (one line naming the file and what to do), or a content-hash mismatch.
        """
        r = Path(root)
        meta = r / "dataset.json"
        if not meta.is_file():
            raise WorkspaceError(
                f"no data set at {r} (dataset.json missing) — build the demo with "
                "`workbench demo --no-serve` or import one with `workbench import`"
            )
        info = _read_info(meta)
        cases = _read_cases(r / "cases.parquet")
        images = _read_images(r / "images.npy", mmap)
        if len(cases) != images.shape[0]:
            raise DataError(
                f"{r}: cases.parquet has {len(cases)} rows but images.npy {images.shape[0]} — "
                f"the data set is corrupt; {_REIMPORT}"
            )
        try:
            cls._validate(info, cases, images)
        except DataError as exc:
            raise DataError(f"{r}: {exc} — the data set is corrupt; {_REIMPORT}") from None
        ds = cls(r, info, cases, images)
        if verify:
            ds.verify()
        return ds

    def verify(self) -> None:
        """Check that the files still hash to the ``content_hash`` of ``dataset.json``.

        The hash covers the images and the cases table. A successful check is remembered for
        the files' (path, modification time, size) in this process, so repeated loads of an
        unchanged data set cost a ``stat`` per file.

        Raises
        ------
        DataError
            No stored hash, or the files hash to something else (modified or corrupted).
        """
        expected = self.info.content_hash
        if not expected:
            raise DataError(f"{self.root}: dataset.json has no content_hash — {_REIMPORT}")
        key = _FilesKey.of(self.root)
        if key is not None and _VERIFIED.get(key) == expected:
            return
        try:
            actual = _file_content_hash(self.root / "images.npy", self.images, self.cases)
        except (OSError, ValueError, EOFError) as exc:
            raise _corrupt(self.root / "images.npy", exc) from None
        if actual != expected:
            raise DataError(
                f"{self.root}: the data set's files do not match its content hash (dataset.json "
                f"{expected[:12]}…, files {actual[:12]}…) — it was modified or corrupted; {_REIMPORT}"
            )
        if key is not None:
            _VERIFIED[key] = expected

    @classmethod
    def write(
        cls,
        root: str | Path,
        info: DatasetInfo,
        cases: pd.DataFrame,
        images: np.ndarray,
        *,
        overwrite: bool = False,
    ) -> Dataset:
        """Validate and atomically write a data set; returns the loaded result.

        Raises
        ------
        DataError
            Inconsistent table/images, duplicate ids, labels outside ``info.classes``, or non-0/1
            concept columns.
        """
        cases = cases.reset_index(drop=True)
        images = np.asarray(images) if not isinstance(images, np.ndarray) else images
        cls._validate(info, cases, images)
        with cls.create(root, tuple(images.shape), overwrite=overwrite) as writer:
            start = 0
            for chunk in iter_rows(images):
                writer.images[start : start + len(chunk)] = chunk
                start += len(chunk)
            return writer.commit(info, cases)

    @classmethod
    def create(cls, root: str | Path, shape: tuple[int, ...], *, overwrite: bool = False) -> DatasetWriter:
        """Start writing a data set whose images are filled in place, chunk by chunk.

        Use it as a context manager: fill ``writer.images[i] = image`` (a uint8 ``(S, S, 3)``
        row, or ``writer.images[a:b] = rows``), then call :meth:`DatasetWriter.commit` with the
        info and the cases table. Memory stays flat however many images there are. Leaving the
        block without committing (or with an exception) removes everything written.

        Parameters
        ----------
        root
            The data-set directory to create.
        shape
            ``(N, S, S, 3)`` of ``images.npy``.
        overwrite
            Replace an existing data set at ``root`` on commit.

        Raises
        ------
        DataError
            A bad shape, or ``root`` exists and ``overwrite`` is false.
        """
        shp = tuple(int(s) for s in shape)
        if len(shp) != 4 or shp[3] != 3 or min(shp) < 0:
            raise DataError(f"images must be (N, S, S, 3) uint8, got {shape}")
        r = Path(root)
        if r.exists() and not overwrite:
            raise DataError(f"{r} already exists — choose another name or pass overwrite=True")
        r.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{r.name}.tmp-", dir=r.parent))
        try:
            return DatasetWriter(r, tmp, ImageWriter(tmp / "images.npy", shp))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @staticmethod
    def _validate(info: DatasetInfo, cases: pd.DataFrame, images: np.ndarray | ImageWriter) -> None:
        for col in ("case_id", "label", "split"):
            if col not in cases.columns:
                raise DataError(f"cases table lacks the required column {col!r}")
        if images.ndim != 4 or images.shape[3] != 3:
            raise DataError(f"images must be (N, S, S, 3) uint8, got {images.shape}")
        if images.shape[0] != len(cases):
            raise DataError(f"{len(cases)} cases but {images.shape[0]} images")
        for kind, names in (("class", info.classes), ("concept", info.concepts),
                            ("artifact", info.artifacts), ("metadata column", info.metadata)):
            for n in names:
                check_name(n, f"{kind} name")
        dup = cases["case_id"][cases["case_id"].duplicated()]
        if len(dup):
            raise DataError(f"duplicate case_id {dup.iloc[0]!r} (row {int(dup.index[0])})")
        bad = ~cases["label"].isin(info.classes)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"row {i}: label {cases['label'].iloc[i]!r} is not one of {list(info.classes)}"
            )
        for col in (*info.concepts, *info.artifacts):
            if col not in cases.columns:
                raise DataError(f"cases table lacks the declared column {col!r}")
            vals = set(pd.unique(cases[col]))
            if not vals <= {0, 1}:
                raise DataError(f"column {col!r} must hold 0/1 only, found {sorted(map(str, vals))[:5]}")

    # ------------------------------------------------------------------ views
    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    @property
    def splits(self) -> list[str]:
        return sorted(pd.unique(self.cases["split"]).tolist())

    def __len__(self) -> int:
        return len(self.cases)

    def indices(self, split: str | None = None, **equals: Any) -> np.ndarray:
        """Row positions of the cases in ``split`` whose columns equal the given values."""
        mask = np.ones(len(self.cases), dtype=bool)
        if split is not None:
            if split not in self.splits:  # pd.unique: a Python set of N arrow strings costs ~0.3 s at 100k
                raise DataError(f"unknown split {split!r}; this data set has {self.splits}")
            mask &= (self.cases["split"] == split).to_numpy()
        for col, val in equals.items():
            if col not in self.cases.columns:
                raise DataError(f"unknown column {col!r}")
            mask &= (self.cases[col] == val).to_numpy()
        return np.flatnonzero(mask)

    def labels(self, idx: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Integer class indices (positions in ``classes``) of the given rows."""
        lab = self.cases["label"].to_numpy()
        if idx is not None:
            lab = lab[np.asarray(idx)]
        lut = {c: i for i, c in enumerate(self.classes)}
        return np.array([lut[x] for x in lab], dtype=np.int64)

    def image_set(self, idx: Sequence[int] | np.ndarray, name: str = "") -> ImageSet:
        """An :class:`ImageSet` of the given rows, keyed by content hash and row positions.

        A run of consecutive rows is a view of the images; scattered rows of a memory-mapped data
        set are a :class:`~concepts.data._chunks.RowView`, read batch by batch by whoever uses
        them (nothing is gathered to look up cached activations).
        """
        ix = np.asarray(idx, dtype=np.int64)
        key = hashlib.sha256(
            (self.info.content_hash + ":" + hash_array(ix)).encode()
        ).hexdigest()
        images: np.ndarray | RowView
        if len(ix) > 1 and ix[0] >= 0 and bool(np.all(np.diff(ix) == 1)):
            images = self.images[int(ix[0]) : int(ix[-1]) + 1]  # a run of rows: a view, no copy
        elif isinstance(self.images, np.memmap):  # scattered rows of a map: read batch by batch when used
            images = RowView(self.images, ix)
        else:
            images = self.images[ix]
        return ImageSet(name=name or f"{self.info.name}[{len(ix)}]", images=images, key=key)


class DatasetWriter:
    """A data set being written (from :meth:`Dataset.create`); see there for the protocol.

    ``images`` is an :class:`concepts.data._chunks.ImageWriter` over ``images.npy`` in a temporary
    sibling directory; :meth:`commit` hashes that file in chunks, writes the cases table and
    ``dataset.json`` and renames the directory into place.
    """

    def __init__(self, root: Path, tmp: Path, images: ImageWriter):
        self.root = root
        self.images = images
        self._tmp = tmp
        self._done = False

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def abort(self) -> None:
        """Remove everything written (no-op after :meth:`commit`)."""
        if not self._done:
            self._done = True
            self.images.close()
            shutil.rmtree(self._tmp, ignore_errors=True)

    def commit(self, info: DatasetInfo, cases: pd.DataFrame) -> Dataset:
        """Validate, hash and atomically move the data set into place; returns it loaded.

        Raises
        ------
        DataError
            Inconsistent table/images, duplicate ids, labels outside ``info.classes``, non-0/1
            concept columns, or a cases table that does not read back as written.
        """
        if self._done:
            raise DataError(f"{self.root}: this writer was already committed or aborted")
        cases = cases.reset_index(drop=True).copy()
        Dataset._validate(info, cases, self.images)
        self.images.close()
        npy = self._tmp / "images.npy"
        state = hash_npy_file(npy)
        if state is None:  # pragma: no cover - the writer never writes Fortran order
            raise DataError(f"{npy}: unexpected array layout")
        written = state.copy()
        written.update(cases.to_json(orient="records").encode())
        content_hash = str(written.hexdigest())
        info = DatasetInfo(**{**asdict(info), "content_hash": content_hash})
        cases.to_parquet(self._tmp / "cases.parquet", index=False)
        (self._tmp / "dataset.json").write_text(json.dumps(info.to_json(), indent=2))
        state.update(_read_cases(self._tmp / "cases.parquet").to_json(orient="records").encode())
        if state.hexdigest() != content_hash:
            raise DataError(
                f"{self.root}: the cases table does not read back from Parquet as written (a column "
                "type Parquet cannot keep?) — store plain text, integer or float columns"
            )
        swap_in_directory(self._tmp, self.root)
        self._done = True
        key = _FilesKey.of(self.root)
        if key is not None:  # what is on disk was read back and hashes to what was meant
            _VERIFIED[key] = content_hash
        return Dataset.load(self.root)
