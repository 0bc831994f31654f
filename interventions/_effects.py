"""Effect of an intervention: before/after metrics, flipped cases, slices and reliance.

:func:`measure_effect` evaluates one split of a data set with and without a spec (through a
:class:`~interventions.WhatIf` on the cached activations), lists the cases whose prediction
flips, breaks the metrics down by slice (with/without each artifact, per skin tone), measures
the counterfactual flip rates of the planted (and targeted) artifacts on twins — re-rendered for
DermSynth, made from the data itself otherwise (user-supplied pairs, or the artifact transplanted
with masks and inpainted away: :mod:`concepts.bank._twins`; the report names the method) — and, when a
concept bank is given, re-runs TCAV of the targeted concepts on the patched model and reports
their alignment category before and after. :func:`record_effect` writes the result to the
store (``proposed`` if new, ``applied`` with evidence and metric deltas, ``effect_recorded``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from concepts import (
    ARTIFACTS,
    ActivationCache,
    ClassifierModel,
    DataError,
    Dataset,
    ImageSet,
    ModelError,
    ProgressFn,
    StagedNet,
    TwinSet,
    WorkbenchError,
    annotated_artifacts,
    extract_activations,
    hash_array,
    is_dermsynth,
    planted_confounders,
    real_twins,
)
from concepts.models import resolve_positive_class
from interventions._ops import apply_spec
from interventions._spec import InterventionError, InterventionSpec
from interventions._whatif import TwinActivations, WhatIf
from store import atomic_path, to_jsonable

__all__ = [
    "METRIC_KEYS",
    "EffectReport",
    "artifact_twins",
    "measure_effect",
    "record_effect",
    "tcav_reliance",
    "twin_activations",
]


#: Headline metrics compared before/after.
METRIC_KEYS: tuple[str, ...] = (
    "accuracy", "balanced_accuracy", "sensitivity", "specificity", "auc",
    "worst_group_accuracy", "clean_accuracy",
)

_SLICE_KEYS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity")



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


# ---------------------------------------------------------------------------------- slices
def _slices(
    wi: WhatIf, dataset: Dataset, idx: np.ndarray, p0: np.ndarray, p1: np.ndarray, min_size: int
) -> list[dict[str, Any]]:
    cases = dataset.cases
    specs: list[tuple[str, str, np.ndarray]] = []
    for art in dataset.info.artifacts or tuple(a for a in ARTIFACTS if a in cases.columns):
        if art not in cases.columns:
            continue
        flag = cases[art].to_numpy()[idx].astype(bool)
        specs += [(art, "with", flag), (art, "without", ~flag)]
    for col in ("skin_tone", "fitzpatrick", "skin_type"):
        if col in cases.columns:
            vals = cases[col].astype(str).to_numpy()[idx]
            specs += [(col, str(v), vals == v) for v in sorted(set(vals))]
            break
    out = []
    for col, val, mask in specs:
        rows = np.flatnonzero(mask)
        if len(rows) < min_size:
            continue
        mb = wi.metrics(p0, rows)
        ma = wi.metrics(p1, rows)
        row: dict[str, Any] = {"column": col, "value": val, "n": len(rows)}
        for k in _SLICE_KEYS:
            row[f"{k}_before"] = mb.get(k)
            row[f"{k}_after"] = ma.get(k)
        out.append(row)
    return out


# ---------------------------------------------------------------------------------- TCAV
def _alignment_categories(table: Any, concepts: Sequence[str]) -> dict[str, str]:
    try:
        from graph import alignment_report
    except ImportError:  # pragma: no cover - graph always installed with the project
        return {}
    try:
        rep = alignment_report(table)
    except WorkbenchError:
        return {}
    out = {}
    for c in concepts:
        try:
            out[c] = rep.category(c)
        except WorkbenchError:
            continue
    return out


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
    from concepts.tcav import TCAVSetup, run_tcav

    names = model.layers
    top = names.index(spec.layer)
    if layer is not None:
        if layer not in names or names.index(layer) >= top:
            raise InterventionError(
                f"TCAV of the patched model must run below the intervention layer {spec.layer!r}, "
                f"not at {layer!r}"
            )
        candidates = [layer]
    else:  # deepest first; a layer whose gradient is constant (linear up to the logits) is skipped
        listed = [lay for lay in layers if lay in names and names.index(lay) < top]
        candidates = sorted(listed or names[:top], key=names.index, reverse=True)
        if not candidates:
            raise InterventionError(f"no layer below {spec.layer!r} to run TCAV at")
    rng = np.random.default_rng(seed)
    inputs = {}
    for cls_ in model.classes:
        rows = dataset.indices(split, label=cls_)
        if inputs_per_class is not None and len(rows) > inputs_per_class:
            rows = np.sort(rng.choice(rows, inputs_per_class, replace=False))
        if len(rows):
            inputs[cls_] = dataset.image_set(rows, name=f"{dataset.info.name}:{split}:{cls_}")
    concepts = [c for c in spec.concepts if c in bank]
    if not concepts:
        return {"layer": None, "runs": runs, "rows": [], "alignment": {},
                "note": "the spec's concepts are not in the concept bank"}
    kw: dict[str, Any] = {"runs": runs, "concepts": concepts, "seed": seed, "save": False, "reuse": False}
    setup = TCAVSetup(model, bank, inputs, cache, None, tuple(candidates))
    skipped: list[str] = []
    for lay in candidates:
        try:
            before = run_tcav(setup, [lay], progress=progress, **kw)
        except ModelError as exc:
            skipped.append(str(exc))
            continue
        layer = lay
        break
    else:
        raise InterventionError("no layer usable for TCAV below the intervention: " + "; ".join(skipped))
    with apply_spec(model, spec):
        after = run_tcav(setup, [layer], progress=progress, **kw)
    b, a = before.table, after.table
    out_rows: list[dict[str, Any]] = []
    for (_, rb), (_, ra) in zip(b.iterrows(), a.iterrows(), strict=True):
        out_rows.append({
            "concept": rb["concept"], "class": rb["class"],
            "score_before": rb["score_mean"], "score_after": ra["score_mean"],
            "effect_before": rb["effect"], "effect_after": ra["effect"],
            "significant_before": bool(rb["significant"]), "significant_after": bool(ra["significant"]),
        })
    cat_b = _alignment_categories(b, concepts)
    cat_a = _alignment_categories(a, concepts)
    alignment = {c: {"before": cat_b.get(c), "after": cat_a.get(c)} for c in concepts}
    return to_jsonable({"layer": layer, "runs": runs, "rows": out_rows, "alignment": alignment})


# ---------------------------------------------------------------------------------- twins
def twin_activations(
    model: ClassifierModel,
    twin_set: TwinSet,
    idx: np.ndarray,
    layer: str,
    *,
    cache: ActivationCache | None = None,
    keep_images: bool = False,
    progress: ProgressFn | None = None,
) -> TwinActivations:
    """Activations at ``layer`` of a :class:`~concepts.TwinSet` whose originals lie in the
    evaluation rows ``idx`` (twins of rows outside ``idx`` are dropped)."""
    pos = {int(r): i for i, r in enumerate(np.asarray(idx))}
    keep = np.array([int(r) in pos for r in twin_set.rows], dtype=bool)
    rows = np.array([pos[int(r)] for r in twin_set.rows[keep]], dtype=np.int64)
    images = np.asarray(twin_set.images)[keep]
    if len(rows) == 0:
        acts = np.zeros((0, 1), np.float32)
    elif cache is not None:
        iset = ImageSet(name=f"twins:{twin_set.key}", images=images,
                        key=hash_array(images, twin_set.method, "real-twins"))
        acts = np.asarray(cache.get(model, layer, iset, progress=progress)[layer])
    else:
        acts = extract_activations(model, images, [layer], progress=progress)[layer]
    return TwinActivations(twin_set.artifact, rows, acts, None, images if keep_images else None,
                           direction=twin_set.direction, method=twin_set.method)


def _targeted_artifacts(spec: InterventionSpec, dataset: Dataset) -> list[str]:
    """The spec's concepts that are artifact columns of the data set (``ink#2`` counts as ``ink``)."""
    cols = set(annotated_artifacts(dataset)) | {a for a in ARTIFACTS if a in dataset.cases.columns}
    out: list[str] = []
    for c in spec.concepts:
        base = c.split("#", 1)[0]
        if base in cols and base not in out:
            out.append(base)
    return out


