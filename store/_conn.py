"""Short-lived DuckDB connections with retry and backoff on the file lock.

DuckDB lets only one *process* open a database file at a time (even read-only opens fail with
"Could not set lock on file" while another process holds it). The store therefore never keeps
the file open between operations: each operation opens a connection, does its work and closes
it, and an open that hits the lock is retried with exponential backoff and jitter until the
store's ``busy_timeout``; then :class:`~store.StoreBusyError` says who holds the file.
Within one process DuckDB shares a single database instance between connections, so threads
never contend for the file lock, only for the store's in-process writer lock.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from store._errors import StoreBusyError, StoreError

__all__ = ["PathState", "connect_with_retry", "is_lock_error", "path_state", "rollback_quietly"]

_PID_RE = re.compile(r"\(PID (\d+)\)")
#: DuckDB settings of every store connection. One thread per query: the store's queries are
#: tiny, and on a busy machine DuckDB's worker-thread hand-offs cost more than they save.
_CONFIG: dict[str, str | bool | int | float | list[str]] = {"threads": 1}


@dataclass
class PathState:
    """Process-wide state of one store file, shared by every Store on that path.

    Attributes
    ----------
    lock
        The writer lock: appends to the file from this process are serialised on it.
    sessions
        Number of open sessions (held connections) on the file in this process.
    head
        (seq, hash) of the last event, cached only while ``sessions > 0``: while this process
        holds the file open no other process can write to it, and every in-process append
        updates the cache under ``lock``. None means "read it from the table".
    queue, queue_cond, leading, last_batch, last_commit_s
        Appends waiting for the writer, the condition guarding them, whether a thread is
        committing them, and the (decaying) size and the duration of recent group commits
        (see ``store._writer``).
    """

    lock: threading.RLock = field(default_factory=threading.RLock)
    sessions: int = 0
    head: tuple[int, str] | None = None
    queue: list[Any] = field(default_factory=list)
    queue_cond: threading.Condition = field(default_factory=threading.Condition)
    leading: bool = False
    last_batch: int = 1
    last_commit_s: float = 0.0


_STATES: dict[str, PathState] = {}
_STATES_GUARD = threading.Lock()


def path_state(path: Path) -> PathState:
    """The process-wide :class:`PathState` of a store file."""
    key = str(path)
    with _STATES_GUARD:
        state = _STATES.get(key)
        if state is None:
            state = _STATES[key] = PathState()
        return state


def is_lock_error(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB's "file is locked by another process" error."""
    text = str(exc)
    return isinstance(exc, duckdb.Error) and (
        "Could not set lock" in text or "Conflicting lock" in text
    )


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), config=_CONFIG)
    except duckdb.ConnectionException as exc:
        if "different configuration" not in str(exc):
            raise
        # someone else in this process opened the file with default settings: share theirs
        return duckdb.connect(str(path))


def connect_with_retry(path: Path, busy_timeout: float) -> duckdb.DuckDBPyConnection:
    """Open ``path`` read-write, retrying while another process holds the file lock.

    Parameters
    ----------
    path
        The DuckDB file.
    busy_timeout
        Seconds to keep retrying before giving up.

    Raises
    ------
    StoreBusyError
        The lock was still held after ``busy_timeout`` seconds.
    StoreError
        Any other failure to open (not a DuckDB file, permissions, newer DuckDB format...).
    """
    deadline = time.monotonic() + max(0.0, busy_timeout)
    delay = 0.002
    attempts = 0
    while True:
        attempts += 1
        try:
            return _connect(path)
        except duckdb.Error as exc:
            if not is_lock_error(exc):
                raise StoreError(
                    f"cannot open the store {path}: {exc}. Check that it is a workbench store "
                    "file written by a compatible DuckDB version and that it is writable"
                ) from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pid = _PID_RE.search(str(exc))
                holder = f"process {pid.group(1)}" if pid else "another process"
                raise StoreBusyError(
                    f"the store {path} is busy: {holder} kept it open for more than "
                    f"{busy_timeout:g} s ({attempts} attempts). Wait for that process to "
                    "finish (a long export, a batch job) and try again, or raise the busy "
                    "timeout"
                ) from None
            time.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))
            delay = min(delay * 2, 0.2)


def rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK, ignoring "no transaction is active"."""
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")
