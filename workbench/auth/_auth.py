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

This module holds the pure logic (tested without Streamlit); the app reads ``st.user`` and
calls :func:`resolve_session`.
"""

from __future__ import annotations

import collections
import ipaddress
import itertools
import math
import os
import re
import secrets
import tomllib
import zlib
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
    "MIN_COOKIE_SECRET_CHARS",
    "AuthConfigError",
    "AuthMode",
    "OidcIdentity",
    "RoleMap",
    "ServingContext",
    "UISession",
    "check_cookie_secret",
    "check_oidc_secrets",
    "find_roles_file",
    "find_secrets_file",
    "generate_cookie_secret",
    "is_loopback",
    "listening_addresses",
    "local_mode_problem",
    "oidc_provider_name",
    "parse_role",
    "provider_count",
    "resolve_session",
    "serving_context",
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
        ip = ipaddress.ip_address(h)
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None  # ::ffff:127.0.0.1
    return bool((mapped or ip).is_loopback)


def parse_role(value: str) -> Role:
    """The :class:`store.Role` named ``value``; :class:`AuthConfigError` listing the known ones."""
    try:
        return Role.parse(value)
    except StoreError:
        known = ", ".join(r.value for r in Role)
        raise AuthConfigError(f"unknown role {value!r}; use one of: {known}") from None


# --------------------------------------------------------------------------- where the app listens
@dataclass(frozen=True)
class ServingContext:
    """Where the running app listens and where the current browser session comes from.

    Attributes
    ----------
    address
        Streamlit's ``server.address`` option (``""`` or ``None``: all interfaces).
    listening
        Addresses of this process's listening TCP sockets on the server port, read from the
        operating system (``None`` when they cannot be read; empty when no server listens,
        e.g. under ``AppTest``).
    client_ip
        The browser's address (``st.context.ip_address``; ``None`` for loopback or unknown).
    host_header
        The ``Host`` header of the browser's connection (``None`` when unknown).
    forwarded
        Whether the connection carries proxy headers (``Forwarded``, ``X-Forwarded-For``,
        ``X-Real-IP``): a proxy on this machine may relay visitors from anywhere.
    """

    address: str | None
    listening: tuple[str, ...] | None = None
    client_ip: str | None = None
    host_header: str | None = None
    forwarded: bool = False


def _host_of(host_header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8501`` -> ``::1``, ``localhost:1`` -> ``localhost``)."""
    h = host_header.strip()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def local_mode_problem(ctx: ServingContext | None) -> str:
    """Why local single-user mode must not be used here (``""`` when it may).

    Local mode gives every visitor the server's OS identity, so it is allowed only when the
    server listens on loopback addresses only (configured *and* actually bound), the browser
    connects from this machine, under a loopback host name (no DNS rebinding), and not through
    a proxy.
    """
    fix = (
        " — serve on 127.0.0.1 (`workbench serve`, or `streamlit run workbench/app.py "
        "--server.address 127.0.0.1`), or configure OpenID Connect sign-in "
        "(`workbench serve --host ...` with secrets.toml and roles.toml)"
    )
    if ctx is None:
        return "local mode refused: cannot tell which address the server listens on" + fix
    if not ctx.address or not is_loopback(ctx.address):
        shown = repr(ctx.address) if ctx.address else "all interfaces (server.address is not set)"
        return f"local mode refused: the server listens on {shown}, not on loopback only" + fix
    bad = [a for a in (ctx.listening or ()) if not is_loopback(a)]
    if bad:
        return f"local mode refused: the server is bound to {bad[0]!r}, not to loopback only" + fix
    if ctx.client_ip and not is_loopback(ctx.client_ip):
        return f"local mode refused: this browser connects from {ctx.client_ip}, not from this machine" + fix
    if ctx.host_header and not is_loopback(_host_of(ctx.host_header)):
        return (
            f"local mode refused: the page was requested as {ctx.host_header!r}, not as "
            "localhost or 127.0.0.1" + fix
        )
    if ctx.forwarded:
        return "local mode refused: the connection came through a proxy" + fix
    return ""


