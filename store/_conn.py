"""Short-lived DuckDB connections with retry and backoff on the file lock.

DuckDB lets only one *process* open a database file at a time (even read-only opens fail with
"Could not set lock on file" while another process holds it). The store therefore never keeps
the file open between operations: each operation opens a connection, does its work and closes
it, and an open that hits the lock is retried with exponential backoff and jitter until the
store's ``busy_timeout``; then :class:`~store.StoreBusyError` says who holds the file.
Within one process DuckDB shares a single database instance between connections, so threads
never contend for the file lock, only for the store's in-process writer lock.

DuckDB's own lock is not enough between processes that open and close the file in quick
succession: measured with DuckDB 2.0.1 (three processes each appending 40 rows, one
open-commit-close per row), a committed row was lost in 4 of 10 runs, and with a ``CHECKPOINT``
before each close one process read a half-written file. So the store also holds an exclusive
``flock`` on a side file, ``<store>.lock``, from before DuckDB opens the file until after it
has closed it (:func:`store_connection`); with it, 0 of 16 runs lost a row. The lock is taken
once per process (threads share it while any of them has the file open) and holds the owner's
PID, to name it when a wait times out. A process that opens the file with DuckDB directly
(not through the store) is still kept out by DuckDB's own lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import re
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # POSIX; elsewhere DuckDB's own lock is all there is
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

import duckdb

from store._errors import StoreBusyError, StoreError

__all__ = [
    "PathState",
    "connect_with_retry",
    "is_lock_error",
    "path_state",
    "rollback_quietly",
    "store_connection",
]

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
    open_guard, open_count, lock_fd
        The side-file lock of :func:`store_connection`: a mutex, how many connections of this
        process have the file open, and the locked file's descriptor while any has.
    """

    lock: threading.RLock = field(default_factory=threading.RLock)
    sessions: int = 0
    head: tuple[int, str] | None = None
    queue: list[Any] = field(default_factory=list)
    queue_cond: threading.Condition = field(default_factory=threading.Condition)
    leading: bool = False
    last_batch: int = 1
    last_commit_s: float = 0.0
    open_guard: threading.Lock = field(default_factory=threading.Lock)
    open_count: int = 0
    lock_fd: int | None = None


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


def connect_with_retry(path: Path, busy_timeout: float, *,
                       deadline: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open ``path`` read-write, retrying while another process holds the file lock.

    Parameters
    ----------
    path
        The DuckDB file.
    busy_timeout
        Seconds to keep retrying before giving up.
    deadline
        ``time.monotonic()`` at which to give up instead (the wait has begun earlier).

    Raises
    ------
    StoreBusyError
        The lock was still held after ``busy_timeout`` seconds.
    StoreError
        Any other failure to open (not a DuckDB file, permissions, newer DuckDB format...).
    """
    if deadline is None:
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
            next_delay = _back_off(deadline, delay)
            if next_delay is None:
                pid = _PID_RE.search(str(exc))
                holder = f"process {pid.group(1)}" if pid else "another process"
                raise _busy(path, holder, busy_timeout, attempts) from None
            delay = next_delay


def _back_off(deadline: float, delay: float) -> float | None:
    """Sleep about ``delay`` seconds (jittered x0.5-1.5, never past ``deadline``) and return the
    next delay (doubled, at most 0.2 s); None when ``deadline`` has passed. The one retry
    schedule of both locks: DuckDB's and the side file's."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    time.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))
    return min(delay * 2, 0.2)


def lock_path(path: Path) -> Path:
    """The side file whose ``flock`` guards ``path`` between processes."""
    return path.with_name(path.name + ".lock")


def _busy(path: Path, holder: str, busy_timeout: float, attempts: int) -> StoreBusyError:
    return StoreBusyError(
        f"the store {path} is busy: {holder} kept it open for more than {busy_timeout:g} s "
        f"({attempts} attempts). Wait for that process to finish (a long export, a batch job) "
        "and try again, or raise the busy timeout"
    )


def _lock_holder(fd: int) -> str:
    """"process N" from the lock file (written by the holder), else "another process"."""
    with contextlib.suppress(OSError):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return f"process {text}"
    return "another process"


def _acquire_side_lock(path: Path, deadline: float, busy_timeout: float) -> int | None:
    """An exclusive ``flock`` on ``path``'s side file, retried until ``deadline``; its
    descriptor, or None where no side file can be made (a read-only folder, no ``fcntl``)."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    side = lock_path(path)
    try:  # never through a link: a workspace from elsewhere is not trusted
        fd = os.open(side, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return None  # a read-only workspace copy: DuckDB's lock alone
        raise StoreError(f"cannot use the store's lock file {side}: {exc.strerror}; if it is a "
                         "link or not a file, remove it") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(f"the store's lock file {side} is not a regular file; remove it")
    delay, attempts = 0.002, 0
    while True:
        attempts += 1
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            next_delay = _back_off(deadline, delay)
            if next_delay is None:
                holder = _lock_holder(fd)
                os.close(fd)
                raise _busy(path, holder, busy_timeout, attempts) from None
            delay = next_delay
        except OSError:  # pragma: no cover - a file system without flock
            os.close(fd)
            return None
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
    return fd


@contextlib.contextmanager
def _process_lock(path: Path, deadline: float, busy_timeout: float) -> Iterator[None]:
    """Hold ``path``'s side-file lock while this process has the file open (shared by the
    process's threads: taken by the first opener, released after the last close)."""
    state = path_state(path)
    with state.open_guard:
        if state.open_count == 0:
            state.lock_fd = _acquire_side_lock(path, deadline, busy_timeout)
        state.open_count += 1
    try:
        yield
    finally:
        with state.open_guard:
            state.open_count -= 1
            if state.open_count == 0 and state.lock_fd is not None:
                fd, state.lock_fd = state.lock_fd, None
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


@contextlib.contextmanager
def store_connection(path: Path, busy_timeout: float) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to the store file ``path``, closed on exit.

    Holds the side-file lock from before the open until after the close (see the module
    docstring), so that no other store process opens the file in between; waits for it, and
    for DuckDB's own lock, up to ``busy_timeout`` seconds in all.

    Raises
    ------
    StoreBusyError
        Another process kept the file open for longer than ``busy_timeout``.
    StoreError
        Any other failure to open.
    """
    deadline = time.monotonic() + max(0.0, busy_timeout)
    with _process_lock(path, deadline, busy_timeout):
        con = connect_with_retry(path, busy_timeout, deadline=deadline)
        try:
            yield con
        finally:
            con.close()


def rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK, ignoring "no transaction is active"."""
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")
