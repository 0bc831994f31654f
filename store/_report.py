"""The intervention report an auditor reads and signs (HTML, print-ready).

Page 1 is the summary: the change in words, who proposed and applied it, the rationale as
plain text, the evidence that motivated it, the effect before/after with 95 % intervals and
group sizes, flip rates per artifact, the chain status and a signature block. The appendix
(from page 2) lists the specification with every vector replaced by its sha256 and shape, and
the intervention's events as a table. See ``store._report_common`` for intervals and rounding.

Every value that comes from the store is escaped with :func:`html.escape` (quotes included),
and the page carries a Content-Security-Policy that forbids scripts, so a rationale such as
``<script>...</script>`` is shown as text and never runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from store._chain import VerifyResult
from store._model import Event, InterventionHistory
from store._report_common import (
    auc_interval,
    balanced_interval,
    chain_status,
    e,
    fmt_auc,
    fmt_pct,
    html_page,
    num,
    wilson,
)

__all__ = ["METRIC_ROWS", "effect_of", "render_report", "spec_rows", "summary_sentence"]

#: (key, label, size key) of the effect table, in order.
METRIC_ROWS: tuple[tuple[str, str, str | None], ...] = (
    ("accuracy", "Accuracy", "n"),
    ("balanced_accuracy", "Balanced accuracy", "n"),
    ("sensitivity", "Sensitivity", "n_pos"),
    ("specificity", "Specificity", "n_neg"),
    ("auc", "AUC", None),
    ("worst_group_accuracy", "Worst-group accuracy", "worst_group_n"),
    ("clean_accuracy", "Accuracy without artifacts", "n_clean"),
)
_VERBS = {"mask": "Masked", "amplify": "Amplified", "set": "Set", "suppress": "Suppressed"}
_DECISIONS = ("proposed", "fix_recorded", "approved", "rejected", "applied", "reverted")


def _last(events: Sequence[Event], action: str) -> Event | None:
    return next((ev for ev in reversed(events) if ev.action == action), None)


def _edits(spec: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    edits = (spec or {}).get("edits")
    return [x for x in edits if isinstance(x, Mapping)] if isinstance(edits, list) else []


def _edit_words(edit: Mapping[str, Any]) -> str:
    op = str(edit.get("operation", "changed"))
    concept = f"<em>{e(edit.get('concept') or (edit.get('cav') or {}).get('concept'))}</em>"
    strength = num(edit.get("strength"))
    if op == "amplify" and strength is not None:
        return f"amplified {concept} (×{strength:g})"
    if op == "set":
        return f"set {concept} to {e(edit.get('level') or 'a level')}"
    return f"{_VERBS.get(op, op).lower()} {concept}"


def _who_when(ev: Event | None) -> str:
    if ev is None:
        return "not recorded"
    return f"{e(ev.actor_name)} ({e(ev.actor_role)}) on {e(ev.ts[:10])} {e(ev.ts[11:16])} UTC"


def summary_sentence(history: InterventionHistory) -> str:
    """The change in words (HTML): what, where, on which model and data, by whom, when."""
    spec = history.spec or {}
    events = history.events
    applied = _last(events, "applied")
    proposed = _last(events, "proposed")
    fix = _last(events, "fix_recorded")
    words = [_edit_words(x) for x in _edits(spec)] or ["changed the model"]
    what = (", ".join(words[:-1]) + " and " + words[-1]) if len(words) > 1 else words[0]
    what = what[0].upper() + what[1:]
    main = applied or fix
    ev = (main.evidence if main else None) or {}
    model = spec.get("model_id") or next((x.model_id for x in events if x.model_id), None)
    data = ev.get("dataset") or "—"
    split = f" (split {e(ev['split'])})" if ev.get("split") else ""
    scope = spec.get("scope") or {}
    scope_txt = {"predicted_class": f", only for inputs predicted as {e(scope.get('class'))}",
                 "cases": f", only for {len(scope.get('case_ids') or [])} listed cases"}.get(
        str(scope.get("kind")), "")
    text = (f"{what} at layer <em>{e(spec.get('layer', '—'))}</em> of model "
            f"<em>{e(model or '—')}</em>{scope_txt}, evaluated on data set <em>{e(data)}</em>"
            f"{split}. " + (f"Recorded as a test-time fix for a new domain by {_who_when(fix)}"
                            if fix is not None and proposed is None else
                            f"Proposed by {_who_when(proposed)}"))
    if applied is not None:
        text += f"; applied by {_who_when(applied)}"
    reverted = _last(events, "reverted")
    if reverted is not None and (applied is None or reverted.seq > applied.seq):
        text += f"; reverted by {_who_when(reverted)}"
    return text + "."


def effect_of(history: InterventionHistory) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(before, after, reliance) of the last applied effect, from the richest record kept.

    The ``applied`` event's evidence holds the full metric dicts (with ``n`` and, since the
    reports were added, the group sizes); older stores only have the flat effect table.
    """
    applied = _last(history.events, "applied") or _last(history.events, "fix_recorded")
    ev = (applied.evidence if applied else None) or {}
    before, after = ev.get("before"), ev.get("after")
    reliance = ev.get("reliance") if isinstance(ev.get("reliance"), Mapping) else None
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        return dict(before), dict(after), dict(reliance or {})
    if history.effects:
        last = history.effects[-1]
        return (dict(last.get("metrics_before") or {}), dict(last.get("metrics_after") or {}),
                dict(last.get("reliance") or {}))
    return {}, {}, dict(reliance or {})


