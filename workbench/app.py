"""Concept Workbench web UI: the Streamlit entry point (``streamlit run workbench/app.py``).

A router only: it works out who is signed in (:mod:`workbench._auth`), builds the page list for
that role and runs the chosen page. ``workbench serve`` passes the workspace and role through
environment variables (see :mod:`workbench._serve`).
"""

from __future__ import annotations

import streamlit as st

from workbench._ui_nav import navigation_for
from workbench._ui_state import apply_thread_limit, current_session, sidebar_identity

apply_thread_limit()

st.set_page_config(
    page_title="Concept Workbench",
    page_icon=":material/dermatology:",
    layout="wide",
    initial_sidebar_state="expanded",
)

session = current_session()
page = st.navigation(navigation_for(session), position="sidebar")
sidebar_identity(session)
page.run()
