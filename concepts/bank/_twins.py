"""Counterfactual twins from real images: user-supplied pairs, artifact transplant, inpainting.

A twin is the same lesion with an artifact added (``add``) or removed (``remove``). On real data
they come from the data itself, never from a synthetic renderer:

``pairs``
    A column names each case's twin: another case id of the data set, or an image path under
    the data set's image folder. A case without the artifact gives an ``add`` pair, a case with it
    a ``remove`` pair.
``transplant``
    The artifact is cut out of real images that carry it, with a mask (a mask image per case,
    named by a column, or a concept map thresholded), and pasted into clean cases — the
    insertion test of the Reveal-to-Revise line of work. ``remove`` twins of naturally marked
    images fill the masked region by inpainting (:func:`inpaint`: nearest-pixel fill, then
    harmonic diffusion from the border), which the method string says.

DermSynth data re-render exact twins (``render``); see :mod:`concepts.discovery._reliance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from concepts._errors import DataError, ImageError
from concepts.data import Dataset, load_image_rgb

__all__ = [
    "INPAINT_METHOD",
    "TwinSet",
    "find_twin_columns",
    "inpaint",
    "load_masks",
    "paired_twins",
    "real_twins",
    "threshold_maps",
    "transplant",
    "transplant_twins",
]

#: Name of the inpainting used for removal twins of naturally marked images.
INPAINT_METHOD = "inpaint:nearest+diffusion"


@dataclass(frozen=True)
class TwinSet:
    """Counterfactual twins of some rows of a data set for one artifact and direction.

    Attributes
    ----------
    artifact
        The artifact added or removed.
    direction
        ``"add"`` (originals lack the artifact, twins carry it) or ``"remove"``.
    rows
        Data-set row positions of the originals.
    images
        Twin images ``(len(rows), H, W, 3)`` uint8.
    method
        How the twins were made (``pairs:<column>``, ``transplant:<mask source>``,
        ``inpaint:...``, ``render``).
    sources
        Per twin: the case id its artifact came from (transplant), or its twin's id/path (pairs).
    """

    artifact: str
    direction: str
    rows: np.ndarray = field(repr=False)
    images: np.ndarray = field(repr=False)
    method: str
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.direction not in ("add", "remove"):
            raise DataError(f"direction must be 'add' or 'remove', not {self.direction!r}")
        if len(self.rows) != len(self.images):
            raise DataError(f"{len(self.rows)} twin rows but {len(self.images)} twin images")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def key(self) -> str:
        """``artifact`` for add twins, ``artifact:remove`` for remove twins."""
        return self.artifact if self.direction == "add" else f"{self.artifact}:remove"


# ---------------------------------------------------------------------------------- pixels
def transplant(dst: np.ndarray, src: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Paste the masked pixels of ``src`` into ``dst``: ``dst (1 - m) + src m``.

    Parameters
    ----------
    dst, src
        uint8 images of the same shape ``(H, W, 3)`` (or stacks ``(N, H, W, 3)``).
    mask
        ``(H, W)`` / ``(N, H, W)``, boolean or float in [0, 1] (soft edges blend).

    Returns
    -------
    numpy.ndarray
        uint8; pixels where the mask is 0 equal ``dst``, where it is 1 equal ``src``.
    """
    d, s = np.asarray(dst), np.asarray(src)
    if d.shape != s.shape:
        raise DataError(f"transplant needs images of one shape, got {d.shape} and {s.shape}")
    m = np.asarray(mask, dtype=np.float32)
    if m.shape != d.shape[:-1]:
        raise DataError(f"mask of shape {m.shape} does not fit images of shape {d.shape}")
    if m.size and (m.min() < 0 or m.max() > 1):
        raise DataError("mask values must lie in [0, 1]")
    a = m[..., None]
    out = d.astype(np.float32) * (1.0 - a) + s.astype(np.float32) * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def inpaint(image: np.ndarray, mask: np.ndarray, *, iterations: int = 200, dilate: int = 1) -> np.ndarray:
    """Fill the masked region of one image from its surroundings (no learned model).

    Every masked pixel starts as its nearest unmasked pixel (Euclidean distance transform), then
    ``iterations`` Jacobi steps of harmonic diffusion (each masked pixel becomes the mean of its
    four neighbours, unmasked pixels fixed) smooth the fill. The mask is dilated by ``dilate``
    pixels first so that anti-aliased edges go too.

    Returns
    -------
    numpy.ndarray
        uint8 ``(H, W, 3)``; pixels outside the (dilated) mask are unchanged.
    """
    from scipy import ndimage  # here, not at import: the CLI starts without scipy
    img = np.asarray(image)
    m = np.asarray(mask) > 0.5
    if m.shape != img.shape[:2]:
        raise DataError(f"mask of shape {m.shape} does not fit an image of shape {img.shape}")
    if dilate > 0:
        m = ndimage.binary_dilation(m, iterations=int(dilate))
    if not m.any():
        return img.copy()
    if m.all():
        raise DataError("the mask covers the whole image: nothing to inpaint from")
    _, (iy, ix) = ndimage.distance_transform_edt(m, return_indices=True)
    out = img[iy, ix].astype(np.float32)
    ys, xs = np.nonzero(m)
    h, w = m.shape
    up, down = np.maximum(ys - 1, 0), np.minimum(ys + 1, h - 1)
    left, right = np.maximum(xs - 1, 0), np.minimum(xs + 1, w - 1)
    for _ in range(int(iterations)):
        out[ys, xs] = 0.25 * (out[up, xs] + out[down, xs] + out[ys, left] + out[ys, right])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def threshold_maps(maps: np.ndarray, *, quantile: float = 0.95, min_value: float | None = None) -> np.ndarray:
    """Binary masks from concept maps ``(N, H, W)``: pixels above each map's ``quantile``
    (and above ``min_value`` when given)."""
    m = np.asarray(maps, dtype=np.float32)
    if m.ndim != 3:
        raise DataError(f"concept maps must be (N, H, W), got shape {m.shape}")
    if not 0.0 < quantile < 1.0:
        raise DataError(f"quantile must lie strictly between 0 and 1, got {quantile}")
    cut = np.quantile(m.reshape(len(m), -1), quantile, axis=1)[:, None, None]
    out = m > cut
    if min_value is not None:
        out &= m > float(min_value)
    return out


