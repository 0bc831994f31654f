"""Confounders: the ranked confounder report, co-occurrence tables and heatmaps, and the cluster
gallery where a dermatologist names a cluster as a new concept."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from store import Action
from workbench.ui._concepts import cluster_gallery, name_cluster_as_concept
from workbench.ui._figures import cooccurrence_heatmap
from workbench.ui._interventions import PRESET_KEY
from workbench.ui._science import confounder_display, confounder_frame, cooccurrence_tables
from workbench.ui._state import PageContext, guard, run_page, workspace
from workbench.ui._text import md


def _report(ctx: PageContext, ws: Any) -> None:
    cf = confounder_display(confounder_frame(ws))
    st.caption(
        "Score = clinical irrelevance × co-occurrence × reliance (docs/confounders.md): an "
        "attribute that rides with a class in the data, that the model relies on (the "
        "counterfactual flip rate where twins can be made, else TCAV sensitivity; column "
        "'reliance from'), and that clinical knowledge says should not matter."
    )
    if cf.empty:
        st.success("No confounder candidates: nothing clinically irrelevant rides with a class.")
        return
    st.dataframe(
        cf, hide_index=True, width="stretch", key="cf_table",
        column_config={
            "score": st.column_config.ProgressColumn("score", min_value=0.0,
                                                     max_value=float(max(cf["score"].max(), 1.0)), format="%.2f"),
            "lift": st.column_config.NumberColumn(format="%.2f"),
            "odds_ratio": st.column_config.NumberColumn("odds ratio", format="%.1f"),
            "p_adjusted": st.column_config.NumberColumn("adj. p", format="%.2g"),
            "reliance": st.column_config.NumberColumn("TCAV effect", format="%+.2f"),
            "flip_rate": st.column_config.NumberColumn("flip rate", format="%.2f"),
            "reliance_source": st.column_config.TextColumn("reliance from"),
            "evidence": st.column_config.TextColumn(width="large"),
        },
    )
    st.markdown("**Act on a confounder**")
    shown: set[str] = set()
    for _, r in cf.iterrows():
        c = str(r["concept"])
        if c in shown or len(shown) >= 5:
            continue
        shown.add(c)
        a, b = st.columns([5, 1], vertical_alignment="center")
        a.markdown(f"**{int(r['rank'])}. {md(c)}** ({md(r['class'])}) — {md(r['evidence'])}")
        if not ctx.read_only and b.button(
            f"Mask {md(c)}", key=f"cf_mask_{c}", icon=":material/healing:",
            help="Open Interventions with this concept masked",
        ):
            st.session_state[PRESET_KEY] = [c]
            st.switch_page("pages/interventions.py")


def _cooccurrence(ws: Any) -> None:
    by_class, pairs = cooccurrence_tables(ws)
    splits = [s for s in pd.unique(by_class["split"]).tolist()]
    split = st.selectbox("Split", splits, index=splits.index("train") if "train" in splits else 0, key="cf_split")
    sub = by_class[(by_class["split"] == split) & by_class["testable"].astype(bool)]
    st.plotly_chart(
        cooccurrence_heatmap(sub, row="attribute", col="class", value="lift", zmid=1.0,
                             title=f"Lift of each attribute in each class ({split}); 1 = independent"),
        width="stretch", key="cf_heat_class",
    )
    cols = ["attribute", "kind", "class", "n_both", "prevalence_class", "prevalence_other", "lift",
            "odds_ratio", "p_adjusted", "significant", "note"]
    st.dataframe(
        by_class[by_class["split"] == split][[c for c in cols if c in by_class]]
        .sort_values("lift", ascending=False),
        hide_index=True, width="stretch", key="cf_table_class",
    )
    psub = pairs[(pairs["split"] == split) & pairs["testable"].astype(bool)]
    if len(psub):
        both = pd.concat([psub, psub.rename(columns={"a": "b", "b": "a"})], ignore_index=True)
        st.plotly_chart(
            cooccurrence_heatmap(both, row="a", col="b", value="phi", zmid=0.0,
                                 title=f"Which attributes ride together (phi, {split})"),
            width="stretch", key="cf_heat_pairs",
        )


def _clusters(ctx: PageContext, ws: Any) -> None:
    gallery = cluster_gallery(ws)
    if not gallery:
        st.info("No unexplained clusters were found in the model's features.")
        return
    can_name = ctx.can(Action.CONCEPT_NAMED)
    for cl in gallery:
        with st.container(border=True):
            st.markdown(f"**Cluster {cl['cluster']}** · {cl['size']} cases · {md(cl.get('summary', ''))}")
            imgs = cl["images"]
            cols = st.columns(max(1, len(imgs)))
            for col, (img, cap) in zip(cols, imgs, strict=False):
                col.image(img, caption=md(cap), width="stretch")
            if not can_name:
                continue
            with st.form(f"cf_name_{cl['cluster']}"):
                name = st.text_input("Name this pattern as a concept", key=f"cf_name_text_{cl['cluster']}",
                                     placeholder="e.g. surgical_marker")
                why = st.text_input("What you see (recorded as the rationale)", key=f"cf_name_why_{cl['cluster']}")
                go = st.form_submit_button("Name and test the concept", icon=":material/label:")
            if go:
                if not name.strip():
                    st.error("Give the concept a name.")
                    continue
                with guard("Naming the cluster"), st.status(f"Learning “{md(name)}” and testing it (CAV, TCAV)…",
                                                            expanded=True) as status:
                    bar = st.progress(0.0, text="starting")

                    def progress(stage: str, done: int, total: int, bar: Any = bar) -> None:
                        bar.progress(min(1.0, done / max(total, 1)), text=stage)

                    result = name_cluster_as_concept(ws, ctx.actor, cl["cluster"], name.strip(), why.strip(),
                                                     progress=progress)
                    status.update(label=f"“{md(name)}” added: {md(result)}", state="complete")


def body(ctx: PageContext) -> None:
    ws = workspace()
    tab_report, tab_cooc, tab_clusters = st.tabs(["Ranked report", "Co-occurrence", "Cluster gallery"])
    with tab_report, guard("Confounder report"):
        _report(ctx, ws)
    with tab_cooc, guard("Co-occurrence"):
        _cooccurrence(ws)
    with tab_clusters, guard("Cluster gallery"):
        _clusters(ctx, ws)


run_page(
    "Confounders",
    body,
    "What travels with each diagnosis in the data, what the model relies on that it should not, "
    "and unexplained patterns to name.",
)
