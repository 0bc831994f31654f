"""Connections of a :class:`~store.Store`: the file, its migrations, sessions and the writer.

See :mod:`store._store` for the concurrency model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Self

import duckdb

from store._conn import path_state, store_connection
from store._errors import NotFoundError, StoreError
from store._model import Event
from store._refs import Precheck, RefInsert
from store._schema import load_migrations, migrate
from store._writer import Pending, submit

__all__ = ["PROJECT_VERSION", "STORE_FILENAME", "StoreBase"]

#: File name of the store inside a workspace directory.
STORE_FILENAME = "store.duckdb"


def _project_version() -> str:
    try:
        return metadata.version("concept-workbench")
    except metadata.PackageNotFoundError:
        return "0.1.0"


#: Version recorded in every event.
PROJECT_VERSION = _project_version()


class StoreBase:
    """The file, its connections and the single writer; :class:`~store.Store` adds the API."""

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        busy_timeout: float = 10.0,
        migrations_dir: Path | None = None,
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        if not self.path.exists():
            if not create:
                raise NotFoundError(
                    f"no store at {self.path}; check --workspace, or record something first"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.busy_timeout = float(busy_timeout)
        self._shared = path_state(self.path)
        self._write_lock = self._shared.lock
        self._state = threading.Lock()
        self._session_con: duckdb.DuckDBPyConnection | None = None
        self._session_stack = ExitStack()
        self._session_depth = 0
        self._session_gen = 0
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._local = threading.local()
        migrations = load_migrations(migrations_dir)
        with self._write_lock, self._connection() as con:
            self.schema_version = migrate(con, migrations, str(self.path))

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ------------------------------------------------------------------ connections
    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._state:
            con = self._session_con
            if con is not None:
                if getattr(self._local, "gen", None) != self._session_gen:
                    self._local.cursor = con.cursor()
                    self._local.gen = self._session_gen
                    self._cursors.append(self._local.cursor)
                cursor: duckdb.DuckDBPyConnection = self._local.cursor
        if con is not None:
            yield cursor
            return
        with store_connection(self.path, self.busy_timeout) as con:
            yield con

    @contextmanager
    def session(self) -> Iterator[Self]:
        """Hold one connection for a batch of operations (re-entrant, thread-shared).

        Inside the block every thread uses its own cursor on that connection, which avoids
        re-opening the file per operation. Other processes cannot open the file meanwhile
        (they wait up to their busy timeout), so keep sessions short: batch jobs, tests,
        bulk imports; not a whole UI session.
        """
        with self._write_lock, self._state:  # lock order: writer lock, then state
            if self._session_depth == 0:
                stack = ExitStack()
                self._session_con = stack.enter_context(store_connection(self.path, self.busy_timeout))
                self._session_stack = stack
                self._session_gen += 1
                self._shared.sessions += 1
            self._session_depth += 1
        try:
            yield self
        finally:
            with self._write_lock, self._state:
                self._session_depth -= 1
                if self._session_depth == 0 and self._session_con is not None:
                    for cur in self._cursors:
                        cur.close()
                    self._cursors.clear()
                    self._session_stack.close()  # closes the connection, then the side lock
                    self._session_con = None
                    self._shared.sessions -= 1
                    if self._shared.sessions == 0:
                        self._shared.head = None

    def _read(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._connection() as con:
            try:
                return con.execute(sql, params or []).fetchall()
            except duckdb.Error as exc:
                raise StoreError(f"reading {self.path} failed: {exc}") from None

    def _append(
        self, fields: dict[str, Any], *, ref: RefInsert | None = None,
        precheck: Precheck | None = None,
    ) -> Event:
        """Hand one validated event to the single writer; return it once committed."""
        return submit(self._shared, self._connection, Pending(fields, ref, precheck),
                      where=str(self.path), project_version=PROJECT_VERSION)
