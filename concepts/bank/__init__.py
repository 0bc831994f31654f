"""concepts.bank."""

from typing import TYPE_CHECKING

from store import lazy_exports

if TYPE_CHECKING:
    from concepts.bank._bank import ConceptBank
    from concepts.bank._concept import (
        MIN_EXAMPLES,
        RECOMMENDED_EXAMPLES,
        Concept,
        ExampleSet,
        few_examples_note,
        label_confounding,
    )
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
else:  # each name loads on first use: importing the package stays cheap (no torch)
    __getattr__, __dir__ = lazy_exports(__name__, __file__)

__all__ = [
    "MIN_EXAMPLES",
    "RECOMMENDED_EXAMPLES",
    "Concept",
    "ConceptBank",
    "ExampleSet",
    "TwinSet",
    "few_examples_note",
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
