"""Concepts and their example sets (the records of the concept bank, see :mod:`concepts.bank._bank`).

An :class:`ExampleSet` points at rows of a data set (by case id, pinned to the data set's content
hash) or at an image array stored with the bank. A :class:`Concept`'s id hashes its name, group,
example keys and counterpart, so changing its examples changes its id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from concepts._errors import ConceptError
from concepts.data import ARTIFACTS, CRITERIA, Dataset, name_problem

#: Fewest examples per side a CAV accepts (a concept needs this many positives and negatives).
MIN_EXAMPLES = 4
#: Fewer positives than this gets a caution (:func:`few_examples_note`).
RECOMMENDED_EXAMPLES = 30


def few_examples_note(n_positive: int, *, check: str = "its effect on the Interventions page") -> str | None:
    """A caution for a concept learnt from fewer than :data:`RECOMMENDED_EXAMPLES` positives, else ``None``.

    A direction from a handful of cases also separates whatever else those cases share with each
    other and not with their negatives (lesion traits, the class balance of the few): on the
    DermSynth demo, masking a concept built from 6 inked cases lowered the worst-group accuracy by
    27.8 points, while on derm7pt the same flow raised it by 4.1.
    """
    if n_positive >= RECOMMENDED_EXAMPLES:
        return None
    return (f"Only {n_positive} examples: a direction learnt from fewer than {RECOMMENDED_EXAMPLES} can "
            f"carry what those cases share besides the concept. Check {check} (worst group, clean "
            "accuracy) before saving a mask, or add more cases.")

__all__ = [
    "CONCEPT_DESCRIPTIONS",
    "CONFOUNDING_TOLERANCE",
    "GROUPS",
    "RECOMMENDED_EXAMPLES",
    "Concept",
    "ExampleSet",
    "default_group",
    "few_examples_note",
    "label_confounding",
]

#: Concept groups.
GROUPS: tuple[str, ...] = ("criterion", "artifact", "custom")

#: Default descriptions of the 7-point criteria and the artifacts.
CONCEPT_DESCRIPTIONS: dict[str, str] = {
    "pigment_network": "Atypical pigment network (major criterion, 2 points).",
    "blue_whitish_veil": "Blue-whitish veil (major criterion, 2 points).",
    "vascular_structures": "Atypical vascular pattern: dotted or linear irregular vessels (major, 2 points).",
    "pigmentation": "Irregular pigmentation, diffuse or localised (minor criterion, 1 point).",
    "streaks": "Irregular streaks (minor criterion, 1 point).",
    "dots_and_globules": "Irregular dots and globules (minor criterion, 1 point).",
    "regression_structures": "Regression structures: blue or white areas (minor criterion, 1 point).",
    "ruler": "Ruler markings in the image (acquisition artifact).",
    "ink": "Surgical ink / pen markings around the lesion (acquisition artifact).",
    "hair": "Hair occluding the lesion (acquisition artifact).",
    "dark_corner": "Dark corners / vignetting from the dermatoscope (acquisition artifact).",
    "patch": "Coloured adhesive patch next to the lesion (acquisition artifact).",
    "gel_bubble": "Gel or air bubbles (acquisition artifact).",
}

#: Class-share difference above which an example set counts as confounded with the label.
CONFOUNDING_TOLERANCE = 0.2


def _sha(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\x00")
    return h.hexdigest()


def default_group(name: str) -> str:
    """``criterion`` / ``artifact`` for the known names, else ``custom``."""
    if name in CRITERIA:
        return "criterion"
    if name in ARTIFACTS:
        return "artifact"
    return "custom"


# --------------------------------------------------------------------------- example sets
@dataclass(frozen=True)
class ExampleSet:
    """A reference to example images.

    Attributes
    ----------
    source
        ``"dataset"`` (rows of a data set by case id) or ``"array"`` (an image array kept with
        the bank).
    dataset, dataset_hash, case_ids
        For ``dataset`` sources: the data-set name, its content hash when the set was made, and
        the case ids.
    array
        For ``array`` sources: the file name under ``<bank dir>/arrays/``.
    size
        Number of images.
    key
        Content key (hash of the references / the array bytes).
    """

    source: str
    key: str
    size: int
    dataset: str = ""
    dataset_hash: str = ""
    case_ids: tuple[str, ...] = ()
    array: str = ""

    def __len__(self) -> int:
        return self.size

    @classmethod
    def from_cases(cls, dataset: Dataset, case_ids: Sequence[str]) -> ExampleSet:
        """Rows of ``dataset`` given by case id (unknown ids raise :class:`ConceptError`)."""
        ids = tuple(str(c) for c in case_ids)
        known = set(dataset.cases["case_id"].astype(str))
        missing = [c for c in ids if c not in known]
        if missing:
            raise ConceptError(
                f"{len(missing)} case id(s) not in data set {dataset.info.name!r}, e.g. {missing[0]!r}"
                " — pick cases from that data set"
            )
        if len(set(ids)) != len(ids):
            raise ConceptError("duplicate case ids in an example set — list each case once")
        key = _sha("dataset", dataset.info.content_hash, *ids)[:32]
        return cls("dataset", key, len(ids), dataset.info.name, dataset.info.content_hash, ids)

    @classmethod
    def from_rows(cls, dataset: Dataset, rows: Sequence[int] | np.ndarray) -> ExampleSet:
        """Rows of ``dataset`` given by position."""
        ids = dataset.cases["case_id"].astype(str).to_numpy()[np.asarray(rows, dtype=np.int64)]
        return cls.from_cases(dataset, ids.tolist())

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source, "key": self.key, "size": self.size}
        if self.source == "dataset":
            d.update(dataset=self.dataset, dataset_hash=self.dataset_hash, case_ids=list(self.case_ids))
        else:
            d["array"] = self.array
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ExampleSet:
        return cls(
            source=str(d["source"]), key=str(d["key"]), size=int(d["size"]),
            dataset=str(d.get("dataset", "")), dataset_hash=str(d.get("dataset_hash", "")),
            case_ids=tuple(str(c) for c in d.get("case_ids", ())), array=str(d.get("array", "")),
        )


@dataclass(frozen=True)
class Concept:
    """A concept of the bank.

    Attributes
    ----------
    name, group, description
        What it is (``group`` one of :data:`GROUPS`).
    positive
        Examples showing the concept.
    negative
        Explicit examples without it ("criterion absent", counterfactual twins), if any.
    counterpart
        What its CAVs are trained against: ``"random"`` (random counterparts, default) or
        ``"negative"`` (the explicit negative set).
    twins
        The negative set holds counterfactual twins of the positives (same lesions).
    origin
        How the concept was made (``concept-sets``, ``column``, ``cases``, ``images``).
    """

    name: str
    group: str
    description: str
    positive: ExampleSet
    negative: ExampleSet | None = None
    counterpart: str = "random"
    twins: bool = False
    origin: str = "custom"

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name == "random" or self.name.startswith("random_"):
            raise ConceptError(
                f"invalid concept name {self.name!r}: use a non-empty name without '/' that is not "
                "'random' or 'random_*'"
            )
        if name_problem(self.name):
            raise ConceptError(f"invalid concept name: {name_problem(self.name)} — use a visible name")
        if self.group not in GROUPS:
            raise ConceptError(f"unknown group {self.group!r}; choose one of {list(GROUPS)}")
        if self.counterpart not in ("random", "negative"):
            raise ConceptError(f"counterpart must be 'random' or 'negative', not {self.counterpart!r}")
        if self.counterpart == "negative" and self.negative is None:
            raise ConceptError(f"concept {self.name!r}: counterpart='negative' needs a negative example set")

    @property
    def id(self) -> str:
        """Version id: changes whenever the examples (or the counterpart, or twin pairing) change."""
        neg = self.negative.key if self.negative is not None else "-"
        return _sha(self.name, self.group, self.positive.key, neg, self.counterpart, str(self.twins))[:16]

    @property
    def negative_name(self) -> str:
        """Name of the set its CAVs are trained against."""
        return "random" if self.counterpart == "random" else f"not_{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "group": self.group, "description": self.description,
            "positive": self.positive.to_json(),
            "negative": self.negative.to_json() if self.negative is not None else None,
            "counterpart": self.counterpart, "twins": self.twins, "origin": self.origin,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Concept:
        neg = d.get("negative")
        return cls(
            name=str(d["name"]), group=str(d["group"]), description=str(d.get("description", "")),
            positive=ExampleSet.from_json(d["positive"]),
            negative=ExampleSet.from_json(neg) if neg else None,
            counterpart=str(d.get("counterpart", "random")), twins=bool(d.get("twins", False)),
            origin=str(d.get("origin", "custom")),
        )


def label_confounding(
    pos_labels: np.ndarray | None, neg_labels: np.ndarray | None, n_classes: int
) -> float | None:
    """Largest difference in class share between two example sets (``None`` if unknown)."""
    if pos_labels is None or neg_labels is None or len(pos_labels) == 0 or len(neg_labels) == 0:
        return None
    p = np.bincount(np.asarray(pos_labels, dtype=np.int64), minlength=n_classes) / len(pos_labels)
    q = np.bincount(np.asarray(neg_labels, dtype=np.int64), minlength=n_classes) / len(neg_labels)
    return float(np.max(np.abs(p - q)))
