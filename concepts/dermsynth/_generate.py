"""DermSynth: the embedded procedural dermoscopy data set with ground-truth concepts.

Every case is a lesion on skin of varied tone, diagnosed ``melanoma`` or ``nevus``, carrying
the seven 7-point-checklist criteria (``concepts.CRITERIA``) sampled per class from the real
derm7pt frequencies and the six confounding artifacts (``concepts.ARTIFACTS``), some of them
*planted*: correlated with a class in ``train``/``val`` and independent of it in
``test_debiased``. A second data set holds concept example sets (counterfactual twins) and a
random pool for concept-activation vectors.

Sampling (the cases tables, :func:`sample_dermsynth`) is separate from drawing, and every row
stores its ``render_seed``: :func:`render_case` re-draws any row exactly, with any artifact set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from concepts._progress import ProgressFn
from concepts.data import ARTIFACTS, CRITERIA, Dataset, DatasetInfo
from concepts.dermsynth._artifacts import ARTIFACT_ORDER
from concepts.dermsynth._config import (
    DERMSYNTH_CLASSES,
    DERMSYNTH_CONCEPTS_KIND,
    DERMSYNTH_KIND,
    DermSynthConfig,
)
from concepts.dermsynth._drawing import render_tables
from concepts.dermsynth._sample import (
    CRITERION_FREQUENCIES,
    SPLIT_FRACTIONS,
    sample_dermsynth,
)

# The public DermSynth surface (re-exported by concepts.dermsynth).
__all__ = [
    "DermSynthResult",
    "generate_dermsynth",
]

_GENERATOR_VERSION = 1


@dataclass(frozen=True)
class DermSynthResult:
    """What :func:`generate_dermsynth` wrote: the main set and the concept example sets."""

    main: Dataset
    concept_sets: Dataset
    config: DermSynthConfig


# ------------------------------------------------------------------------------ generation
def generate_dermsynth(
    config: DermSynthConfig | None,
    out_dir: str | Path,
    progress: ProgressFn | None = None,
    *,
    workers: int | None = None,
) -> DermSynthResult:
    """Generate DermSynth and write ``out_dir/"dermsynth"`` and ``out_dir/"dermsynth_concepts"``.

    Parameters
    ----------
    config
        Settings (None: the defaults).
    out_dir
        Parent folder; both data sets are (over)written atomically with :meth:`Dataset.write`.
    progress
        Called with ``(stage, done, total)``; stages ``"sample"``, ``"render:main"``,
        ``"render:concepts"``, ``"write"``.
    workers
        Rendering processes (default: 2, or 1 on a one-core machine); rows carry their own seeds,
        so the result does not depend on it.

    Returns
    -------
    DermSynthResult
        The two loaded data sets and the config.
    """
    cfg = config or DermSynthConfig()
    n_workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    if progress is not None:
        progress("sample", 0, 1)
    main_cases, concept_cases = sample_dermsynth(cfg)
    if progress is not None:
        progress("sample", 1, 1)
    main_info, concepts_info = _dataset_infos(cfg)
    main, concept_sets = _draw_and_write(
        Path(out_dir), (main_info, main_cases), (concepts_info, concept_cases), n_workers, progress
    )
    return DermSynthResult(main=main, concept_sets=concept_sets, config=cfg)


def _dataset_infos(cfg: DermSynthConfig) -> tuple[DatasetInfo, DatasetInfo]:
    """The ``DatasetInfo`` of the main set and of the concept example sets (the config goes into ``extra``)."""
    extra: dict[str, Any] = {
        "generator": "dermsynth",
        "generator_version": _GENERATOR_VERSION,
        "config": cfg.to_json(),
        "planted_confounders": [c.to_json() for c in cfg.confounders],
        "split_fractions": dict(SPLIT_FRACTIONS),
        "criterion_frequencies": {c: list(p) for c, p in CRITERION_FREQUENCIES.items()},
        "artifact_order": list(ARTIFACT_ORDER),
    }
    tone = ("seven_point_score", "skin_tone", "skin_tone_value", "render_seed")
    main_info = DatasetInfo(
        name="dermsynth",
        kind=DERMSYNTH_KIND,
        classes=DERMSYNTH_CLASSES,
        image_size=cfg.image_size,
        concepts=CRITERIA,
        artifacts=ARTIFACTS,
        metadata=tone,
        extra=extra,
    )
    concepts_info = DatasetInfo(
        name="dermsynth_concepts",
        kind=DERMSYNTH_CONCEPTS_KIND,
        classes=DERMSYNTH_CLASSES,
        image_size=cfg.image_size,
        concepts=CRITERIA,
        artifacts=ARTIFACTS,
        metadata=("concept_set", "polarity", "pair", *tone),
        extra={**extra, "main_dataset": "dermsynth", "concept_sets": [*CRITERIA, *ARTIFACTS, "random"]},
    )
    return main_info, concepts_info


def _draw_and_write(
    out: Path,
    main: tuple[DatasetInfo, pd.DataFrame],
    concepts: tuple[DatasetInfo, pd.DataFrame],
    workers: int,
    progress: ProgressFn | None,
) -> tuple[Dataset, Dataset]:
    """Draw both sets straight into their ``images.npy`` (chunk by chunk: flat memory), then commit them."""
    (main_info, main_cases), (concepts_info, concept_cases) = main, concepts
    s_ = main_info.image_size
    with Dataset.create(out / "dermsynth", (len(main_cases), s_, s_, 3), overwrite=True) as w_main, \
            Dataset.create(out / "dermsynth_concepts", (len(concept_cases), s_, s_, 3), overwrite=True) as w_con:
        render_tables([("render:main", main_cases), ("render:concepts", concept_cases)], s_, workers,
                      progress, outs=[w_main.images, w_con.images])
        if progress is not None:
            progress("write", 0, 2)
        main_set = w_main.commit(main_info, main_cases)
        if progress is not None:
            progress("write", 1, 2)
        concept_sets = w_con.commit(concepts_info, concept_cases)
    if progress is not None:
        progress("write", 2, 2)
    return main_set, concept_sets
