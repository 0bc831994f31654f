"""Counterfactual reliance measures: how often a prediction changes when an artifact is added
to (or removed from) the very same lesion.

Data from a source with a twin renderer (DermSynth) re-render exact twins, found through
:func:`concepts.data.find_twin_renderer` (this module never imports the generator); any other data
need twins made from the data itself (:mod:`concepts.bank._twins`: user-supplied pairs, or
artifact transplant with masks), given as a :class:`~concepts.bank._twins.TwinSet`. The result
names the method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from concepts._errors import DataError, ImageError
from concepts.bank import TwinSet, real_twins
from concepts.data import Dataset, find_twin_renderer

__all__ = [
    "EVAL_SPLITS",
    "FLIP_TABLE_COLUMNS",
    "FlipRate",
    "artifact_flip_table",
    "counterfactual_flip_rate",
    "evaluation_split",
    "flip_rates_from_twins",
    "is_dermsynth",
    "planted_confounders",
]

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
        twins = _rendered_twins(dataset, idx, artifact, direction)
    elif method == "render":
        method = "given"
    p0 = base_pred if base_pred is not None else predict(np.asarray(dataset.images[idx]))
    return _flip_rate(dataset, idx, artifact, direction, to_class, method, p0, predict(twins))


def _rendered_twins(dataset: Dataset, idx: np.ndarray, artifact: str, direction: str) -> np.ndarray:
    """Twins re-rendered by the data set's source; DataError when it has no twin renderer."""
    render = find_twin_renderer(dataset)
    if render is None:
        raise DataError(
            f"{dataset.info.name!r} is not DermSynth data: flip rates need real twins — a column "
            "naming each case's twin, or artifact masks to transplant (concepts.bank._twins)"
        )
    return render(dataset, idx, artifact, direction == "add")


def _flip_rate(dataset: Dataset, idx: np.ndarray, artifact: str, direction: str, to_class: str | None,
               method: str, p0: np.ndarray, p1: np.ndarray) -> FlipRate:
    """The :class:`FlipRate` of predictions ``p0`` on the originals and ``p1`` on their twins."""
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


# ====================================================================== reliance of every artifact
#: Splits tried, in order, as the evaluation split of :func:`artifact_flip_table`.
EVAL_SPLITS: tuple[str, ...] = ("test", "test_debiased", "val", "valid", "validation")

#: Columns of :func:`artifact_flip_table`.
FLIP_TABLE_COLUMNS: tuple[str, ...] = (
    "concept", "class", "flip_rate", "n", "n_to_class", "n_twins", "method", "split", "note",
)


def evaluation_split(dataset: Dataset) -> str | None:
    """The first of :data:`EVAL_SPLITS` the data set has, else ``None`` (use every case)."""
    return next((s for s in EVAL_SPLITS if s in dataset.splits), None)


def artifact_flip_table(
    predict: PredictFn,
    dataset: Dataset,
    *,
    artifacts: Sequence[str] | None = None,
    split: str | None = None,
    max_twins: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Counterfactual reliance of a model on every annotated artifact, toward every class.

    For each artifact, up to ``max_twins`` cases of ``split`` that lack it (a seeded random
    sample) get an *add* twin: re-rendered for DermSynth data, else made from the data itself
    (:func:`concepts.bank.real_twins`: a twin column, or transplant with a mask column). For each
    class ``k`` the flip rate is the share of the twins whose original was predicted as another
    class that are predicted ``k`` once the artifact is added:
    ``flip_rate = #(pred_orig != k and pred_twin == k) / #(pred_orig != k)``.

    Parameters
    ----------
    predict
        Maps uint8 images to predicted class indices.
    dataset
        The annotated data set.
    artifacts
        Artifact columns (default: every artifact the data set declares).
    split
        Cases the twins are made of (default :func:`evaluation_split`, else every case).
    max_twins
        At most this many twins per artifact.
    seed
        Seed of the sample.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FLIP_TABLE_COLUMNS`, one row per (artifact, class) measured; an
        artifact without twins (real data with neither a twin nor a mask column, or no clean
        case) has no rows.

    Raises
    ------
    DataError
        ``max_twins`` < 1, an unknown split or artifact column.
    """
    if max_twins < 1:
        raise DataError(f"max_twins must be at least 1, got {max_twins}")
    arts = list(dataset.info.artifacts if artifacts is None else artifacts)
    missing = [a for a in arts if a not in dataset.cases.columns]
    if missing:
        raise DataError(f"artifact column(s) {missing} not in the data set (it has {list(dataset.cases.columns)})")
    sp = split if split is not None else evaluation_split(dataset)
    pool = dataset.indices(sp) if sp is not None else np.arange(len(dataset.cases))
    rows: list[dict[str, Any]] = []
    for i, art in enumerate(arts):
        rows += _artifact_flips(predict, dataset, pool, art, max_twins, seed + i, sp or "all")
    return pd.DataFrame(rows, columns=list(FLIP_TABLE_COLUMNS))


def _add_twins(dataset: Dataset, pool: np.ndarray, artifact: str, max_twins: int,
               seed: int) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(rows, twin images, method) of up to ``max_twins`` clean rows of ``pool``, or None."""
    flag = dataset.cases[artifact].fillna(0).to_numpy().astype(bool)
    clean = pool[~flag[pool]]
    if len(clean) == 0:
        return None
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(clean, size=min(max_twins, len(clean)), replace=False))
    render = find_twin_renderer(dataset)
    if render is not None:
        return pick, render(dataset, pick, artifact, True), "render"
    sets = [t for t in real_twins(dataset, pick, artifact, donor_idx=pool[flag[pool]], seed=seed)
            if t.direction == "add" and len(t)]
    if not sets:
        return None
    return sets[0].rows, sets[0].images, sets[0].method


def _artifact_flips(predict: PredictFn, dataset: Dataset, pool: np.ndarray, artifact: str,
                    max_twins: int, seed: int, split: str) -> list[dict[str, Any]]:
    try:
        made = _add_twins(dataset, pool, artifact, max_twins, seed)
    except (DataError, ImageError, OSError):
        made = None  # twins cannot be made (missing mask files, ...): no causal evidence
    if made is None:
        return []
    rows, twins, method = made
    p0 = np.asarray(predict(np.asarray(dataset.images[rows])))
    p1 = np.asarray(predict(twins))
    out = []
    for k, cls in enumerate(dataset.classes):
        other = p0 != k
        n, n_to = int(other.sum()), int(np.sum(other & (p1 == k)))
        out.append({
            "concept": artifact, "class": cls, "flip_rate": n_to / n if n else float("nan"),
            "n": n, "n_to_class": n_to, "n_twins": len(rows), "method": method, "split": split,
            "note": "" if n else f"no twin was predicted other than {cls}",
        })
    return out
