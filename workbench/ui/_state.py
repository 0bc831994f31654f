"""Shared state of the UI: who is signed in, cached handles, and the error-safe page frame.

Caching rules
-------------
* ``st.cache_resource`` for the heavy, shared, thread-safe handles (workspace, data set, model,
  store, what-if engines): one per server process, keyed by *explicit* ids (workspace path,
  data-set content hash, model weights hash) so a rebuilt workspace is never served stale.
* ``st.cache_data`` for tables and figures derived from them, keyed by the same ids (never by
  unhashed ``_args``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from concepts import ClassifierModel, Dataset, ProgressFn, WorkbenchError, Workspace, WorkspaceError
from store import (
    Action,
    Actor,
    Event,
    NotFoundError,
    PermissionDenied,
    Role,
    Store,
    StoreBusyError,
    StoreError,
)
from workbench.auth._auth import UISession, resolve_session
from workbench.auth._config import (
    ENV_AUTH,
    ENV_ROLE,
    ENV_ROLES_FILE,
    ENV_WORKSPACE,
    AuthConfigError,
    AuthMode,
)
from workbench.auth._rolemap import RoleMap
from workbench.auth._secrets import check_cookie_secret
from workbench.auth._serving import serving_context
from workbench.ui._text import md

__all__ = [
    "ENV_STORE_TIMEOUT",
    "ENV_TORCH_THREADS",
    "MissingResults",
    "PageContext",
    "apply_thread_limit",
    "current_session",
    "dataset",
    "dataset_key",
    "guard",
    "model",
    "model_key",
    "model_lock",
    "progress_bar",
    "run_page",
    "show_error",
    "sidebar_identity",
    "store",
    "store_events",
    "workspace",
    "workspace_root",
]

_LOG = logging.getLogger("workbench.ui")

#: Seconds the UI waits for a store file another process holds before saying so.
ENV_STORE_TIMEOUT = "WORKBENCH_STORE_TIMEOUT"
#: torch intra-op threads of the UI server (``workbench serve`` sets 1: many small requests,
#: each of which would otherwise pay thread start-up and contention on a shared machine).
ENV_TORCH_THREADS = "WORKBENCH_TORCH_THREADS"


def apply_thread_limit() -> None:
    """Apply ``$WORKBENCH_TORCH_THREADS`` (when set) to torch in this process."""
    value = os.environ.get(ENV_TORCH_THREADS, "").strip()
    if value.isdigit() and int(value) > 0:
        import torch

        if torch.get_num_threads() != int(value):
            torch.set_num_threads(int(value))


class MissingResults(WorkbenchError):
    """An analysis whose results are not in the workspace yet (the message says how to get them)."""


# --------------------------------------------------------------------------- identity
def _auth_mode() -> AuthMode:
    return "oidc" if os.environ.get(ENV_AUTH, "local").strip().lower() == "oidc" else "local"


@st.cache_resource(show_spinner=False)
def _role_map(path: str, mtime: float) -> RoleMap:
    return RoleMap.load(Path(path) if path else None)


def _load_role_map() -> RoleMap:
    path = os.environ.get(ENV_ROLES_FILE, "")
    mtime = Path(path).stat().st_mtime if path and Path(path).is_file() else 0.0
    return _role_map(path, mtime)


def _auth_section() -> dict[str, Any]:
    try:
        return dict(st.secrets.get("auth", {}))
    except Exception:  # no secrets file at all
        return {}


def current_session() -> UISession:
    """Who is using this browser session (local OS user, or the OIDC sign-in)."""
    mode = _auth_mode()
    if mode == "local":  # refused unless served on loopback only (however the app was started)
        session = resolve_session(
            "local", local_role=os.environ.get(ENV_ROLE, "dermatologist"), serving=serving_context()
        )
        return _granted_locally(session)
    try:
        roles = _load_role_map()
        auth = _auth_section()
        if auth:  # a weak cookie secret would let anyone forge the sign-in cookie
            check_cookie_secret(auth.get("cookie_secret"), suggest=False)
            roles.check_providers(auth)
    except AuthConfigError as exc:
        return UISession("oidc", None, False, f"Sign-in is misconfigured: {exc}")
    user: dict[str, Any] = {}
    try:
        user = dict(st.user.to_dict())
    except Exception:  # no [auth] configured: treat as signed out
        user = {}
    return resolve_session("oidc", user=user, roles=roles)


def _granted_locally(session: UISession) -> UISession:
    """Local mode: the OS user must hold the role in the workspace's ``roles.toml`` (or own it).

    ``workbench serve --role`` checks this before starting; the app checks it again, since it
    may be started directly with any ``WORKBENCH_ROLE``.
    """
    from store import StoreError
    from workbench.auth._identity import granted_roles

    if session.actor is None or not workspace_root().is_dir():
        return session
    try:
        grant = granted_roles(workspace_root())
    except StoreError as exc:
        return UISession("local", None, False, str(exc))
    if session.actor.role not in grant.roles:
        held = ", ".join(r.value for r in grant.roles) or "none"
        return UISession("local", None, False,
                         f"Your OS account does not hold the role {session.actor.role.value!r} "
                         f"in this workspace (roles held: {held}); ask the operator to add it to "
                         "roles.toml [os_users].")
    return session


def sidebar_identity(session: UISession) -> None:
    """Who is signed in, in which role, on which workspace (sidebar footer)."""
    with st.sidebar:
        st.divider()
        if session.actor is not None:
            a = session.actor
            how = "local user" if a.source == "os" else "signed in"
            st.markdown(f"**{md(a.display_name)}** · {a.role.value}  \n:gray[{how} · {md(a.id)}]")
            if a.role is Role.AUDITOR:
                st.caption(":material/visibility: Read-only: auditors change nothing.")
        if session.actor is not None:  # nothing about the server for anonymous visitors
            st.caption(f"Workspace {md(workspace_root())}")
        if session.mode == "oidc" and session.actor is not None and st.button(
            "Sign out", icon=":material/logout:", key="wb_sign_out"
        ):
            st.logout()


# --------------------------------------------------------------------------- handles
def workspace_root() -> Path:
    """The workspace directory served (``$WORKBENCH_WORKSPACE``, default ``./workspace``)."""
    return Path(os.environ.get(ENV_WORKSPACE) or "workspace").expanduser().resolve()


@st.cache_resource(show_spinner=False)
def _workspace(root: str) -> Workspace:
    return Workspace(root)


def workspace() -> Workspace:
    """The served workspace.

    Raises
    ------
    WorkspaceError
        It does not exist (yet).
    """
    ws = _workspace(str(workspace_root()))
    ws.manifest()  # raises a WorkspaceError with the fix when missing or corrupt
    return ws


def dataset_key(ws: Workspace) -> tuple[str, str]:
    """(name, content hash) of the workspace's active data set, read from ``dataset.json``."""
    name = str(ws.manifest().get("dataset", "dermsynth"))
    meta = ws.datasets_dir / name / "dataset.json"
    if not meta.is_file():
        raise WorkspaceError(
            f"the workspace has no data set {name!r} — import one (`workbench import ... -w {ws.root}`) "
            f"or build the demo (`workbench demo --no-serve -w {ws.root}`)"
        )
    try:
        info = json.loads(meta.read_text())
        return name, str(info.get("content_hash") or meta.stat().st_mtime)
    except (ValueError, AttributeError, OSError):  # Dataset.load says what is wrong with it
        return name, str(meta.stat().st_mtime_ns)


