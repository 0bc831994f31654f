"""The what-if engine of one split and layer, with its counterfactual twins: the one builder
that the Interventions page (:func:`workbench.ui._interventions.whatif`) and the precompute
step (:func:`workbench.services._precompute.precompute_pages`) share, so both read and write
the same activation-cache records."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concepts import ActivationCache, ClassifierModel, Dataset, ProgressFn
    from interventions import WhatIf

__all__ = ["whatif_engine"]


def whatif_engine(
    model: ClassifierModel,
    ds: Dataset,
    split: str,
    layer: str,
    *,
    cache: ActivationCache | None,
    progress: ProgressFn | None = None,
    twins: bool = True,
) -> tuple[WhatIf, str | None]:
    """The what-if engine of ``split`` at ``layer`` and why flip rates are missing, if they are.

    With ``twins`` the split's counterfactual twins are made first (DermSynth's re-rendered
    planted artifacts, real twins of any other data set; their activations go through
    ``cache``) and the engine carries them for flip rates; without, it has none and the note
    is ``None``.
    """
    from interventions import TwinActivations, WhatIf, artifact_twins

    found: list[TwinActivations] = []
    note: str | None = None
    if twins:
        found, note = artifact_twins(model, ds, split, layer, cache=cache, progress=progress)
    engine = WhatIf.from_dataset(model, ds, split, layer, cache=cache, progress=progress,
                                 twins=found)
    return engine, note
