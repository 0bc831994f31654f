"""Re-drawing DermSynth cases: one case with any artifact set, an artifact's region, counterfactual twins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from concepts._errors import DataError
from concepts.data import ARTIFACTS, CRITERIA, Dataset, register_twin_renderer
from concepts.dermsynth._config import DERMSYNTH_CLASSES
from concepts.dermsynth._drawing import render_tables
from concepts.dermsynth._render import artifact_mask, render_image

__all__ = ["artifact_region", "render_case", "render_twins"]


def _case_params(row: Mapping[str, Any] | pd.Series) -> tuple[int, bool, list[int], list[int]]:
    def get(key: str, default: Any = None) -> Any:
        return row.get(key, default)

    seed = get("render_seed")
    if seed is None or isinstance(seed, bool) or not isinstance(seed, int | np.integer) or int(seed) < 0:
        raise DataError(
            f"a DermSynth case needs a non-negative integer 'render_seed', got {seed!r} — pass a row "
            "of a DermSynth cases table (Dataset.cases.iloc[i])"
        )
    label = get("label")
    if label not in DERMSYNTH_CLASSES:
        raise DataError(f"a DermSynth case needs a 'label' in {list(DERMSYNTH_CLASSES)}, got {label!r}")
    crit = [int(bool(get(c, 0))) for c in CRITERIA]
    arts = [int(bool(get(a, 0))) for a in ARTIFACTS]
    return int(seed), label == "melanoma", crit, arts


def _check_artifact(artifact: str) -> None:
    if artifact not in ARTIFACTS:
        raise DataError(f"unknown artifact {artifact!r}; valid artifacts are {', '.join(ARTIFACTS)}")


def render_case(
    row_or_params: Mapping[str, Any] | pd.Series,
    size: int,
    artifacts: Mapping[str, bool] | None = None,
) -> np.ndarray:
    """Re-draw one DermSynth case, optionally with a different artifact set.

    Parameters
    ----------
    row_or_params
        A row of a DermSynth cases table, or a mapping with ``render_seed`` (int), ``label``
        (``"melanoma"``/``"nevus"``) and 0/1 criterion and artifact flags (missing flags count as
        absent).
    size
        Image side in pixels (the stored image is reproduced exactly at the data set's size).
    artifacts
        Artifact flags overriding the row's (names not given keep the row's value).

    Returns
    -------
    numpy.ndarray
        ``(size, size, 3)`` uint8.

    Raises
    ------
    DataError
        Missing ``render_seed``, bad label, unknown artifact name or size.
    """
    seed, mel, crit, arts = _case_params(row_or_params)
    for name, on in (artifacts or {}).items():
        _check_artifact(name)
        arts[ARTIFACTS.index(name)] = int(bool(on))
    return render_image(seed, mel, crit, arts, _check_size(size))


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not 16 <= int(size) <= 2048:
        raise DataError(f"size must be an integer in [16, 2048], got {size!r}")
    return int(size)


def artifact_region(row_or_params: Mapping[str, Any] | pd.Series, size: int, artifact: str) -> np.ndarray:
    """Where ``artifact`` is (or, if absent, would be) drawn on a DermSynth case.

    Parameters
    ----------
    row_or_params
        A cases-table row or a mapping with ``render_seed`` and ``label`` (see :func:`render_case`).
    size
        Image side in pixels.
    artifact
        One of ``concepts.ARTIFACTS``.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` bool mask; a counterfactual twin that adds or removes ``artifact``
        differs from the original only inside it (useful to measure attribution on artifacts).
    """
    _check_artifact(artifact)
    seed, _, _, _ = _case_params(row_or_params)
    return artifact_mask(seed, artifact, _check_size(size))


def render_twins(
    dataset: Dataset,
    idx: Sequence[int] | np.ndarray,
    artifact: str,
    present: bool = True,
    *,
    workers: int = 1,
) -> np.ndarray:
    """Counterfactual twins: rows ``idx`` of a DermSynth data set with ``artifact`` forced.

    Parameters
    ----------
    dataset
        A DermSynth main or concept-sets data set (its cases have ``render_seed``).
    idx
        Row positions.
    artifact
        One of ``concepts.ARTIFACTS``.
    present
        Draw the artifact (True) or leave it out (False); every other artifact, criterion and the
        lesion stay as in the original, so a twin differs from it only where the artifact is
        drawn.
    workers
        Processes to render with (1 renders here).

    Returns
    -------
    numpy.ndarray
        ``(len(idx), S, S, 3)`` uint8 at the data set's image size.

    Raises
    ------
    DataError
        Unknown artifact, a data set that is not DermSynth, or row positions out of range.
    """
    _check_artifact(artifact)
    if "render_seed" not in dataset.cases.columns:
        raise DataError(
            f"{dataset.info.name!r} is not a DermSynth data set (its cases have no render_seed); "
            "to add an artifact to real images use draw_artifact(image, artifact, rng)"
        )
    ix = np.asarray(idx, dtype=np.int64).reshape(-1)
    if len(ix) and (ix.min() < -len(dataset) or ix.max() >= len(dataset)):
        raise DataError(f"row positions must lie in [0, {len(dataset)}), got {ix.min()}..{ix.max()}")
    cases = dataset.cases.iloc[ix].reset_index(drop=True).copy()
    cases[artifact] = int(bool(present))
    return render_tables([("twins", cases)], dataset.info.image_size, workers, None)[0]


def _made_by_dermsynth(dataset: Dataset) -> bool:
    """DermSynth cases carry their ``render_seed`` (exact twins can be re-rendered from it)."""
    return "render_seed" in dataset.cases.columns


# the analysis code finds DermSynth's twins through concepts.data, never by importing DermSynth
register_twin_renderer("dermsynth", _made_by_dermsynth, render_twins)
