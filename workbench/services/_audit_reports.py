"""Auditor reports of a workspace: the intervention report and the history report.

The store renders both (``store._report``, ``store._report_history``); this module adds what
only the workspace knows (the evidence that motivated an intervention: its concepts' confounder
rank, co-occurrence odds ratio with CI, TCAV reliance with adjusted p) and prints HTML to PDF
when a Chromium and Playwright are installed (no other system dependency). Without them, open
the HTML in a browser and use Print → Save as PDF: the print stylesheet lays it out for A4 or
Letter with page numbers.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd

from concepts import WorkbenchError
from store import EventFilter, Store

__all__ = ["ReportError", "chromium_path", "history_report", "html_to_pdf",
           "intervention_report", "motivation_rows"]

#: A ranked confounder report, or a function returning one.
ConfounderSource: TypeAlias = pd.DataFrame | Callable[[], pd.DataFrame]

_MOTIVATION_KEYS = ("rank", "concept", "class", "odds_ratio", "or_ci_low", "or_ci_high",
                    "p_adjusted", "reliance", "tcav_p_adjusted")


class ReportError(WorkbenchError):
    """A report cannot be produced (e.g. PDF without a browser)."""


def _spec_concepts(spec: Mapping[str, Any] | None) -> list[str]:
    edits = (spec or {}).get("edits")
    out: list[str] = []
    for ed in edits if isinstance(edits, list) else []:
        if isinstance(ed, Mapping):
            c = ed.get("concept") or (ed.get("cav") or {}).get("concept")
            if isinstance(c, str) and c not in out:
                out.append(c)
    return out


def motivation_rows(
    workspace: Path, concepts: list[str], confounders: ConfounderSource | None = None
) -> list[dict[str, Any]]:
    """The best-ranked confounder row of each concept in the workspace's current results.

    ``confounders`` (a ranked report, or a function returning one, e.g. the UI's cached
    ``confounder_frame``) avoids recomputing the ranking. Returns an empty list when the
    workspace has no data set or the ranking cannot be made (the report then shows only the
    evidence saved with the intervention).
    """
    if not concepts:
        return []
    try:
        if confounders is None:
            from graph import workspace_confounders

            df = workspace_confounders(workspace)
        else:
            df = confounders() if callable(confounders) else confounders
    except (WorkbenchError, OSError, ValueError, KeyError):
        return []
    rows: list[dict[str, Any]] = []
    for c in concepts:
        hit = df[df["concept"] == c]
        if len(hit):
            r = hit.sort_values("rank").iloc[0]
            rows.append({k: (None if _isnan(r.get(k)) else _plain(r.get(k)))
                         for k in _MOTIVATION_KEYS})
    return rows


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and v != v


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def intervention_report(store: Store, workspace: Path, intervention_id: str,
                        confounders: ConfounderSource | None = None) -> str:
    """The HTML intervention report, with the evidence of ``workspace``'s results."""
    spec = store.intervention_history(intervention_id).spec
    rows = motivation_rows(workspace, _spec_concepts(spec), confounders)
    return store.report_html(intervention_id, motivation=rows,
                             workspace_label=Path(workspace).resolve().name)


def history_report(store: Store, workspace: Path, filters: EventFilter | None = None) -> str:
    """The HTML history report over ``filters``."""
    return store.history_report_html(filters, workspace_label=Path(workspace).resolve().name)


def chromium_path() -> str | None:
    """A Chromium/Chrome executable on this machine (None when there is none)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def html_to_pdf(page_html: str, out: Path) -> None:
    """Print ``page_html`` to the PDF file ``out`` with headless Chromium (A4).

    Raises
    ------
    ReportError
        Playwright or a Chromium executable is missing.
    """
    exe = chromium_path()
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        exe = None
    if exe is None:
        raise ReportError("--format pdf needs Playwright and a Chromium on this machine; write "
                          "HTML instead and use the browser's Print → Save as PDF")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page()
                page.set_content(page_html, wait_until="load")
                page.pdf(path=str(out), format="A4", print_background=True,
                         prefer_css_page_size=True)
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise ReportError(f"printing to PDF failed: {' '.join(str(exc).split())[:300]}") from None
