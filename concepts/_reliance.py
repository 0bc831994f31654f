"""Counterfactual reliance measures: how often a prediction changes when an artifact is added
to (or removed from) the very same lesion.

DermSynth data re-render exact twins; any other data need twins made from the data itself
(:mod:`concepts._twins`: user-supplied pairs, or artifact transplant with masks), given as a
:class:`~concepts._twins.TwinSet`. The result names the method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from concepts._dataset import Dataset
from concepts._errors import DataError
from concepts._twins import TwinSet

__all__ = ["FlipRate", "counterfactual_flip_rate", "flip_rates_from_twins", "is_dermsynth", "planted_confounders"]

#: predict(images uint8 (N,H,W,3)) -> predicted class indices (N,)
PredictFn = Callable[[np.ndarray], np.ndarray]


def planted_confounders(dataset: Dataset) -> list[tuple[str, str]]:
    """``(artifact, class)`` pairs planted in a DermSynth data set (empty for other data).

    This is generator ground truth, for measuring reliance; discovery code must not read it.
    """
    out = []
    for c in (dataset.info.extra or {}).get("planted_confounders", []) or []:
        if isinstance(c, Mapping) and "artifact" in c and "cls" in c:
            out.append((str(c["artifact"]), str(c["cls"])))
    return out


def is_dermsynth(dataset: Dataset) -> bool:
    """True for DermSynth data (exact twins can be re-rendered from ``render_seed``)."""
    return "render_seed" in dataset.cases.columns


@dataclass(frozen=True)
class FlipRate:
    """Share of predictions that change when ``artifact`` is added/removed on twins."""

    artifact: str
    direction: str  # "add" | "remove"
    n: int
    n_flipped: int
    rate: float
    to_class: str | None
    n_to_class: int
    case_ids: tuple[str, ...]
    method: str = "render"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["case_ids"] = list(self.case_ids)
        return d


def counterfactual_flip_rate(
    predict: PredictFn,
    dataset: Dataset,
    idx: np.ndarray,
    artifact: str,
    *,
    direction: str = "add",
    to_class: str | None = None,
    twins: np.ndarray | TwinSet | None = None,
    base_pred: np.ndarray | None = None,
) -> FlipRate:
    """Flip rate of ``predict`` on counterfactual twins of rows ``idx``.

    Parameters
    ----------
    predict
        Maps uint8 images to predicted class indices.
    dataset
        The data set (DermSynth twins are re-rendered from its ``render_seed``; other data
        need ``twins``).
    idx
        Rows to use (for ``add`` they should lack the artifact, for ``remove`` carry it); with a
        :class:`TwinSet`, its rows are used and ``idx`` is ignored.
    artifact
        Artifact column name.
    direction
        ``"add"`` renders the artifact onto the lesions, ``"remove"`` renders them without it.
    to_class
        Also count flips that land on this class.
    twins
        Twin images row-aligned with ``idx``, or a :class:`TwinSet` (real twins; its rows,
        direction and method are used).
    base_pred
        Precomputed predictions on the originals (optional, for speed).

    Raises
    ------
    DataError
        Bad direction, or twins missing for data that is not DermSynth.
    """
    method = "render"
    if isinstance(twins, TwinSet):
        idx, direction, artifact, method = twins.rows, twins.direction, twins.artifact, twins.method
        twins = twins.images
    if direction not in ("add", "remove"):
        raise DataError(f"direction must be 'add' or 'remove', not {direction!r}")
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) == 0:
        return FlipRate(artifact, direction, 0, 0, float("nan"), to_class, 0, (), method)
    if twins is None:
        if not is_dermsynth(dataset):
            raise DataError(
                f"{dataset.info.name!r} is not DermSynth data: flip rates need real twins — a column "
                "naming each case's twin, or artifact masks to transplant (concepts._twins)"
            )
        from concepts._dermsynth import render_twins

        twins = render_twins(dataset, idx, artifact, present=(direction == "add"))
    elif method == "render":
        method = "given"
    p0 = base_pred if base_pred is not None else predict(np.asarray(dataset.images[idx]))
    p1 = predict(twins)
    flipped = p0 != p1
    n_to = 0
    if to_class is not None:
        k = dataset.classes.index(to_class)
        n_to = int(np.sum(flipped & (p1 == k)))
    ids = tuple(dataset.cases["case_id"].to_numpy()[idx[flipped]].tolist())
    return FlipRate(
        artifact=artifact,
        direction=direction,
        n=len(idx),
        n_flipped=int(flipped.sum()),
        rate=float(flipped.mean()),
        to_class=to_class,
        n_to_class=n_to,
        case_ids=ids,
        method=method,
    )


def flip_rates_from_twins(
    predict: PredictFn, dataset: Dataset, twin_sets: Sequence[TwinSet], *, to_class: str | None = None
) -> list[FlipRate]:
    """:func:`counterfactual_flip_rate` of every twin set (``to_class`` counted on add twins)."""
    return [
        counterfactual_flip_rate(predict, dataset, t.rows, t.artifact, twins=t,
                                 to_class=to_class if t.direction == "add" else None)
        for t in twin_sets
    ]
