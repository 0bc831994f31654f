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
from store import Action, Actor, Event, EventFilter, replace_nonfinite
from workbench.ui._fix_shots import (
    IMAGE_SUFFIXES,
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_K,
    Shots,
    clinic_datasets,
    clinic_splits,
    load_clinic,
    parts_sha256,
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
    "fix_evidence",
    "fix_id",
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
def fix_id(spec: InterventionSpec, shots: Shots) -> str:
    """The store id of a fix: its spec and its shots (``fix-<12 hex>``)."""
    return f"fix-{parts_sha256(spec.spec_id, shots.shots_id)[:12]}"


def _metric_deltas(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in before.items():
        a = after.get(k)
        if isinstance(v, int | float) and isinstance(a, int | float) and not isinstance(v, bool):
            out[k] = float(a) - float(v)
    return out


def fix_evidence(run: FixRun, spec: InterventionSpec, metrics: Mapping[str, Mapping[str, Any]],
                 classes: Sequence[str]) -> dict[str, Any]:
    """What a recorded fix rests on: shots (ids, labels, hashes), layer, the proposal's evidence
    (leave-one-out stability, expected gains with intervals, notes), the strengths proposed and
    chosen, and before/after metrics (``before``/``after``: the held-out images when there are
    any, else the shots)."""
    p = run.proposal
    main = "held-out" if "held-out" in metrics else "few-shot"
    src = metrics.get("source") or {}
    drop = None
    if src:
        b, a = src["before"], src["after"]
        kb = "clean_accuracy" if b.get("clean_accuracy") is not None else "accuracy"
        drop = float(b[kb]) - float(a[kb])
    proposed = {} if p.spec is None else {e.direction.concept: e.strength for e in p.spec.edits}
    evidence: dict[str, Any] = replace_nonfinite({
        "kind": "test_time_fix",
        "description": spec.describe(),
        "spec_id": spec.spec_id,
        "layer": run.layer,
        "source": run.shots.source,
        "dataset": run.shots.acts_key[0] if run.shots.acts_key else "uploaded images",
        "split": run.shots.acts_key[2] if run.shots.acts_key else None,
        "few_shot": {"k": run.shots.k, "n": len(run.shots.few), "cases": run.shots.shot_rows(classes)},
        "held_out": {"n": len(run.shots.rest)},
        "evaluated_on": main.replace("-", "_"),
        "before": metrics[main]["before"],
        "after": metrics[main]["after"],
        "few_shot_metrics": metrics.get("few-shot"),
        "source_guard": {"split": run.source_split, "drop": drop, **src} if src else None,
        "strengths": {"proposed": proposed, "chosen": {e.direction.concept: e.strength for e in spec.edits}},
        "edits": p.edits,
        "loo": p.loo,
        "notes": p.notes,
        "signals": [{k: r.get(k) for k in ("concept", "operation", "supports", "fire_rate_wrong_class",
                                           "source_fire_rate_wrong_class", "shift", "gradient",
                                           "strength_all", "stability", "proposed")} for r in p.ranking],
    })[0]
    return evidence


def record_fix(ws: Workspace, actor: Actor, run: FixRun, spec: InterventionSpec, rationale: str) -> Event:
    """Record the (adjusted) fix with ``rationale`` as a ``fix_recorded`` event."""
    if not rationale.strip():
        raise InterventionError("a rationale is required: say why this fix is right for the new clinic")
    m = model(ws)
    _, metrics = evaluate_fix(run, {e.direction.concept: e.strength for e in spec.edits})
    evidence = fix_evidence(run, spec, metrics, m.classes)
    main = "held-out" if "held-out" in metrics else "few-shot"
    return store(ws).record_fix(
        actor, spec.to_json(), rationale=rationale.strip(), model_id=m.model_id, evidence=evidence,
        metric_deltas=replace_nonfinite(_metric_deltas(metrics[main]["before"], metrics[main]["after"]))[0],
        intervention_id=fix_id(spec, run.shots), weights_sha_before=m.weights_sha256,
        dataset_hash=run.shots.shots_id, concept=",".join(spec.concepts),
    )


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
