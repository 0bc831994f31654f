"""Knowledge graph: the 7-point checklist graph coloured by alignment; click a node for evidence."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from workbench.ui._figures import graph_figure, selected_node
from workbench.ui._science import graph_tables, node_evidence
from workbench.ui._state import PageContext, run_page, workspace
from workbench.ui._text import md


def body(ctx: PageContext) -> None:
    ws = workspace()
    c1, c2 = st.columns(2)
    subs = c1.toggle("Show scoring sub-labels", key="kg_subs")
    subtypes = c2.toggle("Show melanoma subtypes", key="kg_subtypes")
    nodes, edges, coloured = graph_tables(ws, show_sub_labels=subs, show_subtypes=subtypes)
    if not coloured:
        st.info(
            "No TCAV results yet, so no node is coloured by alignment. The checklist structure "
            "is shown; run the TCAV analysis to colour it.",
            icon=":material/hourglass_empty:",
        )
    legend = " · ".join(
        f":{_md_color(c)}[●] {c}" for c in ("aligned", "confounder", "neglected", "contradictory", "unreviewed", "not tested")
    )
    st.caption(legend + " — ◆ artifact, ● criterion, ■ diagnosis, ★ named concept")

    selectable = nodes[nodes["kind"] != "sub_label"]["node"].tolist()
    current = st.session_state.get("kg_node")
    fig = graph_figure(nodes, edges, selected=current)
    event = st.plotly_chart(
        fig, key="kg_chart", on_select="rerun", selection_mode="points", width="stretch",
        config={"displaylogo": False},
    )
    clicked = selected_node(event)
    if clicked and clicked != current and clicked in selectable:
        st.session_state["kg_node"] = clicked
        st.rerun()
    node = st.selectbox(
        "Evidence for node (or click a node in the graph)",
        selectable,
        index=None,
        key="kg_node",
        placeholder="choose a concept, criterion, artifact or diagnosis",
    )
    if node:
        _evidence(ws, node)


_MD_COLORS = {
    "aligned": "green", "confounder": "red", "neglected": "orange",
    "contradictory": "violet", "unreviewed": "gray", "not tested": "gray",
}


def _md_color(cat: str) -> str:
    return _MD_COLORS.get(cat, "gray")


def _evidence(ws: Any, node: str) -> None:
    ev = node_evidence(ws, node)
    st.subheader(md(f"{ev.get('label', node)}  ·  {ev['kind']}"))
    f = ev["finding"]
    if f is not None:
        cat = str(f["category"])
        box = st.error if cat in ("confounder", "contradictory") else (st.warning if cat == "neglected" else st.success)
        box(f"**{md(cat)}** — {md(f['reason'])}")
        cols = st.columns(4)
        cols[0].metric("TCAV effect", _fmt(f.get("effect")), help="score minus random baseline (lead row)")
        cols[1].metric("adjusted p", _fmt(f.get("p_adjusted"), ".2g"))
        cols[2].metric("CAV accuracy", _fmt(f.get("cav_accuracy")))
        cols[3].metric("stability", _fmt(f.get("stability")))
    for line in ev["explain"]:
        st.markdown(f"- {md(line)}")
    tc: pd.DataFrame = ev["tcav"]
    if len(tc):
        show = [c for c in ("class", "layer", "score_mean", "score_std", "random_mean", "effect",
                            "p_adjusted", "cav_accuracy", "stability", "significant", "unstable", "verdict")
                if c in tc]
        st.dataframe(tc[show], hide_index=True, width="stretch")
    if ev["neighbors"]:
        with st.expander("Relations in the graph"):
            st.markdown("\n".join(f"- {md(n)}" for n in ev["neighbors"]))


def _fmt(v: Any, spec: str = ".2f") -> str:
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return "—"


run_page(
    "Knowledge graph",
    body,
    "The 7-point checklist, diagnoses and artifacts; colours compare the model's TCAV reliance "
    "with clinical expectations.",
)
