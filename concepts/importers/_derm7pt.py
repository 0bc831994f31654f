"""The derm7pt release: an importer to the data-set format.

derm7pt (Kawahara et al.) ships ``meta/meta.csv`` (one row per case, the seven criteria as raw
labels), three split files ``meta/{train,valid,test}_indexes.csv`` (one column ``indexes``:
0-based row positions in ``meta.csv``) and ``images/`` (the ``derm`` and ``clinic`` columns hold
paths relative to it). The data set is not redistributable; users download it themselves.

The raw-label -> points table and the melanoma diagnoses are domain constants in
:mod:`concepts.data` (re-exported here); the knowledge graph builds its nodes from them too.

Row numbers in error messages are 0-based positions in ``meta.csv`` (as in the index files).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from types import MappingProxyType

import numpy as np
import pandas as pd

from concepts._errors import DataError, ImageError
from concepts.data import (
    CRITERIA,
    DERM7PT_LABELS,
    DERM7PT_MELANOMA_DIAGNOSES,
    Dataset,
    DatasetInfo,
    load_image_rgb,
)
from concepts.importers._rows import _check_common

__all__ = [
    "DERM7PT_CLASSES",
    "DERM7PT_METADATA",
    "DERM7PT_SPLIT_FILES",
    "import_derm7pt",
    "read_derm7pt_meta",
    "read_derm7pt_splits",
]

#: Classes of an imported derm7pt data set (``label`` column).
DERM7PT_CLASSES: tuple[str, ...] = ("melanoma", "non_melanoma")

#: Metadata columns kept from ``meta.csv`` (besides ``diagnosis``).
DERM7PT_METADATA: tuple[str, ...] = (
    "level_of_diagnostic_difficulty",
    "elevation",
    "location",
    "sex",
    "management",
)

#: Split file name (in ``meta/``) -> split name in the cases table.
DERM7PT_SPLIT_FILES: Mapping[str, str] = MappingProxyType(
    {"train_indexes.csv": "train", "valid_indexes.csv": "val", "test_indexes.csv": "test"}
)

_REQUIRED = ("case_num", "diagnosis", *CRITERIA, "clinic", "derm")
_OPTIONAL = ("seven_point_score", *DERM7PT_METADATA, "case_id", "notes")



def _norm_label(value: str) -> str:
    return " ".join(value.strip().lower().split())


def _where(name: str, row: int, case_num: object, column: str) -> str:
    cn = "" if case_num is None else f" (case_num {case_num})"
    return f"{name} row {row}{cn}, column {column!r}"


def _resolve_meta_path(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        for cand in (p / "meta" / "meta.csv", p / "meta.csv"):
            if cand.is_file():
                return cand
        raise DataError(
            f"no meta.csv in {p} (looked for meta/meta.csv and meta.csv) — pass the derm7pt "
            "release folder or its meta/meta.csv"
        )
    if not p.is_file():
        raise DataError(
            f"derm7pt metadata file not found: {p} — pass the path to meta/meta.csv of the "
            "derm7pt release"
        )
    return p


def read_derm7pt_meta(path: str | Path) -> pd.DataFrame:
    """Read and validate derm7pt's ``meta.csv`` (metadata only; no images are opened).

    Parameters
    ----------
    path
        ``meta/meta.csv`` of the derm7pt release (or the release folder itself).

    Returns
    -------
    pandas.DataFrame
        One row per case, in file order, with columns ``case_num`` (int), ``diagnosis`` (as in
        the file, normalised to lower case), ``label`` (``"melanoma"`` / ``"non_melanoma"``),
        ``seven_point_score`` (the file's own score, nullable int; not recomputed), and for each
        criterion ``c`` of :data:`concepts.CRITERIA`: ``c_raw`` (the raw label), ``c`` (0/1
        presence of the scoring variant) and ``c_points``; then ``derm_path`` and
        ``clinic_path`` (relative to ``images/``), the :data:`DERM7PT_METADATA` columns,
        ``derm7pt_case_id`` (the file's ``case_id``) and ``notes``. Optional columns absent from
        the file are filled with missing values.

    Raises
    ------
    DataError
        A missing file or column, an unknown or empty criterion label, a bad ``case_num``, an
        empty diagnosis or image path; the message names the row and the column.
    """
    p = _resolve_meta_path(path)
    name = p.name
    raw = _read_meta_csv(p)
    n = len(raw)
    case_nums = _case_nums(raw, name)
    out: dict[str, object] = {"case_num": np.asarray(case_nums, dtype=np.int64)}
    diagnoses = _diagnoses(raw, name, case_nums)
    out["diagnosis"] = diagnoses
    out["label"] = [
        DERM7PT_CLASSES[0] if d in DERM7PT_MELANOMA_DIAGNOSES else DERM7PT_CLASSES[1]
        for d in diagnoses
    ]
    out["seven_point_score"] = _seven_point_scores(raw, name, case_nums)
    for crit in CRITERIA:
        labels = _criterion_labels(raw, name, case_nums, crit)
        points = np.array([DERM7PT_LABELS[crit][lab] for lab in labels], dtype=np.int64)
        out[f"{crit}_raw"] = labels
        out[crit] = (points > 0).astype(np.int64)
        out[f"{crit}_points"] = points
    for src, dst in (("derm", "derm_path"), ("clinic", "clinic_path")):
        out[dst] = _image_paths(raw, name, case_nums, src)
    for c in DERM7PT_METADATA:
        vals = raw[c] if c in raw.columns else [""] * n
        out[c] = [(_norm_label(v) or None) for v in vals]
    for src, dst in (("case_id", "derm7pt_case_id"), ("notes", "notes")):
        vals = raw[src] if src in raw.columns else [""] * n
        out[dst] = [(v.strip() or None) for v in vals]
    return pd.DataFrame(out)


def _read_meta_csv(p: Path) -> pd.DataFrame:
    """``meta.csv`` as text cells, with the required columns and at least one case."""
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: not a readable CSV file ({exc}) — expected derm7pt's meta.csv") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in _REQUIRED if c not in raw.columns]
    if missing:
        raise DataError(
            f"{p} lacks the column(s) {', '.join(repr(c) for c in missing)} — expected derm7pt's "
            f"meta/meta.csv with the columns {', '.join(_REQUIRED)}"
        )
    if raw.empty:
        raise DataError(f"{p} has no cases")
    return raw


def _case_nums(raw: pd.DataFrame, name: str) -> list[int]:
    case_nums: list[int] = []
    for i, v in enumerate(raw["case_num"]):
        try:
            case_nums.append(int(v.strip()))
        except ValueError:
            raise DataError(
                f"{_where(name, i, None, 'case_num')}: {v!r} is not an integer case number"
            ) from None
    dup = pd.Series(case_nums).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"{_where(name, i, case_nums[i], 'case_num')}: duplicate case_num {case_nums[i]} — "
            "every case needs its own number"
        )
    return case_nums


def _diagnoses(raw: pd.DataFrame, name: str, case_nums: list[int]) -> list[str]:
    diagnoses: list[str] = []
    for i, v in enumerate(raw["diagnosis"]):
        d = _norm_label(v)
        if not d:
            raise DataError(f"{_where(name, i, case_nums[i], 'diagnosis')}: empty diagnosis")
        if d.startswith("melanoma") and d not in DERM7PT_MELANOMA_DIAGNOSES:
            raise DataError(
                f"{_where(name, i, case_nums[i], 'diagnosis')}: {v!r} looks like a melanoma but "
                f"is not one of the derm7pt melanoma diagnoses {list(DERM7PT_MELANOMA_DIAGNOSES)}"
            )
        diagnoses.append(d)
    return diagnoses


def _seven_point_scores(raw: pd.DataFrame, name: str, case_nums: list[int]) -> object:
    """The file's own 7-point scores as a nullable integer array (not recomputed)."""
    scores: list[int | None] = []
    col = raw["seven_point_score"] if "seven_point_score" in raw.columns else [""] * len(raw)
    for i, v in enumerate(col):
        s = v.strip()
        if not s:
            scores.append(None)
            continue
        try:
            f = float(s)
        except ValueError:
            f = math.nan
        if not (math.isfinite(f) and f.is_integer()):
            raise DataError(
                f"{_where(name, i, case_nums[i], 'seven_point_score')}: {v!r} is not an integer"
            )
        scores.append(int(f))
    return pd.array(scores, dtype="Int64")


def _criterion_labels(raw: pd.DataFrame, name: str, case_nums: list[int], crit: str) -> list[str]:
    table = DERM7PT_LABELS[crit]
    labels: list[str] = []
    for i, v in enumerate(raw[crit]):
        lab = _norm_label(v)
        if lab not in table:
            what = "empty label" if not lab else f"unknown label {v!r}"
            raise DataError(
                f"{_where(name, i, case_nums[i], crit)}: {what}; expected one of {list(table)}"
            )
        labels.append(lab)
    return labels


def _image_paths(raw: pd.DataFrame, name: str, case_nums: list[int], src: str) -> list[str]:
    paths: list[str] = []
    for i, v in enumerate(raw[src]):
        rel = v.strip()
        pp = PurePosixPath(rel.replace("\\", "/"))
        if not rel:
            raise DataError(f"{_where(name, i, case_nums[i], src)}: empty image path")
        if pp.is_absolute() or ".." in pp.parts:
            raise DataError(
                f"{_where(name, i, case_nums[i], src)}: image path {v!r} must be relative to "
                "the release's images/ folder"
            )
        paths.append(str(pp))
    return paths


def read_derm7pt_splits(meta_dir: str | Path, n_cases: int) -> pd.Series:
    """Split of every ``meta.csv`` row from derm7pt's three index files.

    Parameters
    ----------
    meta_dir
        The release's ``meta/`` folder, holding :data:`DERM7PT_SPLIT_FILES`.
    n_cases
        Number of rows in ``meta.csv``.

    Returns
    -------
    pandas.Series
        ``n_cases`` strings: ``"train"``, ``"val"``, ``"test"``, or ``"unassigned"`` for rows
        listed in no index file.

    Raises
    ------
    DataError
        A missing or unreadable index file, no ``indexes`` column, a value that is not an
        integer row position in ``[0, n_cases)``, or a row listed twice.
    """
    d = Path(meta_dir)
    split = np.full(n_cases, "unassigned", dtype=object)
    seen: dict[int, str] = {}
    for fname, sname in DERM7PT_SPLIT_FILES.items():
        f = d / fname
        if not f.is_file():
            raise DataError(
                f"split file not found: {f} — derm7pt's meta/ folder holds "
                f"{', '.join(DERM7PT_SPLIT_FILES)}"
            )
        try:
            tab = pd.read_csv(f, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"{f}: not a readable CSV file ({exc})") from exc
        tab.columns = [str(c).strip() for c in tab.columns]
        if "indexes" not in tab.columns:
            raise DataError(
                f"{f} has no 'indexes' column (found {list(tab.columns)}) — expected one column "
                "'indexes' of 0-based row positions in meta.csv"
            )
        for line, v in enumerate(tab["indexes"], start=2):
            try:
                ix = int(v.strip())
            except ValueError:
                raise DataError(f"{f} line {line}: {v!r} is not an integer row position") from None
            if not 0 <= ix < n_cases:
                raise DataError(
                    f"{f} line {line}: row position {ix} is outside meta.csv's rows 0..{n_cases - 1}"
                )
            if ix in seen:
                raise DataError(
                    f"{f} line {line}: row {ix} is already listed in {seen[ix]} — a case belongs "
                    "to one split"
                )
            seen[ix] = fname
            split[ix] = sname
    return pd.Series(split, name="split", dtype=str)


def import_derm7pt(
    root: str | Path,
    out_dir: str | Path,
    image_size: int = 224,
    *,
    name: str | None = None,
    overwrite: bool = False,
) -> Dataset:
    """Import a derm7pt release into the workbench data-set format.

    Everything (metadata, splits, every image) is validated before anything is written, and
    :meth:`concepts.Dataset.write` is atomic, so a failed import leaves nothing behind.

    Parameters
    ----------
    root
        The release folder holding ``meta/`` and ``images/``.
    out_dir
        The data-set directory to create.
    image_size
        Side of the square dermoscopic images stored in ``images.npy`` (centre crop + resize).
    name
        Data-set name (default: ``out_dir``'s folder name).
    overwrite
        Replace an existing data set at ``out_dir``.

    Returns
    -------
    concepts.Dataset
        Classes ``("melanoma", "non_melanoma")``; concepts :data:`concepts.CRITERIA`; the cases
        table has ``case_id`` (``str(case_num)``), ``label``, ``split`` and every column of
        :func:`read_derm7pt_meta`.

    Raises
    ------
    DataError
        Bad metadata or index files (see :func:`read_derm7pt_meta` and
        :func:`read_derm7pt_splits`), an ``image_size`` outside 8..4096, an existing
        ``out_dir`` without ``overwrite``, or a missing clinical image.
    ImageError
        A missing or corrupt dermoscopic image; the message names the file and the row.
    """
    out = _check_common(image_size, out_dir, overwrite)  # before any slow work
    r = Path(root).expanduser()
    meta_path, img_dir = _release_paths(r)
    meta = read_derm7pt_meta(meta_path)
    split = read_derm7pt_splits(r / "meta", len(meta))
    for i, (cn, rel) in enumerate(zip(meta["case_num"], meta["clinic_path"], strict=True)):
        if not (img_dir / rel).is_file():
            raise DataError(
                f"{_where(meta_path.name, i, cn, 'clinic')}: clinical image not found: "
                f"{img_dir / rel}"
            )
    cases = pd.concat(
        [
            pd.DataFrame({"case_id": meta["case_num"].astype(str), "label": meta["label"]}),
            split.to_frame(),
            meta.drop(columns=["label"]),
        ],
        axis=1,
    )
    info = DatasetInfo(
        name=name or out.name,
        kind="derm7pt",
        classes=DERM7PT_CLASSES,
        image_size=int(image_size),
        concepts=CRITERIA,
        artifacts=(),
        metadata=("diagnosis", *DERM7PT_METADATA),
        extra={
            "source": "derm7pt",
            "source_root": str(r.resolve()),
            "image_column": "derm_path",
            "raw_columns": [f"{c}_raw" for c in CRITERIA],
            "points_columns": [f"{c}_points" for c in CRITERIA],
            "melanoma_diagnoses": list(DERM7PT_MELANOMA_DIAGNOSES),
        },
    )
    return _write_derm(out, info, cases, meta, img_dir, meta_path.name, overwrite)


def _release_paths(r: Path) -> tuple[Path, Path]:
    """``(meta/meta.csv, images/)`` of the derm7pt release at ``r``."""
    meta_path = r / "meta" / "meta.csv"
    if not meta_path.is_file():
        raise DataError(
            f"{r} is not a derm7pt release: {meta_path} is missing — pass the folder holding "
            "meta/ and images/"
        )
    img_dir = r / "images"
    if not img_dir.is_dir():
        raise DataError(f"{r} is not a derm7pt release: the images/ folder is missing")
    return meta_path, img_dir


def _write_derm(out: Path, info: DatasetInfo, cases: pd.DataFrame, meta: pd.DataFrame, img_dir: Path,
                meta_name: str, overwrite: bool) -> Dataset:
    """Decode the dermoscopic images one by one straight into the new data set (flat memory).

    The first unreadable image stops the import (nothing is left behind) with an error naming
    its ``meta.csv`` row and case.
    """
    size = info.image_size
    try:
        with Dataset.create(out, (len(meta), size, size, 3), overwrite=overwrite) as writer:
            for i, (cn, rel) in enumerate(zip(meta["case_num"], meta["derm_path"], strict=True)):
                try:
                    writer.images[i] = load_image_rgb(img_dir / rel, size)
                except ImageError as exc:
                    raise ImageError(f"{_where(meta_name, i, cn, 'derm')}: {exc}") from exc
            return writer.commit(info, cases)
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot write the data set to {out}: {exc}") from exc
