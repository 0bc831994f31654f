"""``secrets.toml``: where it is, its OpenID Connect ``[auth]`` section and its cookie secret."""

from __future__ import annotations

import collections
import itertools
import math
import os
import re
import secrets
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.auth._config import ENV_SECRETS_FILE, AuthConfigError, read_toml

__all__ = [
    "MIN_COOKIE_SECRET_CHARS",
    "check_cookie_secret",
    "check_oidc_secrets",
    "find_secrets_file",
    "generate_cookie_secret",
    "oidc_provider_name",
    "provider_count",
]

#: Keys a provider configuration needs (in ``[auth]`` or a named ``[auth.<provider>]``).
_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
_SHARED_KEYS = ("redirect_uri", "cookie_secret")


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
    data = read_toml(path, "secrets file")
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

