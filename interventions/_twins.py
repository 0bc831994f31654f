"""Counterfactual twins of a what-if's evaluation rows: :class:`TwinActivations` and
:func:`make_twins` (DermSynth rows re-rendered, other data with the artifact drawn on)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from concepts import ActivationCache, ClassifierModel, Dataset, ImageSet, extract_activations
from concepts.data import hash_array, take_rows

if TYPE_CHECKING:
    from concepts import ProgressFn

__all__ = ["TwinActivations", "make_twins"]


@dataclass(frozen=True)
class TwinActivations:
    """Counterfactual twins of some evaluation rows for one artifact.

    Attributes
    ----------
    artifact
        The artifact added.
    rows
        Positions (in the evaluation split) of the originals.
    acts
        Activations of the twins at the intervention layer, row-aligned with ``rows``.
    to_class
        The class the artifact is planted with (the twins come from the other classes), or None.
    images
        The twin images (kept only for non-staged models, which need inputs).
    direction
        ``"add"`` (the twins carry the artifact) or ``"remove"`` (the originals do).
    method
        How the twins were made (``render``, ``pairs:<column>``, ``transplant:...``).
    """

    artifact: str
    rows: np.ndarray
    acts: np.ndarray = field(repr=False)
    to_class: str | None = None
    images: np.ndarray | None = field(default=None, repr=False)
    direction: str = "add"
    method: str = ""

    @property
    def key(self) -> str:
        """Key in the flip rates: ``artifact`` (add) or ``artifact:remove``."""
        return self.artifact if self.direction == "add" else f"{self.artifact}:remove"


def make_twins(
    model: ClassifierModel,
    dataset: Dataset,
    idx: np.ndarray,
    artifact: str,
    to_class: str | None,
    layer: str,
    *,
    cache: ActivationCache | None = None,
    seed: int = 0,
    keep_images: bool = False,
    progress: ProgressFn | None = None,
) -> TwinActivations:
    """Twins (artifact added) of the rows of ``idx`` that lack ``artifact`` and, when
    ``to_class`` is given, belong to another class; their activations at ``layer``.

    DermSynth rows are re-rendered (exact counterfactuals); other data get the artifact drawn
    on with ``draw_artifact`` (stream ``(seed, row)``).
    """
    from interventions._directions import insert_artifact

    cases = dataset.cases
    lacks = (cases[artifact].to_numpy()[idx] == 0) if artifact in cases.columns else np.ones(len(idx), bool)
    if to_class is not None:
        lacks &= cases["label"].to_numpy()[idx] != to_class
    rows = np.flatnonzero(lacks)
    sel = idx[rows]
    if len(sel) == 0:
        return TwinActivations(artifact, rows, np.zeros((0, 1), np.float32), to_class)
    dermsynth = "render_seed" in cases.columns
    how = "render" if dermsynth else f"draw-s{seed}"
    key = hash_array(np.asarray(sel), dataset.info.content_hash, "twins", artifact, how)
    name = f"{dataset.info.name}:twins:{artifact}"
    probe = ImageSet(name=name, images=np.zeros((0, 1, 1, 3), np.uint8), key=key)
    if cache is not None and cache.path(model, layer, probe).is_file() and not keep_images:
        acts = cache.get(model, layer, probe)[layer]
        return TwinActivations(artifact, rows, np.asarray(acts), to_class)
    if dermsynth:
        from concepts.dermsynth import render_twins

        images = render_twins(dataset, sel, artifact, present=True)
    else:
        images = insert_artifact(take_rows(dataset.images, sel), artifact, seed=seed, stream_ids=sel)
    if cache is not None:
        acts = cache.get(model, layer, ImageSet(name=name, images=images, key=key), progress=progress)[layer]
    else:
        acts = extract_activations(model, images, [layer], progress=progress)[layer]
    return TwinActivations(artifact, rows, np.asarray(acts), to_class, images if keep_images else None)
