"""concepts.dermsynth."""

from typing import TYPE_CHECKING

from store import lazy_exports

if TYPE_CHECKING:
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
else:  # each name loads on first use: importing the package stays cheap (no torch)
    __getattr__, __dir__ = lazy_exports(__name__, __file__)

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