# ---------------------------------------------------------------------------------- files
def _images_root(dataset: Dataset, base_dir: str | Path | None) -> Path:
    root = base_dir if base_dir is not None else (dataset.info.extra or {}).get("images_dir")
    if not root:
        raise DataError(
            f"data set {dataset.info.name!r} does not record its image folder: give the folder the "
            "paths are relative to"
        )
    return Path(root).resolve()


def _inside(root: Path, rel: str, what: str) -> Path:
    p = (root / rel).resolve()
    try:
        p.relative_to(root)
    except ValueError as exc:
        raise DataError(f"{what} {rel!r} lies outside the image folder {root}") from exc
    return p


def _column(dataset: Dataset, column: str, what: str) -> np.ndarray:
    if column not in dataset.cases.columns:
        raise DataError(
            f"no {what} column {column!r} in data set {dataset.info.name!r}; its columns are "
            f"{list(dataset.cases.columns)}"
        )
    return dataset.cases[column].to_numpy()


def _empty(v: object) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or not str(v).strip()


def load_masks(
    dataset: Dataset, rows: Sequence[int] | np.ndarray, column: str, *, base_dir: str | Path | None = None
) -> np.ndarray:
    """Binary artifact masks ``(len(rows), S, S)`` of some rows, from a column of mask paths.

    Each path (relative to the data set's image folder, or ``base_dir``) names an image whose
    bright pixels (> 127) mark the artifact; it is centre-cropped and resized like the images at
    import, so it overlays them. An empty cell gives an empty mask.

    Raises
    ------
    DataError
        Unknown column, a path outside the image folder, or an unreadable mask file.
    """
    values = _column(dataset, column, "mask")
    size = int(dataset.images.shape[1])
    root = _images_root(dataset, base_dir)
    out = np.zeros((len(rows), size, size), dtype=bool)
    for i, r in enumerate(np.asarray(rows, dtype=np.int64)):
        v = values[r]
        if _empty(v):
            continue
        path = _inside(root, str(v).strip(), "mask path")
        try:
            out[i] = load_image_rgb(path, size).mean(axis=2) > 127
        except ImageError as exc:
            raise DataError(f"mask of case {dataset.cases['case_id'].iloc[r]!r}: {exc}") from exc
    return out


