"""Case explorer: filter cases, then one case's image, prediction, concept scores, concept map,
attribution, its checklist score (ground truth and model-implied) and a per-case what-if; a
dermatologist can tick cases and build a concept from them (masked on Interventions)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from store import Action
from workbench.ui._cases import (
    PAGE_SIZES,
    CaseFilter,
    CasePage,
    case_id_index,
    filter_cases,
    page_of,
    picker_options,
    unknown_ids,
)
from workbench.ui._concepts import (
    add_concept_from_cases,
    attribution,
    case_concept_scores,
    case_table,
    concept_map,
)
from workbench.ui._figures import heat_overlay, reliance_bar
from workbench.ui._interventions import (
    PRESET_KEY,
    build_spec,
    concept_library,
    eval_splits,
    evaluate,
    whatif,
    whatif_ready,
)
from workbench.ui._science import tcav_table
from workbench.ui._state import PageContext, dataset, guard, progress_bar, run_page, workspace
from workbench.ui._text import md

_GROUPS = ("custom", "artifact", "criterion")
_POS_KEY, _NEG_KEY, _TICKED_KEY = "cx_concept_cases", "cx_concept_neg", "cx_ticked_prev"
_VISIBLE_KEY = "cx_visible_ids"  # the case ids on the table's current page (the pickers list them)


def _filters(cases: pd.DataFrame, arts: list[str]) -> pd.DataFrame:
    c1, c2, c3, c4 = st.columns(4)
    classes = sorted(cases["label"].unique().tolist())
    cls = c1.multiselect("Class", classes, default=classes, key="cx_class")
    outcome = c2.segmented_control("Prediction", ["all", "correct", "incorrect"], default="all",
                                   key="cx_outcome")
    art = c3.multiselect("Artifacts present", arts, key="cx_arts",
                         help="cases that carry every selected artifact")
    tones = sorted(cases["skin_tone"].unique().tolist()) if "skin_tone" in cases else []
    tone = c4.multiselect("Skin tone", tones, key="cx_tone") if tones else []
    flt = CaseFilter(classes=tuple(cls), outcome=str(outcome or "all"), artifacts=tuple(art),
                     skin_tones=tuple(tone))
    return filter_cases(cases, flt)


def _paged(shown: pd.DataFrame) -> CasePage:
    """Page size and page number of the filtered table (only that page goes to the browser)."""
    a, b = st.columns([1, 1])
    size = int(a.selectbox("Rows per page", PAGE_SIZES, index=1, key="cx_page_size"))
    n_pages = page_of(shown, 1, size).n_pages
    if int(st.session_state.get("cx_page", 1)) > n_pages:  # the filters narrowed: back to page 1
        st.session_state["cx_page"] = 1
    page = b.number_input(f"Page (of {n_pages})", min_value=1, max_value=n_pages, step=1, key="cx_page")
    return page_of(shown, int(page), size)


def _what_if(ws: Any, split: str, layer: str, case: pd.Series, concepts: list[str]) -> None:
    st.markdown("**What if** — change one concept and see this case's prediction")
    a, b, c = st.columns([2, 1, 2])
    concept = a.selectbox("Concept", concepts, key="cx_wi_concept",
                          index=concepts.index("ink") if "ink" in concepts else 0)
    op = b.radio("Operation", ["mask", "amplify"], key="cx_wi_op", horizontal=True)
    hi, default = (1.0, 1.0) if op == "mask" else (5.0, 2.0)
    strength = c.slider("Strength", 0.0, hi, default, 0.05, key=f"cx_wi_s_{op}")
    spec = build_spec(ws, layer, [(concept, str(op), float(strength))])
    wi = whatif(ws, split, layer)
    pos = wi.case_ids.index(str(case["case_id"]))
    res = evaluate(ws, split, layer, spec)
    classes = wi.model.classes
    before, after = wi.base_proba[pos], res.proba[pos]
    cols = st.columns(len(classes))
    for col, k in zip(cols, range(len(classes)), strict=True):
        col.metric(f"p({md(classes[k])})", f"{after[k]:.2f}", f"{after[k] - before[k]:+.2f}",
                   help=f"before: {before[k]:.2f}")
    new = classes[int(after.argmax())]
    if new != classes[int(before.argmax())]:
        st.warning(f"The prediction flips to **{md(new)}** ({md(spec.describe() if spec else '')}).")
    else:
        st.caption(f"The prediction stays **{md(new)}**.")


def _sync_ticks(view: str, ticked: list[str]) -> None:
    """Ticking a row adds the case to the concept's cases, unticking removes it (before the
    multiselect is drawn, so its state may change). ``view`` names the table page shown: on
    another page (or other filters) the ticks start afresh and nothing is removed."""
    prev_view, prev = st.session_state.get(_TICKED_KEY, ("", []))
    if prev_view != view:
        prev = []
    if ticked == prev:
        st.session_state[_TICKED_KEY] = (view, ticked)
        return
    added, removed = set(ticked) - set(prev), set(prev) - set(ticked)
    cur = [c for c in st.session_state.get(_POS_KEY, []) if c not in removed]
    st.session_state[_POS_KEY] = cur + [c for c in ticked if c in added and c not in cur]
    st.session_state[_TICKED_KEY] = (view, ticked)


@st.fragment
def _concept_builder(ctx: PageContext, ws: Any) -> None:
    """Name a concept from the ticked cases; negatives matched per class or chosen (a fragment:
    picking a case id reruns only this part, not the case's maps and attribution)."""
    all_ids = case_id_index(ws)
    visible = st.session_state.get(_VISIBLE_KEY, [])
    opts, partial = picker_options(all_ids, st.session_state.get(_POS_KEY, []), visible)
    st.markdown("**Concept from cases** — tick rows in the table (or pick ids), name what they "
                "share, and it joins the concept bank")
    typed = " or type case ids in full" if partial else " or type case ids"
    pos: list[str] = st.multiselect("Cases showing the concept", opts, key=_POS_KEY,
                                    placeholder="tick rows above" + typed, accept_new_options=partial,
                                    help=f"lists the ticked cases and those on the table's page "
                                         f"({len(all_ids)} cases in all)" if partial else None)
    how = st.radio("Negatives (cases without it)", ["matched per class", "chosen"], horizontal=True,
                   key="cx_concept_neg_mode",
                   help="matched per class: drawn from the other cases with the same class mix as "
                        "the chosen cases, so the concept cannot stand for the diagnosis")
    neg: list[str] | None = None
    if how == "chosen":
        nopts, npartial = picker_options(all_ids, st.session_state.get(_NEG_KEY, []), visible)
        chosen = set(pos)
        neg = st.multiselect("Cases without the concept", [i for i in nopts if i not in chosen],
                             key=_NEG_KEY, accept_new_options=npartial)
    bad = unknown_ids([*pos, *(neg or [])], all_ids)
    if bad:
        st.warning(f"Not case ids of this data set: {md(', '.join(bad[:10]))}"
                   + (f" and {len(bad) - 10} more" if len(bad) > 10 else ""), icon=":material/warning:")
    with st.form("cx_concept_form", clear_on_submit=False):
        a, b = st.columns([2, 1])
        name = a.text_input("Concept name", key="cx_concept_name", placeholder="e.g. ink_marks")
        group = b.selectbox("Group", _GROUPS, key="cx_concept_group")
        desc = st.text_input("What it shows", key="cx_concept_desc",
                             placeholder="e.g. violet skin-marker lines around the lesion")
        tcav = st.checkbox("Also learn its CAVs and run TCAV (Concepts page; slower)", key="cx_concept_tcav")
        go = st.form_submit_button(f"Build concept from {len(pos)} cases", type="primary",
                                   icon=":material/add_circle:")
    if go:
        with st.spinner("Adding the concept…"), guard("Concept"):
            with progress_bar("Learning the concept") as progress:
                added = add_concept_from_cases(ws, ctx.actor, name, pos, group=str(group), description=desc,
                                               negative_ids=neg, run_tcav=tcav, progress=progress)
            st.session_state["cx_concept_added"] = added.summary()
            st.session_state["cx_concept_caution"] = added.caution
            st.session_state["cx_concept_last"] = added.name
            st.rerun(scope="app")
    msg, last = st.session_state.get("cx_concept_added"), st.session_state.get("cx_concept_last")
    if msg:
        st.success(md(msg), icon=":material/check_circle:")
    if caution := st.session_state.get("cx_concept_caution"):
        st.warning(md(caution), icon=":material/warning:")
    if last and st.button(f"Mask {last} on Interventions", icon=":material/tune:", key="cx_concept_open"):
        st.session_state[PRESET_KEY] = [last]
        st.switch_page("pages/interventions.py")


def body(ctx: PageContext) -> None:
    ws = workspace()
    split = _pick_split(ws)
    layers = ws.layers()
    pred_layer = layers[-1] if layers else concept_library(ws).model.layers[-2]
    if not whatif_ready(ws, split, pred_layer):
        with progress_bar("Preparing predictions (first time only)") as progress:
            whatif(ws, split, pred_layer, progress=progress)
    case = _case_list(ctx, ws, split, pred_layer)
    if case is None:
        return
    st.subheader(f"Case {md(case['case_id'])}")
    row = int(case["row"])
    cm_layer = _case_maps(ws, case, row)
    _scores_and_checklist(ws, split, cm_layer, case, row)
    with guard("What-if"):
        _what_if(ws, split, pred_layer, case, concept_library(ws).concepts)


def _pick_split(ws: Any) -> str:
    """The split explored: the evaluation splits, and ``train`` where the data set has one."""
    labels = dict(eval_splits(ws))
    if "train" in dataset(ws).splits and "train" not in labels:
        labels["train"] = "train"
    split: str = st.selectbox("Split", list(labels), format_func=lambda s: labels.get(s, s), key="cx_split")
    return split


def _case_list(ctx: PageContext, ws: Any, split: str, pred_layer: str) -> pd.Series | None:
    """The filtered case table, one page at a time (ticked rows feed the concept builder); the
    case to inspect (the last ticked, else the first shown; ``None`` when no case matches)."""
    cases = case_table(ws, split, pred_layer)
    arts = [c for c in dataset(ws).info.artifacts if c in cases]
    shown = _filters(cases, arts)
    st.caption(f"{len(shown)} of {len(cases)} cases · accuracy on these "
               f"{100 * shown['correct'].mean():.1f}%" if len(shown) else "No case matches the filters.")
    pg = _paged(shown)
    rows = pg.rows
    if pg.n_pages > 1:
        st.caption(f"Cases {pg.first}–{pg.last} of {pg.n_matching}")
    view = pg.view_key(split)
    event = st.dataframe(
        rows.drop(columns=["row", *arts]), hide_index=True, width="stretch", height=260,
        on_select="rerun", selection_mode="multi-row", key=f"cx_table|{view}",
    )
    sel = [r for r in (event.selection.rows if event is not None else []) if r < len(rows)]  # type: ignore[union-attr]
    st.session_state[_VISIBLE_KEY] = rows["case_id"].tolist()
    writer = ctx.can(Action.CONCEPT_NAMED) and not ctx.read_only
    if writer:
        _sync_ticks(view, [str(rows.iloc[r]["case_id"]) for r in sel])
        with st.expander("Build a concept from cases", expanded=bool(st.session_state.get(_POS_KEY))), \
                guard("Concept from cases"):
            _concept_builder(ctx, ws)
    if not len(rows):
        return None
    case = rows.iloc[sel[-1]] if sel else rows.iloc[0]
    if not sel:
        st.caption("Tick a row to inspect another case" + (" (ticked cases can make a concept)." if writer else "."))
    return case


def _case_maps(ws: Any, case: pd.Series, row: int) -> str:
    """The case's image, a concept map and an attribution map side by side; returns the layer
    of the concept map (the concept scores below use it)."""
    left, mid, right = st.columns(3)
    image = dataset(ws).images[row]
    left.image(image, caption=md(f"truth {case['label']} · predicted {case['predicted']}"), width="stretch")
    tcav = tcav_table(ws)
    tc_layers = sorted(tcav["layer"].unique().tolist())
    concepts = sorted(tcav["concept"].unique().tolist())
    cm_concept = mid.selectbox("Concept map of", concepts, key="cx_map_concept",
                               index=concepts.index("ink") if "ink" in concepts else 0)
    cm_layer: str = mid.selectbox("at layer", tc_layers, index=len(tc_layers) - 1, key="cx_map_layer")
    with mid, guard("Concept map"):
        st.image(heat_overlay(image, concept_map(ws, cm_concept, cm_layer, row)),
                 caption=md(f"where the model sees {cm_concept}"), width="stretch")
    with right, guard("Attribution"):
        method = st.selectbox("Attribution", ["gradcam", "integrated_gradients"], key="cx_attr")
        heat = attribution(ws, row, str(case["predicted"]), method)
        st.image(heat_overlay(image, heat, signed=False), caption=md(f"{method} for {case['predicted']}"),
                 width="stretch")
    return cm_layer


def _scores_and_checklist(ws: Any, split: str, cm_layer: str, case: pd.Series, row: int) -> None:
    """The case's concept scores, and its 7-point score: ground truth and model-implied."""
    c1, c2 = st.columns(2)
    with c1, guard("Concept scores"):
        scores, implied = case_concept_scores(ws, split, cm_layer, row)
        st.plotly_chart(
            reliance_bar(scores, x="concept", y="score", color="group",
                         title=f"Concept scores (signed distance to each CAV hyperplane, {cm_layer})"),
            width="stretch", key="cx_scores",
        )
    with c2, guard("Checklist"):
        st.markdown("**7-point checklist**")
        truth = case.get("seven_point_score")
        m1, m2 = st.columns(2)
        m1.metric("Ground truth score", "—" if truth is None or pd.isna(truth) else f"{int(truth)}",
                  help="from the case's annotated criteria")
        if implied:
            m2.metric("Model-implied score", f"{float(implied['score_expected']):.1f}",
                      help=f"expected score from the concept scores; thresholded "
                           f"{implied.get('score_thresholded')}, P(score ≥ 3) {float(implied.get('p_rule', 0)):.2f}")
            st.caption("Criteria the model sees: " + md(", ".join(implied.get("present", [])) or "none"))
        else:
            m2.metric("Model-implied score", "—", help="needs concept scores of all seven criteria")


run_page(
    "Case explorer",
    body,
    "One case at a time: what the model predicts, which concepts it sees where, and what would change it.",
)
