"""The first two stages of a TCAV analysis: validate and plan, then the class gradients.

:func:`plan_analysis` checks every setting against the setup and fixes what is analysed
(concepts, classes, requested layers, probes) in a frozen :class:`TCAVPlan`;
:func:`compute_class_gradients` computes the gradient of each analysed class's target at each
layer from cached activations, dropping (or, for layers the caller named, refusing) layers
whose gradient is the same for every input.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from concepts._errors import ConceptError, ModelError
from concepts.bank import MIN_EXAMPLES, Concept, ConceptBank
from concepts.models import on_device
from concepts.tcav._choices import PROBES
from concepts.tcav._core import TARGETS, check_gradients_vary, class_gradients, shared_logit_share
from concepts.tcav._setup import RECOMMENDED_INPUTS, TCAVConfig, TCAVSetup, default_layers

if TYPE_CHECKING:
    from collections.abc import Sequence

    from concepts._progress import ProgressFn

__all__ = ["SHARED_LOGIT_WARN", "ClassGradients", "TCAVPlan", "compute_class_gradients", "plan_analysis"]

#: Share of the logit gradient common to all classes above which a warning is given.
SHARED_LOGIT_WARN = 0.5


@dataclass(frozen=True)
class TCAVPlan:
    """What one TCAV analysis covers, after every setting was checked.

    Attributes
    ----------
    bank
        The concept bank (with the counterpart override applied).
    concepts
        The analysed concepts, in order.
    classes
        The analysed class names.
    layers
        The requested layers (deduplicated, in order); some may turn out unusable.
    layers_named
        The caller named the layers (an unusable one is then an error, not a warning).
    probe, stability_probe
        The CAV probe and the second probe whose conclusions must agree (``None``: no check).
    warnings
        What the caller should know (small input sets).
    """

    bank: ConceptBank
    concepts: tuple[Concept, ...]
    classes: tuple[str, ...]
    layers: tuple[str, ...]
    layers_named: bool
    probe: str
    stability_probe: str | None
    warnings: tuple[str, ...]

    @property
    def probes(self) -> tuple[str, ...]:
        """The probes trained: the main one first, then the stability probe if any."""
        return (self.probe,) + ((self.stability_probe,) if self.stability_probe else ())


def _alt_probe(probe: str, stability_probe: str | None) -> str | None:
    if stability_probe is None or stability_probe == "none":
        return None
    if stability_probe == "auto":
        return "ridge" if probe == "pattern" else "pattern"
    if stability_probe not in PROBES:
        raise ConceptError(f"unknown stability probe {stability_probe!r}; choose one of {list(PROBES)}")
    return None if stability_probe == probe else stability_probe


def plan_analysis(setup: TCAVSetup, layers: Sequence[str] | None, config: TCAVConfig) -> TCAVPlan:
    """Validate the settings against the setup and fix what the analysis covers.

    Raises
    ------
    ConceptError
        A bad setting (runs < 2, unknown probe / target / counterpart / concept / class), an
        empty bank, no random pool, a concept side with too few examples, a class without inputs.
    ModelError
        A layer the model does not have.
    """
    if config.runs < 2:
        raise ConceptError(f"runs must be at least 2 for a significance test (got {config.runs})")
    if config.probe not in PROBES:
        raise ConceptError(f"unknown probe {config.probe!r}; choose one of {list(PROBES)}")
    if config.target not in TARGETS:
        raise ConceptError(f"unknown target {config.target!r}; choose one of {list(TARGETS)}")
    alt = _alt_probe(config.probe, config.stability_probe)
    bank = setup.bank
    if config.counterpart is not None:
        if config.counterpart not in ("random", "negative"):
            raise ConceptError(f"counterpart must be 'random' or 'negative', not {config.counterpart!r}")
        bank = bank.with_counterpart(config.counterpart)
    chosen = _chosen_concepts(bank, config.concepts)
    classes, warnings = _chosen_classes(setup, config.classes)
    layer_list = tuple(dict.fromkeys(
        layers if layers is not None else (setup.default_layers or default_layers(setup.model))))
    for layer in layer_list:
        setup.model.check_layer(layer)
    return TCAVPlan(bank, chosen, classes, layer_list, layers is not None, config.probe, alt, tuple(warnings))


def _chosen_concepts(bank: ConceptBank, names: Sequence[str] | None) -> tuple[Concept, ...]:
    chosen = tuple(bank[n] for n in names) if names is not None else tuple(bank)
    if not chosen:
        raise ConceptError("the concept bank is empty — add concepts before running TCAV")
    if bank.random_pool is None:
        raise ConceptError("the concept bank has no random pool — set one (set_random_pool_from_dataset)")
    for con in chosen:
        small = [ex for ex in (con.positive, con.negative if con.counterpart == "negative" else None)
                 if ex is not None and len(ex) < MIN_EXAMPLES]
        if small:
            raise ConceptError(
                f"concept {con.name!r} has only {len(small[0])} examples on one side — a CAV needs at "
                f"least {MIN_EXAMPLES}; add examples (at least 30 are recommended)"
            )
    return chosen


def _chosen_classes(setup: TCAVSetup, names: Sequence[str] | None) -> tuple[tuple[str, ...], list[str]]:
    model = setup.model
    classes = tuple(names) if names is not None else tuple(c for c in model.classes if c in setup.inputs)
    warnings: list[str] = []
    for c in classes:
        if c not in model.classes:
            raise ConceptError(f"unknown class {c!r}; the model's classes are {list(model.classes)}")
        if c not in setup.inputs or len(setup.inputs[c]) == 0:
            raise ConceptError(f"no inputs of class {c!r} — the split has no cases of that class")
        if len(setup.inputs[c]) < RECOMMENDED_INPUTS:
            warnings.append(
                f"class {c!r}: only {len(setup.inputs[c])} inputs (>= {RECOMMENDED_INPUTS} recommended)"
            )
    return classes, warnings


# --------------------------------------------------------------------------- class gradients
@dataclass(frozen=True)
class ClassGradients:
    """The class-target gradients at every usable layer.

    Attributes
    ----------
    layers
        The usable layers (the plan's, less those whose gradient does not vary), in order.
    by_layer
        ``layer -> class -> (N_class_inputs, D)`` gradients of the class target.
    warnings
        Skipped layers and layers where the class logits share most of their gradient.
    timings
        Seconds spent on the inputs' activations and on the gradients.
    """

    layers: tuple[str, ...]
    by_layer: Mapping[str, Mapping[str, np.ndarray]]
    warnings: tuple[str, ...]
    timings: Mapping[str, float]

    def of(self, layer: str, cls: str) -> np.ndarray:
        """The gradients of class ``cls`` at ``layer``."""
        return self.by_layer[layer][cls]


def compute_class_gradients(
    setup: TCAVSetup, plan: TCAVPlan, target: str, progress: ProgressFn | None = None
) -> ClassGradients:
    """One backward pass per (layer, class) from cached activations of the class inputs.

    Raises
    ------
    ModelError
        A layer the caller named has a constant gradient, or no layer is usable at all.
    """
    model, cache = setup.model, setup.cache
    t0 = time.perf_counter()
    acts = {c: cache.get(model, list(plan.layers), setup.inputs[c], progress=progress) for c in plan.classes}
    timings = {"input_activations": time.perf_counter() - t0}
    t0 = time.perf_counter()
    by_layer: dict[str, dict[str, np.ndarray]] = {}
    warnings: list[str] = []
    with on_device(model, cache.compute.device):  # the gradients run on the device; moved once
        for layer in plan.layers:
            try:
                by_layer[layer] = _layer_gradients(setup, plan, layer, acts, target, warnings)
            except ModelError as exc:
                if plan.layers_named:
                    raise
                warnings.append(f"skipped {exc}")
    if not by_layer:
        raise ModelError("no layer usable for TCAV: " + "; ".join(warnings))
    timings["gradients"] = time.perf_counter() - t0
    return ClassGradients(tuple(by_layer), by_layer, tuple(warnings), timings)


def _layer_gradients(
    setup: TCAVSetup, plan: TCAVPlan, layer: str, acts: Mapping[str, Mapping[str, np.ndarray]], target: str,
    warnings: list[str],
) -> dict[str, np.ndarray]:
    """Every class's gradients at one layer (``ModelError`` when they do not vary); appends a
    warning to ``warnings`` when the raw class logits share most of their gradient."""
    model = setup.model
    grads: dict[str, np.ndarray] = {}
    for c in plan.classes:
        g = class_gradients(model, layer, acts[c][layer], model.classes.index(c),
                            images=setup.inputs[c].images, target=target)
        check_gradients_vary(g, layer)
        grads[c] = g
    if target == "logit" and len(model.classes) > 1:
        c0 = plan.classes[0]
        share = shared_logit_share(model, layer, acts[c0][layer][:64], images=setup.inputs[c0].images[:64])
        if share > SHARED_LOGIT_WARN:
            warnings.append(
                f"layer {layer!r}: {share:.0%} of the class-logit gradient is shared by all "
                "classes (softmax ignores it), so raw-logit TCAV scores of all classes move "
                "together — rerun with target='centered_logit'"
            )
    return grads
