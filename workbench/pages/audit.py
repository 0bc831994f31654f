"""Audit: the event history with filters, chain verification and downloads."""

from __future__ import annotations

import functools

import streamlit as st

from concepts import Workspace
from store import Action, Event, EventFilter, Store
from workbench.ui._history import (
    EXPORT_MIME,
    anchor_note,
    export_bytes,
    history_frame,
    history_report_bytes,
    intervention_report_bytes,
    make_filter,
    verify_summary,
)
from workbench.ui._science import confounder_frame
from workbench.ui._state import PageContext, guard, run_page, store, store_events, workspace


def body(ctx: PageContext) -> None:
    ws = workspace()
    s = store(ws)
    _chain_status(s)
    all_events = store_events(ws)
    flt, ivs = _filters(all_events)
    _history(s, flt, all_events)
    st.subheader("Downloads")
    st.caption(
        "Exports hold every column, chain fields included, so they verify on their own "
        "(`workbench audit verify --file FILE`). Each download is itself recorded in the history."
    )
    if not ctx.can(Action.EXPORTED):
        st.info("Your role may not export the history.")
        return
    _downloads(ctx, s, flt)
    _reports(ws, s, flt, ivs)


def _chain_status(s: Store) -> None:
    """Whether the hash chain verifies, and whether its head is anchored."""
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


def _filters(all_events: list[Event]) -> tuple[EventFilter, list[str]]:
    """The filter chosen in the Filters expander, and every recorded intervention id."""
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
    return flt, ivs


def _history(s: Store, flt: EventFilter, all_events: list[Event]) -> None:
    """The events that match ``flt``, as a table."""
    events = s.events(flt)
    st.subheader(f"History — {len(events)} of {len(all_events)} events")
    if not events:
        st.info("No events match." if all_events else "Nothing has been recorded yet.")
    else:
        st.dataframe(history_frame(events), hide_index=True, width="stretch", key="audit_table")


def _downloads(ctx: PageContext, s: Store, flt: EventFilter) -> None:
    """One download button per export format (each download is recorded as ``exported``)."""
    cols = st.columns(3)
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


def _reports(ws: Workspace, s: Store, flt: EventFilter, ivs: list[str]) -> None:
    """The intervention report of a chosen intervention and the history report over ``flt``."""
    st.subheader("Reports")
    st.caption("Print-ready HTML (A4 or Letter): open it in a browser and Print → Save as PDF.")
    r1, r2 = st.columns(2)
    with r1, guard("Intervention report"):
        if ivs:
            pick = st.selectbox("Report for intervention", ivs, key="audit_report_iv")
            st.download_button(
                "Intervention report",
                data=functools.partial(intervention_report_bytes, s, ws.root, pick,
                                       functools.partial(confounder_frame, ws)),
                file_name=f"report-{pick}.html",
                mime=EXPORT_MIME["html"],
                icon=":material/description:",
                key="audit_dl_html",
                on_click="ignore",
            )
        else:
            st.caption("Intervention reports appear once an intervention is recorded.")
    with r2, guard("History report"):
        st.caption("History report over the filters above (counts, one row per intervention, "
                   "chain status).")
        st.download_button(
            "History report",
            data=functools.partial(history_report_bytes, s, ws.root, flt),
            file_name="history-report.html",
            mime=EXPORT_MIME["html"],
            icon=":material/summarize:",
            key="audit_dl_history",
            on_click="ignore",
        )


run_page(
    "Audit",
    body,
    "Who changed what, when, why, with which evidence and effect — tamper-evident.",
)
