"""DermSynth's settings: the classes, the planted confounders and :class:`DermSynthConfig`.

Both the sampler (:mod:`concepts.dermsynth._sample`) and the generator
(:mod:`concepts.dermsynth._generate`) read these; nothing here imports either of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from concepts._errors import DataError
from concepts.data import ARTIFACTS

__all__ = [
    "DERMSYNTH_CLASSES",
    "DERMSYNTH_CONCEPTS_KIND",
    "DERMSYNTH_KIND",
    "DermSynthConfig",
    "PlantedConfounder",
    "parse_confounder",
]

#: DermSynth's diagnoses, in class-index order.
DERMSYNTH_CLASSES: tuple[str, ...] = ("melanoma", "nevus")

#: ``DatasetInfo.kind`` of the main set and of the concept example sets.
DERMSYNTH_KIND = "dermsynth"
DERMSYNTH_CONCEPTS_KIND = "dermsynth-concepts"

# Render seeds of the main set lie in [0, 2**30), those of the concept sets in [2**30, 2**31).
_SEED_BLOCK = 2**30


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
