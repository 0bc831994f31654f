"""DermSynth's drawing of one case: the lesion with its criteria, then the artifacts.

The skin, lesion geometry and random streams live in :mod:`concepts.dermsynth._lesion`, the seven
criteria in :mod:`concepts.dermsynth._criteria`, the artifacts in
:mod:`concepts.dermsynth._artifacts`. A case is a pure function of ``(render_seed, diagnosis,
criteria flags, artifact flags, size)``: every component draws from its own random stream, so
switching one criterion or one artifact on or off leaves every other component exactly as it was
(the basis of counterfactual twins).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from concepts._errors import DataError
from concepts.data import ARTIFACTS, CRITERIA
from concepts.dermsynth._artifacts import _F, ARTIFACT_ORDER, draw_artifact, draw_artifact_with_mask
from concepts.dermsynth._criteria import CRITERION_DRAW, CRITERION_ORDER
from concepts.dermsynth._lesion import (
    _STREAM_ARTIFACT,
    _STREAM_CRITERION,
    _STREAM_FINISH,
    _STREAM_LESION,
    _base_image,
    _make_lesion,
    skin_tone_value,
    stream_rng,
)

__all__ = [
    "apply_artifacts",
    "artifact_mask",
    "render_image",
    "render_lesion",
]


def render_lesion(render_seed: int, melanoma: bool, criteria: Sequence[int], size: int) -> np.ndarray:
    """Draw one lesion without artifacts.

    Parameters
    ----------
    render_seed
        The case's render seed.
    melanoma
        Diagnosis (changes the base lesion's size and border irregularity a little).
    criteria
        Presence of each criterion, in the order of ``concepts.CRITERIA``.
    size
        Image side in pixels.

    Returns
    -------
    numpy.ndarray
        ``(size, size, 3)`` uint8.
    """
    if len(criteria) != len(CRITERIA):
        raise DataError(f"need {len(CRITERIA)} criterion flags ({', '.join(CRITERIA)}), got {len(criteria)}")
    tone = skin_tone_value(render_seed)
    rng = stream_rng(render_seed, _STREAM_LESION)
    les = _make_lesion(rng, size, bool(melanoma), tone)
    img = _base_image(rng, les, tone)
    flags = dict(zip(CRITERIA, (bool(c) for c in criteria), strict=True))
    for name in CRITERION_ORDER:
        crng = stream_rng(render_seed, _STREAM_CRITERION + CRITERIA.index(name))
        CRITERION_DRAW[name](img, les, crng, flags[name])
    fin = stream_rng(render_seed, _STREAM_FINISH)
    img = ndimage.gaussian_filter(img, (0.45 * size / 128.0, 0.45 * size / 128.0, 0), truncate=2.5)
    img += fin.normal(0, 0.012, img.shape).astype(_F)
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def render_image(render_seed: int, melanoma: bool, criteria: Sequence[int],
                 artifacts: Sequence[int], size: int) -> np.ndarray:
    """Draw one case: the lesion, then each present artifact in :data:`ARTIFACT_ORDER`.

    ``artifacts`` are flags in the order of ``concepts.ARTIFACTS``; each artifact draws from its
    own random stream, so toggling one leaves the others unchanged.
    """
    img = render_lesion(render_seed, melanoma, criteria, size)
    return apply_artifacts(img, render_seed, artifacts)


def apply_artifacts(img: np.ndarray, render_seed: int, artifacts: Sequence[int]) -> np.ndarray:
    """Draw the present artifacts (flags in ``concepts.ARTIFACTS`` order) onto a lesion image."""
    if len(artifacts) != len(ARTIFACTS):
        raise DataError(f"need {len(ARTIFACTS)} artifact flags ({', '.join(ARTIFACTS)}), got {len(artifacts)}")
    flags = dict(zip(ARTIFACTS, (bool(a) for a in artifacts), strict=True))
    for name in ARTIFACT_ORDER:
        if flags[name]:
            img = draw_artifact(img, name, stream_rng(render_seed, _STREAM_ARTIFACT + ARTIFACTS.index(name)))
    return img


def artifact_mask(render_seed: int, artifact: str, size: int) -> np.ndarray:
    """``(size, size)`` bool mask of where ``artifact`` is (or would be) drawn on a case.

    The region depends only on the render seed and the size, never on the lesion or the other
    artifacts.
    """
    if artifact not in ARTIFACTS:
        raise DataError(f"unknown artifact {artifact!r}; valid artifacts are {', '.join(ARTIFACTS)}")
    rng = stream_rng(render_seed, _STREAM_ARTIFACT + ARTIFACTS.index(artifact))
    return draw_artifact_with_mask(np.zeros((size, size, 3), np.uint8), artifact, rng)[1]
