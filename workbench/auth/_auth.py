"""Sign-in and roles of the web UI.

Two modes:

``local``
    Serving on a loopback address (the ``make demo`` default): one user, the OS user running
    the server, with the role given on the command line (``--role``, default dermatologist).
    The app itself refuses this mode unless the server listens on loopback only and the
    browser connects from this machine (:func:`local_mode_problem`), however it was started.
``oidc``
    Serving on any other address: every visitor signs in with OpenID Connect through
    Streamlit's ``st.login`` (configured in ``.streamlit/secrets.toml``, section ``[auth]``).
    The role comes from a *roles file* (``roles.toml``) that maps the provider's (issuer,
    subject) or verified e-mail address to a role, or from an ID-token claim named in that
    file. The store records ``<issuer>#<subject>`` as the actor (``store.Actor.from_oidc``).

A ``roles.toml``::

    # take the role from this ID-token claim when neither table below names the user
    claim = "workbench_role"
    # role of signed-in users that nothing else maps ("" or absent: no access)
    default = ""

    [subjects."https://idp.clinic.example"]   # issuer (``iss``) -> subject (``sub``) -> role
    "248289761001" = "dermatologist"

    [emails]              # e-mail -> role, only when ``email_verified`` is the boolean true
    "auditor@clinic.example" = "auditor"

The older flat form ``[subjects] "248289761001" = "dermatologist"`` (no issuer) still works
while ``secrets.toml`` configures a single provider, whose tokens all carry the same issuer;
with several providers it is refused (:meth:`RoleMap.check_providers`).

The pure logic (tested without Streamlit) is split by concern: :mod:`workbench.auth._serving`
(where the app listens: the checks of local mode), :mod:`workbench.auth._secrets`
(``secrets.toml`` and its cookie secret), :mod:`workbench.auth._rolemap` (``roles.toml``) and
:mod:`workbench.auth._config` (environment variables, errors). This module re-exports their
names and turns a sign-in into a :class:`UISession`: the app reads ``st.user`` and calls
:func:`resolve_session`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from store import Actor, Role, StoreError
from workbench.auth._config import (
    AuthMode,
    parse_role,
)
from workbench.auth._rolemap import OidcIdentity, RoleMap
from workbench.auth._serving import (
    ServingContext,
    local_mode_problem,
)

__all__ = [
    "UISession",
    "resolve_session",
]


# --------------------------------------------------------------------------- sessions
@dataclass(frozen=True)
class UISession:
    """Who is using the UI.

    Attributes
    ----------
    mode
        ``"local"`` or ``"oidc"``.
    actor
        The authenticated actor (``None``: not signed in, or signed in without a role).
    signed_in
        Whether an OIDC sign-in happened (always True in local mode).
    problem
        Why there is no actor, for the sign-in page ("" when there is one).
    """

    mode: AuthMode
    actor: Actor | None
    signed_in: bool
    problem: str = ""

    @property
    def role(self) -> Role | None:
        return self.actor.role if self.actor else None


def resolve_session(
    mode: AuthMode,
    *,
    local_role: str = "dermatologist",
    serving: ServingContext | None = None,
    user: Mapping[str, Any] | None = None,
    roles: RoleMap | None = None,
) -> UISession:
    """Turn the serving mode plus ``st.user``'s claims into a :class:`UISession`.

    Local mode: the OS user with ``local_role``, only where :func:`local_mode_problem` finds
    nothing wrong with ``serving`` (``None``: unknown, refused). OIDC mode: the (issuer,
    subject) pair with the role :class:`RoleMap` assigns; no role means no access.
    """
    if mode == "local":
        problem = local_mode_problem(serving)
        if problem:
            return UISession("local", None, False, problem)
        return UISession("local", Actor.from_os_user(parse_role(local_role)), True)
    claims = dict(user or {})
    if not claims.get("is_logged_in"):
        return UISession("oidc", None, False, "Sign in to continue.")
    sub, iss = claims.get("sub"), claims.get("iss")
    if not isinstance(sub, str) or not sub or not isinstance(iss, str) or not iss:
        return UISession(
            "oidc", None, True,
            "Your identity provider did not send a subject and issuer (`sub` and `iss` "
            "claims); ask your administrator to check the provider configuration.",
        )
    role = (roles or RoleMap()).role_for(claims)
    name = claims.get("name") or claims.get("email") or sub
    if role is None:
        return UISession(
            "oidc", None, True,
            f"You are signed in as {name} ({sub} at {iss}) but have no workbench role. Ask your "
            "administrator to add you to the roles file (subjects or emails table).",
        )
    try:
        actor = Actor.from_oidc(OidcIdentity(iss, sub).actor_id, role, str(name))
    except StoreError as exc:
        return UISession("oidc", None, True, f"Your identity cannot be used: {exc}")
    return UISession("oidc", actor, True)