def _real_twin_sets(
    spec: InterventionSpec, dataset: Dataset, idx: np.ndarray, twin_column: str | None,
    mask_column: str | None, seed: int,
) -> tuple[list[TwinSet], str | None]:
    """Real twins of the targeted artifacts, and a note when none could be made."""
    arts = _targeted_artifacts(spec, dataset)
    sets: list[TwinSet] = []
    for art in arts:
        sets += real_twins(dataset, idx, art, twin_column=twin_column, mask_column=mask_column, seed=seed)
    if sets or not arts:
        return sets, None
    return sets, (
        f"no flip rates for {', '.join(arts)}: this is not DermSynth data and it has no twin column "
        "(a case's twin: case id or image path) nor a mask column to transplant the artifact — "
        "name them with --twins / --masks"
    )


def artifact_twins(
    model: ClassifierModel,
    dataset: Dataset,
    split: str,
    layer: str,
    *,
    cache: ActivationCache | None = None,
    artifacts: Sequence[str] | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> tuple[list[TwinActivations], str | None]:
    """Real counterfactual twins of a data set's annotated artifacts on ``split``, as
    activations at ``layer``, for a :class:`WhatIf` (``twins=``) — and a note saying which
    artifacts' flips cannot be measured and why.

    DermSynth data get ``([], None)``: the what-if re-renders their planted artifacts itself.
    Other data get their twins from the data (:func:`concepts.real_twins`: a twin column
    ``<artifact>_twin``/``twin`` first, else the artifact transplanted with a mask column
    ``<artifact>_mask``/``mask`` from the split's marked cases); never a synthetic renderer.

    Parameters
    ----------
    artifacts
        The artifacts (default: the annotated artifact columns, :func:`concepts.annotated_artifacts`).
    seed
        Seed of the transplant donors.
    """
    if is_dermsynth(dataset):
        return [], None
    cols = dataset.cases.columns
    arts = [a for a in (artifacts if artifacts is not None else annotated_artifacts(dataset)) if a in cols]
    if not arts:
        return [], ("flips cannot be measured: the data set has no annotated artifact column, so there "
                    "is no artifact to add to or remove from its images")
    return _artifact_twins(model, dataset, split, layer, arts, cache, seed, progress)


def _artifact_twins(
    model: ClassifierModel, dataset: Dataset, split: str, layer: str, arts: Sequence[str],
    cache: ActivationCache | None, seed: int, progress: ProgressFn | None,
) -> tuple[list[TwinActivations], str | None]:
    idx = dataset.indices(split)
    keep = not isinstance(model.module, StagedNet)  # other models re-run from the images
    out: list[TwinActivations] = []
    missing: list[str] = []
    failed: list[str] = []
    for art in arts:
        key = hash_array(np.asarray(idx), dataset.info.content_hash, "artifact-twins-v1", art, str(seed))
        acts_or_none = (_cached_twins(model, dataset, layer, art, cache, key, len(idx))
                        if cache is not None and not keep else None)
        if acts_or_none is None:
            try:
                sets = real_twins(dataset, idx, art, seed=seed)
            except DataError as exc:
                failed.append(f"{art} ({' '.join(str(exc).split())})")
                continue
            acts = [twin_activations(model, t, idx, layer, cache=cache, keep_images=keep, progress=progress)
                    for t in sets if len(t)]
            acts = [a for a in acts if len(a.rows)]
            if cache is not None:
                _store_twins(model, dataset, layer, art, cache, key, acts)
        else:
            acts = acts_or_none
        if not acts:
            missing.append(art)
        out += acts
    notes = []
    if missing:
        twin = ", ".join(f"`{a}_twin`" for a in missing)
        mask = ", ".join(f"`{a}_mask`" for a in missing)
        notes.append(
            f"flips of {', '.join(missing)} cannot be measured on the {split} split: the data set has no "
            f"twin column ({twin} or `twin`: each case's twin, a case id or an image path) nor a mask "
            f"column ({mask} or `mask`: an image of the artifact's pixels, to transplant it from real "
            "images into clean ones) with entries for this split — import them as extra columns; "
            "a renderer's synthetic artifact is never used on real photographs"
        )
    if failed:
        notes.append("twins could not be made for " + "; ".join(failed))
    return out, " ".join(notes) or None


def _twin_probe(dataset: Dataset, art: str, key: str) -> ImageSet:
    return ImageSet(name=f"{dataset.info.name}:twins:{art}", images=np.zeros((0, 1, 1, 3), np.uint8), key=key)


def _cached_twins(
    model: ClassifierModel, dataset: Dataset, layer: str, art: str, cache: ActivationCache, key: str, n: int,
) -> list[TwinActivations] | None:
    """The twins' activations stored by an earlier call (``train``'s precomputation), without
    making the twin images again; None when absent or unreadable (then they are remade)."""
    path = cache.root / model.model_id / layer / f"twins-{key}.json"
    try:
        entries = json.loads(path.read_text())
        out = []
        for i, e in enumerate(entries):
            probe = _twin_probe(dataset, art, f"{key}-{i}")
            if not cache.path(model, layer, probe).is_file():
                return None
            rows = np.asarray(e["rows"], dtype=np.int64)
            acts = np.asarray(cache.get(model, layer, probe)[layer])
            bad_rows = rows.ndim != 1 or (rows < 0).any() or (rows >= n).any()
            if bad_rows or len(rows) != len(acts) or e["direction"] not in ("add", "remove"):
                return None
            out.append(TwinActivations(art, rows, acts, None, None, direction=str(e["direction"]),
                                       method=str(e["method"])))
        return out
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store_twins(
    model: ClassifierModel, dataset: Dataset, layer: str, art: str, cache: ActivationCache, key: str,
    acts: Sequence[TwinActivations],
) -> None:
    entries = []
    for i, a in enumerate(acts):
        cache.put(model, layer, _twin_probe(dataset, art, f"{key}-{i}"), a.acts)
        entries.append({"rows": a.rows.tolist(), "direction": a.direction, "method": a.method})
    path = cache.root / model.model_id / layer / f"twins-{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, private=False) as tmp:
        tmp.write_text(json.dumps(entries))

# ---------------------------------------------------------------------------------- measurement
def _flip_summary(fr_b: Mapping[str, Any], fr_a: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key in fr_b:
        b, a = fr_b[key]["rate"], fr_a[key]["rate"]
        out[key] = {
            "before": b, "after": a, "n": fr_b[key]["n"], "to_class": fr_b[key]["to_class"],
            "artifact": fr_b[key].get("artifact", key), "direction": fr_b[key].get("direction", "add"),
            "method": fr_b[key].get("method") or "render",
            "reduction": (b - a) / b if b and math.isfinite(b) and b > 0 else None,
        }
    return out


def _whatif_for(
    model: ClassifierModel, spec: InterventionSpec, dataset: Dataset, split: str,
    cache: ActivationCache | None, twin_sets: Sequence[TwinSet] | None, twin_column: str | None,
    mask_column: str | None, twin_seed: int, positive_class: str | None, progress: ProgressFn | None,
) -> tuple[WhatIf, str | None]:
    pairs: list[tuple[str, str | None]] = list(planted_confounders(dataset))
    note = None
    real: list[TwinSet] = list(twin_sets or [])
    if is_dermsynth(dataset) and twin_sets is None:
        for c in _targeted_artifacts(spec, dataset):  # not planted: twins from every class
            if c not in {a for a, _ in pairs}:
                pairs.append((c, None))
    else:
        pairs = []
        if twin_sets is None:
            real, note = _real_twin_sets(spec, dataset, dataset.indices(split), twin_column, mask_column,
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
    before = wi.evaluate(None, flip_rates=False)
    after = wi.evaluate(spec, flip_rates=False)
    fr_b, fr_a = wi.flip_rates(None, before.proba), wi.flip_rates(spec, after.proba)
    before.metrics["flip_rates"] = {k: v["rate"] for k, v in fr_b.items()}
    after.metrics["flip_rates"] = {k: v["rate"] for k, v in fr_a.items()}
    reliance: dict[str, Any] = {"flip_rates": _flip_summary(fr_b, fr_a)}
    if note:
        reliance["twins_note"] = note
    if bank is not None and cache is not None:
        try:
            reliance["tcav"] = tcav_reliance(
                model, spec, bank, dataset, split, cache=cache, layers=tcav_layers, runs=tcav_runs,
                progress=progress,
            )
        except WorkbenchError as exc:
            reliance["tcav"] = {"error": str(exc)}
    return EffectReport(
        split=split,
        spec=spec,
        before=to_jsonable(before.metrics),
        after=to_jsonable(after.metrics),
        flipped_cases=to_jsonable(_flipped_rows(wi, before.proba, after.proba, after.flipped, model.classes.index(pos))),
        slices=to_jsonable(_slices(wi, dataset, dataset.indices(split), before.proba, after.proba, min_slice)),
        reliance=to_jsonable(reliance),
        model_id=model.model_id,
        dataset=dataset.info.name,
        dataset_hash=dataset.info.content_hash,
    )


def _flipped_rows(
    wi: WhatIf, p0: np.ndarray, p1: np.ndarray, rows: np.ndarray, k_pos: int
) -> list[dict[str, Any]]:
    classes = wi.model.classes
    return [{
        "case_id": wi.case_ids[r],
        "label": classes[int(wi.labels[r])],
        "before": classes[int(p0[r].argmax())],
        "after": classes[int(p1[r].argmax())],
        "p_before": float(p0[r, k_pos]),
        "p_after": float(p1[r, k_pos]),
    } for r in rows]


# ---------------------------------------------------------------------------------- store
def record_effect(
    report: EffectReport,
    store: Any,
    actor: Any,
    rationale: str,
    *,
    model: ClassifierModel | None = None,
    intervention_id: str | None = None,
) -> Any:
    """Record an applied intervention and its measured effect in the store.

    Proposes the intervention first when the store has never seen it (id
    ``iv-<spec id>``), then appends ``applied`` (spec, rationale, evidence, metric deltas) and
    ``effect_recorded`` (metrics before/after, reliance). The actor must be a ``store.Actor``
    whose role may do so (store errors propagate with their message).

    Returns
    -------
    store.Event
        The ``applied`` event.
    """
    from store import EventFilter

    iid = intervention_id or f"iv-{report.spec.spec_id}"
    spec_json = report.spec.to_json()
    concept = ",".join(report.spec.concepts)
    weights = model.weights_sha256 if model is not None else None
    if not store.events(EventFilter(intervention_id=iid, action="proposed"), last=1):
        if hasattr(actor, "can") and not actor.can("proposed"):
            raise InterventionError(
                f"intervention {iid} ({report.spec.describe()}) has not been proposed yet, and the "
                f"{getattr(actor.role, 'value', actor.role)} role may not propose: a dermatologist "
                "must propose it first (the same command with --role dermatologist)"
            )
        store.record_intervention(
            actor, spec_json, intervention_id=iid, rationale=rationale,
            evidence={"description": report.spec.describe()}, model_id=report.model_id,
            weights_sha_before=weights, dataset_hash=report.dataset_hash or None, concept=concept,
        )
    evidence = to_jsonable({
        "description": report.spec.describe(),
        "spec_id": report.spec.spec_id,
        "dataset": report.dataset,
        "split": report.split,
        "before": report.before,
        "after": report.after,
        "n_flipped": len(report.flipped_cases),
        "flipped_cases": [c["case_id"] for c in report.flipped_cases][:500],
        "reliance": report.reliance,
    })
    event = store.append_event(
        actor, "applied", spec=spec_json, rationale=rationale, evidence=evidence,
        metric_deltas=report.deltas(), model_id=report.model_id, weights_sha_before=weights,
        weights_sha_after=weights, dataset_hash=report.dataset_hash or None,
        intervention_id=iid, concept=concept,
    )
    flat_b = {k: report.before.get(k) for k in METRIC_KEYS}
    flat_a = {k: report.after.get(k) for k in METRIC_KEYS}
    for art, fr in report.reliance.get("flip_rates", {}).items():
        flat_b[f"flip_rate:{art}"], flat_a[f"flip_rate:{art}"] = fr.get("before"), fr.get("after")
    store.record_effect(
        actor, iid, to_jsonable(flat_b), to_jsonable(flat_a), reliance=to_jsonable(report.reliance) or None,
        rationale=rationale, model_id=report.model_id, weights_sha_before=weights,
        weights_sha_after=weights, dataset_hash=report.dataset_hash or None,
    )
    return event
