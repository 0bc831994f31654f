"""The Test-time fix page's bridge to ``interventions.propose_fix`` and the store.

An engineer brings a few labelled images of a new clinic — picked from one of the workspace's
data sets, or uploaded — and gets the fix they call for (:func:`propose`), adjusts its
strengths (:func:`evaluate_fix`: a what-if on cached activations, milliseconds), records it
(:func:`record_fix`, the store's ``fix_recorded``) and exports it as a patched model
(:func:`export_patched`, the same artifact as ``workbench apply``).

The shots (picked from a data set, or uploaded and checked as untrusted files) come from
:mod:`workbench.ui._fix_shots`. Nothing here uses Streamlit except the caches.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import threading
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from concepts import Workspace, extract_activations
from interventions import (
    FixProposal,
    InterventionError,
    InterventionSpec,
    WhatIf,
    fix_directions,
    patch,
    propose_fix,
)
from store import Action, Actor, Event, EventFilter
from workbench.services import FixShots, fix_record, parts_sha256
from workbench.ui._fix_shots import (
    IMAGE_SUFFIXES,
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_K,
    Shots,
    clinic_datasets,
    clinic_splits,
    load_clinic,
    read_labels_csv,
    shots_from_dataset,
    shots_from_upload,
    unpack_zip,
)
from workbench.ui._interventions import concept_library
from workbench.ui._state import model, model_key, model_lock, store

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "MAX_K",
    "FixRun",
    "Shots",
    "clinic_datasets",
    "clinic_splits",
    "evaluate_fix",
    "export_patched",
    "propose",
    "read_labels_csv",
    "record_fix",
    "recorded_fixes",
    "shots_from_dataset",
    "shots_from_upload",
    "unpack_zip",
]


# ---------------------------------------------------------------------------------- proposal
@dataclass(frozen=True)
class FixRun:
    """A proposal and the what-ifs its strengths are re-scored on."""

    shots: Shots
    layer: str
    source_split: str
    proposal: FixProposal
    few: WhatIf
    held: WhatIf | None
    source: WhatIf | None
    run_id: str


@dataclass
class _Registry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    runs: dict[tuple[str, ...], FixRun] = field(default_factory=dict)


@st.cache_resource(show_spinner=False)
def _registry() -> _Registry:
    return _Registry()


def _activations(ws: Workspace, shots: Shots, layer: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    m = model(ws)
    if shots.acts_key is not None:  # a data-set split: activations (and groups) from the cache
        ds = load_clinic(ws, shots.acts_key[0])
        with model_lock(m.model_id):
            wi = WhatIf.from_dataset(m, ds, shots.acts_key[2], layer, cache=ws.activation_cache,
                                     twin_artifacts=[])
        return wi.h.numpy(), dict(wi.groups)
    with model_lock(m.model_id):
        return extract_activations(m, shots.images, [layer])[layer], {}


def _source(ws: Workspace, layer: str, split: str) -> WhatIf | None:
    from workbench.ui._state import dataset

    ds = dataset(ws)
    if split not in ds.splits:
        return None
    m = model(ws)
    with model_lock(m.model_id):
        return WhatIf.from_dataset(m, ds, split, layer, cache=ws.activation_cache, twin_artifacts=[])


def propose(ws: Workspace, shots: Shots, layer: str, source_split: str = "val") -> FixRun:
    """The fix the shots call for (memoised per workspace, model, shots id, layer, split)."""
    from workbench.ui._state import dataset_key

    key = (str(ws.root), *model_key(ws), *dataset_key(ws), shots.shots_id, layer, source_split)
    reg = _registry()
    with reg.lock:
        hit = reg.runs.get(key)
    if hit is not None:
        return hit
    m = model(ws)
    lib = concept_library(ws)
    with model_lock(m.model_id):
        dirs = fix_directions(lib, lib.concepts, layer)
    acts, groups = _activations(ws, shots, layer)
    ids = list(shots.case_ids)
    few = WhatIf(m, layer, acts[shots.few], shots.labels[shots.few], case_ids=[ids[i] for i in shots.few])
    held = None
    if len(shots.rest) and len(np.unique(shots.labels[shots.rest])) >= 1:
        held = WhatIf(m, layer, acts[shots.rest], shots.labels[shots.rest], case_ids=[ids[i] for i in shots.rest],
                      groups={a: g[shots.rest] for a, g in groups.items()})
    source = _source(ws, layer, source_split)
    proposal = propose_fix(m, dirs, acts[shots.few], shots.labels[shots.few], source=source, held_out=held,
                           case_ids=[ids[i] for i in shots.few])
    run = FixRun(shots, layer, source_split, proposal, few, held, source, parts_sha256(*key)[:12])
    with reg.lock:
        reg.runs[key] = run
        while len(reg.runs) > 32:
            reg.runs.pop(next(iter(reg.runs)))
    return run


def evaluate_fix(run: FixRun, strengths: Mapping[str, float]) -> tuple[InterventionSpec | None, dict[str, dict[str, Any]]]:
    """The proposal at ``strengths`` and its before/after metrics on the shots, the held-out
    images and the source split: ``{set: {"before": M, "after": M}}``."""
    base = run.proposal.spec
    spec = None if base is None else base.with_strengths({c: float(s) for c, s in strengths.items()})
    if spec is not None and spec.is_neutral:
        spec = None
    out: dict[str, dict[str, Any]] = {}
    for name, wi in (("few-shot", run.few), ("held-out", run.held), ("source", run.source)):
        if wi is None:
            continue
        before = wi.evaluate(None, flip_rates=False).metrics
        after = wi.evaluate(spec, flip_rates=False).metrics if spec is not None else before
        out[name] = {"before": before, "after": after}
    return spec, out


# ---------------------------------------------------------------------------------- record
def record_fix(ws: Workspace, actor: Actor, run: FixRun, spec: InterventionSpec, rationale: str) -> Event:
    """Record the (adjusted) fix with ``rationale`` as a ``fix_recorded`` event."""
    if not rationale.strip():
        raise InterventionError("a rationale is required: say why this fix is right for the new clinic")
    m = model(ws)
    _, metrics = evaluate_fix(run, {e.direction.concept: e.strength for e in spec.edits})
    acts_key = run.shots.acts_key
    shots = FixShots(source=run.shots.source, dataset=acts_key[0] if acts_key else "uploaded images",
                     split=acts_key[2] if acts_key else None, k=run.shots.k,
                     rows=run.shots.shot_rows(m.classes), n_held=len(run.shots.rest),
                     shots_id=run.shots.shots_id)
    fields = fix_record(run.proposal, spec, shots, layer=run.layer, metrics=metrics,
                        source_split=run.source_split, model_id=m.model_id, weights_sha=m.weights_sha256)
    return store(ws).record_fix(actor, fields.pop("spec"), rationale=rationale.strip(), **fields)


def recorded_fixes(events: Sequence[Event]) -> list[Event]:
    """The ``fix_recorded`` events, newest first."""
    return sorted((e for e in events if e.action == Action.FIX_RECORDED.value), key=lambda e: -e.seq)


def export_patched(ws: Workspace, actor: Actor, iid: str) -> bytes:
    """The recorded fix ``iid`` as a patched-model artifact (``workbench apply``'s folder,
    zipped); records a ``model_exported`` event."""
    s = store(ws)
    found = s.events(EventFilter(intervention_id=iid, action=Action.FIX_RECORDED.value), last=1)
    if not found or found[0].spec is None:
        raise InterventionError(f"no recorded fix {iid!r}")
    spec = InterventionSpec.from_json(found[0].spec)
    m = model(ws)
    patched = patch(m, spec)
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="wb-patched-") as tmp:
        out = patched.save(Path(tmp) / iid)
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(out.rglob("*")):
                if f.is_file():
                    zf.write(f, f"{iid}/{f.relative_to(out).as_posix()}")
    data = buf.getvalue()
    s.append_event(actor, Action.MODEL_EXPORTED, intervention_id=iid, model_id=m.model_id,
                   weights_sha_before=m.weights_sha256,
                   evidence={"patched_id": patched.patched_id, "spec_id": spec.spec_id,
                             "file_sha256": hashlib.sha256(data).hexdigest(), "format": "zip"})
    return data
