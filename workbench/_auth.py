"""Sign-in and roles of the web UI.

Two modes:

``local``
    Serving on a loopback address (the ``make demo`` default): one user, the OS user running
    the server, with the role given on the command line (``--role``, default dermatologist).
``oidc``
    Serving on any other address: every visitor signs in with OpenID Connect through
    Streamlit's ``st.login`` (configured in ``.streamlit/secrets.toml``, section ``[auth]``).
    The role comes from a *roles file* (``roles.toml``) that maps the provider's subject or
    e-mail address to a role, or from an ID-token claim named in that file. The store records
    the provider's subject as the actor (``store.Actor.from_oidc``).

A ``roles.toml``::

    # take the role from this ID-token claim when neither table below names the user
    claim = "workbench_role"
    # role of signed-in users that nothing else maps ("" or absent: no access)
    default = ""

    [subjects]            # the provider's ``sub`` claim -> role
    "248289761001" = "dermatologist"

    [emails]              # verified e-mail -> role
    "auditor@clinic.example" = "auditor"

This module holds the pure logic (tested without Streamlit); the app reads ``st.user`` and
calls :func:`resolve_session`.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from concepts import WorkbenchError
from store import Actor, Role, StoreError

__all__ = [
    "ENV_AUTH",
    "ENV_ROLE",
    "ENV_ROLES_FILE",
    "ENV_SECRETS_FILE",
    "ENV_WORKSPACE",
    "AuthConfigError",
    "AuthMode",
    "RoleMap",
    "UISession",
    "check_oidc_secrets",
    "find_roles_file",
    "find_secrets_file",
    "is_loopback",
    "oidc_provider_name",
    "parse_role",
    "resolve_session",
]

#: Environment variables through which ``workbench serve`` configures the Streamlit app.
ENV_WORKSPACE = "WORKBENCH_WORKSPACE"
ENV_ROLE = "WORKBENCH_ROLE"
ENV_AUTH = "WORKBENCH_AUTH"
ENV_ROLES_FILE = "WORKBENCH_ROLES_FILE"
ENV_SECRETS_FILE = "WORKBENCH_SECRETS_FILE"

AuthMode = Literal["local", "oidc"]

#: Keys a provider configuration needs (in ``[auth]`` or a named ``[auth.<provider>]``).
_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
_SHARED_KEYS = ("redirect_uri", "cookie_secret")


class AuthConfigError(WorkbenchError):
    """Sign-in is required but not (correctly) configured."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    h = host.strip().strip("[]").lower()
    if h in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def parse_role(value: str) -> Role:
    """The :class:`store.Role` named ``value``; :class:`AuthConfigError` listing the known ones."""
    try:
        return Role.parse(value)
    except StoreError:
        known = ", ".join(r.value for r in Role)
        raise AuthConfigError(f"unknown role {value!r}; use one of: {known}") from None


