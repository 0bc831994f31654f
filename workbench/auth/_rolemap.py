"""The roles file (``roles.toml``): who gets which role after signing in with OpenID Connect.

See :mod:`workbench.auth._auth` for the file format.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store import Role, StoreError
from workbench.auth._config import ENV_ROLES_FILE, AuthConfigError, read_toml
from workbench.auth._secrets import provider_count

__all__ = [
    "OidcIdentity",
    "RoleMap",
    "find_roles_file",
]


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
        return cls.from_dict(read_toml(path, "roles file"), source=str(path))

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

