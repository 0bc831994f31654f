"""The UI's bridge to the ``interventions`` package: concept directions, what-if engines,
measured effects and their recording in the store.

What-if engines are built once per (workspace, model weights, data set, split, layer) and kept
for the server's lifetime; evaluations are memoised per spec id, so dragging a slider back to a
value already seen costs nothing.

The splits evaluated come from the data set (:func:`eval_splits`: DermSynth's debiased test and
biased validation splits, otherwise ``test`` and ``val``). Flip rates come from counterfactual
twins: re-rendered for DermSynth, real twins (a twin column, or the artifact transplanted with a
mask column) for any other data set, whose activations go through the activation cache; when
no twin can be made, :func:`twin_note` says why.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from concepts import ProgressFn, Workspace, WorkspaceError
from interventions import (
    ConceptEdit,
    ConceptLibrary,
    EffectReport,
    InterventionSpec,
    Scope,
    WhatIf,
    WhatIfResult,
    measure_effect,
    record_effect,
)
from store import Action, Actor, Event, EventFilter
from workbench.services._summary import evaluation_splits
from workbench.services._whatif import whatif_engine
from workbench.ui._state import dataset, dataset_key, model, model_key, model_lock, store

__all__ = [
    "FLIPS_SHOWN",
    "PRESET_KEY",
    "EvalSplits",
    "build_spec",
    "concept_library",
    "eval_splits",
    "evaluate",
    "flipped_table",
    "intervention_id",
    "is_proposed",
    "revert_intervention",
    "save_intervention",
    "twin_note",
    "whatif",
    "whatif_ready",
]


#: Session key other pages set to open the Interventions page with concepts preselected.
PRESET_KEY = "iv_preset"

#: DermSynth's splits evaluated live: (split, label). The debiased test split is the one that
#: tells whether a shortcut was removed; the biased validation split shows what it was worth.
EvalSplits: tuple[tuple[str, str], ...] = (("test_debiased", "debiased test"), ("val", "biased validation"))

#: Other data sets: their own held-out splits, in this order.
_PLAIN_SPLITS: tuple[tuple[str, str], ...] = (("test", "test"), ("val", "validation"))


def eval_splits(ws: Workspace) -> tuple[tuple[str, str], ...]:
    """The splits of the active data set evaluated live, as (split, label), main one first.

    The splits are those of :func:`workbench.services._summary.evaluation_splits` among the
    non-empty ones (DermSynth: the debiased test and biased validation splits; else ``test``
    and ``val``; the first other split when neither is), so the UI and the stored evaluation
    agree."""
    ds = dataset(ws)
    present = [s for s in ds.splits if len(ds.indices(s))]
    if not present:
        raise WorkspaceError(f"data set {ds.info.name!r} has no cases in any split — re-import it")
    chosen = evaluation_splits(present)
    labels = dict(EvalSplits if "test_debiased" in chosen else _PLAIN_SPLITS)
    return tuple((s, labels.get(s, s)) for s in chosen)


@dataclass
class _Registry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    engines: dict[tuple[str, ...], WhatIf] = field(default_factory=dict)
    notes: dict[tuple[str, ...], str | None] = field(default_factory=dict)
    results: OrderedDict[tuple[str, ...], WhatIfResult] = field(default_factory=OrderedDict)
    libraries: dict[tuple[str, ...], ConceptLibrary] = field(default_factory=dict)


@st.cache_resource(show_spinner=False)
def _registry() -> _Registry:
    return _Registry()


def _bank_key(ws: Workspace) -> str:
    parts = []
    if ws.concepts_dir.is_dir():
        for p in sorted(ws.concepts_dir.glob("*.json")):
            s = p.stat()
            parts.append(f"{p.name}:{s.st_mtime_ns}:{s.st_size}")
    return "|".join(parts)


def concept_library(ws: Workspace) -> ConceptLibrary:
    """The workspace's concept directions for the active model (shared, memoised)."""
    key = (str(ws.root), *model_key(ws), _bank_key(ws))
    reg = _registry()
    with reg.lock:
        lib = reg.libraries.get(key)
    if lib is None:
        lib = ConceptLibrary.for_workspace(ws, model(ws))
        with reg.lock:
            reg.libraries[key] = lib
    return lib


def whatif_ready(ws: Workspace, split: str, layer: str) -> bool:
    """Whether the what-if engine of ``split`` at ``layer`` is built already."""
    key = (str(ws.root), *model_key(ws), *dataset_key(ws), split, layer)
    reg = _registry()
    with reg.lock:
        return key in reg.engines


def whatif(ws: Workspace, split: str, layer: str, progress: ProgressFn | None = None) -> WhatIf:
    """The what-if engine of ``split`` at ``layer`` (built on first use: activations and
    counterfactual twins come from the activation cache). Evaluation splits carry twins for
    flip rates: DermSynth's re-rendered planted artifacts, real twins of any other data set."""
    key = (str(ws.root), *model_key(ws), *dataset_key(ws), split, layer)
    reg = _registry()
    with reg.lock:
        wi = reg.engines.get(key)
    if wi is None:
        m, ds = model(ws), dataset(ws)
        with model_lock(m.model_id):
            wi, note = whatif_engine(m, ds, split, layer, cache=ws.activation_cache,
                                     progress=progress, twins=split in dict(eval_splits(ws)))
        with reg.lock:
            reg.engines[key] = wi
            reg.notes[key] = note
    return wi


