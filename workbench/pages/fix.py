"""Test-time fix: a few labelled images of a new clinic -> the mask/amplify fix they call for,
with its evidence, adjustable strengths, a rationale, the store record and a patched model."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import pandas as pd
import streamlit as st

from concepts import DataError
from store import Action
from workbench.ui._fix import (
    IMAGE_SUFFIXES,
    MAX_FILES,
    MAX_K,
    FixRun,
    Shots,
    clinic_datasets,
    clinic_splits,
    evaluate_fix,
    export_patched,
    propose,
    read_labels_csv,
    record_fix,
    recorded_fixes,
    shots_from_dataset,
    shots_from_upload,
    unpack_zip,
)
from workbench.ui._state import PageContext, guard, model, run_page, store_events, workspace
from workbench.ui._text import md

_ROWS = (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("clean_accuracy", "accuracy without artifacts"))


def _pct(v: Any) -> str:
    try:
        return f"{100 * float(v):.1f}%"
    except (TypeError, ValueError):
        return "—"


def _pts(a: Any, b: Any) -> str:
    try:
        return f"{100 * (float(a) - float(b)):+.1f}"
    except (TypeError, ValueError):
        return "—"


# ---------------------------------------------------------------------------------- 1. shots
def _pick_from_workspace(ws: Any, classes: tuple[str, ...], k: int, seed: int) -> Shots | None:
    names = clinic_datasets(ws, classes)
    if not names:
        st.info("No data set of this workspace is labelled with the model's classes; upload images instead.")
        return None
    c1, c2 = st.columns(2)
    name = c1.selectbox("Data set of the new clinic", names, key="fix_ds")
    splits = clinic_splits(ws, str(name))
    default = next((i for i, s in enumerate(splits) if s in ("test_debiased", "test")), len(splits) - 1)
    split = c2.selectbox("Split", splits, index=default, key="fix_split",
                         help="k images per class of this split are the shots; the rest are held out.")
    if st.button("Propose a fix", type="primary", icon=":material/auto_fix_high:", key="fix_propose_ds"):
        return shots_from_dataset(ws, str(name), str(split), k, seed)
    return None


def _upload(classes: tuple[str, ...], size: int, k: int, seed: int) -> Shots | None:
    files = st.file_uploader(
        f"Images with labels: image files plus a labels CSV (file,label), or one zip holding both "
        f"(at most {MAX_FILES} images)", type=[s.lstrip(".") for s in IMAGE_SUFFIXES] + ["csv", "zip"],
        accept_multiple_files=True, key="fix_upload")
    if not files:
        return None
    images: list[tuple[str, bytes]] = []
    labels: dict[str, str] = {}
    for f in files:
        data = f.getvalue()
        low = f.name.lower()
        if low.endswith(".zip"):
            imgs, labs = unpack_zip(data)
            images += imgs
            labels.update(labs)
        elif low.endswith(".csv"):
            labels.update(read_labels_csv(data))
        else:
            images.append((f.name.replace("\\", "/").rsplit("/", 1)[-1], data))
    table = pd.DataFrame({"file": [n for n, _ in images], "label": [labels.get(n) for n, _ in images]})
    edited = st.data_editor(
        table, key="fix_labels", hide_index=True, disabled=["file"], width="stretch",
        column_config={"label": st.column_config.SelectboxColumn("label", options=list(classes), required=True)})
    chosen = {str(r["file"]): str(r["label"]) for _, r in edited.iterrows() if isinstance(r["label"], str)}
    if st.button("Propose a fix", type="primary", icon=":material/auto_fix_high:", key="fix_propose_up"):
        return shots_from_upload(images, chosen, classes, size, k, seed)
    return None


def _shots_section(ws: Any) -> None:
    m = model(ws)
    st.subheader("1 · The new clinic's labelled images")
    src = st.radio("Images", ["From a workspace data set", "Upload"], horizontal=True, key="fix_src")
    c1, c2, c3 = st.columns(3)
    k = int(c1.number_input("Shots per class (k)", 1, MAX_K, 4, key="fix_k"))
    seed = int(c2.number_input("Draw (seed)", 0, 10_000, 0, key="fix_seed"))
    layers = [lay for lay in (ws.layers() or []) if lay in m.layers] or [m.layers[-2]]
    default = layers.index("pool") if "pool" in layers else len(layers) - 1
    layer = c3.selectbox("Layer", layers, index=default, key="fix_layer")
    try:
        shots = (_pick_from_workspace(ws, m.classes, k, seed) if src == "From a workspace data set"
                 else _upload(m.classes, m.preprocess.size, k, seed))
    except DataError as exc:
        st.error(md(exc), icon=":material/error:")
        return
    if shots is not None:
        st.session_state["fix_shots"] = (shots, str(layer))
        st.session_state.pop("fix_saved", None)


# ---------------------------------------------------------------------------------- 2. proposal
def _gallery(run: FixRun, classes: tuple[str, ...]) -> None:
    sh = run.shots
    pred = run.few.base_pred
    caps = [f"{sh.case_ids[i]} · {classes[int(sh.labels[i])]} · model: {classes[int(p)]}"
            for i, p in zip(sh.few, pred, strict=True)]
    with st.expander(f"The {len(sh.few)} shots ({md(sh.source)}; {len(sh.rest)} more images held out)",
                     expanded=len(sh.few) <= 16):
        st.image([sh.images[i] for i in sh.few], caption=caps, width=110)


def _evidence(run: FixRun) -> None:
    p = run.proposal
    st.subheader("2 · Proposed edits and their evidence")
    if p.spec is None:
        st.warning("Nothing proposed: no edit helps these shots in a way that survives leave-one-out.",
                   icon=":material/block:")
    else:
        st.success("Proposed: " + md(p.spec.describe()), icon=":material/auto_fix_high:")
    if p.edits:
        st.dataframe(pd.DataFrame([{
            "edit": f"{e['operation']} {e['concept']}", "strength": e["strength"],
            "leave-one-out stability": _pct(e.get("stability")),
            "expected gain (pts)": e.get("gain_points"),
            "90% interval": "—" if not e.get("gain_interval") else
            f"[{e['gain_interval'][0]:+.1f}, {e['gain_interval'][1]:+.1f}]",
            "log-lik. gain (nats)": e.get("gain_nats")} for e in p.edits]),
            hide_index=True, width="stretch", key="fix_edits_table",
            column_config={"expected gain (pts)": st.column_config.NumberColumn(format="%+.1f"),
                           "log-lik. gain (nats)": st.column_config.NumberColumn(format="%+.3f")})
    if p.loo:
        lo, hi = p.loo["gain_interval"]
        st.caption(f"Whole fix under leave-one-out over {p.loo['n_folds']} shots: "
                   f"{p.loo['gain_points']:+.1f} points balanced accuracy [{lo:+.1f}, {hi:+.1f}], "
                   f"{p.loo['gain_nats']:+.3f} nats.")
    for n in p.notes:
        st.caption(md(f"Note: {n}"))
    with st.expander("Signals per concept (the graph allows artifacts masked, criteria amplified)"):
        st.dataframe(pd.DataFrame([{
            "concept": r["concept"], "allowed edit": r["operation"], "supports": r["supports"],
            "fires on wrong class": _pct(r.get("fire_rate_wrong_class")),
            "… on source": _pct(r.get("source_fire_rate_wrong_class")),
            "shift z": r.get("shift"), "gradient": r.get("gradient"),
            "strength (all shots)": r.get("strength_all"), "LOO stability": _pct(r.get("stability")),
            "proposed": bool(r.get("proposed"))} for r in p.ranking]), hide_index=True, width="stretch")


# ---------------------------------------------------------------------------------- 3. what-if
def _sliders(run: FixRun) -> dict[str, float]:
    out: dict[str, float] = {}
    spec = run.proposal.spec
    if spec is None:
        return out
    for e in spec.edits:
        c = e.direction.concept
        key = f"fix_s_{run.run_id}_{c}"
        if e.operation == "mask":
            out[c] = st.slider(f"mask strength: {c}", 0.0, 1.0, round(float(e.strength), 2), 0.01, key=key,
                               help="1 moves the concept to its 'absent' level; 0 leaves the model unchanged")
        else:
            hi = max(3.0, round(float(e.strength) + 0.5, 1))
            out[c] = st.slider(f"amplify factor: {c}", 1.0, hi, round(float(e.strength), 2), 0.01, key=key,
                               help="1 leaves the concept unchanged")
    return out


def _metrics_table(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for name, d in metrics.items():
        b, a = d["before"], d["after"]
        for key, label in _ROWS:
            if b.get(key) is None:
                continue
            rows.append({"images": f"{name} (n={b.get('n', '?')})", "metric": label,
                         "before": _pct(b.get(key)), "after": _pct(a.get(key)), "Δ points": _pts(a.get(key), b.get(key))})
    return pd.DataFrame(rows)


@st.fragment
def _what_if(ctx: PageContext, run: FixRun) -> None:
    with guard("What-if"):
        st.subheader("3 · Before and after")
        strengths = _sliders(run)
        spec, metrics = evaluate_fix(run, strengths)
        main = "held-out" if "held-out" in metrics else "few-shot"
        b, a = metrics[main]["before"], metrics[main]["after"]
        cols = st.columns(3)
        cols[0].metric(f"Balanced accuracy, {main}", _pct(a.get("balanced_accuracy")),
                       None if spec is None else f"{_pts(a.get('balanced_accuracy'), b.get('balanced_accuracy'))} pts",
                       help=f"before: {_pct(b.get('balanced_accuracy'))}")
        fb, fa = metrics["few-shot"]["before"], metrics["few-shot"]["after"]
        cols[1].metric("Balanced accuracy, shots", _pct(fa.get("balanced_accuracy")),
                       None if spec is None else f"{_pts(fa.get('balanced_accuracy'), fb.get('balanced_accuracy'))} pts")
        if "source" in metrics:
            sb, sa = metrics["source"]["before"], metrics["source"]["after"]
            k = "clean_accuracy" if sb.get("clean_accuracy") is not None else "accuracy"
            cols[2].metric("Source accuracy (guard)", _pct(sa.get(k)),
                           None if spec is None else f"{_pts(sa.get(k), sb.get(k))} pts",
                           help="Source split without planted artifacts: a fix may cost at most 2 points.")
        st.dataframe(_metrics_table(metrics), hide_index=True, width="stretch", key="fix_metrics_table")
        if spec is None:
            st.info("No edit at these strengths: the model is unchanged.")
            return
        st.caption(md(f"Fix: {spec.describe()} · spec {spec.spec_id}"))
        _save_form(ctx, run, spec)


def _save_form(ctx: PageContext, run: FixRun, spec: Any) -> None:
    if not ctx.can(Action.FIX_RECORDED):
        st.info("Read-only: auditors can explore a fix but not record it.", icon=":material/visibility:")
        return
    with st.form("fix_save_form", clear_on_submit=False):
        st.markdown("**4 · Save this fix**")
        rationale = st.text_area(
            "Rationale (required)", key="fix_rationale",
            placeholder="e.g. At the new clinic nevi are marked with ink; the model reads ink as melanoma.")
        submitted = st.form_submit_button("Save fix", type="primary", icon=":material/save:")
    if submitted:
        if not rationale.strip():
            st.error("Write a rationale first: say why this fix is right for the new clinic.")
            return
        ev = record_fix(workspace(), ctx.actor, run, spec, rationale)
        st.session_state["fix_saved"] = f"Saved {spec.describe()} as {ev.intervention_id} (event #{ev.seq})."
        st.rerun(scope="app")


# ---------------------------------------------------------------------------------- recorded fixes
def _recorded(ctx: PageContext, ws: Any) -> None:
    st.subheader("Recorded fixes")
    msg = st.session_state.get("fix_saved")
    if msg:
        st.success(md(msg), icon=":material/check_circle:")
    fixes = recorded_fixes(store_events(ws))
    if not fixes:
        st.info("No fix is recorded yet.")
        return
    for ev in fixes[:20]:
        iid = str(ev.intervention_id)
        fname = re.sub(r"[^A-Za-z0-9._-]", "_", iid)
        desc = (ev.evidence or {}).get("description") or ev.concept or ""
        with st.expander(f"{md(iid)} · {md(desc)} · by {md(ev.actor_name)}"):
            st.text(f"“{ev.rationale}” — {ev.ts[:16].replace('T', ' ')} UTC")
            if ev.metric_deltas and ev.metric_deltas.get("balanced_accuracy") is not None:
                st.caption(f"Balanced accuracy change on the {md((ev.evidence or {}).get('evaluated_on', ''))} "
                           f"images: {100 * float(ev.metric_deltas['balanced_accuracy']):+.1f} points")
            c1, c2 = st.columns(2)
            c1.download_button("Spec (JSON)", json.dumps(ev.spec, indent=2), file_name=f"{fname}.json",
                               mime="application/json", key=f"fix_spec_{iid}", icon=":material/data_object:",
                               on_click="ignore")
            if ctx.can(Action.MODEL_EXPORTED):
                c2.download_button("Patched model (zip)", functools.partial(export_patched, ws, ctx.actor, iid),
                                   file_name=f"{fname}.zip", mime="application/zip", key=f"fix_export_{iid}",
                                   icon=":material/deployed_code:", on_click="ignore")
            st.caption(md(f"Or: workbench apply --model {ws.models_dir.name}/{ws.manifest().get('model', 'demo')} "
                          f"--spec {iid}.json --out patched-{iid}"))


def body(ctx: PageContext) -> None:
    ws = workspace()
    if ctx.read_only:
        st.info("Read-only: you can explore a fix, but not record or export one.", icon=":material/visibility:")
    with guard("Labelled images"):
        _shots_section(ws)
    picked = st.session_state.get("fix_shots")
    if picked is not None:
        shots, layer = picked
        with guard("Proposal"):
            with st.spinner("Searching the fix (first time for these shots only)…"):
                run = propose(ws, shots, layer)
            _gallery(run, model(ws).classes)
            _evidence(run)
            _what_if(ctx, run)
    with guard("Recorded fixes"):
        _recorded(ctx, ws)


run_page(
    "Test-time fix",
    body,
    "A new clinic? Label a few of its images: the workbench proposes the concept masks and "
    "amplifications they call for, with how sure it is, and records the fix you choose.",
)
