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

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concepts._errors import DataError
from concepts._progress import ProgressFn
from concepts.data import ARTIFACTS, CRITERIA, Dataset, DatasetInfo
from concepts.dermsynth._artifacts import ARTIFACT_ORDER, draw_artifact, draw_artifact_with_mask
from concepts.dermsynth._render import (
    SKIN_TONE_GROUPS,
    apply_artifacts,
    artifact_mask,
    render_image,
    render_lesion,
)
from concepts.dermsynth._sample import (
    _SEED_BLOCK,
    CRITERION_FREQUENCIES,
    CRITERION_POINTS,
    DERMSYNTH_CLASSES,
    SPLIT_FRACTIONS,
    sample_dermsynth,
)

__all__ = [
    "ARTIFACT_ORDER",
    "CRITERION_FREQUENCIES",
    "CRITERION_POINTS",
    "DERMSYNTH_CLASSES",
    "DERMSYNTH_CONCEPTS_KIND",
    "DERMSYNTH_KIND",
    "SKIN_TONE_GROUPS",
    "SPLIT_FRACTIONS",
    "DermSynthConfig",
    "DermSynthResult",
    "PlantedConfounder",
    "artifact_region",
    "draw_artifact",
    "draw_artifact_with_mask",
    "generate_dermsynth",
    "parse_confounder",
    "render_case",
    "render_twins",
    "sample_dermsynth",
]

#: ``DatasetInfo.kind`` of the main set and of the concept example sets.
DERMSYNTH_KIND = "dermsynth"
DERMSYNTH_CONCEPTS_KIND = "dermsynth-concepts"

_GENERATOR_VERSION = 1


# ------------------------------------------------------------------------------ confounders
@dataclass(frozen=True)
class PlantedConfounder:
    """An artifact planted to co-occur with one class in ``train`` and ``val``.

    Parameters
    ----------
    artifact
        One of ``concepts.ARTIFACTS``.
    cls
        The class it accompanies (checked against the data set's classes by
        :func:`parse_confounder` and :class:`DermSynthConfig`).
    prevalence
        P(artifact | cls) in ``train``/``val``, in ``(0, 1]``; other classes get the base rate.
    """

    artifact: str
    cls: str
    prevalence: float = 0.6

    def __post_init__(self) -> None:
        if self.artifact not in ARTIFACTS:
            raise DataError(
                f"unknown artifact {self.artifact!r} in a planted confounder; valid artifacts are "
                f"{', '.join(ARTIFACTS)}"
            )
        p = _prevalence(self.prevalence, str(self))
        object.__setattr__(self, "prevalence", p)

    def __str__(self) -> str:
        return f"{self.artifact}:{self.cls}:{self.prevalence}"

    def to_json(self) -> dict[str, Any]:
        """``{"artifact", "cls", "prevalence"}``."""
        return {"artifact": self.artifact, "cls": self.cls, "prevalence": float(self.prevalence)}


def _prevalence(value: object, where: str) -> float:
    try:
        p = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(
            f"prevalence {value!r} in {where!r} is not a number — give a value in (0, 1], e.g. 0.6"
        ) from None
    if not (0.0 < p <= 1.0):  # also rejects nan
        raise DataError(f"prevalence {value!r} in {where!r} must lie in (0, 1], e.g. 0.6")
    return p


