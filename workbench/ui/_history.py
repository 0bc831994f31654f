"""Read-side helpers of the UI over the event store: history tables, exports, active changes.

Plain functions over :class:`store.Store` (no Streamlit), so pages stay thin and these are
tested directly.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from store import Action, Actor, Event, EventFilter, Store, VerifyResult

__all__ = [
    "EXPORT_MIME",
    "ActiveIntervention",
    "active_interventions",
    "anchor_note",
    "export_bytes",
    "history_frame",
    "history_report_bytes",
    "intervention_report_bytes",
    "make_filter",
    "verify_summary",
]

#: Download MIME types of the export formats.
EXPORT_MIME: dict[str, str] = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "jsonl": "application/x-ndjson",
    "html": "text/html",
}


def make_filter(
    *,
    since: date | None = None,
    until: date | None = None,
    actor: str | None = None,
    action: str | None = None,
    concept: str | None = None,
    intervention_id: str | None = None,
) -> EventFilter:
    """An :class:`store.EventFilter` from the audit page's widgets ("" and None mean any)."""
    return EventFilter(
        since=since,
        until=until,
        actor=actor or None,
        action=action or None,
        concept=concept or None,
        intervention_id=intervention_id or None,
    )


def _short_json(value: Any, limit: int = 80) -> str:
    if value is None:
        return ""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def history_frame(events: list[Event]) -> pd.DataFrame:
    """The event log as a display table (newest first)."""
    rows = [
        {
            "seq": e.seq,
            "time (UTC)": e.ts.replace("T", " ")[:19],
            "who": e.actor_name,
            "actor id": e.actor_id,
            "role": e.actor_role,
            "action": e.action,
            "concept": e.concept or "",
            "intervention": e.intervention_id or "",
            "rationale": e.rationale or "",
            "spec": _short_json(e.spec),
            "metric deltas": _short_json(e.metric_deltas),
            "hash": e.hash[:12],
        }
        for e in events
    ]
    cols = ["seq", "time (UTC)", "who", "actor id", "role", "action", "concept", "intervention",
            "rationale", "spec", "metric deltas", "hash"]
    return pd.DataFrame(rows, columns=cols).sort_values("seq", ascending=False, ignore_index=True)


def intervention_report_bytes(
    store: Store, workspace: Path, intervention_id: str,
    confounders: Callable[[], pd.DataFrame] | None = None,
) -> bytes:
    """The print-ready intervention report (HTML, UTF-8) for a download button.

    ``confounders`` returns the ranked confounder report (the UI passes its cached one).
    """
    from workbench.services._audit_reports import intervention_report

    return intervention_report(store, workspace, intervention_id, confounders).encode("utf-8")


def history_report_bytes(store: Store, workspace: Path, filters: EventFilter | None = None) -> bytes:
    """The print-ready history report over ``filters`` (HTML, UTF-8) for a download button."""
    from workbench.services._audit_reports import history_report

    return history_report(store, workspace, filters).encode("utf-8")


def export_bytes(store: Store, actor: Actor, fmt: str, filters: EventFilter | None = None) -> bytes:
    """Export the (filtered) history to ``fmt`` and return the file's bytes.

    The store records the export as an ``exported`` event (who, format, filters, sha256).
    """
    with tempfile.TemporaryDirectory(prefix="wb-export-") as tmp:
        out = Path(tmp) / f"history.{fmt}"
        store.export(out, fmt, actor=actor, filters=filters)
        return out.read_bytes()


@dataclass(frozen=True)
class ActiveIntervention:
    """An applied intervention that has not been reverted since."""

    intervention_id: str
    concept: str | None
    spec: dict[str, Any]
    applied_by: str
    applied_at: str
    rationale: str
    metric_deltas: dict[str, Any]


def active_interventions(source: Store | Sequence[Event]) -> list[ActiveIntervention]:
    """Interventions whose last ``applied``/``reverted`` event is ``applied`` (oldest first),
    from a store or from its events."""
    events = source.events() if isinstance(source, Store) else list(source)
    specs: dict[str, dict[str, Any]] = {}
    last: dict[str, Event] = {}
    deltas: dict[str, dict[str, Any]] = {}
    for e in events:
        iid = e.intervention_id
        if not iid:
            continue
        if e.action == Action.PROPOSED.value and e.spec is not None:
            specs[iid] = e.spec
        elif e.action in (Action.APPLIED.value, Action.REVERTED.value):
            last[iid] = e
            if e.spec is not None:
                specs.setdefault(iid, e.spec)
        elif e.action == Action.EFFECT_RECORDED.value and e.metric_deltas:
            deltas[iid] = e.metric_deltas
    out = []
    for iid, e in last.items():
        if e.action != Action.APPLIED.value:
            continue
        spec = specs.get(iid, {})
        out.append(
            ActiveIntervention(
                intervention_id=iid,
                concept=e.concept or spec.get("concept"),
                spec=spec,
                applied_by=e.actor_name,
                applied_at=e.ts,
                rationale=e.rationale or "",
                metric_deltas=deltas.get(iid, e.metric_deltas or {}),
            )
        )
    return sorted(out, key=lambda a: a.applied_at)


def verify_summary(result: VerifyResult) -> tuple[bool, str]:
    """(ok, one-line description) of a chain verification."""
    if result.ok:
        return True, (
            f"Chain intact: {result.n_events} events, head #{result.head_seq} "
            f"`{result.head_hash[:16]}…`"
        )
    return False, f"Chain broken at event #{result.first_bad_seq}: {result.reason}"


def anchor_note(result: VerifyResult) -> tuple[bool, str]:
    """(anchored, one line) on how far the verified chain is anchored outside the database."""
    if not result.ok:
        return False, ""
    if result.head_seq == 0:
        return True, "Nothing recorded yet."
    if result.anchored_seq == 0:
        return False, (
            f"Verified up to head #{result.head_seq}, but no head had been anchored outside the "
            "database before: a truncated or rewritten chain would also verify. The head is now "
            "anchored in anchors.jsonl; copy it elsewhere (`workbench audit head`) for more."
        )
    if result.anchored_seq < result.head_seq:
        return False, (
            f"Verified up to head #{result.head_seq}; anchored only up to "
            f"#{result.anchored_seq}: events #{result.anchored_seq + 1}–#{result.head_seq} rest "
            "on the chain alone (now anchored)."
        )
    return True, f"Head #{result.head_seq} matches the head anchored outside the database."
