"""Counterfactual reliance measures: how often a prediction changes when an artifact is added
to (or removed from) the very same lesion."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from concepts._dataset import Dataset
from concepts._errors import DataError

__all__ = ["FlipRate", "counterfactual_flip_rate", "planted_confounders"]

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
    twins: np.ndarray | None = None,
    base_pred: np.ndarray | None = None,
) -> FlipRate:
    """Flip rate of ``predict`` on DermSynth twins of rows ``idx``.

    Parameters
    ----------
    predict
        Maps uint8 images to predicted class indices.
    dataset
        A DermSynth data set (twins are re-rendered from its ``render_seed``).
    idx
        Rows to use (for ``add`` they should lack the artifact, for ``remove`` carry it).
    artifact
        Artifact column name.
    direction
        ``"add"`` renders the artifact onto the lesions, ``"remove"`` renders them without it.
    to_class
        Also count flips that land on this class.
    twins, base_pred
        Pre-rendered twins / precomputed predictions on the originals (optional, for speed).
    """
    from concepts._dermsynth import render_twins

    if direction not in ("add", "remove"):
        raise DataError(f"direction must be 'add' or 'remove', not {direction!r}")
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) == 0:
        return FlipRate(artifact, direction, 0, 0, float("nan"), to_class, 0, ())
    if twins is None:
        twins = render_twins(dataset, idx, artifact, present=(direction == "add"))
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
    )
