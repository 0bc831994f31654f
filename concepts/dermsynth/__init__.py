"""DermSynth: the embedded procedural dermoscopy data set with ground-truth concepts (sampling, drawing, counterfactual twins)."""

from typing import TYPE_CHECKING

from store import lazy_exports

if TYPE_CHECKING:
    from concepts.dermsynth._artifacts import draw_artifact, draw_artifact_with_mask
    from concepts.dermsynth._config import (
        DERMSYNTH_CLASSES,
        DERMSYNTH_CONCEPTS_KIND,
        DERMSYNTH_KIND,
        DermSynthConfig,
        PlantedConfounder,
        parse_confounder,
    )
    from concepts.dermsynth._generate import DermSynthResult, generate_dermsynth
    from concepts.dermsynth._sample import CRITERION_FREQUENCIES, sample_dermsynth
    from concepts.dermsynth._twins import artifact_region, render_case, render_twins
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
