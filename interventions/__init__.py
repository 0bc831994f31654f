"""Concept interventions: mask, amplify or set concepts inside a model, measure the effect.

Specs (:class:`InterventionSpec`) are JSON-able, versioned and self-contained (the concept
vectors travel with them); they are applied through forward hooks (:func:`apply_spec`,
:func:`patch`) and never edit weights. :class:`WhatIf` re-scores cached activations in
milliseconds, :func:`measure_effect` reports before/after metrics, flips, slices and reliance,
:func:`propose_fix` proposes a test-time fix from a few labelled images, and
:class:`ConceptHead` is a PCBM-style concept-space head with its own interventions.
"""

from interventions._concept import (
    NEUTRAL_STRENGTH,
    OPERATIONS,
    STRENGTH_RANGE,
    ConceptDirection,
    ConceptEdit,
    InterventionError,
)
from interventions._directions import (
    DIRECTION_METHODS,
    MASK_LEVELS,
    direction_from_examples,
    direction_from_twins,
    insert_artifact,
    mask_edit,
    population_level,
    random_direction,
    twin_direction_from_images,
)
from interventions._effect_record import record_effect
from interventions._effect_twins import artifact_twins, twin_activations
from interventions._effects import METRIC_KEYS, EffectReport, measure_effect, tcav_reliance
from interventions._fix import FixProposal, propose_fix, select_few_shot
from interventions._library import ConceptLibrary
from interventions._ops import CompiledSpec, apply_spec, edit_activations
from interventions._patch import (
    PatchedModel,
    export_program,
    is_patched_artifact,
    load_patched,
    patch,
)
from interventions._pcbm import (
    HEAD_OPERATIONS,
    ConceptHead,
    HeadEdit,
    intervention_curve,
    pcbm_concept_scores,
)
from interventions._spec import SCOPE_KINDS, SPEC_VERSION, InterventionSpec, Scope
from interventions._twins import TwinActivations, make_twins
from interventions._whatif import WhatIf, WhatIfResult

__all__ = [
    "DIRECTION_METHODS",
    "HEAD_OPERATIONS",
    "MASK_LEVELS",
    "METRIC_KEYS",
    "NEUTRAL_STRENGTH",
    "OPERATIONS",
    "SCOPE_KINDS",
    "SPEC_VERSION",
    "STRENGTH_RANGE",
    "CompiledSpec",
    "ConceptDirection",
    "ConceptEdit",
    "ConceptHead",
    "ConceptLibrary",
    "EffectReport",
    "FixProposal",
    "HeadEdit",
    "InterventionError",
    "InterventionSpec",
    "PatchedModel",
    "Scope",
    "TwinActivations",
    "WhatIf",
    "WhatIfResult",
    "apply_spec",
    "artifact_twins",
    "direction_from_examples",
    "direction_from_twins",
    "edit_activations",
    "export_program",
    "insert_artifact",
    "intervention_curve",
    "is_patched_artifact",
    "load_patched",
    "make_twins",
    "mask_edit",
    "measure_effect",
    "patch",
    "pcbm_concept_scores",
    "population_level",
    "propose_fix",
    "random_direction",
    "record_effect",
    "select_few_shot",
    "tcav_reliance",
    "twin_activations",
    "twin_direction_from_images",
]
