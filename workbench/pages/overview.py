"""Overview: model and data in use, headline metrics, top findings, and what has changed."""

from __future__ import annotations

from typing import Any

import streamlit as st

from workbench._ui_history import active_interventions, history_frame
from workbench._ui_science import alignment_frame, confounder_display, confounder_frame, summary
from workbench._ui_state import PageContext, guard, run_page, store_events, workspace
from workbench._ui_text import md


def _pct(v: Any) -> str:
    try:
        return f"{100 * float(v):.1f}%"
    except (TypeError, ValueError):
        return "—"


def body(ctx: PageContext) -> None:
    ws = workspace()
    info = summary(ws)

    st.subheader("Model and data")
    c1, c2, c3 = st.columns(3)
    c1.metric("Model", str(info.get("architecture") or info.get("model") or "—"),
              help=f"model id {md(info.get('model_id', '?'))}")
    c2.metric("Data set", str(info.get("dataset") or "—"),
              help=f"{info.get('n_images', '?')} images of {info.get('image_size', '?')} px")
    c3.metric("Cases", str(info.get("n_images", "—")),
              help=f"plus {info.get('n_concept_images', '?')} concept-set images")
    if info.get("layers"):
        st.caption("Layers analysed: " + md(", ".join(info["layers"])) + f" · model id {md(info.get('model_id', '?'))}")

    st.subheader("Headline metrics")
    m = st.columns(4)
    m[0].metric("Accuracy, biased validation", _pct(info.get("val_accuracy")),
                help="validation split: same shortcut statistics as training")
    m[1].metric("Accuracy, debiased test", _pct(info.get("test_debiased_accuracy")),
                help="test split where artifacts are independent of the diagnosis")
    m[2].metric("Worst-group accuracy, debiased test",
                _pct(info.get("test_debiased_worst_group_accuracy")))
    gap = None
    if info.get("val_accuracy") is not None and info.get("test_debiased_accuracy") is not None:
        gap = float(info["val_accuracy"]) - float(info["test_debiased_accuracy"])
    m[3].metric("Shortcut gap", _pct(gap), help="biased val minus debiased test accuracy")
    flips = info.get("flip_rates") or {}
    if flips:
        st.caption(
            "Counterfactual flip rates (debiased test): "
            + "; ".join(
                f"adding **{md(art)}** flips {_pct(fr.get('add'))} of cases, removing it "
                f"{_pct(fr.get('remove'))}"
                for art, fr in flips.items()
            )
        )

    left, right = st.columns(2)
    with left:
        st.subheader("Alignment: top findings")
        with guard("Alignment report"):
            al = alignment_frame(ws)
            counts = al["category"].value_counts().to_dict()
            st.caption(md(" · ".join(f"{k}: {v}" for k, v in counts.items())))
            top = al[al["category"] != "aligned"].head(5)
            if top.empty:
                st.success("Every tested concept is used as clinical knowledge expects.")
            for _, r in top.iterrows():
                st.markdown(f"**{md(r['concept'])}** — *{md(r['category'])}*: {md(r['reason'])}")
    with right:
        st.subheader("Confounders: top of the ranked report")
        with guard("Confounder report"):
            cf = confounder_display(confounder_frame(ws), limit=5)
            if cf.empty:
                st.success("No confounder candidates: nothing irrelevant rides with a class.")
            for _, r in cf.iterrows():
                st.markdown(f"{int(r['rank'])}\\. **{md(r['concept'])}** ({md(r['class'])}) — {md(r['evidence'])}")

    st.subheader("What has changed")
    with guard("Intervention history"):
        events = store_events(ws)
        active = active_interventions(events)
        if not active:
            st.info("No intervention is applied: the model is as trained.")
        for a in active:
            st.markdown(
                f"- **{md(a.concept or a.intervention_id)}** ({md(a.intervention_id)}) applied by "
                f"{md(a.applied_by)} on {a.applied_at[:16].replace('T', ' ')}"
            )
            st.text(f"“{a.rationale}”")
        recent = events[-5:]
        if recent:
            st.caption("Latest events")
            st.dataframe(
                history_frame(recent)[["seq", "time (UTC)", "who", "action", "concept", "intervention"]],
                hide_index=True, width="stretch",
            )


run_page(
    "Overview",
    body,
    "Concept Workbench: find what the classifier relies on, compare it with clinical knowledge, "
    "and correct it.",
)
