"""Concept Workbench web UI: the Streamlit entry point (``streamlit run workbench/app.py``).

A router only: it works out who is signed in (:mod:`workbench.auth._auth`), builds the page list for
that role and runs the chosen page. ``workbench serve`` passes the workspace and role through
environment variables (see :mod:`workbench.cli._serve`).

Without ``WORKBENCH_AUTH=oidc`` the app runs in local single-user mode, which it refuses unless
the server listens on loopback only (``server.address`` and the bound socket) and the browser
connects from this machine: started any other way, it shows why and stops.
"""

from __future__ import annotations

import streamlit as st

from workbench.ui._nav import navigation_for
from workbench.ui._state import apply_thread_limit, current_session, sidebar_identity
from workbench.ui._text import md

apply_thread_limit()

st.set_page_config(
    page_title="Concept Workbench",
    page_icon=":material/dermatology:",
    layout="wide",
    initial_sidebar_state="expanded",
)

session = current_session()


def _refused() -> None:
    st.title("Concept Workbench")
    st.error(md(session.problem), icon=":material/gpp_bad:")


if session.mode == "local" and session.actor is None:  # local mode off loopback: nobody gets in
    # one hidden page, so that Streamlit does not list (and link) the scripts in pages/
    st.navigation([st.Page(_refused, title="Concept Workbench", default=True)], position="hidden").run()
    st.stop()
page = st.navigation(navigation_for(session), position="sidebar")
sidebar_identity(session)
page.run()
