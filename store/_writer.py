"""The single writer: serialised, atomic appends with group commit.

Every append is atomic: one transaction holds the whole event and its reference rows
(BEGIN; read head; INSERT ...; COMMIT), and the caller returns only after that COMMIT. Appends
are serialised by the per-file writer lock, so each event's ``prev_hash`` is the committed head
and the chain never forks.

Group commit: appends that *queue up* while another thread of the same process is committing
are written together by the next leader in one transaction (at most ``MAX_BATCH``).
Nothing is acknowledged before its COMMIT, so a crash loses only unacknowledged events, never
half an event. A lone append (no contention) is exactly one transaction. If a batch fails as a
whole, its events are retried one per transaction so only the faulty one fails.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import duckdb

from store._chain import GENESIS_HASH, event_hash
from store._conn import PathState, rollback_quietly
from store._errors import StoreError
from store._model import Event
from store._refs import Precheck, RefInsert
from store._schema import EVENT_COLUMNS, utc_now_iso

__all__ = ["MAX_BATCH", "Pending", "submit"]

#: Most events committed in one transaction.
MAX_BATCH = 256
#: Safety-net timeout of a waiting appender (it is woken at once by every commit).
_WAIT_S = 0.5
#: Longest wait for concurrent appends to join a group commit.
_MAX_COMMIT_DELAY_S = 0.05

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


@dataclass
class Pending:
    """One validated append waiting for its commit."""

    fields: dict[str, Any]
    ref: RefInsert | None = None
    precheck: Precheck | None = None
    done: threading.Event = field(default_factory=threading.Event)
    row: dict[str, Any] | None = None
    result: Event | None = None
    error: BaseException | None = None


#: What became of one pending append: (item, new row, existing event, error).
_Outcome = tuple[Pending, dict[str, Any] | None, Event | None, BaseException | None]


def submit(state: PathState, connect: Connect, pending: Pending, *, where: str,
           project_version: str) -> Event:
    """Append ``pending`` (group-committed with concurrent appends) and return its event.

    One waiting thread at a time is the leader: it takes the writer lock and commits queued
    appends, batch by batch, until its own event is committed, then hands over. The others
    wait on the queue's condition until their event is committed or leadership is free.

    Raises whatever the append raised: the precheck's ValidationError, or StoreError when the
    database refused the write (nothing of that event is written in either case).
    """
    cond = state.queue_cond
    with cond:
        state.queue.append(pending)
        cond.notify_all()
    while not pending.done.is_set():
        with cond:
            cond.wait_for(lambda: pending.done.is_set() or not state.leading, _WAIT_S)
            if pending.done.is_set():
                break
            if state.leading:
                continue
            state.leading = True
        try:
            with state.lock:
                while not pending.done.is_set():
                    batch = _next_batch(state)
                    if not batch:  # pragma: no cover - our own event is queued
                        break
                    _commit(state, connect, batch, where, project_version)
        finally:
            with cond:
                state.leading = False
                cond.notify_all()
    if pending.error is not None:
        raise pending.error
    if pending.row is not None:
        return Event.from_row(pending.row)
    if pending.result is None:  # pragma: no cover - every path sets one of the three
        raise StoreError("append finished without a result")
    return pending.result


def _next_batch(state: PathState) -> list[Pending]:
    """Take the next batch off the queue.

    When recent commits carried several events (other threads are appending), wait for as
    many to queue up again, at most one commit's duration (capped at ``_MAX_COMMIT_DELAY_S``),
    like PostgreSQL's ``commit_delay``: one commit for the lot costs far less than one each.
    A lone appender never waits; the expected batch size halves whenever fewer arrive.
    """
    with state.queue_cond:
        target = min(state.last_batch, MAX_BATCH)
        if target > 1 and len(state.queue) < target:
            delay = min(max(state.last_commit_s, 0.001), _MAX_COMMIT_DELAY_S)
            state.queue_cond.wait_for(lambda: len(state.queue) >= target, delay)
        batch: list[Pending] = state.queue[:MAX_BATCH]
        del state.queue[:MAX_BATCH]
        if batch:
            state.last_batch = max(len(batch), state.last_batch // 2)
        return batch


def _commit(state: PathState, connect: Connect, batch: list[Pending], where: str,
            version: str) -> None:
    """Write ``batch`` (caller holds the writer lock); every item ends done."""
    started = time.perf_counter()
    try:
        with connect() as con:
            try:
                _write(state, con, batch, version)
            except duckdb.Error as exc:
                if len(batch) == 1:
                    batch[0].error = StoreError(
                        f"append to {where} failed, nothing written: {exc}"
                    )
                else:  # isolate the faulty event: one transaction each
                    for item in batch:
                        try:
                            _write(state, con, [item], version)
                        except duckdb.Error as exc1:
                            item.error = StoreError(
                                f"append to {where} failed, nothing written: {exc1}"
                            )
    except BaseException as exc:  # busy, interrupted...: fail whatever is not finished
        for item in batch:
            if item.row is None and item.result is None and item.error is None:
                item.error = exc
        if not isinstance(exc, Exception):
            raise
    finally:
        state.last_commit_s = time.perf_counter() - started
        for item in batch:
            if item.row is None and item.result is None and item.error is None:  # pragma: no cover
                item.error = StoreError("append was not completed")
            item.done.set()
        with state.queue_cond:
            state.queue_cond.notify_all()


def _insert_sql(n: int) -> str:
    one = f"({', '.join('?' * len(EVENT_COLUMNS))})"
    return f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES " + ", ".join([one] * n)


def _write(state: PathState, con: duckdb.DuckDBPyConnection, batch: list[Pending],
           version: str) -> None:
    """One transaction for ``batch``. On a database error nothing is kept and it is raised.

    A batch of plain events (no prechecks, no reference rows) whose head is cached is a single
    multi-row INSERT statement, which DuckDB runs as one (auto-committed) transaction; any
    other batch is BEGIN; [read head]; prechecks and INSERTs in order; COMMIT. The primary
    key on ``seq`` is the safety net: a stale head can only fail the write, never fork.
    """
    head = state.head if state.sessions > 0 else None
    simple = head is not None and all(i.precheck is None and i.ref is None for i in batch)
    outcomes: list[_Outcome] = []
    rows: list[dict[str, Any]] = []
    if not simple:
        con.execute("BEGIN TRANSACTION")
    try:
        if head is None:
            head = _read_head(con)
        for item in batch:
            settled = _run_precheck(item, con)
            if settled is not None:
                outcomes.append(settled)
                continue
            row = _chain_row(item, head, version)
            head = (row["seq"], row["hash"])
            outcomes.append((item, row, None, None))
            if simple:
                rows.append(row)
                continue
            con.execute(_insert_sql(1), [row[c] for c in EVENT_COLUMNS])
            if item.ref is not None:
                item.ref.insert(con, row["seq"])
        if simple:
            con.execute(_insert_sql(len(rows)), [r[c] for r in rows for c in EVENT_COLUMNS])
        else:
            con.execute("COMMIT")
    except BaseException:
        state.head = None
        if not simple:
            rollback_quietly(con)
        raise
    if state.sessions > 0:
        state.head = head
    for item, new_row, existing, error in outcomes:
        item.row, item.result, item.error = new_row, existing, error


def _read_head(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    """(seq, hash) of the last committed event; (0, genesis hash) for an empty log."""
    found = con.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(found[0]), str(found[1])) if found else (0, GENESIS_HASH)


def _run_precheck(item: Pending, con: duckdb.DuckDBPyConnection) -> _Outcome | None:
    """The outcome when ``item``'s precheck settles it (a refusal or an existing event).

    ``None``: the item is to be written. A database error is raised (the batch fails).
    """
    if item.precheck is None:
        return None
    try:
        existing = item.precheck(con)
    except duckdb.Error:
        raise
    except Exception as exc:  # a refusal (ValidationError): nothing written
        return (item, None, None, exc)
    if existing is not None:
        return (item, None, existing, None)
    return None


def _chain_row(item: Pending, head: tuple[int, str], version: str) -> dict[str, Any]:
    """The event row of ``item`` chained after ``head`` (seq, ids, time stamp and hash)."""
    row = {
        **item.fields,
        "seq": head[0] + 1,
        "event_id": str(uuid.uuid4()),
        "ts": utc_now_iso(),
        "project_version": version,
        "prev_hash": head[1],
    }
    if item.ref is not None:
        row["records"] = item.ref.records_text()
    row["hash"] = event_hash(row)
    return row
