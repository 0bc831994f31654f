"""Shared pieces of the HTML reports: escaping, print stylesheet, intervals and rounding.

Intervals (95 %):

* a proportion ``p`` of ``n`` cases (accuracy, sensitivity, specificity, worst-group and clean
  accuracy, flip rates): Wilson score interval;
* balanced accuracy (mean of per-class recalls ``r_c`` over ``n_c`` cases, ``C`` classes):
  normal approximation with ``Var = Σ r_c (1 - r_c) / n_c / C²``;
* AUC: Hanley & McNeil (1982) standard error from ``n_pos`` and ``n_neg``.

Numbers are rounded to what ``n`` supports: percentages without decimals below 1,000 cases
(the 95 % interval is then wider than ±1.5 points), one decimal from 1,000 cases; AUC with two
decimals (three from 1,000 cases).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

from store._chain import VerifyResult
from store._finite import finite_or_none

__all__ = ["PRINT_CSS", "auc_interval", "balanced_interval", "chain_status", "e", "fmt_auc",
           "fmt_pct", "html_page", "num", "wilson"]

_Z = 1.959963984540054

#: Screen and print stylesheet (A4 or Letter: the page size is left to the print dialog).
PRINT_CSS = """
:root{--muted:#555;--line:#c8c8c8}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:10pt;
 line-height:1.35;color:#1a1a1a;margin:1.5em auto;max-width:60em;padding:0 1em}
h1{font-size:15pt;margin:.2em 0 .3em}h2{font-size:11.5pt;margin:1.1em 0 .35em;
 border-bottom:1px solid var(--line);padding-bottom:.1em;break-after:avoid}
p{margin:.3em 0 .5em}.muted,.meta{color:var(--muted)}.small{font-size:8.5pt}
table{border-collapse:collapse;width:100%;margin:.2em 0 .6em;font-size:9pt}
th,td{border:1px solid var(--line);padding:.18em .4em;vertical-align:top;text-align:left}
th{background:#f2f2f2;font-weight:600}td.num,th.num{text-align:right;white-space:nowrap}
tr{break-inside:avoid}thead{display:table-header-group}
.rationale{border-left:3px solid #888;padding:.3em .7em;background:#f7f7f7;
 white-space:pre-wrap;overflow-wrap:anywhere}
.ok{color:#176117}.bad{color:#a11}.warn{color:#8a5a00}
code{font-size:8.5pt;overflow-wrap:anywhere}
.sig td{height:2.6em}.sig th{width:22%}
.header{display:flex;justify-content:space-between;color:var(--muted);font-size:8.5pt;
 border-bottom:1px solid var(--line);margin-bottom:.6em}
.appendix{break-before:page}
@page{margin:16mm 14mm 18mm 14mm;
 @bottom-right{content:"Page " counter(page) " of " counter(pages);font-size:8pt;color:#555}}
@media print{body{margin:0;max-width:none;padding:0;font-size:9.5pt}
 a{color:inherit;text-decoration:none}}
"""


def e(value: object) -> str:
    """Escape any value for HTML text or attribute context ("" for None)."""
    return "" if value is None else html.escape(str(value), quote=True)


def num(value: Any) -> float | None:
    """A finite float, or None (bools and non-numbers are None)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return finite_or_none(value)


def wilson(p: float | None, n: int | None) -> tuple[float, float] | None:
    """95 % Wilson interval of a proportion ``p`` observed on ``n`` cases (None if unknown)."""
    if p is None or not n or n <= 0:
        return None
    denom = 1 + _Z**2 / n
    centre = (p + _Z**2 / (2 * n)) / denom
    half = _Z * math.sqrt(p * (1 - p) / n + _Z**2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def balanced_interval(recalls: Any) -> tuple[float, float] | None:
    """95 % interval of balanced accuracy from ``{class: [recall, n]}`` (None if absent)."""
    if not isinstance(recalls, Mapping) or not recalls:
        return None
    parts = []
    for v in recalls.values():
        if not isinstance(v, list | tuple) or len(v) != 2:
            return None
        r, n = num(v[0]), num(v[1])
        if r is None or not n:
            return None
        parts.append((r, n))
    c = len(parts)
    mean = sum(r for r, _ in parts) / c
    se = math.sqrt(sum(r * (1 - r) / n for r, n in parts)) / c
    return max(0.0, mean - _Z * se), min(1.0, mean + _Z * se)


def auc_interval(auc: float | None, n_pos: int | None, n_neg: int | None) -> tuple[float, float] | None:
    """95 % interval of an AUC by Hanley & McNeil's standard error (None if unknown)."""
    if auc is None or not n_pos or not n_neg:
        return None
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc))
    se = math.sqrt(max(var, 0.0) / (n_pos * n_neg))
    return max(0.0, auc - _Z * se), min(1.0, auc + _Z * se)


def fmt_pct(p: float | None, n: int | None = None) -> str:
    """A proportion as a percentage rounded to what ``n`` supports ("—" when missing)."""
    if p is None:
        return "—"
    digits = 1 if n and n >= 1000 else 0
    return f"{100 * p:.{digits}f}%"


def fmt_auc(a: float | None, n: int | None = None) -> str:
    """An AUC with 2 decimals (3 from 1,000 cases)."""
    if a is None:
        return "—"
    return f"{a:.{3 if n and n >= 1000 else 2}f}"


def chain_status(verify: VerifyResult) -> tuple[str, str]:
    """(css class, sentence) of the chain's state for a report."""
    if not verify.ok:
        return "bad", f"Chain BROKEN at event #{verify.first_bad_seq}: {verify.reason}"
    base = (f"Chain verified up to head #{verify.head_seq} "
            f"(hash {verify.head_hash[:16]}…), {verify.n_events} events.")
    if verify.head_seq == 0:
        return "ok", "The log is empty."
    if verify.anchored_seq >= verify.head_seq:
        return "ok", base + " The head matches an anchor recorded outside the database."
    if verify.anchored_seq == 0:
        return "warn", base + (" No head had been anchored outside the database before this "
                               "report: a truncated or rewritten chain would also verify. "
                               "The head is now anchored.")
    return "warn", base + (f" Anchored outside the database up to #{verify.anchored_seq}; "
                           f"events after it rest on the chain alone (now anchored).")


def html_page(title: str, header_left: str, header_right: str, body: str) -> str:
    """A complete, self-contained HTML document (no scripts: a CSP forbids them)."""
    footer = "".join(ch for ch in f"{header_left} · {header_right}"
                     if ch.isprintable() and ch not in "\"\\<>{};")[:150]
    page_css = f'@page{{@bottom-left{{content:"{footer}";font-size:8pt;color:#555}}}}'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{e(title)}</title>
<style>{PRINT_CSS}{page_css}</style>
</head>
<body>
<div class="header"><span>{e(header_left)}</span><span>{e(header_right)}</span></div>
{body}
</body>
</html>
"""