@st.cache_resource(show_spinner="Loading the data set…", max_entries=4)
def _dataset(root: str, name: str, content_hash: str) -> Dataset:
    ds = Workspace(root).dataset(name)
    ds.verify()  # a corrupt or modified data set is refused (not cached), never shown
    return ds


def dataset(ws: Workspace) -> Dataset:
    """The active data set (one shared, memory-mapped copy per content hash)."""
    name, h = dataset_key(ws)
    return _dataset(str(ws.root), name, h)


def model_key(ws: Workspace) -> tuple[str, str]:
    """(model name, weights sha256) of the active model, read from ``model.json``."""
    name = str(ws.manifest().get("model", "demo"))
    meta = ws.models_dir / name / "model.json"
    if not meta.is_file():
        raise WorkspaceError(
            f"the workspace has no model {name!r} — train one (`workbench train -w {ws.root}`), add "
            f"one (`workbench models add`) or build the demo (`workbench demo --no-serve -w {ws.root}`)"
        )
    try:
        sha = str(json.loads(meta.read_text()).get("weights_sha256", ""))
    except json.JSONDecodeError:
        sha = ""
    return name, sha or str(meta.stat().st_mtime)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _model(root: str, name: str, weights_sha: str) -> ClassifierModel:
    return Workspace(root).model(name)


def model(ws: Workspace) -> ClassifierModel:
    """The active model (one shared copy per weights hash; never modified in place)."""
    name, sha = model_key(ws)
    return _model(str(ws.root), name, sha)


@st.cache_resource(show_spinner=False)
def model_lock(model_id: str) -> threading.RLock:
    """A lock for work that patches the shared model with forward hooks."""
    return threading.RLock()