def find_twin_columns(dataset: Dataset, artifact: str) -> tuple[str | None, str | None]:
    """``(twin column, mask column)`` found by name: ``<artifact>_twin`` / ``twin``, and
    ``<artifact>_mask`` / ``mask`` (None where absent)."""
    cols = set(dataset.cases.columns)
    twin = next((c for c in (f"{artifact}_twin", "twin") if c in cols), None)
    mask = next((c for c in (f"{artifact}_mask", "mask") if c in cols), None)
    return twin, mask


# ---------------------------------------------------------------------------------- twin sets
def _flags(dataset: Dataset, artifact: str) -> np.ndarray:
    return _column(dataset, artifact, "artifact").astype(bool)


def paired_twins(
    dataset: Dataset, idx: Sequence[int] | np.ndarray, artifact: str, column: str,
    *, base_dir: str | Path | None = None,
) -> list[TwinSet]:
    """Twins the user supplies: ``column`` names each case's twin (a case id, or an image path
    under the image folder). Rows with an empty cell are skipped; rows lacking ``artifact`` give
    ``add`` pairs, rows carrying it ``remove`` pairs.

    Raises
    ------
    DataError
        Unknown column, a twin that is neither a case nor a readable image inside the folder.
    """
    idx = np.asarray(idx, dtype=np.int64)
    values = _column(dataset, column, "twin")
    flag = _flags(dataset, artifact)
    ids = dataset.cases["case_id"].astype(str).to_numpy()
    pos = {c: i for i, c in enumerate(ids)}
    size = int(dataset.images.shape[1])
    root: Path | None = None
    out = []
    for direction, want in (("add", False), ("remove", True)):
        rows, imgs, srcs = [], [], []
        for r in idx:
            v = values[r]
            if _empty(v) or bool(flag[r]) != want:
                continue
            key = str(v).strip()
            if key in pos:
                img = np.asarray(dataset.images[pos[key]])
            else:
                root = root or _images_root(dataset, base_dir)
                try:
                    img = load_image_rgb(_inside(root, key, "twin path"), size)
                except ImageError as exc:
                    raise DataError(
                        f"twin {key!r} of case {ids[r]!r} is neither a case id nor a readable image: {exc}"
                    ) from exc
            rows.append(int(r))
            imgs.append(img)
            srcs.append(key)
        out.append(_twinset(artifact, direction, rows, imgs, f"pairs:{column}", srcs, size))
    return out


def _twinset(
    artifact: str, direction: str, rows: list[int], imgs: list[np.ndarray], method: str,
    sources: list[str], size: int,
) -> TwinSet:
    arr = np.stack(imgs).astype(np.uint8) if imgs else np.zeros((0, size, size, 3), np.uint8)
    return TwinSet(artifact, direction, np.asarray(rows, dtype=np.int64), arr, method, tuple(sources))


