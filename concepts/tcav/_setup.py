"""What a TCAV analysis runs on (:class:`TCAVSetup`) and how (:class:`TCAVConfig`).

:func:`concepts.tcav.run_tcav` takes a workspace or a :class:`TCAVSetup` plus its keyword
settings, which it gathers in one frozen :class:`TCAVConfig` handed to every stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from concepts._errors import ConceptError, WorkspaceError
from concepts.bank import ConceptBank
from concepts.data import ImageSet
from concepts.models import ActivationCache, ClassifierModel
from concepts.tcav._choices import MAX_INPUTS_PER_CLASS
from concepts.tcav._significance import SignificanceConfig
from concepts.workspace import Workspace

__all__ = [
    "DEFAULT_TCAV_LAYERS",
    "RECOMMENDED_INPUTS",
    "TCAVConfig",
    "TCAVSetup",
    "default_layers",
]

# --------------------------------------------------------------------------- the parts
#: Default TCAV layers of the built-in architectures (below the last non-linearity).
DEFAULT_TCAV_LAYERS: dict[str, tuple[str, ...]] = {
    "efficientnet-lite0": ("block10", "block15"),
    "tiny-cnn": ("conv1", "conv2"),
}

#: Fewer class inputs than this draws a warning.
RECOMMENDED_INPUTS = 200


def default_layers(model: ClassifierModel) -> tuple[str, ...]:
    """TCAV layers used when none are given: built-in defaults, else the two stages before the
    last two (pooling and head)."""
    if model.architecture in DEFAULT_TCAV_LAYERS:
        return DEFAULT_TCAV_LAYERS[model.architecture]
    names = model.layers
    return tuple(names[-4:-2]) if len(names) >= 4 else tuple(names[:1])


@dataclass
class TCAVSetup:
    """The parts of a TCAV analysis, for callers without a workspace.

    Parameters
    ----------
    model
        The classifier.
    bank
        Concepts and the random pool.
    inputs
        Class name -> images of that class (the inputs whose sensitivity is measured).
    cache
        Activation cache.
    results_dir
        Where ``tcav.parquet`` and ``cavs/`` go (``None``: nothing is written or reused).
    default_layers
        Layers used when ``run_tcav`` is given none.
    """

    model: ClassifierModel
    bank: ConceptBank
    inputs: Mapping[str, ImageSet]
    cache: ActivationCache
    results_dir: Path | None = None
    default_layers: tuple[str, ...] = ()

    @classmethod
    def from_workspace(
        cls,
        workspace: Workspace,
        *,
        split: str | Sequence[str] = "val",
        inputs_per_class: int | None = MAX_INPUTS_PER_CLASS,
        min_inputs_per_class: int = RECOMMENDED_INPUTS,
        seed: int = 0,
    ) -> TCAVSetup:
        """Model, bank (built and saved when missing), class inputs and cache of a workspace.

        Class inputs come from ``split``; a class with fewer than ``min_inputs_per_class`` cases
        there is topped up from the other held-out splits (never ``train``). At most
        ``inputs_per_class`` per class are kept, a sample drawn with ``seed`` (default
        :data:`MAX_INPUTS_PER_CLASS`; ``None``: all).
        """
        model = workspace.model()
        ds = workspace.dataset()
        bank = ConceptBank.for_workspace(workspace)
        bank.register_dataset(ds)
        rng = np.random.default_rng(seed)
        first = [split] if isinstance(split, str) else list(split)
        for sp in first:
            if sp not in ds.splits:
                raise ConceptError(f"unknown split {sp!r}; this data set has {ds.splits}")
        extra = [sp for sp in ds.splits if sp not in first and sp != "train"]
        inputs: dict[str, ImageSet] = {}
        for name in model.classes:
            rows = np.concatenate([ds.indices(sp, label=name) for sp in first])
            for sp in extra:
                if len(rows) >= min_inputs_per_class:
                    break
                more = ds.indices(sp, label=name)
                rows = np.concatenate([rows, more[: min_inputs_per_class - len(rows)]])
            if inputs_per_class is not None and len(rows) > inputs_per_class:
                rows = rng.choice(rows, inputs_per_class, replace=False)
            rows = np.sort(rows)
            if len(rows):
                inputs[name] = ds.image_set(rows, name=f"{ds.info.name}:inputs:{name}")
        try:
            layers = tuple(workspace.layers())
        except WorkspaceError:
            layers = ()
        return cls(model, bank, inputs, workspace.activation_cache, workspace.results_dir, layers)


@dataclass(frozen=True)
class TCAVConfig:
    """The settings of one TCAV analysis (the keyword arguments of :func:`run_tcav`).

    The values are checked by the first stage, :func:`concepts.tcav._plan.plan_analysis`, which
    raises :class:`ConceptError` with the fix for each bad one. See :func:`run_tcav` for the
    meaning of every field; ``split`` and ``inputs_per_class`` are not here because they only
    choose the class inputs when a workspace is turned into a :class:`TCAVSetup`.
    """

    runs: int = 20
    probe: str = "pattern"
    stability_probe: str | None = "auto"
    concepts: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    counterpart: str | None = None
    random_set_size: int | None = None
    significance: SignificanceConfig = field(default_factory=SignificanceConfig)
    probe_alpha: float = 1.0
    test_size: float = 0.3
    target: str = "logit"
    seed: int = 0
    reuse: bool = True
    save: bool = True
