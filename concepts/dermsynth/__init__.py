"""concepts.dermsynth."""

from concepts.dermsynth._generate import (
    CRITERION_FREQUENCIES,
    DERMSYNTH_CLASSES,
    DERMSYNTH_CONCEPTS_KIND,
    DERMSYNTH_KIND,
    DermSynthConfig,
    DermSynthResult,
    PlantedConfounder,
    artifact_region,
    draw_artifact,
    draw_artifact_with_mask,
    generate_dermsynth,
    parse_confounder,
    render_case,
    render_twins,
    sample_dermsynth,
)

__all__ = [
    "CRITERION_FREQUENCIES",
    "DERMSYNTH_CLASSES",
    "DERMSYNTH_CONCEPTS_KIND",
    "DERMSYNTH_KIND",
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