def parse_confounder(text: str, classes: Sequence[str] = DERMSYNTH_CLASSES) -> PlantedConfounder:
    """Parse ``"ARTIFACT:CLASS[:PREVALENCE]"``, e.g. ``"ruler:melanoma:0.6"``.

    Parameters
    ----------
    text
        Artifact, class and optional prevalence (default 0.6) separated by colons.
    classes
        The valid class names.

    Raises
    ------
    DataError
        Malformed text, unknown artifact or class, or a prevalence outside ``(0, 1]``.
    """
    if not isinstance(text, str):
        raise DataError(f"a planted confounder is written 'ARTIFACT:CLASS[:PREVALENCE]', got {text!r}")
    parts = [p.strip() for p in text.strip().split(":")]
    if len(parts) not in (2, 3) or not all(parts):
        raise DataError(
            f"malformed planted confounder {text!r}: write ARTIFACT:CLASS[:PREVALENCE], e.g. "
            f"'ruler:melanoma:0.6' (artifacts: {', '.join(ARTIFACTS)}; classes: {', '.join(classes)})"
        )
    artifact, cls = parts[0], parts[1]
    if artifact not in ARTIFACTS:
        raise DataError(
            f"unknown artifact {artifact!r} in {text!r}; valid artifacts are {', '.join(ARTIFACTS)}"
        )
    if cls not in classes:
        raise DataError(f"unknown class {cls!r} in {text!r}; the classes are {', '.join(classes)}")
    prevalence = _prevalence(parts[2], text) if len(parts) == 3 else 0.6
    return PlantedConfounder(artifact, cls, prevalence)


# ------------------------------------------------------------------------------ config
_DEFAULT_CONFOUNDERS = (PlantedConfounder("ink", "melanoma", 0.6), PlantedConfounder("patch", "nevus", 0.6))


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise DataError(f"DermSynthConfig.{name} must be an integer, got {value!r}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise DataError(f"DermSynthConfig.{name} must be {rng}, got {v}")
    return v


def _check_rate(name: str, value: object, lo_open: bool = False, hi_open: bool = False) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"DermSynthConfig.{name} must be a number, got {value!r}") from None
    ok = (v > 0 if lo_open else v >= 0) and (v < 1 if hi_open else v <= 1)
    if not ok:
        lo, hi = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise DataError(f"DermSynthConfig.{name} must lie in {lo}0, 1{hi}, got {value!r}")
    return v


