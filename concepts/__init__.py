"""Everything from images to concept space.

Data sets (DermSynth, importers), model loading, the activation cache, CAVs, TCAV with
significance tests, concept scores and maps, co-occurrence analysis and activation clusters.
"""

from typing import TYPE_CHECKING

from store import lazy_exports

if TYPE_CHECKING:
    from concepts._errors import (
        ComputeError,
        ConceptError,
        DataError,
        ImageError,
        ModelError,
        UnsafeCheckpointError,
        WorkbenchError,
        WorkspaceError,
    )
    from concepts._progress import ProgressFn
    from concepts.bank import Concept, ConceptBank
    from concepts.data import ARTIFACTS, CRITERIA, Dataset, DatasetInfo, ImageSet
    from concepts.models import ActivationCache, ClassifierModel, Compute, extract_activations
    from concepts.tcav import CAV, SignificanceConfig, run_tcav
    from concepts.workspace import Workspace
else:  # each name loads on first use: importing the package stays cheap (no torch)
    __getattr__, __dir__ = lazy_exports(__name__, __file__)

__all__ = [
    "ARTIFACTS",
    "CAV",
    "CRITERIA",
    "ActivationCache",
    "ClassifierModel",
    "Compute",
    "ComputeError",
    "Concept",
    "ConceptBank",
    "ConceptError",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "ImageError",
    "ImageSet",
    "ModelError",
    "ProgressFn",
    "SignificanceConfig",
    "UnsafeCheckpointError",
    "WorkbenchError",
    "Workspace",
    "WorkspaceError",
    "extract_activations",
    "run_tcav",
]