def twin_note(ws: Workspace, split: str, layer: str) -> str | None:
    """Why flip rates are missing on ``split`` (None when every annotated artifact has twins)."""
    key = (str(ws.root), *model_key(ws), *dataset_key(ws), split, layer)
    whatif(ws, split, layer)
    reg = _registry()
    with reg.lock:
        return reg.notes.get(key)


def build_spec(ws: Workspace, layer: str, edits: Sequence[tuple[str, str, float]]) -> InterventionSpec | None:
    """A spec of ``(concept, operation, strength)`` edits at ``layer`` (None when no edit)."""
    if not edits:
        return None
    lib = concept_library(ws)
    m = model(ws)
    out = []
    for concept, op, strength in edits:
        with model_lock(m.model_id):
            d = lib.direction(concept, layer)
        out.append(ConceptEdit(d, op, float(strength)))
    return InterventionSpec(m.model_id, layer, tuple(out), Scope.all())


def evaluate(ws: Workspace, split: str, layer: str, spec: InterventionSpec | None) -> WhatIfResult:
    """Metrics of ``split`` under ``spec`` (None: the unpatched model), memoised per spec id."""
    wi = whatif(ws, split, layer)
    key = (str(ws.root), *model_key(ws), *dataset_key(ws), split, layer,
           spec.spec_id if spec is not None and not spec.is_neutral else "-")
    reg = _registry()
    with reg.lock:
        hit = reg.results.get(key)
        if hit is not None:
            reg.results.move_to_end(key)
            return hit
    res = wi.evaluate(spec if spec is not None and not spec.is_neutral else None)
    with reg.lock:
        reg.results[key] = res
        while len(reg.results) > 256:
            reg.results.popitem(last=False)
    return res


#: Flipped cases listed on the Interventions page (the count above the table is the full one).
FLIPS_SHOWN = 500


def flipped_table(ws: Workspace, split: str, layer: str, result: WhatIfResult,
                  limit: int | None = None) -> pd.DataFrame:
    """Cases whose prediction the intervention changes: id, truth, before, after, p(positive)
    (the first ``limit`` of them when given; built column by column)."""
    wi = whatif(ws, split, layer)
    classes = np.asarray(wi.model.classes, dtype=object)
    rows = np.asarray(result.flipped, dtype=int)
    if limit is not None:
        rows = rows[: max(0, int(limit))]
    base = wi.base_proba
    ids = np.asarray(wi.case_ids, dtype=object)
    name = str(classes[0])
    return pd.DataFrame(
        {
            "case_id": ids[rows],
            "truth": classes[np.asarray(wi.labels, dtype=int)[rows]],
            "before": classes[base[rows].argmax(axis=1)] if len(rows) else [],
            "after": classes[result.proba[rows].argmax(axis=1)] if len(rows) else [],
            f"p({name}) before": np.round(base[rows, 0], 3) if len(rows) else [],
            f"p({name}) after": np.round(result.proba[rows, 0], 3) if len(rows) else [],
        }
    )


def intervention_id(spec: InterventionSpec) -> str:
    """The store id an intervention is recorded under (``iv-<spec id>``)."""
    return f"iv-{spec.spec_id}"


def is_proposed(ws: Workspace, spec: InterventionSpec) -> bool:
    """Whether a dermatologist has already proposed this exact spec."""
    return bool(store(ws).events(EventFilter(intervention_id=intervention_id(spec), action="proposed"), last=1))


def save_intervention(
    ws: Workspace,
    actor: Actor,
    spec: InterventionSpec,
    rationale: str,
    *,
    rerun_tcav: bool = False,
    progress: ProgressFn | None = None,
) -> tuple[Event, EffectReport]:
    """Measure the effect of ``spec`` on the main evaluation split (:func:`eval_splits`) and
    record it (proposed if new, applied, effect) with ``rationale``; returns the ``applied``
    event and the report."""
    if not rationale.strip():
        from interventions import InterventionError

        raise InterventionError("a rationale is required: say why this change is clinically right")
    m = model(ws)
    split, _ = eval_splits(ws)[0]
    lib = concept_library(ws)
    with model_lock(m.model_id):
        report = measure_effect(
            m, spec, dataset(ws), split, cache=ws.activation_cache,
            whatif=whatif(ws, split, spec.layer), bank=lib.bank if rerun_tcav else None,
            tcav_layers=tuple(ws.layers()), progress=progress,
        )
    event = record_effect(report, store(ws), actor, rationale.strip(), model=m,
                          intervention_id=intervention_id(spec))
    return event, report


def revert_intervention(ws: Workspace, actor: Actor, iid: str, rationale: str,
                        concept: str | None = None) -> Event:
    """Record that an applied intervention is reverted (the store requires a rationale)."""
    kw: dict[str, Any] = {"intervention_id": iid, "rationale": rationale.strip() or None,
                          "concept": concept or None, "model_id": model(ws).model_id}
    return store(ws).append_event(actor, Action.REVERTED, **kw)
