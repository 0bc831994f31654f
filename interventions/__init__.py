"""Concept interventions: mask, amplify or set concepts inside a model, measure the effect.

Specs (:class:`InterventionSpec`) are JSON-able, versioned and self-contained (the concept
vectors travel with them); they are applied through forward hooks (:func:`apply_spec`,
:func:`patch`) and never edit weights. :class:`WhatIf` re-scores cached activations in
milliseconds, :func:`measure_effect` reports before/after metrics, flips, slices and reliance,
:func:`propose_fix` proposes a test-time fix from a few labelled images, and
:class:`ConceptHead` is a PCBM-style concept-space head with its own interventions.
"""

from interventions._concept import ConceptDirection, ConceptEdit, InterventionError
from interventions._directions import (
    direction_from_examples,
    direction_from_twins,
    insert_artifact,
    mask_edit,
    population_level,
    twin_direction_from_images,
)
from interventions._effect_record import record_effect
from interventions._effect_twins import artifact_twins
from interventions._effects import METRIC_KEYS, EffectReport, measure_effect
from interventions._fix import propose_fix
from interventions._fix_methods import FIX_METHODS, fix_directions
from interventions._fix_proposal import FixProposal, select_few_shot
from interventions._library import ConceptLibrary
from interventions._ops import apply_spec
from interventions._patch import export_program, is_patched_artifact, load_patched, patch
from interventions._pcbm import ConceptHead, HeadEdit, intervention_curve, pcbm_concept_scores
from interventions._spec import InterventionSpec, Scope
from interventions._twins import TwinActivations
from interventions._whatif import WhatIf, WhatIfResult

__all__ = [
    "FIX_METHODS",
    "METRIC_KEYS",
    "ConceptDirection",
    "ConceptEdit",
    "ConceptHead",
    "ConceptLibrary",
    "EffectReport",
    "FixProposal",
    "HeadEdit",
    "InterventionError",
    "InterventionSpec",
    "Scope",
    "TwinActivations",
    "WhatIf",
    "WhatIfResult",
    "apply_spec",
    "artifact_twins",
    "direction_from_examples",
    "direction_from_twins",
    "export_program",
    "fix_directions",
    "insert_artifact",
    "intervention_curve",
    "is_patched_artifact",
    "load_patched",
    "mask_edit",
    "measure_effect",
    "patch",
    "pcbm_concept_scores",
    "population_level",
    "propose_fix",
    "record_effect",
    "select_few_shot",
    "twin_direction_from_images",
]