# --------------------------------------------------------------------------- secrets
def find_secrets_file(explicit: str | Path | None = None, cwd: Path | None = None) -> Path | None:
    """The ``secrets.toml`` the server will use.

    Order: ``explicit``, ``$WORKBENCH_SECRETS_FILE``, ``./.streamlit/secrets.toml``,
    ``~/.streamlit/secrets.toml``. Returns ``None`` when none exists.
    """
    candidates: list[Path] = []
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(ENV_SECRETS_FILE)
    if env:
        return Path(env).expanduser().resolve()
    candidates.append((cwd or Path.cwd()) / ".streamlit" / "secrets.toml")
    candidates.append(Path.home() / ".streamlit" / "secrets.toml")
    for c in candidates:
        if c.is_file():
            return c.resolve()
    return None


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuthConfigError(f"{what} {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AuthConfigError(f"{what} {path} is not valid TOML ({exc}) — fix the file") from None


def check_oidc_secrets(path: Path | None) -> dict[str, Any]:
    """Check that ``path`` configures OpenID Connect sign-in for ``st.login``; return ``[auth]``.

    Raises
    ------
    AuthConfigError
        No file, no ``[auth]`` section, or a provider without client id/secret/metadata URL.
    """
    example = (
        "[auth]\n"
        'redirect_uri = "http://<this host>:<port>/oauth2callback"\n'
        'cookie_secret = "<a long random string>"\n'
        'client_id = "<from your identity provider>"\n'
        'client_secret = "<from your identity provider>"\n'
        'server_metadata_url = "https://<provider>/.well-known/openid-configuration"'
    )
    if path is None or not path.is_file():
        where = path or Path(".streamlit") / "secrets.toml"
        raise AuthConfigError(
            f"serving on a non-loopback address requires sign-in, but there is no {where}. "
            "Create it with an OpenID Connect provider:\n" + example + "\n"
            "or serve on 127.0.0.1 (local single-user mode)."
        )
    data = _read_toml(path, "secrets file")
    auth = data.get("auth")
    if not isinstance(auth, dict) or not auth:
        raise AuthConfigError(
            f"serving on a non-loopback address requires sign-in, but {path} has no [auth] "
            "section. Add one for your OpenID Connect provider:\n" + example + "\n"
            "or serve on 127.0.0.1 (local single-user mode)."
        )
    missing = [k for k in _SHARED_KEYS if not auth.get(k)]
    if missing:
        raise AuthConfigError(f"{path}: [auth] lacks {', '.join(missing)} — see `st.login` docs")
    providers = {k: v for k, v in auth.items() if isinstance(v, dict)}
    default_ok = all(auth.get(k) for k in _PROVIDER_KEYS)
    if not default_ok and not providers:
        lack = [k for k in _PROVIDER_KEYS if not auth.get(k)]
        raise AuthConfigError(f"{path}: [auth] lacks {', '.join(lack)} of your OpenID Connect provider")
    for name, prov in providers.items():
        lack = [k for k in _PROVIDER_KEYS if not prov.get(k)]
        if lack:
            raise AuthConfigError(f"{path}: [auth.{name}] lacks {', '.join(lack)}")
    return dict(auth)


def oidc_provider_name(auth: Mapping[str, Any]) -> str | None:
    """The provider argument for ``st.login``: ``None`` for ``[auth]`` itself, else the first named one."""
    if all(auth.get(k) for k in _PROVIDER_KEYS):
        return None
    for name, prov in auth.items():
        if isinstance(prov, Mapping):
            return str(name)
    return None


# --------------------------------------------------------------------------- roles
def find_roles_file(
    workspace_root: Path | None,
    secrets_path: Path | None,
    explicit: str | Path | None = None,
) -> Path | None:
    """The roles file: ``explicit``, ``$WORKBENCH_ROLES_FILE``, ``<workspace>/roles.toml`` or
    ``roles.toml`` next to the secrets file (``None`` when none exists)."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(ENV_ROLES_FILE)
    if env:
        return Path(env).expanduser().resolve()
    for c in (
        workspace_root / "roles.toml" if workspace_root else None,
        secrets_path.parent / "roles.toml" if secrets_path else None,
    ):
        if c is not None and c.is_file():
            return c.resolve()
    return None


@dataclass(frozen=True)
class RoleMap:
    """Who gets which role after signing in (see the module docstring for the file format)."""

    subjects: Mapping[str, Role] = field(default_factory=dict)
    emails: Mapping[str, Role] = field(default_factory=dict)
    claim: str | None = None
    default: Role | None = None
    source: str = ""

    @property
    def empty(self) -> bool:
        return not (self.subjects or self.emails or self.claim or self.default)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "roles") -> RoleMap:
        """Parse the contents of a roles file.

        Raises
        ------
        AuthConfigError
            Unknown keys or roles.
        """
        known = {"claim", "default", "subjects", "emails", "os_users"}  # os_users: the CLI's
        extra = sorted(set(data) - known)
        if extra:
            raise AuthConfigError(f"{source}: unknown keys {extra}; use {sorted(known)}")

        def table(name: str) -> dict[str, Role]:
            raw = data.get(name, {})
            if not isinstance(raw, dict):
                raise AuthConfigError(f"{source}: [{name}] must be a table of \"id\" = \"role\"")
            out: dict[str, Role] = {}
            for k, v in raw.items():
                try:
                    out[str(k) if name == "subjects" else str(k).lower()] = Role.parse(v)
                except StoreError:
                    raise AuthConfigError(
                        f"{source}: [{name}] {k!r} has unknown role {v!r}; use one of: "
                        + ", ".join(r.value for r in Role)
                    ) from None
            return out

        claim = data.get("claim")
        if claim is not None and (not isinstance(claim, str) or not claim.strip()):
            raise AuthConfigError(f"{source}: claim must be the name of an ID-token claim")
        default_raw = data.get("default") or None
        try:
            default = Role.parse(default_raw) if default_raw else None
        except StoreError:
            raise AuthConfigError(f"{source}: default role {default_raw!r} is unknown") from None
        return cls(
            subjects=table("subjects"),
            emails=table("emails"),
            claim=claim.strip() if isinstance(claim, str) else None,
            default=default,
            source=source,
        )

    @classmethod
    def load(cls, path: Path | None) -> RoleMap:
        """Read a roles file (an empty map when ``path`` is ``None``)."""
        if path is None:
            return cls()
        return cls.from_dict(_read_toml(path, "roles file"), source=str(path))

    def role_for(self, claims: Mapping[str, Any]) -> Role | None:
        """The role of a signed-in user: by subject, then verified e-mail, then claim, then default."""
        sub = claims.get("sub")
        if isinstance(sub, str) and sub in self.subjects:
            return self.subjects[sub]
        email = claims.get("email")
        if isinstance(email, str) and claims.get("email_verified") is not False:
            role = self.emails.get(email.lower())
            if role is not None:
                return role
        if self.claim:
            value = claims.get(self.claim)
            values = value if isinstance(value, list | tuple) else [value]
            for v in values:
                if isinstance(v, str):
                    try:
                        return Role.parse(v)
                    except StoreError:
                        continue
        return self.default


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
    user: Mapping[str, Any] | None = None,
    roles: RoleMap | None = None,
) -> UISession:
    """Turn the serving mode plus ``st.user``'s claims into a :class:`UISession`.

    Local mode: the OS user with ``local_role``. OIDC mode: the ``sub`` claim with the role
    :class:`RoleMap` assigns; no role means no access.
    """
    if mode == "local":
        return UISession("local", Actor.from_os_user(parse_role(local_role)), True)
    claims = dict(user or {})
    if not claims.get("is_logged_in"):
        return UISession("oidc", None, False, "Sign in to continue.")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        return UISession(
            "oidc", None, True,
            "Your identity provider did not send a subject (`sub` claim); ask your "
            "administrator to check the provider configuration.",
        )
    role = (roles or RoleMap()).role_for(claims)
    name = claims.get("name") or claims.get("email") or sub
    if role is None:
        return UISession(
            "oidc", None, True,
            f"You are signed in as {name} ({sub}) but have no workbench role. Ask your "
            "administrator to add you to the roles file (subjects or emails table).",
        )
    try:
        actor = Actor.from_oidc(sub, role, str(name))
    except StoreError as exc:
        return UISession("oidc", None, True, f"Your identity cannot be used: {exc}")
    return UISession("oidc", actor, True)
