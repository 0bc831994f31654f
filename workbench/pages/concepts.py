"""Concepts: TCAV per class against the random baseline, CAV quality, examples and concept maps."""

from __future__ import annotations

import streamlit as st

from workbench.ui._concepts import concept_examples, concept_map
from workbench.ui._figures import heat_overlay, tcav_figure
from workbench.ui._science import example_split, tcav_table
from workbench.ui._state import PageContext, guard, run_page, workspace
from workbench.ui._text import md


def body(ctx: PageContext) -> None:
    ws = workspace()
    tcav = tcav_table(ws)
    layers = sorted(tcav["layer"].unique().tolist())
    classes = sorted(tcav["class"].unique().tolist())
    c1, c2 = st.columns(2)
    layer = c1.selectbox("Layer", layers, index=len(layers) - 1, key="concepts_layer")
    cls = c2.selectbox("Class", classes, key="concepts_class")
    st.plotly_chart(tcav_figure(tcav, cls=cls, layer=layer), width="stretch", key="concepts_tcav")

    sub = tcav[(tcav["class"] == cls) & (tcav["layer"] == layer)]
    cols = [c for c in ("concept", "group", "score_mean", "score_std", "random_mean", "effect",
                        "p_adjusted", "cav_accuracy", "stability", "significant", "unstable",
                        "verdict") if c in sub]
    st.dataframe(
        sub[cols].sort_values("effect", ascending=False, key=abs),
        hide_index=True,
        width="stretch",
        column_config={
            "score_mean": st.column_config.NumberColumn("TCAV", format="%.2f"),
            "score_std": st.column_config.NumberColumn("± std", format="%.2f"),
            "random_mean": st.column_config.NumberColumn("random", format="%.2f"),
            "effect": st.column_config.NumberColumn("effect", format="%+.2f"),
            "p_adjusted": st.column_config.NumberColumn("adj. p", format="%.3g"),
            "cav_accuracy": st.column_config.ProgressColumn("CAV accuracy", min_value=0.0, max_value=1.0, format="%.2f"),
            "stability": st.column_config.ProgressColumn("stability", min_value=0.0, max_value=1.0, format="%.2f"),
        },
        key="concepts_table",
    )

    st.subheader("Examples and concept maps")
    concepts = sorted(tcav["concept"].unique().tolist())
    strongest = str(sub.loc[sub["effect"].abs().idxmax(), "concept"]) if len(sub) else concepts[0]
    concept = st.selectbox("Concept", concepts, index=concepts.index(strongest), key="concepts_concept",
                           help="defaults to the concept with the largest TCAV effect on this class")
    with guard("Concept examples"):
        ex = concept_examples(ws, concept, layer, split=example_split(ws))
        for title, key in (("Most like the concept", "top"), ("Least like the concept", "bottom")):
            st.markdown(f"**{title}** (score along the CAV at {md(layer)}, {md(example_split(ws))} split)")
            rows = ex[key]
            cols_ = st.columns(len(rows) or 1)
            for col, r in zip(cols_, rows, strict=False):
                col.image(r["image"], caption=md(f"{r['case_id']} · {r['label']} · {r['score']:+.2f}"), width="stretch")
    with guard("Concept maps"):
        show_maps = st.toggle("Overlay concept maps (where in the image the concept is seen)", key="concepts_maps")
        if show_maps:
            rows = concept_examples(ws, concept, layer, split=example_split(ws))["top"]
            cols_ = st.columns(len(rows) or 1)
            for col, r in zip(cols_, rows, strict=False):
                heat = concept_map(ws, concept, layer, r["row"])
                col.image(heat_overlay(r["image"], heat), caption=md(r["case_id"]), width="stretch")


run_page(
    "Concepts",
    body,
    "How much each concept moves each class (TCAV), measured against random directions.",
)
