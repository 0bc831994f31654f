"""Audit: the event history with filters, chain verification and downloads."""

from __future__ import annotations

import functools

import streamlit as st

from store import Action
from workbench._ui_history import (
    EXPORT_MIME,
    anchor_note,
    export_bytes,
    history_frame,
    make_filter,
    verify_summary,
)
from workbench._ui_state import PageContext, guard, run_page, store, store_events, workspace


def body(ctx: PageContext) -> None:
    ws = workspace()
    s = store(ws)

    result = s.verify()
    ok, text = verify_summary(result)
    if ok:
        st.success(text, icon=":material/verified:")
        anchored, note = anchor_note(result)
        if anchored:
            st.caption(note)
        else:
            st.warning(note, icon=":material/anchor:")
    else:
        st.error(text, icon=":material/gpp_bad:")
        st.caption("Export the history and compare it with an earlier export or anchored head hash.")

    all_events = store_events(ws)
    with st.expander("Filters", expanded=True, icon=":material/filter_list:"):
        c1, c2, c3 = st.columns(3)
        since = c1.date_input("Since", value=None, key="audit_since")
        until = c1.date_input("Until", value=None, key="audit_until")
        actors = sorted({e.actor_id for e in all_events})
        actor = c2.selectbox("Actor", ["", *actors], key="audit_actor", format_func=lambda a: a or "anyone")
        action = c2.selectbox(
            "Action", ["", *[a.value for a in Action]], key="audit_action",
            format_func=lambda a: a or "any action",
        )
        concepts = sorted({e.concept for e in all_events if e.concept})
        concept = c3.selectbox("Concept", ["", *concepts], key="audit_concept", format_func=lambda c: c or "any")
        ivs = sorted({e.intervention_id for e in all_events if e.intervention_id})
        iv = c3.selectbox("Intervention", ["", *ivs], key="audit_iv", format_func=lambda i: i or "any")
    flt = make_filter(
        since=since if not isinstance(since, tuple) else None,
        until=until if not isinstance(until, tuple) else None,
        actor=actor, action=action, concept=concept, intervention_id=iv,
    )
    events = s.events(flt)
    st.subheader(f"History — {len(events)} of {len(all_events)} events")
    if not events:
        st.info("No events match." if all_events else "Nothing has been recorded yet.")
    else:
        st.dataframe(history_frame(events), hide_index=True, width="stretch", key="audit_table")

    st.subheader("Downloads")
    st.caption(
        "Exports hold every column, chain fields included, so they verify on their own "
        "(`workbench audit verify --file FILE`). Each download is itself recorded in the history."
    )
    if not ctx.can(Action.EXPORTED):
        st.info("Your role may not export the history.")
        return
    cols = st.columns(4)
    for col, (fmt, label) in zip(
        cols, (("csv", "CSV"), ("parquet", "Parquet"), ("jsonl", "JSONL")), strict=False
    ):
        col.download_button(
            f"History as {label}",
            data=functools.partial(export_bytes, s, ctx.actor, fmt, flt),
            file_name=f"intervention-history.{fmt}",
            mime=EXPORT_MIME[fmt],
            icon=":material/download:",
            key=f"audit_dl_{fmt}",
            on_click="ignore",
        )
    with cols[3], guard("HTML report"):
        if ivs:
            pick = st.selectbox("Report for intervention", ivs, key="audit_report_iv")
            st.download_button(
                "HTML report",
                data=functools.partial(s.report_html, pick),
                file_name=f"report-{pick}.html",
                mime=EXPORT_MIME["html"],
                icon=":material/description:",
                key="audit_dl_html",
                on_click="ignore",
            )
        else:
            st.caption("HTML reports appear once an intervention is recorded.")


run_page(
    "Audit",
    body,
    "Who changed what, when, why, with which evidence and effect — tamper-evident.",
)
