"""Shared pieces of sign-in: the environment variables, the error type, role and TOML parsing."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from concepts import WorkbenchError
from store import Role, StoreError

__all__ = [
    "ENV_AUTH",
    "ENV_ROLE",
    "ENV_ROLES_FILE",
    "ENV_SECRETS_FILE",
    "ENV_WORKSPACE",
    "AuthConfigError",
    "AuthMode",
    "parse_role",
    "read_toml",
]

#: Environment variables through which ``workbench serve`` configures the Streamlit app.
ENV_WORKSPACE = "WORKBENCH_WORKSPACE"
ENV_ROLE = "WORKBENCH_ROLE"
ENV_AUTH = "WORKBENCH_AUTH"
ENV_ROLES_FILE = "WORKBENCH_ROLES_FILE"
ENV_SECRETS_FILE = "WORKBENCH_SECRETS_FILE"

AuthMode = Literal["local", "oidc"]


class AuthConfigError(WorkbenchError):
    """Sign-in is required but not (correctly) configured."""


def parse_role(value: str) -> Role:
    """The :class:`store.Role` named ``value``; :class:`AuthConfigError` listing the known ones."""
    try:
        return Role.parse(value)
    except StoreError:
        known = ", ".join(r.value for r in Role)
        raise AuthConfigError(f"unknown role {value!r}; use one of: {known}") from None


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The TOML file ``path`` (``what`` names it in messages); :class:`AuthConfigError` when
    it is missing or not valid TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuthConfigError(f"{what} {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AuthConfigError(f"{what} {path} is not valid TOML ({exc}) — fix the file") from None

