"""Overview: model and data in use, headline metrics, top findings, and what has changed."""

from __future__ import annotations

from typing import Any

import streamlit as st

from workbench.ui._history import active_interventions, history_frame
from workbench.ui._science import alignment_frame, confounder_display, confounder_frame, summary
from workbench.ui._state import PageContext, guard, run_page, store_events, workspace
from workbench.ui._text import md


def _pct(v: Any) -> str:
    try:
        return f"{100 * float(v):.1f}%"
    except (TypeError, ValueError):
        return "—"


def _model_and_data(info: dict[str, Any]) -> None:
    st.subheader("Model and data")
    ds, model = info.get("dataset") or {}, info.get("model") or {}
    c1, c2, c3 = st.columns(3)
    c1.metric("Model", str(model.get("architecture") or model.get("name") or "—"),
              help=md(f"{model.get('name', '?')} · model id {model.get('model_id', '?')}"))
    c2.metric("Data set", str(ds.get("name") or "—"),
              help=md(f"{ds.get('source', '?')} · images of {ds.get('image_size', '?')} px"))
    c3.metric("Cases", str(ds.get("n", "—")),
              help=md(", ".join(f"{s}: {n}" for s, n in (ds.get("splits") or {}).items())))
    lines = []
    if ds:
        lines.append("Splits: " + md(", ".join(f"{s} {n}" for s, n in ds["splits"].items()))
                     + " · classes: " + md(", ".join(ds["classes"])))
        lines.append("Annotated: " + md(", ".join(ds["concepts"] + ds["artifacts"]) or "nothing"))
    if model:
        lines.append(md(model["how"].get("text", "")) + " · layers analysed: " + md(", ".join(model["layers"]) or "—"))
    for line in lines:
        st.caption(line)


_SPLIT_LABELS = {"test": "test", "val": "validation", "test_debiased": "debiased test"}


def _headline(info: dict[str, Any]) -> None:
    head = info.get("headline")
    st.subheader("Headline metrics")
    if not head:
        st.info("No stored evaluation of this model on this data set: `workbench train` stores one; "
                "for an added model, `workbench models select` precomputes it.", icon=":material/hourglass_empty:")
        return
    metrics = (info.get("evaluation") or {}).get("metrics") or {}
    demo = "test_debiased" in metrics
    labels = {**_SPLIT_LABELS, "val": "biased validation"} if demo else _SPLIT_LABELS
    accs = [(s, metrics[s].get("accuracy")) for s in ("val", head["split"]) if s in metrics]
    accs = list(dict.fromkeys(accs))
    pos = head.get("positive_class") or "positive class"
    split = labels.get(head["split"], head["split"])
    st.caption(f"Stored evaluation ({md((info.get('evaluation') or {}).get('source') or '?')}); sensitivity, "
               f"worst-group and clean accuracy on the {md(split)} split ({head.get('n')} cases).")
    m = st.columns(len(accs) + 3)
    for col, (s, acc) in zip(m, accs, strict=False):
        col.metric(f"Accuracy, {labels.get(s, s)}", _pct(acc), help=f"{metrics[s].get('n')} cases of the {s} split")
    m[len(accs)].metric(f"Sensitivity ({md(pos)})", _pct(head.get("sensitivity")),
                        help=f"specificity {_pct(head.get('specificity'))}")
    m[len(accs) + 1].metric("Worst-group accuracy", _pct(head.get("worst_group_accuracy")),
                            help=md(f"group {head.get('worst_group') or '—'}: diagnosis × annotated artifact"))
    m[len(accs) + 2].metric("Clean accuracy", _pct(head.get("clean_accuracy")),
                            help=f"{head.get('n_clean')} cases with no annotated artifact")
    if head.get("worst_group"):
        st.caption(f"Worst group: **{md(head['worst_group'])}** ({_pct(head['worst_group_accuracy'])} of "
                   f"{head.get('worst_group_n')} cases). Groups: "
                   + md("; ".join(f"{g['group']} {_pct(g['accuracy'])} (n={g['n']})" for g in head["groups"])))
    else:
        st.caption("No worst group: the data set annotates no artifact column (groups are diagnosis × artifact).")
    _demo_figures(info, accs)


def _demo_figures(info: dict[str, Any], accs: list[tuple[str, Any]]) -> None:
    """The DermSynth demo's shortcut gap and counterfactual flip rates."""
    if not info.get("demo"):
        return
    if len(accs) == 2 and accs[0][1] is not None and accs[1][1] is not None:
        st.caption(f"Shortcut gap (biased validation minus debiased test accuracy): "
                   f"{_pct(float(accs[0][1]) - float(accs[1][1]))}")
    flips = (info.get("demo_figures") or {}).get("flip_rates") or {}
    if flips:
        st.caption(
            "Counterfactual flip rates (debiased test): "
            + "; ".join(
                f"adding **{md(art)}** flips {_pct(fr.get('add'))} of cases, removing it "
                f"{_pct(fr.get('remove'))}"
                for art, fr in flips.items()
            )
        )


def body(ctx: PageContext) -> None:
    ws = workspace()
    info = summary(ws)
    _model_and_data(info)
    _headline(info)

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
