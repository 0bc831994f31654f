"""concepts.bank."""

from concepts.bank._bank import Concept, ConceptBank, ExampleSet, label_confounding
from concepts.bank._concept import MIN_EXAMPLES
from concepts.bank._twins import (
    TwinSet,
    find_twin_columns,
    inpaint,
    load_masks,
    paired_twins,
    real_twins,
    threshold_maps,
    transplant,
    transplant_twins,
)

__all__ = [
    "MIN_EXAMPLES",
    "Concept",
    "ConceptBank",
    "ExampleSet",
    "TwinSet",
    "find_twin_columns",
    "inpaint",
    "label_confounding",
    "load_masks",
    "paired_twins",
    "real_twins",
    "threshold_maps",
    "transplant",
    "transplant_twins",
]
