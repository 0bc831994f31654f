"""Interventions: mask/amplify concepts with live before/after metrics; save with a rationale;
the list of applied interventions with revert."""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd
import streamlit as st

from interventions import METRIC_KEYS
from store import Action
from workbench.ui._figures import metrics_compare_bar, reliance_bar
from workbench.ui._history import active_interventions, intervention_report_bytes
from workbench.ui._interventions import (
    FLIPS_SHOWN,
    PRESET_KEY,
    build_spec,
    concept_library,
    eval_splits,
    evaluate,
    flipped_table,
    is_proposed,
    revert_intervention,
    save_intervention,
    twin_note,
    whatif,
    whatif_ready,
)
from workbench.ui._science import confounder_frame
from workbench.ui._state import (
    PageContext,
    guard,
    progress_bar,
    run_page,
    store,
    store_events,
    workspace,
)
from workbench.ui._text import md

_LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "auc": "AUC",
    "worst_group_accuracy": "Worst-group accuracy",
    "clean_accuracy": "Accuracy without artifacts",
}
_SHOWN = ("accuracy", "balanced_accuracy", "sensitivity", "worst_group_accuracy")

def _pct(v: Any) -> str:
    try:
        return f"{100 * float(v):.1f}%"
    except (TypeError, ValueError):
        return "—"


def _delta(after: Any, before: Any) -> str | None:
    try:
        d = 100 * (float(after) - float(before))
    except (TypeError, ValueError):
        return None
    return None if abs(d) < 0.05 else f"{d:+.1f} pts"


def _controls(ws: Any, concepts: list[str]) -> tuple[str, list[tuple[str, str, float]]]:
    layers = ws.layers() or [concept_library(ws).model.layers[-2]]
    layer = st.selectbox(
        "Intervention layer", layers, index=len(layers) - 1, key="iv_layer",
        help="The layer whose activations are edited (pooled features by default: fastest).",
    )
    preset = st.session_state.pop(PRESET_KEY, None)
    if preset:
        st.session_state["iv_concepts"] = [c for c in preset if c in concepts]
    chosen: list[str] = st.multiselect(
        "Concepts to change", concepts, key="iv_concepts",
        placeholder="pick a confounder to mask, or a criterion to amplify",
    )
    edits: list[tuple[str, str, float]] = []
    for c in chosen:
        a, b = st.columns([1, 3])
        op = a.radio(c, ["mask", "amplify"], key=f"iv_op_{c}", horizontal=True)
        if op == "mask":
            s = b.slider(f"mask strength: {c}", 0.0, 1.0, 1.0, 0.05, key=f"iv_s_mask_{c}",
                         help="1 moves the concept to its 'absent' level; 0 leaves the model unchanged")
        else:
            s = b.slider(f"amplify factor: {c}", 0.0, 5.0, 2.0, 0.1, key=f"iv_s_amplify_{c}",
                         help="scales the concept around its 'absent' level; 1 leaves it unchanged")
        edits.append((c, str(op), float(s)))
    return str(layer), edits


@st.fragment
def what_if(ctx: PageContext) -> None:
    """Controls and live before/after metrics (a fragment: a slider reruns only this part)."""
    with guard("What-if"):
        _what_if(ctx)


def _what_if(ctx: PageContext) -> None:
    ws = workspace()
    lib = concept_library(ws)
    layer, edits = _controls(ws, lib.concepts)
    splits = eval_splits(ws)
    for split, label in splits:
        if not whatif_ready(ws, split, layer):
            with progress_bar(f"Preparing the {label} split (first time only)") as progress:
                whatif(ws, split, layer, progress=progress)
    spec = build_spec(ws, layer, edits)
    results = {}
    for split, label in splits:
        before = evaluate(ws, split, layer, None)
        after = evaluate(ws, split, layer, spec)
        results[split] = (before, after)
        st.markdown(f"**{label.capitalize()}** · {before.metrics.get('n', '?')} cases"
                    + (f" · {after.n_flipped} predictions change" if spec is not None else ""))
        cols = st.columns(len(_SHOWN))
        for col, k in zip(cols, _SHOWN, strict=True):
            col.metric(_LABELS[k], _pct(after.metrics.get(k)),
                       _delta(after.metrics.get(k), before.metrics.get(k)),
                       help=f"before: {_pct(before.metrics.get(k))}")
    main_split, main_label = splits[0]
    note = twin_note(ws, main_split, layer)
    if spec is None:
        st.info("Choose concepts above to see what the model would do without (or with more of) them.")
        if note:
            st.caption(md(note))
        return
    before, after = results[main_split]
    st.caption(md(f"Intervention: {spec.describe()} · spec {spec.spec_id} · updated in "
                  f"{after.elapsed_ms:.0f} ms"))
    left, right = st.columns(2)
    left.plotly_chart(
        metrics_compare_bar({k: before.metrics.get(k) for k in METRIC_KEYS},
                            {k: after.metrics.get(k) for k in METRIC_KEYS},
                            title=f"Metrics, {main_label}"),
        width="stretch", key="iv_metrics_fig",
    )
    with right:
        _reliance(ws, main_split, layer, before, after, note)
    flips = flipped_table(ws, main_split, layer, after, limit=FLIPS_SHOWN)
    n_flips = after.n_flipped
    with st.expander(f"Flipped cases ({n_flips}, {main_label})", expanded=bool(n_flips) and n_flips <= 20):
        if n_flips > len(flips):
            st.caption(f"The first {len(flips)} of {n_flips} flipped cases.")
        st.dataframe(flips, hide_index=True, width="stretch")

    _save_form(ctx, ws, spec)


