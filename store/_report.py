"""Human-readable HTML report of one intervention's history (who, when, why, evidence, effect).

Every value that comes from the store is escaped with :func:`html.escape` (quotes included),
and the page carries a Content-Security-Policy that forbids scripts, so a rationale such as
``<script>...</script>`` is shown as text and never runs.
"""

from __future__ import annotations

import html
import json
import numbers
from typing import Any

from store._chain import VerifyResult
from store._model import Event, InterventionHistory

__all__ = ["render_report"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:80em}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left}
th{background:#f3f3f3}pre{margin:0;white-space:pre-wrap;word-break:break-word;font-size:.85em}
code{font-size:.85em;word-break:break-all}.ok{color:#176117}.bad{color:#a11}
.meta{color:#555}
"""


def _e(value: object) -> str:
    """Escape any value for HTML text or attribute context ("" for None)."""
    return "" if value is None else html.escape(str(value), quote=True)


def _json_block(value: Any) -> str:
    if value is None or value == {}:
        return ""
    return f"<pre>{_e(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))}</pre>"


def _who(ev: Event) -> str:
    return (
        f"{_e(ev.actor_name)}<br><span class='meta'>{_e(ev.actor_id)} · {_e(ev.actor_role)}"
        f" · {_e(ev.actor_source)}</span>"
    )


def _model_cell(ev: Event) -> str:
    parts = []
    if ev.model_id:
        parts.append(_e(ev.model_id))
    if ev.weights_sha_before or ev.weights_sha_after:
        parts.append(
            f"<code>{_e((ev.weights_sha_before or '-')[:12])} → "
            f"{_e((ev.weights_sha_after or '-')[:12])}</code>"
        )
    if ev.dataset_hash:
        parts.append(f"data <code>{_e(ev.dataset_hash[:12])}</code>")
    return "<br>".join(parts)


def _effects_table(effects: list[dict[str, Any]]) -> str:
    if not effects:
        return "<p class='meta'>No effect has been recorded.</p>"
    out = []
    for eff in effects:
        before = eff.get("metrics_before") or {}
        after = eff.get("metrics_after") or {}
        rows = []
        for key in sorted(set(before) | set(after)):
            b, a = before.get(key), after.get(key)
            delta = ""
            if (isinstance(a, numbers.Real) and isinstance(b, numbers.Real)
                    and not isinstance(a, bool) and not isinstance(b, bool)):
                delta = f"{a - b:+.4g}"
            rows.append(
                f"<tr><td>{_e(key)}</td><td>{_e(b)}</td><td>{_e(a)}</td><td>{_e(delta)}</td></tr>"
            )
        out.append(
            f"<p class='meta'>Recorded by event {_e(eff.get('event_seq'))}</p>"
            "<table><tr><th>Metric</th><th>Before</th><th>After</th><th>Δ</th></tr>"
            + "".join(rows)
            + "</table>"
        )
        if eff.get("reliance"):
            out.append("<p>Reliance</p>" + _json_block(eff["reliance"]))
    return "".join(out)


def render_report(
    history: InterventionHistory, verify: VerifyResult, *, store_label: str, generated_at: str
) -> str:
    """Render the HTML report of ``history``.

    Parameters
    ----------
    history
        From :meth:`Store.intervention_history`.
    verify
        The store's verification result at report time (shown in the integrity section).
    store_label
        Where the store lives (shown, escaped).
    generated_at
        UTC timestamp of the report.

    Returns
    -------
    str
        A complete, self-contained HTML document.
    """
    events = history.events
    decisions = [e for e in events if e.action in ("proposed", "approved", "rejected",
                                                   "applied", "reverted")]
    status = decisions[-1].action if decisions else "unknown"
    proposed = next((e for e in events if e.action == "proposed"), None)
    rows = []
    for ev in events:
        rows.append(
            "<tr>"
            f"<td>{ev.seq}</td><td>{_e(ev.ts)}</td><td>{_who(ev)}</td><td>{_e(ev.action)}</td>"
            f"<td>{_e(ev.rationale)}</td><td>{_json_block(ev.evidence)}</td>"
            f"<td>{_json_block(ev.metric_deltas)}</td><td>{_model_cell(ev)}</td>"
            "</tr>"
        )
    integrity_class = "ok" if verify.ok else "bad"
    proposer = (
        f"{_e(proposed.actor_name)} ({_e(proposed.actor_role)}) on {_e(proposed.ts)}"
        if proposed else "not recorded"
    )
    hashes = "".join(
        f"<tr><td>{ev.seq}</td><td><code>{_e(ev.prev_hash)}</code></td>"
        f"<td><code>{_e(ev.hash)}</code></td></tr>" for ev in events
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Intervention {_e(history.intervention_id)} — audit report</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Intervention <code>{_e(history.intervention_id)}</code></h1>
<p class="meta">Store {_e(store_label)} · report generated {_e(generated_at)}</p>
<table>
<tr><th>Status</th><td>{_e(status)}</td></tr>
<tr><th>Proposed by</th><td>{proposer}</td></tr>
<tr><th>Events</th><td>{len(events)}</td></tr>
</table>
<h2>Specification</h2>
{_json_block(history.spec) or "<p class='meta'>No proposal recorded.</p>"}
<h2>History: who, when, why</h2>
<table>
<tr><th>Seq</th><th>When (UTC)</th><th>Who</th><th>Action</th><th>Why</th><th>Evidence</th>
<th>Metric deltas</th><th>Model</th></tr>
{"".join(rows)}
</table>
<h2>Effect</h2>
{_effects_table(history.effects)}
<h2>Integrity</h2>
<p class="{integrity_class}">{_e(verify.summary())}</p>
<table><tr><th>Seq</th><th>Previous hash</th><th>Hash</th></tr>{hashes}</table>
</body>
</html>
"""