def transplant_twins(
    dataset: Dataset,
    idx: Sequence[int] | np.ndarray,
    artifact: str,
    masks: np.ndarray,
    mask_rows: Sequence[int] | np.ndarray,
    *,
    mask_source: str = "mask-file",
    seed: int = 0,
    remove: bool = True,
) -> list[TwinSet]:
    """Add twins by transplant and remove twins by inpainting.

    Parameters
    ----------
    dataset, idx
        The rows to make twins of: those lacking ``artifact`` get it pasted in (``add``); those
        carrying it with a non-empty mask get it inpainted away (``remove``, when ``remove``).
    artifact
        The artifact column.
    masks, mask_rows
        Binary masks ``(M, S, S)`` of data-set rows ``mask_rows`` that carry the artifact: the
        donors (the masked pixels of a donor's image are the artifact).
    mask_source
        Where the masks came from (goes into the method string).
    seed
        Seed of the donor drawn for each clean row (stream ``(seed, row)``: reproducible per row).
    """
    idx = np.asarray(idx, dtype=np.int64)
    mrows = np.asarray(mask_rows, dtype=np.int64)
    m = np.asarray(masks).astype(bool)
    if len(m) != len(mrows):
        raise DataError(f"{len(m)} masks for {len(mrows)} rows")
    flag = _flags(dataset, artifact)
    has = m.reshape(len(m), -1).any(axis=1) & flag[mrows] if len(m) else np.zeros(0, bool)
    donors, dmasks = mrows[has], m[has]
    if len(donors) == 0:
        raise DataError(
            f"no case carries {artifact!r} with a non-empty mask: transplant needs at least one donor"
        )
    size = int(dataset.images.shape[1])
    ids = dataset.cases["case_id"].astype(str).to_numpy()
    rows, imgs, srcs = [], [], []
    for r in idx[~flag[idx]]:
        j = int(np.random.default_rng([int(seed), int(r)]).integers(len(donors)))
        imgs.append(transplant(np.asarray(dataset.images[r]), np.asarray(dataset.images[donors[j]]), dmasks[j]))
        rows.append(int(r))
        srcs.append(ids[donors[j]])
    out = [_twinset(artifact, "add", rows, imgs, f"transplant:{mask_source}", srcs, size)]
    if remove:
        where = {int(r): i for i, r in enumerate(donors)}
        rrows = [int(r) for r in idx if int(r) in where]
        rimgs = [inpaint(np.asarray(dataset.images[r]), dmasks[where[r]]) for r in rrows]
        out.append(_twinset(artifact, "remove", rrows, rimgs, f"{INPAINT_METHOD}:{mask_source}",
                            [ids[r] for r in rrows], size))
    return out


def real_twins(
    dataset: Dataset,
    idx: Sequence[int] | np.ndarray,
    artifact: str,
    *,
    twin_column: str | None = None,
    mask_column: str | None = None,
    donor_idx: Sequence[int] | np.ndarray | None = None,
    base_dir: str | Path | None = None,
    seed: int = 0,
) -> list[TwinSet]:
    """Add/remove twins of rows ``idx`` from the data itself (pairs first, else transplant).

    When neither ``twin_column`` nor ``mask_column`` is given, the columns
    :func:`find_twin_columns` finds are used (a twin column first; the mask column when the twin
    column names no twin for these rows).
    Donors for transplant are the marked rows of ``donor_idx`` (default ``idx``) with a mask.
    Returns an empty list when the data set has neither a twin nor a mask column.
    """
    auto = twin_column is None and mask_column is None
    if auto:  # neither named: look for them by name
        twin_column, mask_column = find_twin_columns(dataset, artifact)
    if twin_column is not None:
        pairs = paired_twins(dataset, idx, artifact, twin_column, base_dir=base_dir)
        if any(len(t) for t in pairs) or not auto or mask_column is None:
            return pairs
    if mask_column is None:
        return []
    pool = np.asarray(idx if donor_idx is None else donor_idx, dtype=np.int64)
    flag = _flags(dataset, artifact)
    marked = pool[flag[pool]]
    masks = load_masks(dataset, marked, mask_column, base_dir=base_dir)
    return transplant_twins(dataset, idx, artifact, masks, marked, mask_source=f"mask-column:{mask_column}",
                            seed=seed)