def _reliance(ws: Any, split: str, layer: str, before: Any, after: Any, note: str | None) -> None:
    """Counterfactual flip rates before/after (twins named by how they were made), or why none."""
    fb, fa = before.metrics.get("flip_rates") or {}, after.metrics.get("flip_rates") or {}
    if fb:
        twins = {t.key: t for t in whatif(ws, split, layer).twins}

        def label(key: str) -> str:
            t = twins.get(key)
            return key if t is None else f"{t.direction} {t.artifact}"

        rel = pd.DataFrame(
            [{"twins": label(a), "when": w, "flip rate": v}
             for a in fb for w, v in (("before", fb[a]), ("after", fa.get(a)))]
        )
        st.plotly_chart(
            reliance_bar(rel, x="twins", y="flip rate", color="when",
                         title="Reliance: predictions that flip when the artifact is added / removed"),
            width="stretch", key="iv_reliance_fig",
        )
        methods = sorted({t.method or "render" for t in twins.values() if t.key in fb})
        st.caption(md("Twins: " + ", ".join(methods) + "".join(
            f" · {label(k)}: {len(twins[k].rows)} cases, {_pct(fb[k])} → {_pct(fa.get(k))} flip"
            for k in fb if k in twins)))
    if note:
        st.info(md(note), icon=":material/info:")
    elif not fb:
        st.caption("No counterfactual twins: flip rates are not measured on this data set.")


def _save_form(ctx: PageContext, ws: Any, spec: Any) -> None:
    if ctx.read_only:
        return
    # only an engineer (who may apply but not propose) needs to know whether a dermatologist
    # already proposed this exact spec
    may_propose = ctx.can(Action.PROPOSED)
    if not ctx.can(Action.APPLIED) or (not may_propose and not is_proposed(ws, spec)):
        st.info(
            "Only a dermatologist can propose a new intervention; as an engineer you can apply "
            "specs a dermatologist proposed (same concepts, operations and strengths)."
        )
        return
    with st.form("iv_save_form", clear_on_submit=False):
        st.markdown("**Save this intervention**")
        rationale = st.text_area(
            "Rationale (required)", key="iv_rationale",
            placeholder="e.g. Ink markings are clinically irrelevant; the model uses them as a melanoma shortcut.",
        )
        rerun = st.checkbox("Also re-run TCAV of the changed concepts on the patched model (slower)",
                            key="iv_rerun_tcav")
        submitted = st.form_submit_button("Save intervention", type="primary", icon=":material/save:")
    if submitted:
        if not rationale.strip():
            st.error("Write a rationale first: say why this change is clinically right.")
            return
        status = st.status("Measuring and recording the effect…", expanded=True)
        with status, guard("Saving"):
            bar = st.progress(0.0, text="measuring")

            def progress(stage: str, done: int, total: int) -> None:
                bar.progress(min(1.0, done / max(total, 1)), text=stage)

            try:
                event, _report = save_intervention(ws, ctx.actor, spec, rationale,
                                                   rerun_tcav=rerun, progress=progress)
            except Exception:
                status.update(label="Not saved", state="error")
                raise
            status.update(label=f"Saved as {event.intervention_id} (event #{event.seq})",
                          state="complete")
            st.session_state["iv_saved"] = f"Saved {spec.describe()} as {event.intervention_id}."
            st.rerun(scope="app")


def _applied_list(ctx: PageContext) -> None:
    ws = workspace()
    st.subheader("Applied interventions")
    msg = st.session_state.pop("iv_saved", None)
    if msg:
        st.success(md(msg), icon=":material/check_circle:")
    active = active_interventions(store_events(ws))
    if not active:
        st.info("No intervention is applied.")
        return
    for a in active:
        deltas = a.metric_deltas or {}
        with st.expander(f"{a.intervention_id} · {md(a.concept or '')} · by {md(a.applied_by)}", expanded=False):
            st.text(f"“{a.rationale}” — {a.applied_at[:16].replace('T', ' ')} UTC")
            if deltas:
                st.dataframe(
                    pd.DataFrame([{"metric": k, "change": v} for k, v in deltas.items()]),
                    hide_index=True, width="stretch",
                    column_config={"change": st.column_config.NumberColumn(format="%+.3f")},
                )
            st.download_button(
                "Intervention report", icon=":material/description:", on_click="ignore",
                data=functools.partial(intervention_report_bytes, store(ws), ws.root, a.intervention_id,
                                       functools.partial(confounder_frame, ws)),
                file_name=f"report-{a.intervention_id}.html", mime="text/html",
                key=f"iv_report_{a.intervention_id}")
            if ctx.can(Action.REVERTED):
                with st.form(f"iv_revert_{a.intervention_id}"):
                    why = st.text_input("Why revert? (required)", key=f"iv_revert_why_{a.intervention_id}")
                    if st.form_submit_button("Revert", icon=":material/undo:"):
                        if not why.strip():
                            st.error("Give a reason for reverting.")
                        else:
                            with guard("Reverting"):
                                revert_intervention(ws, ctx.actor, a.intervention_id, why, a.concept)
                                st.session_state["iv_saved"] = f"Reverted {a.intervention_id}."
                                st.rerun()


def body(ctx: PageContext) -> None:
    if ctx.read_only:
        st.info("Read-only: you can explore what-ifs, but not save or revert interventions.",
                icon=":material/visibility:")
    what_if(ctx)
    with guard("Applied interventions"):
        _applied_list(ctx)


run_page(
    "Interventions",
    body,
    "Remove (mask) or strengthen (amplify) a concept in the model's feature space and see the "
    "effect on every case at once.",
)
