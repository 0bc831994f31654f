"""Effect of an intervention: before/after metrics, flipped cases, slices and reliance.

:func:`measure_effect` evaluates one split of a data set with and without a spec (through a
:class:`~interventions.WhatIf` on the cached activations), lists the cases whose prediction
flips, breaks the metrics down by slice (with/without each artifact, per skin tone), measures
the counterfactual flip rates of the planted (and targeted) artifacts on twins — re-rendered for
DermSynth, made from the data itself otherwise (user-supplied pairs, or the artifact transplanted
with masks and inpainted away: :mod:`concepts.bank._twins`; the report names the method) — and, when a
concept bank is given, re-runs TCAV of the targeted concepts on the patched model and reports
their alignment category before and after. :func:`~interventions.record_effect` writes the
result to the store (``proposed`` if new, ``applied`` with evidence and metric deltas,
``effect_recorded``).

The pieces live beside it: the twins in :mod:`interventions._effect_twins`, TCAV before/after in
:mod:`interventions._effect_tcav`, the slice/flip tables in :mod:`interventions._effect_tables`
and the store record in :mod:`interventions._effect_record`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from concepts import ActivationCache, ClassifierModel, Dataset, ProgressFn, WorkbenchError
from concepts.bank import TwinSet
from concepts.discovery import is_dermsynth, planted_confounders
from concepts.models import StagedNet, resolve_positive_class
from interventions._effect_tables import flip_summary, flipped_rows, slice_rows
from interventions._effect_tcav import tcav_before_after
from interventions._effect_twins import real_twin_sets, targeted_artifacts, twin_activations
from interventions._spec import InterventionError, InterventionSpec
from interventions._whatif import WhatIf
from store import to_jsonable

__all__ = ["METRIC_KEYS", "EffectReport", "measure_effect", "tcav_reliance"]


#: Headline metrics compared before/after.
METRIC_KEYS: tuple[str, ...] = (
    "accuracy", "balanced_accuracy", "sensitivity", "specificity", "auc",
    "worst_group_accuracy", "clean_accuracy",
)



@dataclass(frozen=True)
class EffectReport:
    """Before/after effect of a spec on one split.

    Attributes
    ----------
    split
        The evaluated split.
    spec
        The intervention.
    before, after
        Metrics: :data:`METRIC_KEYS`, ``n``, ``worst_group`` and ``flip_rates``
        (artifact -> share of predictions that change when it is added to twins of the other
        class).
    flipped_cases
        Cases whose predicted class changed: ``case_id``, ``label``, ``before``, ``after``,
        ``p_before``, ``p_after`` (probability of the positive class).
    slices
        Per slice (``column``, ``value``, ``n``): accuracy, balanced accuracy, sensitivity,
        specificity before and after.
    reliance
        ``flip_rates`` (artifact -> before, after, relative reduction, n), ``tcav`` (concept
        rows before/after) and ``alignment`` (concept -> category before/after), when measured.
    model_id, dataset, dataset_hash
        What was evaluated.
    """

    split: str
    spec: InterventionSpec
    before: dict[str, Any]
    after: dict[str, Any]
    flipped_cases: list[dict[str, Any]] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    reliance: dict[str, Any] = field(default_factory=dict)
    model_id: str = ""
    dataset: str = ""
    dataset_hash: str = ""

    def deltas(self) -> dict[str, float]:
        """after - before of every numeric headline metric and flip rate (``flip_rate:<artifact>``)."""
        out: dict[str, float] = {}
        for k in METRIC_KEYS:
            a, b = self.after.get(k), self.before.get(k)
            if isinstance(a, int | float) and isinstance(b, int | float):
                out[k] = float(a) - float(b)
        fa, fb = self.after.get("flip_rates", {}), self.before.get("flip_rates", {})
        for art, rate in fa.items():
            if isinstance(rate, float) and isinstance(fb.get(art), float):
                out[f"flip_rate:{art}"] = rate - fb[art]
        out["n_flipped"] = float(len(self.flipped_cases))
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def to_json(self) -> dict[str, Any]:
        """``{"split", "spec", "before", "after", "flipped_cases", ...}`` (JSON-able)."""
        return to_jsonable({
            "split": self.split,
            "spec": self.spec.to_json(),
            "spec_id": self.spec.spec_id,
            "description": self.spec.describe(),
            "model_id": self.model_id,
            "dataset": self.dataset,
            "before": self.before,
            "after": self.after,
            "deltas": self.deltas(),
            "n_flipped": len(self.flipped_cases),
            "flipped_cases": self.flipped_cases,
            "slices": self.slices,
            "reliance": self.reliance,
        })


# ---------------------------------------------------------------------------------- TCAV
def tcav_reliance(
    model: ClassifierModel,
    spec: InterventionSpec,
    bank: Any,
    dataset: Dataset,
    split: str,
    *,
    cache: ActivationCache,
    layer: str | None = None,
    layers: Sequence[str] = (),
    runs: int = 10,
    inputs_per_class: int | None = 200,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """TCAV of the spec's concepts before and after the intervention, and their alignment.

    TCAV runs at ``layer`` (default: the deepest of ``layers`` below the intervention layer —
    else of all the model's layers below it — whose class-logit gradient varies across inputs);
    gradients flow through the patch, so a mask at ``pool`` changes the class-logit
    sensitivity seen at ``block15``. Only layers below the patch are used, so the activation
    cache never sees patched activations.

    Returns
    -------
    dict
        ``{"layer", "runs", "rows": [{concept, class, score_before, score_after,
        effect_before, effect_after, significant_before, significant_after}],
        "alignment": {concept: {"before", "after"}}}``.
    """
    return to_jsonable(tcav_before_after(  # type: ignore[no-any-return]
        model, spec, bank, dataset, split, cache=cache, layer=layer, layers=layers, runs=runs,
        inputs_per_class=inputs_per_class, seed=seed, progress=progress,
    ))


# ---------------------------------------------------------------------------------- measurement
def _whatif_for(
    model: ClassifierModel, spec: InterventionSpec, dataset: Dataset, split: str,
    cache: ActivationCache | None, twin_sets: Sequence[TwinSet] | None, twin_column: str | None,
    mask_column: str | None, twin_seed: int, positive_class: str | None, progress: ProgressFn | None,
) -> tuple[WhatIf, str | None]:
    pairs: list[tuple[str, str | None]] = list(planted_confounders(dataset))
    note = None
    real: list[TwinSet] = list(twin_sets or [])
    if is_dermsynth(dataset) and twin_sets is None:
        for c in targeted_artifacts(spec, dataset):  # not planted: twins from every class
            if c not in {a for a, _ in pairs}:
                pairs.append((c, None))
    else:
        pairs = []
        if twin_sets is None:
            real, note = real_twin_sets(spec, dataset, dataset.indices(split), twin_column, mask_column,
                                         twin_seed)
    idx = dataset.indices(split)
    keep = not isinstance(model.module, StagedNet)  # other models re-run from the images
    acts = [twin_activations(model, t, idx, spec.layer, cache=cache, keep_images=keep, progress=progress)
            for t in real]
    wi = WhatIf.from_dataset(
        model, dataset, split, spec.layer, cache=cache, spec=spec, twin_artifacts=pairs,
        twin_seed=twin_seed, progress=progress, twins=acts, positive_class=positive_class,
    )
    return wi, note


def measure_effect(
    model: ClassifierModel,
    spec: InterventionSpec,
    dataset: Dataset,
    split: str,
    *,
    cache: ActivationCache | None = None,
    whatif: WhatIf | None = None,
    bank: Any = None,
    tcav_layers: Sequence[str] = (),
    tcav_runs: int = 10,
    min_slice: int = 5,
    positive_class: str | None = None,
    twins: Sequence[TwinSet] | None = None,
    twin_column: str | None = None,
    mask_column: str | None = None,
    twin_seed: int = 0,
    progress: ProgressFn | None = None,
) -> EffectReport:
    """Before/after effect of ``spec`` on ``split`` of ``dataset``.

    Parameters
    ----------
    model, spec
        The model and the intervention (ids must match).
    dataset, split
        What to evaluate.
    cache
        Activation cache (activations of the split and of the twins are reused).
    whatif
        A prepared :class:`WhatIf` of this split (skips building one and its twins).
    bank
        Concept bank: when given, TCAV of the spec's concepts is re-run on the patched model.
    tcav_layers, tcav_runs
        Candidate TCAV layers (the deepest one below the intervention layer is used) and runs.
    min_slice
        Smallest slice reported.
    positive_class
        Class of sensitivity/specificity/AUC (default melanoma where present, else the first).
    twins
        Counterfactual twins to measure flip rates on (overrides everything below).
    twin_column, mask_column
        For data other than DermSynth: the column naming each case's twin (case id or image
        path), or the column of artifact mask paths (the artifact is transplanted from marked
        cases of the split into clean ones, and inpainted away from marked ones). Default: the
        columns ``<artifact>_twin``/``twin`` and ``<artifact>_mask``/``mask`` when present.
        DermSynth data re-render exact twins of the planted and targeted artifacts.
    twin_seed
        Seed of the transplant donors.
    progress
        Progress callback.
    """
    spec.check_model(model.model_id, model.layers)
    try:
        pos = resolve_positive_class(model.classes, positive_class)
    except WorkbenchError as exc:
        raise InterventionError(str(exc)) from exc
    note = None
    if whatif is not None:
        wi = whatif
    else:
        wi, note = _whatif_for(model, spec, dataset, split, cache, twins, twin_column, mask_column,
                               twin_seed, pos, progress)
    run = _TCAVRerun(bank, cache, tuple(tcav_layers), tcav_runs) if bank is not None and cache is not None else None
    return _effect_report(model, spec, dataset, split, wi, pos, min_slice, note, run, progress)


@dataclass(frozen=True)
class _TCAVRerun:
    """What re-running TCAV on the patched model needs."""

    bank: Any
    cache: ActivationCache
    layers: tuple[str, ...]
    runs: int


def _effect_report(
    model: ClassifierModel, spec: InterventionSpec, dataset: Dataset, split: str, wi: WhatIf, pos: str,
    min_slice: int, note: str | None, run: _TCAVRerun | None, progress: ProgressFn | None,
) -> EffectReport:
    """Evaluate the what-if with and without the spec; flip rates, TCAV (when ``run``), slices
    and flipped cases (``note``: why some twins are missing)."""
    before = wi.evaluate(None, flip_rates=False)
    after = wi.evaluate(spec, flip_rates=False)
    fr_b, fr_a = wi.flip_rates(None, before.proba), wi.flip_rates(spec, after.proba)
    before.metrics["flip_rates"] = {k: v["rate"] for k, v in fr_b.items()}
    after.metrics["flip_rates"] = {k: v["rate"] for k, v in fr_a.items()}
    reliance: dict[str, Any] = {"flip_rates": flip_summary(fr_b, fr_a)}
    if note:
        reliance["twins_note"] = note
    if run is not None:
        try:
            reliance["tcav"] = tcav_reliance(
                model, spec, run.bank, dataset, split, cache=run.cache, layers=run.layers, runs=run.runs,
                progress=progress,
            )
        except WorkbenchError as exc:
            reliance["tcav"] = {"error": str(exc)}
    return EffectReport(
        split=split,
        spec=spec,
        before=to_jsonable(before.metrics),
        after=to_jsonable(after.metrics),
        flipped_cases=to_jsonable(flipped_rows(wi, before.proba, after.proba, after.flipped, model.classes.index(pos))),
        slices=to_jsonable(slice_rows(wi, dataset, dataset.indices(split), before.proba, after.proba, min_slice)),
        reliance=to_jsonable(reliance),
        model_id=model.model_id,
        dataset=dataset.info.name,
        dataset_hash=dataset.info.content_hash,
    )