def _interval(key: str, m: Mapping[str, Any], size_key: str | None) -> tuple[float, float] | None:
    value = num(m.get(key))
    if key == "auc":
        return auc_interval(value, _int(m.get("n_pos")), _int(m.get("n_neg")))
    if key == "balanced_accuracy":
        return balanced_interval(m.get("class_recall"))
    return wilson(value, _int(m.get(size_key))) if size_key else None


def _int(v: Any) -> int | None:
    f = num(v)
    return int(f) if f is not None else None


def _cell(key: str, m: Mapping[str, Any], size_key: str | None) -> str:
    value, n = num(m.get(key)), _int(m.get("n"))
    fmt = fmt_auc if key == "auc" else fmt_pct
    ci = _interval(key, m, size_key)
    if value is None:
        return "<td class='num'>—</td>"
    ci_txt = f" <span class='muted'>[{fmt(ci[0], n)}, {fmt(ci[1], n)}]</span>" if ci else ""
    return f"<td class='num'>{fmt(value, n)}{ci_txt}</td>"


def _size(key: str, m: Mapping[str, Any], size_key: str | None) -> str:
    if key == "auc":
        p, q = _int(m.get("n_pos")), _int(m.get("n_neg"))
        return f"{p} + {q}" if p is not None and q is not None else "—"
    if key == "balanced_accuracy":
        rec = m.get("class_recall")
        if isinstance(rec, Mapping) and rec:
            return " / ".join(str(v[1]) for v in rec.values() if isinstance(v, list | tuple))
    n = _int(m.get(size_key)) if size_key else None
    return "—" if n is None else str(n)