@st.cache_resource(show_spinner=False)
def _store(path: str, busy_timeout: float) -> Store:
    return Store(path, busy_timeout=busy_timeout)


def store(ws: Workspace) -> Store:
    """The workspace's event store (created on first use; thread-safe, short connections)."""
    timeout = float(os.environ.get(ENV_STORE_TIMEOUT, "5"))
    return _store(str(ws.store_path), timeout)


def _store_file_key(path: Path) -> str:
    parts = []
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            st_ = p.stat()
        except FileNotFoundError:
            continue
        parts.append(f"{p.name}:{st_.st_mtime_ns}:{st_.st_size}")
    return "|".join(parts)


@st.cache_data(show_spinner=False, max_entries=16)
def _events(path: str, key: str, busy_timeout: float) -> list[Event]:
    return _store(path, busy_timeout).events()


def store_events(ws: Workspace) -> list[Event]:
    """All events of the workspace's store, re-read only when the store file changed (every
    append rewrites it), so a rerun that records nothing costs a ``stat``."""
    s = store(ws)
    return _events(str(s.path), _store_file_key(s.path), s.busy_timeout)


# --------------------------------------------------------------------------- page frame
@dataclass(frozen=True)
class PageContext:
    """What every page body gets: the session and its actor."""

    session: UISession
    actor: Actor

    @property
    def role(self) -> Role:
        return self.actor.role

    @property
    def read_only(self) -> bool:
        return self.actor.role is Role.AUDITOR

    def can(self, action: Action | str) -> bool:
        """Whether this actor may record ``action`` (write controls show only then)."""
        return self.actor.can(action)


def _hint(exc: BaseException) -> str:
    root = workspace_root()
    if isinstance(exc, MissingResults):
        return "The rest of the workbench works without it."
    if isinstance(exc, WorkspaceError):
        return (
            f"Import a data set and train a model (`workbench import ... -w {root}`, then "
            f"`workbench train -w {root}`), or build the demo workspace with "
            f"`workbench demo --no-serve --workspace {root}`; then reload this page."
        )
    if isinstance(exc, StoreBusyError):
        return (
            "Another program (a CLI export, a batch job) is writing the intervention store. "
            "Wait until it finishes, then reload the page (press R). Nothing was recorded."
        )
    if isinstance(exc, PermissionDenied):
        return "Your role does not allow this; nothing was recorded. Ask a dermatologist."
    if isinstance(exc, NotFoundError):
        return "It may have been removed; reload the page to see the current state."
    if isinstance(exc, StoreError):
        return "Nothing was recorded. Check the store file with `workbench audit verify`."
    if isinstance(exc, AuthConfigError):
        return "Ask the administrator to fix the sign-in configuration."
    return "Fix the input and try again; the server log has details."


def show_error(exc: BaseException, *, what: str = "") -> None:
    """A readable error box plus a way forward (never a traceback)."""
    if isinstance(exc, MissingResults):
        st.info(md(f"{what + ': ' if what else ''}{exc}"), icon=":material/hourglass_empty:")
        return
    prefix = f"{what}: " if what else ""
    st.error(md(f"{prefix}{exc}"), icon=":material/error:")
    st.caption(_hint(exc))


@contextmanager
def guard(what: str = "") -> Iterator[None]:
    """Run a block, turning workbench/store errors into a message box (and logging others)."""
    try:
        yield
    except (WorkbenchError, StoreError) as exc:
        show_error(exc, what=what)
    except Exception as exc:  # last resort: readable message, details in the server log
        _LOG.exception("unexpected error in the UI (%s)", what or "page")
        st.error(
            f"{what + ': ' if what else ''}something went wrong ({type(exc).__name__}). "
            "Reload the page; if it happens again, report it with the server log.",
            icon=":material/error:",
        )


@contextmanager
def progress_bar(text: str) -> Iterator[ProgressFn]:
    """A ``progress(stage, done, total)`` callback drawing one ``st.progress`` bar (removed when
    the block ends) for long work: building engines, extracting activations, TCAV."""
    bar = st.progress(0.0, text=text)

    def update(stage: str, done: int, total: int) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"{text} — {stage} ({done}/{total})")

    try:
        yield update
    finally:
        bar.empty()


def run_page(title: str, body: Callable[[PageContext], None], caption: str = "") -> None:
    """The frame of every page: title, then ``body(ctx)`` with errors shown as messages."""
    st.title(title)
    if caption:
        st.caption(caption)
    session = current_session()
    if session.actor is None:
        st.warning(md(session.problem or "Sign in to continue."))
        return
    with guard():
        body(PageContext(session=session, actor=session.actor))