def _decode_proc_address(hex_addr: str) -> str:
    """An address of ``/proc/net/tcp{,6}`` (little-endian 32-bit words) as text."""
    raw = bytes.fromhex(hex_addr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def listening_addresses(port: int, proc: Path = Path("/proc")) -> tuple[str, ...] | None:
    """Local addresses of this process's listening TCP sockets on ``port``.

    Read from ``/proc`` (Linux); ``None`` where that is not available.
    """
    try:
        inodes = set()
        for fd in (proc / "self" / "fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        found: list[str] = []
        for table in ("tcp", "tcp6"):
            path = proc / "net" / table
            if not path.is_file():
                continue
            for line in path.read_text().splitlines()[1:]:
                f = line.split()
                if len(f) < 10 or f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
                    continue
                addr, _, hex_port = f[1].partition(":")
                if int(hex_port, 16) == int(port):
                    found.append(_decode_proc_address(addr))
        return tuple(found)
    except (OSError, ValueError):
        return None


_FORWARD_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")


def serving_context() -> ServingContext:
    """The :class:`ServingContext` of the running Streamlit app (imports Streamlit)."""
    import streamlit as st

    address = st.get_option("server.address")
    try:
        port = int(st.get_option("server.port"))
    except (TypeError, ValueError):
        port = 0
    client_ip: str | None = None
    host: str | None = None
    forwarded = False
    try:
        ip = st.context.ip_address
        client_ip = ip if isinstance(ip, str) else None
        headers = {k.lower(): v for k, v in st.context.headers.items()
                   if isinstance(k, str) and isinstance(v, str)}
        host = headers.get("host")
        forwarded = any(h in headers for h in _FORWARD_HEADERS)
    except Exception:  # no browser connection (AppTest, bare mode): nothing to add
        pass
    return ServingContext(
        address=str(address) if address else None,
        listening=listening_addresses(port) if port else None,
        client_ip=client_ip,
        host_header=host,
        forwarded=forwarded,
    )


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


#: Shortest accepted ``cookie_secret``: 32 random bytes as URL-safe base64 (hex needs 64).
MIN_COOKIE_SECRET_CHARS = 43
_MIN_COOKIE_SECRET_HEX = 64
#: Words of placeholders and hand-made secrets (documentation examples, "change me", ...);
#: six letters or more, so that random base64 practically never contains one by chance.
_PLACEHOLDER_WORDS = (
    "<", ">", "random", "secret", "change", "example", "placeholder", "cookie", "password",
    "workbench",
)


def generate_cookie_secret() -> str:
    """A fresh ``cookie_secret``: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def _weakness(value: str) -> str:
    """Why ``value`` does not look like >= 32 random bytes ("" when it does)."""
    n = len(value)
    is_hex = re.fullmatch(r"[0-9a-fA-F]+", value) is not None
    need = _MIN_COOKIE_SECRET_HEX if is_hex else MIN_COOKIE_SECRET_CHARS
    if n < need:
        return f"it is {n} characters; 32 random bytes need at least {need}"
    low = value.lower()
    word = next((w for w in _PLACEHOLDER_WORDS if w in low), None)
    if word is not None:
        return f"it looks like a placeholder or a hand-made phrase (contains {word!r})"
    counts = collections.Counter(value)
    bits = -sum(c * math.log2(c / n) for c in counts.values())
    steps = sum(1 for a, b in itertools.pairwise(value) if abs(ord(b) - ord(a)) <= 1)
    packed = len(zlib.compress(value.encode("utf-8"), 9))
    if len(counts) < 12 or bits < 160 or steps > n // 2 or packed < 0.75 * n:
        return "it is not random enough (repeated or sequential characters)"
    return ""


def check_cookie_secret(value: object, where: str = "secrets.toml", *, suggest: bool = True) -> str:
    """Check that ``[auth] cookie_secret`` holds at least 32 random bytes; return it.

    Streamlit signs the cookie that carries the signed-in user's claims with this secret, so a
    guessable one lets anyone forge a sign-in.

    Raises
    ------
    AuthConfigError
        Missing, too short, a placeholder, or visibly not random; with ``suggest`` the message
        holds a freshly generated secret to paste (never shown to visitors of the UI).
    """
    problem = "it is missing" if not isinstance(value, str) or not value else _weakness(value)
    if problem:
        example = f'cookie_secret = "{generate_cookie_secret()}"' if suggest else "cookie_secret = ..."
        raise AuthConfigError(
            f"{where}: [auth] cookie_secret is too weak ({problem}). Replace it with 32 random "
            f'bytes, e.g. {example} (python -c "import secrets; '
            'print(secrets.token_urlsafe(32))"), then restart; everyone signs in again'
        )
    return str(value)


def provider_count(auth: Mapping[str, Any]) -> int:
    """How many OpenID Connect providers an ``[auth]`` section configures."""
    top = 1 if all(auth.get(k) for k in _PROVIDER_KEYS) else 0
    return top + sum(1 for v in auth.values() if isinstance(v, Mapping))


def check_oidc_secrets(path: Path | None) -> dict[str, Any]:
    """Check that ``path`` configures OpenID Connect sign-in for ``st.login``; return ``[auth]``.

    Raises
    ------
    AuthConfigError
        No file, no ``[auth]`` section, a weak ``cookie_secret`` (:func:`check_cookie_secret`),
        or a provider without client id/secret/metadata URL.
    """
    example = (
        "[auth]\n"
        'redirect_uri = "http://<this host>:<port>/oauth2callback"\n'
        'cookie_secret = "<32 random bytes: python -c \'import secrets; print(secrets.token_urlsafe(32))\'>"\n'
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
    check_cookie_secret(auth.get("cookie_secret"), str(path))
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
class OidcIdentity:
    """A signed-in user as the provider names them: issuer (``iss``) and subject (``sub``).

    A subject is unique only within its issuer, so both together key a user. ``issuer`` is
    ``""`` for entries of the older flat ``[subjects]`` table (any issuer of a single provider).
    """

    issuer: str
    subject: str

    @property
    def actor_id(self) -> str:
        """The store's actor id: ``<issuer>#<subject>`` (an issuer URL has no ``#``)."""
        return f"{self.issuer}#{self.subject}"


def _parse_role_value(source: str, where: str, key: object, value: object) -> Role:
    try:
        return Role.parse(value)  # type: ignore[arg-type]
    except StoreError:
        raise AuthConfigError(
            f"{source}: [{where}] {key!r} has unknown role {value!r}; use one of: "
            + ", ".join(r.value for r in Role)
        ) from None


def _parse_subjects(raw: object, source: str) -> dict[OidcIdentity, Role]:
    """``[subjects."<issuer>"] "<sub>" = "<role>"`` tables, plus legacy flat entries."""
    if not isinstance(raw, dict):
        raise AuthConfigError(f'{source}: [subjects] must be a table of "issuer" -> "subject" = "role"')
    out: dict[OidcIdentity, Role] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            issuer = str(key).strip()
            if not re.match(r"https?://[^#?\s]+$", issuer):
                raise AuthConfigError(
                    f"{source}: [subjects.{key!r}] must be named by the provider's issuer URL "
                    '(the `iss` claim, e.g. [subjects."https://idp.clinic.example"])'
                )
            for sub, role in value.items():
                out[OidcIdentity(issuer, str(sub))] = _parse_role_value(source, f"subjects.{key}", sub, role)
        else:
            out[OidcIdentity("", str(key))] = _parse_role_value(source, "subjects", key, value)
    return out


@dataclass(frozen=True)
class RoleMap:
    """Who gets which role after signing in (see the module docstring for the file format)."""

    subjects: Mapping[OidcIdentity, Role] = field(default_factory=dict)
    emails: Mapping[str, Role] = field(default_factory=dict)
    claim: str | None = None
    default: Role | None = None
    source: str = ""

    @property
    def empty(self) -> bool:
        return not (self.subjects or self.emails or self.claim or self.default)

    @property
    def has_flat_subjects(self) -> bool:
        """Whether some ``[subjects]`` entries name no issuer (the older flat form)."""
        return any(not ident.issuer for ident in self.subjects)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "roles") -> RoleMap:
        """Parse the contents of a roles file.

        Raises
        ------
        AuthConfigError
            Unknown keys or roles, or a subjects table not named by an issuer URL.
        """
        known = {"claim", "default", "subjects", "emails", "os_users"}  # os_users: the CLI's
        extra = sorted(set(data) - known)
        if extra:
            raise AuthConfigError(f"{source}: unknown keys {extra}; use {sorted(known)}")
        raw_emails = data.get("emails", {})
        if not isinstance(raw_emails, dict):
            raise AuthConfigError(f'{source}: [emails] must be a table of "e-mail" = "role"')
        emails = {str(k).strip().lower(): _parse_role_value(source, "emails", k, v) for k, v in raw_emails.items()}
        claim = data.get("claim")
        if claim is not None and (not isinstance(claim, str) or not claim.strip()):
            raise AuthConfigError(f"{source}: claim must be the name of an ID-token claim")
        default_raw = data.get("default") or None
        try:
            default = Role.parse(default_raw) if default_raw else None
        except StoreError:
            raise AuthConfigError(f"{source}: default role {default_raw!r} is unknown") from None
        return cls(
            subjects=_parse_subjects(data.get("subjects", {}), source),
            emails=emails,
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

    def check_providers(self, auth: Mapping[str, Any]) -> None:
        """Refuse flat ``[subjects]`` entries when ``auth`` configures several providers.

        Raises
        ------
        AuthConfigError
            With more than one provider, a subject without an issuer could be anybody's.
        """
        if self.has_flat_subjects and provider_count(auth) > 1:
            raise AuthConfigError(
                f"{self.source or 'roles file'}: secrets.toml configures several sign-in "
                "providers, so [subjects] must name each subject's issuer: write "
                '[subjects."<issuer URL>"] tables instead of the flat [subjects] table'
            )

    def role_for(self, claims: Mapping[str, Any]) -> Role | None:
        """The role of a signed-in user: by (issuer, subject), then verified e-mail, then claim,
        then default. An e-mail counts only when ``email_verified`` is the boolean ``True``."""
        sub, iss = claims.get("sub"), claims.get("iss")
        if isinstance(sub, str) and sub and isinstance(iss, str) and iss:
            role = self.subjects.get(OidcIdentity(iss, sub)) or self.subjects.get(OidcIdentity("", sub))
            if role is not None:
                return role
        email = claims.get("email")
        if isinstance(email, str) and claims.get("email_verified") is True:
            role = self.emails.get(email.strip().lower())
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
