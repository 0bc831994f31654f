"""Sign in (OpenID Connect through ``st.login``); shown when nobody with a role is signed in."""

from __future__ import annotations

import streamlit as st

from workbench.auth._config import AuthConfigError
from workbench.auth._secrets import oidc_provider_name
from workbench.ui._nav import PAGES, page_keys_for
from workbench.ui._state import current_session, show_error
from workbench.ui._text import md

st.title("Concept Workbench")
st.caption("Find and correct what a dermatology classifier relies on.")
session = current_session()

if session.actor is not None:  # a stale sign-in URL after signing in: go to the landing page
    st.switch_page(PAGES[page_keys_for(session.actor.role)[0]].script)
elif session.signed_in:
    st.warning(md(session.problem), icon=":material/no_accounts:")
    if st.button("Sign out", icon=":material/logout:", key="wb_sign_in_logout"):
        st.logout()
else:
    st.info(
        "This workbench is shared: sign in with your organisation's account. Your role "
        "(dermatologist, engineer or auditor) comes from the workbench's roles file.",
        icon=":material/lock:",
    )
    if session.problem and session.problem != "Sign in to continue.":
        st.warning(md(session.problem))
    if st.button("Sign in", type="primary", icon=":material/login:", key="wb_sign_in"):
        try:
            auth = dict(st.secrets.get("auth", {}))
        except Exception:  # no secrets file at all
            auth = {}
        if not auth:
            show_error(AuthConfigError("sign-in is not configured ([auth] missing in secrets.toml)"))
        else:
            st.login(oidc_provider_name(auth))