@dataclass(frozen=True)
class DermSynthConfig:
    """Settings of a DermSynth data set (all of them go into ``DatasetInfo.extra["config"]``).

    Parameters
    ----------
    n_images
        Cases in the main set (split 60/20/20 into ``train``/``val``/``test_debiased``).
    image_size
        Image side in pixels.
    seed
        Master seed: the same config gives byte-identical images and tables.
    confounders
        Planted confounders (:class:`PlantedConfounder`, or ``"artifact:class[:prevalence]"``
        strings, parsed); at most one per artifact.
    base_rate
        Rate of every artifact outside its planted class (and of unplanted artifacts everywhere).
    melanoma_share
        Share of melanoma cases in the main set.
    concept_examples
        Positive (and as many negative) examples per concept set.
    random_pool
        Size of the random pool.
    debiased_rate
        Rate of each planted artifact in every class of ``test_debiased``.
    """

    n_images: int = 2000
    image_size: int = 128
    seed: int = 0
    confounders: tuple[PlantedConfounder, ...] = _DEFAULT_CONFOUNDERS
    base_rate: float = 0.05
    melanoma_share: float = 0.4
    concept_examples: int = 60
    random_pool: int = 500
    debiased_rate: float = 0.3

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "n_images", _check_int("n_images", self.n_images, 20, _SEED_BLOCK // 2))
        setattr_(self, "image_size", _check_int("image_size", self.image_size, 32, 1024))
        setattr_(self, "seed", _check_int("seed", self.seed, 0))
        setattr_(self, "concept_examples", _check_int("concept_examples", self.concept_examples, 2, 100_000))
        setattr_(self, "random_pool", _check_int("random_pool", self.random_pool, 2, 1_000_000))
        setattr_(self, "base_rate", _check_rate("base_rate", self.base_rate))
        setattr_(self, "melanoma_share", _check_rate("melanoma_share", self.melanoma_share, True, True))
        setattr_(self, "debiased_rate", _check_rate("debiased_rate", self.debiased_rate))
        raw = (self.confounders,) if isinstance(self.confounders, str | PlantedConfounder) else self.confounders
        confs: list[PlantedConfounder] = []
        for c in raw:
            conf = parse_confounder(c) if isinstance(c, str) else c
            if not isinstance(conf, PlantedConfounder):
                raise DataError(f"confounders must be PlantedConfounder or 'artifact:class:prevalence', got {c!r}")
            if conf.cls not in DERMSYNTH_CLASSES:
                raise DataError(
                    f"planted confounder {conf}: unknown class {conf.cls!r}; the classes are "
                    f"{', '.join(DERMSYNTH_CLASSES)}"
                )
            if any(o.artifact == conf.artifact for o in confs):
                raise DataError(f"artifact {conf.artifact!r} is planted twice; plant each artifact at most once")
            confs.append(conf)
        setattr_(self, "confounders", tuple(confs))
        n_mel = round(self.n_images * self.melanoma_share)
        if min(n_mel, self.n_images - n_mel) < 10:
            raise DataError(
                f"{self.n_images} images with melanoma_share {self.melanoma_share} leave fewer than 10 "
                "cases in a class — raise n_images or move melanoma_share towards 0.5"
            )

    def planted(self, artifact: str) -> PlantedConfounder | None:
        """The planted confounder of ``artifact``, or None if it is not planted."""
        return next((c for c in self.confounders if c.artifact == artifact), None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (confounders as ``"artifact:class:prevalence"`` strings)."""
        return {
            "n_images": self.n_images,
            "image_size": self.image_size,
            "seed": self.seed,
            "confounders": [str(c) for c in self.confounders],
            "base_rate": self.base_rate,
            "melanoma_share": self.melanoma_share,
            "concept_examples": self.concept_examples,
            "random_pool": self.random_pool,
            "debiased_rate": self.debiased_rate,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DermSynthConfig:
        """Inverse of :meth:`to_json` (missing keys take their defaults).

        Raises
        ------
        DataError
            Unknown keys or invalid values.
        """
        kw = dict(d)
        unknown = sorted(set(kw) - set(cls.__dataclass_fields__))
        if unknown:
            raise DataError(
                f"unknown DermSynth setting(s) {unknown}; valid ones are {sorted(cls.__dataclass_fields__)}"
            )
        if "confounders" in kw:
            kw["confounders"] = tuple(parse_confounder(c) for c in kw["confounders"])
        return cls(**kw)


@dataclass(frozen=True)
class DermSynthResult:
    """What :func:`generate_dermsynth` wrote: the main set and the concept example sets."""

    main: Dataset
    concept_sets: Dataset
    config: DermSynthConfig


# ------------------------------------------------------------------------------ rendering
_Job = tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _render_chunk(job: _Job) -> np.ndarray:
    """Render rows ``(size, seeds, melanoma, criteria, artifacts)``; twins share the lesion."""
    size, seeds, mel, crit, arts = job
    out = np.empty((len(seeds), size, size, 3), dtype=np.uint8)
    last_key: tuple[int, bool, bytes] | None = None
    lesion: np.ndarray | None = None
    for i in range(len(seeds)):
        key = (int(seeds[i]), bool(mel[i]), crit[i].tobytes())
        if lesion is None or key != last_key:
            lesion = render_lesion(key[0], key[1], crit[i].tolist(), size)
            last_key = key
        out[i] = apply_artifacts(lesion, key[0], arts[i].tolist())
    return out


def _jobs(cases: pd.DataFrame, size: int, chunk: int) -> list[_Job]:
    seeds = cases["render_seed"].to_numpy(np.int64)
    mel = (cases["label"] == "melanoma").to_numpy()
    crit = cases[list(CRITERIA)].to_numpy(np.int64)
    arts = cases[list(ARTIFACTS)].to_numpy(np.int64)
    return [
        (size, seeds[i : i + chunk], mel[i : i + chunk], crit[i : i + chunk], arts[i : i + chunk])
        for i in range(0, len(cases), chunk)
    ]


def _render_tables(
    tables: Sequence[tuple[str, pd.DataFrame]],
    size: int,
    workers: int,
    progress: ProgressFn | None,
    outs: Sequence[Any] | None = None,
) -> list[Any]:
    """Render several cases tables (in one process pool when ``workers > 1``).

    ``outs`` are the destinations, one per table (arrays or the ``images`` of a
    :meth:`Dataset.create` writer, filled chunk by chunk); default: new in-memory arrays.
    """
    total_rows = sum(len(t) for _, t in tables)
    chunk = max(8, min(64, 2 * math.ceil(total_rows / max(workers, 1) / 16)))
    chunk += chunk % 2  # twins (adjacent rows) never straddle chunks
    plans = [(stage, t, _jobs(t, size, chunk)) for stage, t in tables]
    all_jobs = [j for _, _, jobs in plans for j in jobs]
    if outs is None:
        outs = [np.empty((len(t), size, size, 3), dtype=np.uint8) for _, t in tables]
    owner = [(k, i * chunk) for k, (_, _, jobs) in enumerate(plans) for i in range(len(jobs))]
    done = [0] * len(tables)
    for stage, t, _ in plans:
        if progress is not None:
            progress(stage, 0, len(t))
    if workers > 1 and len(all_jobs) > 1:
        pool: ProcessPoolExecutor | None = None
        try:
            pool = ProcessPoolExecutor(max_workers=workers)
            results = pool.map(_render_chunk, all_jobs)  # submits every chunk now
        except (OSError, AssertionError, NotImplementedError):
            # no process pool here (sandbox without semaphores, daemon process): render in this
            # process instead; every row has its own seed, so the images are the same
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        else:
            try:
                for (k, start), res in zip(owner, results, strict=True):
                    _store(outs, done, plans, progress, k, start, res)
            finally:  # on an error (e.g. from progress) drop the chunks not yet started
                pool.shutdown(wait=True, cancel_futures=True)
            return list(outs)
    for (k, start), job in zip(owner, all_jobs, strict=True):
        _store(outs, done, plans, progress, k, start, _render_chunk(job))
    return list(outs)


def _store(outs: Sequence[Any], done: list[int], plans: Sequence[tuple[str, pd.DataFrame, list[_Job]]],
           progress: ProgressFn | None, k: int, start: int, res: np.ndarray) -> None:
    outs[k][start : start + len(res)] = res
    done[k] += len(res)
    if progress is not None:
        progress(plans[k][0], done[k], len(plans[k][1]))


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
    return _render_tables([("twins", cases)], dataset.info.image_size, workers, None)[0]


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
    out = Path(out_dir)
    if progress is not None:
        progress("sample", 0, 1)
    main_cases, concept_cases = sample_dermsynth(cfg)
    if progress is not None:
        progress("sample", 1, 1)
    extra = {
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
    s_ = cfg.image_size
    # both sets are rendered straight into their images.npy (chunk by chunk: flat memory)
    with Dataset.create(out / "dermsynth", (len(main_cases), s_, s_, 3), overwrite=True) as w_main, \
            Dataset.create(out / "dermsynth_concepts", (len(concept_cases), s_, s_, 3), overwrite=True) as w_con:
        _render_tables([("render:main", main_cases), ("render:concepts", concept_cases)], s_, n_workers,
                       progress, outs=[w_main.images, w_con.images])
        if progress is not None:
            progress("write", 0, 2)
        main = w_main.commit(main_info, main_cases)
        if progress is not None:
            progress("write", 1, 2)
        concept_sets = w_con.commit(concepts_info, concept_cases)
    if progress is not None:
        progress("write", 2, 2)
    return DermSynthResult(main=main, concept_sets=concept_sets, config=cfg)
