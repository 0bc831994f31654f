"""The 7-point checklist as derm7pt encodes it: raw labels and their points, melanoma diagnoses, threshold.

These are domain constants, not importer internals: the derm7pt importer
(:mod:`concepts.importers`) scores cases with them and the knowledge graph (:mod:`graph`) builds
its criterion, sub-label and diagnosis nodes from them (``concepts`` must not import ``graph``).
Keys follow :data:`concepts.data.CRITERIA`; labels and diagnoses are lower case, as in derm7pt's
``meta.csv``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "DERM7PT_CRITERION_POINTS",
    "DERM7PT_LABELS",
    "DERM7PT_MELANOMA_DIAGNOSES",
    "SEVEN_POINT_THRESHOLD",
    "is_melanoma_diagnosis",
]

#: Every raw label derm7pt uses for each criterion, with the points it scores (0 = does not
#: score). Keys follow :data:`CRITERIA`; labels are lower case, as in ``meta.csv``.
DERM7PT_LABELS: Mapping[str, Mapping[str, int]] = MappingProxyType(
    {
        "pigment_network": MappingProxyType({"absent": 0, "typical": 0, "atypical": 2}),
        "blue_whitish_veil": MappingProxyType({"absent": 0, "present": 2}),
        "vascular_structures": MappingProxyType(
            {
                "absent": 0,
                "arborizing": 0,
                "comma": 0,
                "hairpin": 0,
                "within regression": 0,
                "wreath": 0,
                "dotted": 2,
                "linear irregular": 2,
            }
        ),
        "pigmentation": MappingProxyType(
            {
                "absent": 0,
                "diffuse regular": 0,
                "localized regular": 0,
                "diffuse irregular": 1,
                "localized irregular": 1,
            }
        ),
        "streaks": MappingProxyType({"absent": 0, "regular": 0, "irregular": 1}),
        "dots_and_globules": MappingProxyType({"absent": 0, "regular": 0, "irregular": 1}),
        "regression_structures": MappingProxyType(
            {"absent": 0, "blue areas": 1, "white areas": 1, "combinations": 1}
        ),
    }
)

#: Points a criterion scores when present: 2 for the three major, 1 for the four minor criteria.
DERM7PT_CRITERION_POINTS: Mapping[str, int] = MappingProxyType(
    {c: max(labels.values()) for c, labels in DERM7PT_LABELS.items()}
)

#: The derm7pt diagnoses that count as melanoma; every other diagnosis is non-melanoma.
DERM7PT_MELANOMA_DIAGNOSES: tuple[str, ...] = (
    "melanoma",
    "melanoma (in situ)",
    "melanoma (less than 0.76 mm)",
    "melanoma (0.76 to 1.5 mm)",
    "melanoma (more than 1.5 mm)",
    "melanoma metastasis",
)


#: A 7-point score at or above this suggests melanoma.
SEVEN_POINT_THRESHOLD = 3


def is_melanoma_diagnosis(diagnosis: str) -> bool:
    """Whether a derm7pt diagnosis (any case, surrounding blanks ignored) is a melanoma."""
    return " ".join(diagnosis.strip().lower().split()) in DERM7PT_MELANOMA_DIAGNOSES
