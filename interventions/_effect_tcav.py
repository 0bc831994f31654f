"""TCAV of an intervention's concepts before and after it, and their alignment category.

The stages of :func:`interventions.tcav_reliance`: choose the layer (below the intervention,
so the activation cache never sees patched activations), sample the inputs per class, run
TCAV on the unpatched model at the first usable layer, then on the patched one, and pair the
rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from concepts import (
    ActivationCache,
    ClassifierModel,
    Dataset,
    ImageSet,
    ModelError,
    ProgressFn,
    WorkbenchError,
)
from interventions._ops import apply_spec
from interventions._spec import InterventionError, InterventionSpec

__all__ = ["tcav_before_after"]


def tcav_before_after(
    model: ClassifierModel, spec: InterventionSpec, bank: Any, dataset: Dataset, split: str, *,
    cache: ActivationCache, layer: str | None, layers: Sequence[str], runs: int,
    inputs_per_class: int | None, seed: int, progress: ProgressFn | None,
) -> dict[str, Any]:
    """See :func:`interventions.tcav_reliance` (the result is not yet JSON-cleaned)."""
    from concepts.tcav import TCAVSetup, run_tcav

    candidates = _layer_candidates(model, spec, layer, layers)
    inputs = _class_inputs(model, dataset, split, inputs_per_class, seed)
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
        used = lay
        break
    else:
        raise InterventionError("no layer usable for TCAV below the intervention: " + "; ".join(skipped))
    with apply_spec(model, spec):
        after = run_tcav(setup, [used], progress=progress, **kw)
    b, a = before.table, after.table
    cat_b = _alignment_categories(b, concepts)
    cat_a = _alignment_categories(a, concepts)
    alignment = {c: {"before": cat_b.get(c), "after": cat_a.get(c)} for c in concepts}
    return {"layer": used, "runs": runs, "rows": _paired_rows(b, a), "alignment": alignment}


def _layer_candidates(
    model: ClassifierModel, spec: InterventionSpec, layer: str | None, layers: Sequence[str]
) -> list[str]:
    """``[layer]`` when given (it must lie below the intervention), else the layers below the
    intervention (of ``layers``, or all the model's), deepest first."""
    names = model.layers
    top = names.index(spec.layer)
    if layer is not None:
        if layer not in names or names.index(layer) >= top:
            raise InterventionError(
                f"TCAV of the patched model must run below the intervention layer {spec.layer!r}, "
                f"not at {layer!r}"
            )
        return [layer]
    # deepest first; a layer whose gradient is constant (linear up to the logits) is skipped
    listed = [lay for lay in layers if lay in names and names.index(lay) < top]
    candidates = sorted(listed or names[:top], key=names.index, reverse=True)
    if not candidates:
        raise InterventionError(f"no layer below {spec.layer!r} to run TCAV at")
    return candidates


def _class_inputs(
    model: ClassifierModel, dataset: Dataset, split: str, inputs_per_class: int | None, seed: int
) -> dict[str, ImageSet]:
    """The split's images per class (at most ``inputs_per_class``, a seeded sample)."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for cls_ in model.classes:
        rows = dataset.indices(split, label=cls_)
        if inputs_per_class is not None and len(rows) > inputs_per_class:
            rows = np.sort(rng.choice(rows, inputs_per_class, replace=False))
        if len(rows):
            inputs[cls_] = dataset.image_set(rows, name=f"{dataset.info.name}:{split}:{cls_}")
    return inputs


def _paired_rows(b: pd.DataFrame, a: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per (concept, class): score, effect and significance before and after."""
    out_rows: list[dict[str, Any]] = []
    for (_, rb), (_, ra) in zip(b.iterrows(), a.iterrows(), strict=True):
        out_rows.append({
            "concept": rb["concept"], "class": rb["class"],
            "score_before": rb["score_mean"], "score_after": ra["score_mean"],
            "effect_before": rb["effect"], "effect_after": ra["effect"],
            "significant_before": bool(rb["significant"]), "significant_after": bool(ra["significant"]),
        })
    return out_rows


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
