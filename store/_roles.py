"""Roles, actions, the permission table and authenticated actors.

The permission table is enforced by :class:`store.Store` itself (not only by hiding buttons in
the UI): an actor whose role does not allow an action gets :class:`~store.PermissionDenied`
and nothing is written.
"""

from __future__ import annotations

import getpass
import os
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from store._errors import PermissionDenied, ValidationError

__all__ = ["PERMISSIONS", "Action", "Actor", "Role", "check_permission", "os_user_name"]


def os_user_name() -> str:
    """The name of the OS account this process runs as.

    On POSIX it comes from the process's effective user id (``pwd``), not from ``$USER`` or
    ``$LOGNAME``, which anyone can set; elsewhere from :func:`getpass.getuser`.

    Raises
    ------
    ValidationError
        If the OS user cannot be determined.
    """
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, AttributeError, KeyError):
        pass
    try:
        return getpass.getuser()
    except (KeyError, OSError) as exc:
        raise ValidationError(
            f"cannot determine the OS user ({exc}); set the USER environment variable"
        ) from None


class Role(StrEnum):
    """Who an actor is, as far as the store's permissions go."""

    DERMATOLOGIST = "dermatologist"
    ENGINEER = "engineer"
    AUDITOR = "auditor"

    @classmethod
    def parse(cls, value: Role | str) -> Role:
        """Return the Role named ``value`` (case-insensitive).

        Raises
        ------
        ValidationError
            For an unknown role, listing the known ones.
        """
        if isinstance(value, Role):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        known = ", ".join(r.value for r in cls)
        raise ValidationError(f"unknown role {value!r}; use one of: {known}")


class Action(StrEnum):
    """Every kind of event in the log."""

    PROPOSED = "proposed"
    APPLIED = "applied"
    REVERTED = "reverted"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPORTED = "exported"
    CONCEPT_NAMED = "concept_named"
    MODEL_EXPORTED = "model_exported"
    MODEL_REGISTERED = "model_registered"
    DATASET_REGISTERED = "dataset_registered"
    CONCEPT_REGISTERED = "concept_registered"
    CAV_RUN_RECORDED = "cav_run_recorded"
    TCAV_RESULTS_RECORDED = "tcav_results_recorded"
    EFFECT_RECORDED = "effect_recorded"
    FIX_RECORDED = "fix_recorded"

    @classmethod
    def parse(cls, value: Action | str) -> Action:
        """Return the Action named ``value``; :class:`ValidationError` if unknown."""
        if isinstance(value, Action):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        known = ", ".join(a.value for a in cls)
        raise ValidationError(f"unknown action {value!r}; use one of: {known}")


_RECORDS = frozenset(
    {
        Action.MODEL_REGISTERED,
        Action.DATASET_REGISTERED,
        Action.CONCEPT_REGISTERED,
        Action.CAV_RUN_RECORDED,
        Action.TCAV_RESULTS_RECORDED,
        Action.EFFECT_RECORDED,
    }
)

#: Role -> actions it may append. Dermatologists propose, apply, revert, approve/reject and name
#: concepts; engineers apply and export patched models; auditors only read, and append the
#: ``exported`` event that records their exports. Recording computed results (models, data
#: sets, concepts, CAV runs, TCAV results, effects) is open to dermatologists and engineers,
#: and so is ``fix_recorded``: a test-time fix fitted on a few labelled images of a new
#: clinic, whose edits the knowledge graph restricts (artifacts masked, criteria amplified).
#: A fix is never ``applied`` to the workspace's model (see ``Store.record_fix``).
PERMISSIONS: MappingProxyType[Role, frozenset[Action]] = MappingProxyType(
    {
        Role.DERMATOLOGIST: frozenset(
            {
                Action.PROPOSED,
                Action.APPLIED,
                Action.REVERTED,
                Action.APPROVED,
                Action.REJECTED,
                Action.CONCEPT_NAMED,
                Action.EXPORTED,
                Action.FIX_RECORDED,
            }
        )
        | _RECORDS,
        Role.ENGINEER: frozenset(
            {Action.APPLIED, Action.MODEL_EXPORTED, Action.EXPORTED, Action.FIX_RECORDED}
        )
        | _RECORDS,
        Role.AUDITOR: frozenset({Action.EXPORTED}),
    }
)


def _check_identity_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"actor {what} must be a non-empty str, got {value!r}")
    if len(value) > 256:
        raise ValidationError(f"actor {what} is longer than 256 characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValidationError(f"actor {what} {value!r} contains control characters or surrogates")
    return value


@dataclass(frozen=True)
class Actor:
    """An authenticated person acting on the store.

    Create it with :meth:`from_os_user` (CLI: the logged-in OS user, with a configured role)
    or :meth:`from_oidc` (UI: the subject of a verified OpenID Connect session); never from a
    free-text field.

    Attributes
    ----------
    id
        Stable identifier: the OS user name or the OIDC ``sub`` claim.
    role
        The role the permissions are checked against.
    display_name
        Human-readable name shown in reports.
    source
        ``"os"`` or ``"oidc"``: how the identity was established.
    """

    id: str
    role: Role
    display_name: str
    source: Literal["os", "oidc"]

    def __post_init__(self) -> None:
        _check_identity_text(self.id, "id")
        _check_identity_text(self.display_name, "display name")
        object.__setattr__(self, "role", Role.parse(self.role))
        if self.source not in ("os", "oidc"):
            raise ValidationError(f"actor source must be 'os' or 'oidc', got {self.source!r}")

    @classmethod
    def from_os_user(cls, role: Role | str) -> Actor:
        """The OS user running this process (:func:`os_user_name`), with ``role``.

        The caller is responsible for ``role`` being one the user was granted (the CLI
        resolves it from the workspace's roles file, ``workbench.auth._identity``).

        Raises
        ------
        ValidationError
            If the OS user cannot be determined or the role is unknown.
        """
        user = os_user_name()
        return cls(id=user, role=Role.parse(role), display_name=user, source="os")

    @classmethod
    def from_oidc(cls, subject: str, role: Role | str, name: str | None = None) -> Actor:
        """An actor authenticated by OpenID Connect (``subject`` is the ``sub`` claim)."""
        return cls(
            id=subject, role=Role.parse(role), display_name=name or subject, source="oidc"
        )

    def can(self, action: Action | str) -> bool:
        """Whether this actor's role may append ``action``."""
        return Action.parse(action) in PERMISSIONS[self.role]


def check_permission(actor: object, action: Action) -> Actor:
    """Return ``actor`` if it is an :class:`Actor` allowed to append ``action``.

    Raises
    ------
    ValidationError
        If ``actor`` is not an :class:`Actor` (e.g. a free-text name).
    PermissionDenied
        If the actor's role does not allow ``action``.
    """
    if not isinstance(actor, Actor):
        raise ValidationError(
            f"actor must be a store.Actor (Actor.from_os_user / Actor.from_oidc), "
            f"not {type(actor).__name__}"
        )
    if action not in PERMISSIONS[actor.role]:
        allowed = ", ".join(sorted(a.value for a in PERMISSIONS[actor.role]))
        raise PermissionDenied(
            f"{actor.display_name} ({actor.role.value}) may not record '{action.value}'; "
            f"the {actor.role.value} role may only record: {allowed}"
        )
    return actor