def _delta(key: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    b, a = num(before.get(key)), num(after.get(key))
    if a is None or b is None:
        return "—"
    return f"{a - b:+.3f}" if key == "auc" else f"{100 * (a - b):+.1f} pts"


def _effect_table(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    if not before and not after:
        return "<p class='muted'>No effect has been recorded.</p>"
    rows = []
    for key, label, size_key in METRIC_ROWS:
        if num(before.get(key)) is None and num(after.get(key)) is None:
            continue
        extra = ""
        if key == "worst_group_accuracy":
            groups = list(dict.fromkeys(str(g) for g in (before.get("worst_group"),
                                                         after.get("worst_group")) if g))
            extra = f"<br><span class='muted small'>{e(' → '.join(groups))}</span>" if groups else ""
        rows.append(f"<tr><td>{e(label)}{extra}</td>{_cell(key, before, size_key)}"
                    f"{_cell(key, after, size_key)}<td class='num'>{_delta(key, before, after)}</td>"
                    f"<td class='num'>{e(_size(key, before, size_key))}</td></tr>")
    return ("<table><thead><tr><th>Metric</th><th class='num'>Before [95% CI]</th>"
            "<th class='num'>After [95% CI]</th><th class='num'>Change</th>"
            "<th class='num'>Cases</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _reduction(red: float | None) -> str:
    if red is None:
        return "—"
    return f"{100 * red:.0f}% less" if red >= 0 else f"{-100 * red:.0f}% more"


def _flip_table(reliance: Mapping[str, Any]) -> str:
    flips = reliance.get("flip_rates")
    if not isinstance(flips, Mapping) or not flips:
        return ""
    rows = []
    for art, fr in flips.items():
        if not isinstance(fr, Mapping):
            continue
        n = _int(fr.get("n"))
        cells = []
        for side in ("before", "after"):
            p = num(fr.get(side))
            ci = wilson(p, n)
            ci_txt = f" <span class='muted'>[{fmt_pct(ci[0], n)}, {fmt_pct(ci[1], n)}]</span>" if ci else ""
            cells.append(f"<td class='num'>{fmt_pct(p, n)}{ci_txt}</td>")
        red = num(fr.get("reduction"))
        rows.append(f"<tr><td>adding <em>{e(art)}</em>"
                    f"{' → ' + e(fr.get('to_class')) if fr.get('to_class') else ''}</td>"
                    + "".join(cells)
                    + f"<td class='num'>{_reduction(red)}</td>"
                    f"<td class='num'>{'—' if n is None else n}</td></tr>")
    return ("<p><strong>Flip rates</strong> <span class='muted'>(share of predictions that "
            "change when the artifact is added to an image of the other class)</span></p>"
            "<table><thead><tr><th>Artifact</th><th class='num'>Before</th><th class='num'>After"
            "</th><th class='num'>Reduction</th><th class='num'>Cases</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _p(v: Any) -> str:
    f = num(v)
    if f is None:
        return "—"
    return "< 0.001" if f < 0.001 else f"{f:.3f}"


def _fix_evidence(fix: Event | None) -> str:
    """The evidence a test-time fix rests on: shots, and per edit its leave-one-out stability
    and expected gain (empty when ``fix`` is None)."""
    ev: Mapping[str, Any] = (fix.evidence if fix else None) or {}
    if fix is None:
        return ""
    edits = [x for x in ev.get("edits") or [] if isinstance(x, Mapping)]
    raw = ev.get("few_shot")
    shots: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    rows = []
    for x in edits:
        gi = x.get("gain_interval")
        lo, hi = (num(gi[0]), num(gi[1])) if isinstance(gi, list | tuple) and len(gi) == 2 else (None, None)
        g, st = num(x.get("gain_points")), num(x.get("stability"))
        rows.append(f"<tr><td>{e(x.get('operation'))} <em>{e(x.get('concept'))}</em></td>"
                    f"<td class='num'>{'—' if st is None else f'{100 * st:.0f}%'}</td>"
                    f"<td class='num'>{'—' if g is None else f'{g:+.1f}'}"
                    f"{'' if lo is None or hi is None else f' [{lo:+.1f}, {hi:+.1f}]'}</td></tr>")
    table = ("<table><thead><tr><th>Edit (as proposed)</th><th class='num'>Leave-one-out stability</th>"
             "<th class='num'>Expected gain, pts [90% interval]</th></tr></thead><tbody>"
             + "".join(rows) + "</tbody></table>") if rows else ""
    return (f"<p>Test-time fix fitted on {e(shots.get('n', '?'))} labelled images "
            f"({e(shots.get('k', '?'))} per class) of {e(ev.get('source') or 'a new domain')}; "
            f"effect measured on the {e(str(ev.get('evaluated_on') or '').replace('_', '-'))} images.</p>{table}")


def _motivation(motivation: Sequence[Mapping[str, Any]] | None, reliance: Mapping[str, Any]) -> str:
    rows = []
    for m in motivation or []:
        orv, lo, hi = num(m.get("odds_ratio")), num(m.get("or_ci_low")), num(m.get("or_ci_high"))
        or_txt = "—" if orv is None else f"{orv:.2f}" + (
            f" <span class='muted'>[{lo:.2f}, {hi:.2f}]</span>" if lo is not None and hi is not None else "")
        tc = num(m.get("reliance"))
        rows.append(
            f"<tr><td>{e(m.get('concept'))}</td><td>{e(m.get('class'))}</td>"
            f"<td class='num'>{e(m.get('rank', '—'))}</td><td class='num'>{or_txt}</td>"
            f"<td class='num'>{_p(m.get('p_adjusted'))}</td>"
            f"<td class='num'>{'—' if tc is None else f'{tc:.2f}'}</td>"
            f"<td class='num'>{_p(m.get('tcav_p_adjusted'))}</td></tr>")
    out = ""
    if rows:
        out = ("<table><thead><tr><th>Concept</th><th>Class</th><th class='num'>Confounder rank"
               "</th><th class='num'>Co-occurrence OR [95% CI]</th><th class='num'>p (adj.)</th>"
               "<th class='num'>TCAV</th><th class='num'>TCAV p (adj.)</th></tr></thead><tbody>"
               + "".join(rows) + "</tbody></table>"
               "<p class='muted small'>Computed from the workspace's current results when the "
               "report was made (OR: odds ratio of the concept with the class).</p>")
    tc = reliance.get("tcav")
    if isinstance(tc, Mapping) and isinstance(tc.get("rows"), list) and tc["rows"]:
        trs = "".join(
            f"<tr><td>{e(r.get('concept'))}</td><td>{e(r.get('class'))}</td>"
            f"<td class='num'>{_two(r.get('score_before'))} → {_two(r.get('score_after'))}</td>"
            f"<td>{e(_sig(r.get('significant_before')))} → {e(_sig(r.get('significant_after')))}"
            "</td></tr>" for r in tc["rows"][:8] if isinstance(r, Mapping))
        out += (f"<p><strong>TCAV at {e(tc.get('layer'))}</strong> <span class='muted'>"
                f"({e(tc.get('runs'))} random runs, significance after multiple-testing "
                "correction)</span></p><table><thead><tr><th>Concept</th><th>Class</th>"
                "<th class='num'>Score before → after</th><th>Significant</th></tr></thead>"
                f"<tbody>{trs}</tbody></table>")
    return out or "<p class='muted'>No evidence was recorded with this intervention.</p>"


def _two(v: Any) -> str:
    f = num(v)
    return "—" if f is None else f"{f:.2f}"


def _sig(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def spec_rows(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """The spec flattened to (path, text) rows; base64 vectors become their sha256 and shape."""
    if isinstance(value, Mapping):
        rows: list[tuple[str, str]] = []
        for k, v in value.items():
            key = str(k)
            if key.endswith("_b64"):
                sha = value.get("vector_sha256") or "—"
                rows.append((f"{prefix}{key[:-4]}", f"float32 vector, shape ({value.get('dim', '?')},),"
                             f" sha256 {sha}"))
                continue
            if key == "vector_sha256" and any(str(x).endswith("_b64") for x in value):
                continue
            rows.extend(spec_rows(v, f"{prefix}{key}."))
        return rows
    if isinstance(value, list):
        if all(not isinstance(v, Mapping | list) for v in value):
            text = ", ".join(str(v) for v in value[:20]) + (f" … ({len(value)} items)" if len(value) > 20 else "")
            return [(prefix.rstrip("."), text)]
        out: list[tuple[str, str]] = []
        for i, v in enumerate(value):
            out.extend(spec_rows(v, f"{prefix.rstrip('.')}[{i}]."))
        return out
    text = "" if value is None else str(value)
    return [(prefix.rstrip("."), text if len(text) <= 200 else text[:197] + "…")]


def _scalars(evidence: Mapping[str, Any] | None, limit: int = 140) -> str:
    """The plain (non-nested) values of an event's evidence, as ``key: value`` text."""
    parts = [f"{k}: {v}" for k, v in (evidence or {}).items()
             if not isinstance(v, Mapping | list) and k != "description"]
    text = "; ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _edits_table(edits: list[Mapping[str, Any]]) -> str:
    rows = []
    for i, ed in enumerate(edits):
        raw = ed.get("cav")
        cav: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        acc = num(cav.get("accuracy"))
        vec = (f"float32 ({e(cav.get('dim', '?'))},) sha256 <code>{e(cav.get('vector_sha256'))}</code>"
               if cav.get("vector_b64") or cav.get("vector_sha256") else "—")
        rows.append(
            f"<tr><td class='num'>{i + 1}</td><td>{e(ed.get('concept') or cav.get('concept'))}</td>"
            f"<td>{e(ed.get('operation'))} {e(ed.get('strength'))}"
            f"{' to ' + e(ed.get('level')) if ed.get('level') else ''}</td>"
            f"<td>{e(cav.get('method', '—'))}, layer {e(cav.get('layer', '—'))}"
            f"{'' if acc is None else f', accuracy {acc:.2f}'}</td><td class='small'>{vec}</td></tr>")
    return ("<table><thead><tr><th class='num'>#</th><th>Concept</th><th>Operation</th>"
            "<th>Direction (CAV)</th><th>Vector</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def _spec_section(spec: Mapping[str, Any]) -> str:
    edits = _edits(spec)
    if not edits:
        rows = "".join(f"<tr><td><code>{e(k)}</code></td><td>{e(v)}</td></tr>"
                       for k, v in spec_rows(spec))
        return f"<table><thead><tr><th>Field</th><th>Value</th></tr></thead><tbody>{rows}</tbody></table>"
    rest = {k: v for k, v in spec.items() if k != "edits"}
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in spec_rows(rest))
    return f"<table><tbody>{rows}</tbody></table>{_edits_table(edits)}"


def _appendix(history: InterventionHistory) -> str:
    evs = "".join(
        f"<tr><td class='num'>{ev.seq}</td><td>{e(ev.ts[:19].replace('T', ' '))}</td>"
        f"<td>{e(ev.actor_name)} <span class='muted'>({e(ev.actor_role)}, {e(ev.actor_id)})</span>"
        f"</td><td>{e(ev.action)}</td><td>{e(ev.rationale)}"
        f"<div class='muted small'>{e(_scalars(ev.evidence))}</div></td>"
        f"<td><code>{e(ev.hash[:12])}…</code></td></tr>" for ev in history.events)
    return (
        "<section class='appendix'><h2>Appendix A — specification</h2>"
        "<p class='muted small'>Concept vectors are shown by their sha256 and shape; the full "
        "specification, vectors included, is in the event log export.</p>"
        f"{_spec_section(history.spec or {})}"
        "<h2>Appendix B — events of this intervention</h2>"
        "<table><thead><tr><th class='num'>#</th><th>When (UTC)</th><th>Who</th><th>Action</th>"
        f"<th>Rationale</th><th>Hash</th></tr></thead><tbody>{evs}</tbody></table></section>")


def _signatures() -> str:
    return ("<h2>Sign-off</h2><table class='sig'><thead><tr><th>Role</th><th>Name</th>"
            "<th>Signature</th><th>Date</th></tr></thead><tbody>"
            "<tr><th>Reviewed by (auditor)</th><td></td><td></td><td></td></tr>"
            "<tr><th>Clinical owner</th><td></td><td></td><td></td></tr></tbody></table>")


def render_report(
    history: InterventionHistory, verify: VerifyResult, *, generated_at: str,
    workspace_label: str = "", motivation: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """Render the intervention report of ``history`` (a complete HTML document).

    Parameters
    ----------
    history
        From :meth:`Store.intervention_history`.
    verify
        The store's verification at report time (chain status).
    generated_at
        UTC timestamp of the report.
    workspace_label
        Shown in the header (a name, not a server path).
    motivation
        Evidence rows (``concept``, ``class``, ``rank``, ``odds_ratio``, ``or_ci_low``,
        ``or_ci_high``, ``p_adjusted``, ``reliance``, ``tcav_p_adjusted``) gathered by the
        caller from the workspace's results.
    """
    events = history.events
    decisions = [ev for ev in events if ev.action in _DECISIONS]
    status = decisions[-1].action if decisions else "unknown"
    before, after, reliance = effect_of(history)
    proposed, applied = _last(events, "proposed"), _last(events, "applied")
    proposed = proposed or _last(events, "fix_recorded")
    rationale = (applied.rationale if applied and applied.rationale else
                 proposed.rationale if proposed else None)
    css, chain = chain_status(verify)
    body = (
        f"<h1>Intervention report <code>{e(history.intervention_id)}</code></h1>"
        f"<p class='muted'>Status: <strong>{e(status)}</strong> · {len(events)} events</p>"
        f"<h2>What changed</h2><p>{summary_sentence(history)}</p>"
        "<h2>Why (rationale as recorded)</h2>"
        f"<div class='rationale'>{e(rationale) or '<span class=muted>none recorded</span>'}</div>"
        f"<h2>Evidence</h2>{_fix_evidence(_last(events, 'fix_recorded'))}{_motivation(motivation, reliance)}"
        f"<h2>Effect on held-out data</h2>{_effect_table(before, after)}{_flip_table(reliance)}"
        f"<h2>Integrity</h2><p class='{css}'>{e(chain)}</p>"
        f"{_signatures()}{_appendix(history)}"
    )
    return html_page(f"Intervention {history.intervention_id} — audit report",
                     f"Concept Workbench · {workspace_label or 'workspace'}",
                     f"report generated {generated_at[:19].replace('T', ' ')} UTC", body)
