"""Who is acting on the command line: the OS user and the roles the workspace grants them.

A ``--role`` flag alone never decides a role. The actor is the OS account the process runs as
(:func:`store._roles.os_user_name`: from the effective user id, not ``$USER``), and the roles
come from the workspace:

* ``<workspace>/roles.toml`` with an ``[os_users]`` table (the same file the web UI reads for
  its OpenID Connect ``[subjects]`` and ``[emails]``)::

      [os_users]                 # OS account -> role, or list of roles
      alice = "dermatologist"
      bob = ["engineer", "auditor"]

  Only the users listed there may act, each with the listed roles. The file must not be
  writable by other users.
* Without such a table (a fresh ``workbench demo`` or a new workspace): the OS user who owns
  the workspace folder, i.e. the one who created it, is its *operator* and holds every role;
  any other OS user is refused until the operator lists them in ``roles.toml``. (On systems
  without POSIX user ids the current user is the operator.)

``--role`` then only *chooses* among the granted roles; without it a command uses its natural
role (``auditor`` for exports, ``dermatologist`` for interventions) when granted, else the
user's only granted role.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from store import Actor, PermissionDenied, Role, StoreError, ValidationError, os_user_name

__all__ = ["ROLES_FILENAME", "Grant", "check_local_role", "cli_actor", "granted_roles"]

#: The roles file inside a workspace.
ROLES_FILENAME = "roles.toml"
_TABLE = "os_users"


@dataclass(frozen=True)
class Grant:
    """The roles an OS user holds in a workspace, and where that was decided."""

    user: str
    roles: tuple[Role, ...]
    source: str


def _read_roles_file(path: Path) -> dict[str, object] | None:
    """The ``[os_users]`` table of ``path`` (None when the file or table is absent)."""
    if not path.is_file():
        return None
    st = path.stat()
    if st.st_mode & 0o002:
        raise PermissionDenied(
            f"{path} is writable by every user, so anyone could grant themselves a role; "
            f"fix it with `chmod o-w {path}`"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path} is not valid TOML ({exc}); fix the file") from None
    table = data.get(_TABLE)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ValidationError(f"{path}: [{_TABLE}] must be a table of user = \"role\" or [roles]")
    return table


def _parse_roles(value: object, user: str, path: Path) -> tuple[Role, ...]:
    items = value if isinstance(value, list) else [value]
    try:
        roles = tuple(dict.fromkeys(Role.parse(v) for v in items))  # type: ignore[arg-type]
    except StoreError:
        raise ValidationError(
            f"{path}: [{_TABLE}] {user!r} has an unknown role {value!r}; use "
            + ", ".join(r.value for r in Role)
        ) from None
    return roles


def _is_owner(folder: Path) -> bool:
    geteuid = getattr(os, "geteuid", None)
    if geteuid is None:
        return True
    return folder.stat().st_uid == geteuid()


def granted_roles(workspace: str | os.PathLike[str]) -> Grant:
    """The roles the current OS user holds in ``workspace`` (see the module docstring).

    Raises
    ------
    PermissionDenied
        The user holds no role there, or the roles file is writable by everyone.
    ValidationError
        The roles file is not valid.
    """
    root = Path(workspace).expanduser().resolve()
    user = os_user_name()
    path = root / ROLES_FILENAME
    table = _read_roles_file(path)
    if table is not None:
        if user not in table:
            raise PermissionDenied(
                f"the OS user {user!r} has no role in {path}; ask the workspace operator to "
                f"add `{user} = \"auditor\"` (or another role) under [{_TABLE}]"
            )
        return Grant(user, _parse_roles(table[user], user, path), f"{path} [{_TABLE}]")
    if not root.is_dir():
        raise ValidationError(f"no workspace at {root}; check --workspace")
    if not _is_owner(root):
        raise PermissionDenied(
            f"the OS user {user!r} does not own the workspace {root} and {path} grants no "
            f"roles; ask its operator to add you under [{_TABLE}] in {path}"
        )
    return Grant(user, tuple(Role), f"operator (owner of {root})")


def cli_actor(
    workspace: str | os.PathLike[str], requested: str | Role | None = None, *,
    default: str | Role | Sequence[str | Role] = Role.AUDITOR,
) -> Actor:
    """The :class:`store.Actor` acting on ``workspace`` from the command line.

    Parameters
    ----------
    workspace
        The workspace directory (its ``roles.toml`` and owner decide the roles).
    requested
        The ``--role`` value: must be one of the user's granted roles.
    default
        The command's natural role(s), used (first granted one) when ``requested`` is None;
        else the user's only granted role.

    Raises
    ------
    PermissionDenied
        The requested role is not granted, or the user holds no role.
    ValidationError
        An unknown role name, several granted roles and no natural one, or a bad roles file.
    """
    grant = granted_roles(workspace)
    names = ", ".join(r.value for r in grant.roles)
    if requested is not None:
        role = Role.parse(requested)
        if role not in grant.roles:
            raise PermissionDenied(
                f"--role {role.value} is not granted to {grant.user} ({grant.source} grants: "
                f"{names}); ask the workspace operator, or use one of those"
            )
        return Actor.from_os_user(role)
    defaults = [default] if isinstance(default, str | Role) else list(default)
    for d in defaults:
        if Role.parse(d) in grant.roles:
            return Actor.from_os_user(Role.parse(d))
    if len(grant.roles) == 1:
        return Actor.from_os_user(grant.roles[0])
    raise ValidationError(f"{grant.user} holds several roles ({names}); choose one with --role")


def check_local_role(workspace: str | os.PathLike[str], host: str, role: str) -> None:
    """Refuse ``workbench serve --role`` in local (loopback) mode unless the role is granted.

    In sign-in mode (any other address) roles come from the identity provider, so nothing is
    checked here. A workspace that does not exist yet is left to the server to report.

    Raises
    ------
    PermissionDenied
        The OS user does not hold ``role`` in the workspace.
    """
    from workbench.auth._serving import is_loopback

    if is_loopback(host) and Path(workspace).is_dir():
        cli_actor(workspace, role)
