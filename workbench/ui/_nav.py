"""The page list of the UI, which depends on the signed-in role."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from store import Role
from workbench.auth._auth import UISession

__all__ = ["PAGES", "ROLE_SECTIONS", "PageDef", "navigation_for", "page_keys_for"]

_HERE = Path(__file__).resolve().parent.parent  # the workbench package (app.py, pages/)


@dataclass(frozen=True)
class PageDef:
    """One page: its script under ``workbench/pages/``, title and icon."""

    key: str
    script: str
    title: str
    icon: str

    @property
    def path(self) -> Path:
        return _HERE / self.script


PAGES: dict[str, PageDef] = {
    p.key: p
    for p in (
        PageDef("overview", "pages/overview.py", "Overview", ":material/dashboard:"),
        PageDef("concepts", "pages/concepts.py", "Concepts", ":material/psychology:"),
        PageDef("graph", "pages/knowledge_graph.py", "Knowledge graph", ":material/hub:"),
        PageDef("confounders", "pages/confounders.py", "Confounders", ":material/report:"),
        PageDef("cases", "pages/cases.py", "Case explorer", ":material/image_search:"),
        PageDef("interventions", "pages/interventions.py", "Interventions", ":material/tune:"),
        PageDef("fix", "pages/fix.py", "Test-time fix", ":material/auto_fix_high:"),
        PageDef("audit", "pages/audit.py", "Audit", ":material/fact_check:"),
    )
}

_EXPLORE = ["overview", "concepts", "graph", "confounders", "cases"]

#: Role -> navigation sections -> page keys; the first page is the landing page. Auditors land
#: on the history and see everything else read-only (no write controls).
ROLE_SECTIONS: dict[Role, dict[str, list[str]]] = {
    Role.DERMATOLOGIST: {"Explore": _EXPLORE, "Correct": ["interventions", "fix"], "Review": ["audit"]},
    Role.ENGINEER: {"Explore": _EXPLORE, "Correct": ["interventions", "fix"], "Review": ["audit"]},
    Role.AUDITOR: {"Review": ["audit"], "Explore (read-only)": [*_EXPLORE, "interventions", "fix"]},
}


def page_keys_for(role: Role | None) -> list[str]:
    """Page keys visible to ``role`` in menu order (``[]`` when not signed in)."""
    if role is None:
        return []
    return [k for keys in ROLE_SECTIONS[role].values() for k in keys]


def navigation_for(session: UISession) -> dict[str, list[StreamlitPage]] | list[StreamlitPage]:
    """The argument for ``st.navigation``: the sign-in page, or the role's sections."""
    if session.actor is None:
        return [
            st.Page(
                str(_HERE / "pages" / "sign_in.py"),
                title="Sign in",
                icon=":material/login:",
                default=True,
            )
        ]
    out: dict[str, list[StreamlitPage]] = {}
    first = True
    for section, keys in ROLE_SECTIONS[session.actor.role].items():
        pages = []
        for k in keys:
            p = PAGES[k]
            pages.append(st.Page(str(p.path), title=p.title, icon=p.icon, default=first))
            first = False
        out[section] = pages
    return out
