"""The history report: what happened over a period (the filters of ``audit export``).

Counts by action and by actor, one row per intervention with its effect, and the chain status;
the same print stylesheet as the intervention report. Built from the events alone (one query),
so it stays fast for long histories.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from store._chain import VerifyResult
from store._model import Event
from store._report_common import chain_status, e, fmt_pct, html_page, num

__all__ = ["render_history_report"]


def _counts_table(counter: Counter[str], label: str) -> str:
    rows = "".join(f"<tr><td>{e(k)}</td><td class='num'>{v}</td></tr>"
                   for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))
    return (f"<table><thead><tr><th>{e(label)}</th><th class='num'>Events</th></tr></thead>"
            f"<tbody>{rows or '<tr><td colspan=2>none</td></tr>'}</tbody></table>")


def _pts(before: Any, after: Any) -> str:
    b, a = num(before), num(after)
    return "—" if a is None or b is None else f"{100 * (a - b):+.1f}"


def _mapping(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _effect_cells(applied: Event | None) -> str:
    ev: Mapping[str, Any] = (applied.evidence if applied else None) or {}
    b = _mapping(ev.get("before"))
    a = _mapping(ev.get("after"))
    n = num(b.get("n"))
    cells = [f"{fmt_pct(num(a.get('balanced_accuracy')), int(n or 0))} ({_pts(b.get('balanced_accuracy'), a.get('balanced_accuracy'))})",
             f"{fmt_pct(num(a.get('worst_group_accuracy')), int(n or 0))} ({_pts(b.get('worst_group_accuracy'), a.get('worst_group_accuracy'))})"]
    flips = _mapping(_mapping(ev.get("reliance")).get("flip_rates"))
    flip_txt = ", ".join(f"{k} {fmt_pct(num(v.get('before')))}→{fmt_pct(num(v.get('after')))}"
                         for k, v in flips.items() if isinstance(v, Mapping)) or "—"
    if not b:
        cells = ["—", "—"]
    return (f"<td class='num'>{e(cells[0])}</td><td class='num'>{e(cells[1])}</td>"
            f"<td>{e(flip_txt)}</td><td class='num'>{'—' if n is None else int(n)}</td>")


def _intervention_rows(events: Sequence[Event]) -> str:
    by_iv: dict[str, list[Event]] = {}
    for ev in events:
        if ev.intervention_id:
            by_iv.setdefault(ev.intervention_id, []).append(ev)
    rows = []
    for iid, evs in by_iv.items():
        decisions = [x for x in evs if x.action in ("proposed", "fix_recorded", "approved",
                                                    "rejected", "applied", "reverted")]
        applied = next((x for x in reversed(evs) if x.action in ("applied", "fix_recorded")), None)
        first = evs[0]
        desc = ((applied or first).evidence or {}).get("description") or first.concept or ""
        why = (applied or first).rationale or ""
        why = why if len(why) <= 90 else why[:89] + "…"
        who = applied or first
        rows.append(
            f"<tr><td><code>{e(iid)}</code><br><span class='small'>{e(desc)}</span></td>"
            f"<td>{e(decisions[-1].action if decisions else '—')}</td>"
            f"<td>{e(who.actor_name)} <span class='muted'>({e(who.actor_role)})</span><br>"
            f"<span class='small muted'>{e(who.ts[:10])}</span></td>"
            f"{_effect_cells(applied)}<td class='small'>{e(why)}</td></tr>")
    if not rows:
        return "<p class='muted'>No intervention in this period.</p>"
    return ("<table><thead><tr><th>Intervention</th><th>Status</th><th>Applied / proposed by"
            "</th><th class='num'>Balanced acc. after (Δ pts)</th><th class='num'>Worst group "
            "after (Δ pts)</th><th>Flip rates before→after</th><th class='num'>Cases</th>"
            "<th>Rationale</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def render_history_report(
    events: Sequence[Event], verify: VerifyResult, *, filters: Mapping[str, str],
    generated_at: str, workspace_label: str = "",
) -> str:
    """Render the history report of ``events`` (already filtered) as a complete HTML document."""
    scope = ", ".join(f"{k} = {v}" for k, v in filters.items()) or "all events"
    period = (f"{events[0].ts[:10]} to {events[-1].ts[:10]}" if events else "no events")
    css, chain = chain_status(verify)
    body = (
        "<h1>Intervention history report</h1>"
        f"<p class='muted'>Filters: {e(scope)} · {len(events)} events · {e(period)}</p>"
        f"<h2>Interventions</h2>{_intervention_rows(events)}"
        "<h2>Activity</h2><div style='display:flex;gap:1em'>"
        f"<div style='flex:1'>{_counts_table(Counter(ev.action for ev in events), 'Action')}</div>"
        f"<div style='flex:1'>{_counts_table(Counter(f'{ev.actor_name} ({ev.actor_role})' for ev in events), 'Actor')}"
        "</div></div>"
        f"<h2>Integrity</h2><p class='{css}'>{e(chain)}</p>"
    )
    return html_page("Intervention history report",
                     f"Concept Workbench · {workspace_label or 'workspace'}",
                     f"report generated {generated_at[:19].replace('T', ' ')} UTC", body)
