"""Append-only reference tables covered by the chain.

Each reference row belongs to the event that recorded it (``event_seq``, ``row_no``). That
event's ``records`` column holds ``{"table", "n_rows", "sha256"}`` where ``sha256`` digests the
rows' payload hashes in ``row_no`` order, so editing, deleting or adding reference rows is
detected by :meth:`Store.verify` at the recording event's seq.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from store._canonical import dumps_stored, loads_json
from store._chain import VerifyResult, ref_row_hash, rows_digest
from store._errors import StoreError, ValidationError
from store._fields import pandas_missing, ref_row
from store._model import Event
from store._schema import EVENT_COLUMNS, REF_TABLES, RefTable

if TYPE_CHECKING:
    import pandas as pd

Precheck = Callable[[duckdb.DuckDBPyConnection], Event | None]

__all__ = [
    "Precheck",
    "RefInsert",
    "event_at",
    "fetch_ref_rows",
    "idempotent",
    "must_be_new_intervention",
    "must_exist_intervention",
    "verify_refs",
]

_TCAV_ALIASES = {"class": "target", "target_class": "target"}
_TCAV_REQUIRED = ("concept", "layer", "tcav_score")
_MAX_TCAV_ROWS = 1_000_000


@dataclass(frozen=True)
class RefInsert:
    """Validated rows for one reference table, ready to insert with their event."""

    table: RefTable
    payloads: list[dict[str, Any]]
    stored: list[list[Any]]
    row_hashes: list[str]

    @classmethod
    def build(
        cls, table: RefTable, rows: Sequence[Mapping[str, Any]], *, nan_as_null: bool = False,
        notes: list[str] | None = None,
    ) -> RefInsert:
        """Validate ``rows`` (mappings of column -> value) for ``table``."""
        notes = [] if notes is None else notes
        payloads, stored, hashes = [], [], []
        for i, row in enumerate(rows):
            where = table.name if len(rows) == 1 else f"{table.name}[{i}]"
            payload, values = ref_row(table, row, where, nan_as_null=nan_as_null, notes=notes)
            payloads.append(payload)
            stored.append(values)
            hashes.append(ref_row_hash(table, payload))
        return cls(table, payloads, stored, hashes)

    @classmethod
    def from_tcav_frame(cls, df: pd.DataFrame, *, nan_as_null: bool) -> tuple[RefInsert, list[str]]:
        """Validate a tidy TCAV results table; return the insert and non-finite notes."""
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise ValidationError(f"results must be a pandas DataFrame, not {type(df).__name__}")
        frame = df.rename(columns={k: v for k, v in _TCAV_ALIASES.items() if k in df.columns})
        if any(not isinstance(c, str) for c in frame.columns):
            raise ValidationError("results column names must be str")
        if frame.columns.duplicated().any():
            raise ValidationError("results has duplicate column names")
        missing = [c for c in _TCAV_REQUIRED if c not in frame.columns]
        if missing:
            raise ValidationError(
                f"results lacks the columns {missing}; a TCAV table needs "
                f"{list(_TCAV_REQUIRED)} (and optionally target, p_value, p_adj, n_runs)"
            )
        if len(frame) == 0:
            raise ValidationError("results is empty; there is nothing to record")
        if len(frame) > _MAX_TCAV_ROWS:
            raise ValidationError(f"results has {len(frame):,} rows; the limit is {_MAX_TCAV_ROWS:,}")
        table = REF_TABLES["tcav_results"]
        known = set(table.names)
        extra_cols = [c for c in frame.columns if c not in known]
        rows = []
        for rec in frame.to_dict("records"):
            row = {k: rec.get(k) for k in table.names if k != "extra"}
            extra = {c: _json_scalar(rec[c]) for c in extra_cols}
            row["extra"] = extra or None
            rows.append(row)
        notes: list[str] = []
        return cls.build(table, rows, nan_as_null=nan_as_null, notes=notes), notes

    def records_text(self) -> str:
        """The ``records`` JSON stored on the event."""
        return dumps_stored(
            {"table": self.table.name, "n_rows": len(self.row_hashes),
             "sha256": rows_digest(self.row_hashes)}
        )

    def insert(self, con: duckdb.DuckDBPyConnection, seq: int) -> None:
        """Insert the rows for event ``seq`` (inside the caller's transaction)."""
        cols = [*self.table.names, "event_seq", "row_no"]
        sql = (f"INSERT INTO {self.table.name} ({', '.join(cols)}) "
               f"VALUES ({', '.join('?' * len(cols))})")
        data = [[*values, seq, i] for i, values in enumerate(self.stored)]
        if len(data) == 1:
            con.execute(sql, data[0])
        else:
            con.executemany(sql, data)


def _json_scalar(value: Any) -> Any:
    """pandas/numpy cell -> plain value for the ``extra`` JSON (missing -> None)."""
    if value is None or pandas_missing(value):
        return None
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, list | dict):
        try:
            return value.item()
        except (ValueError, TypeError):
            return value
    return value


def fetch_ref_rows(
    con: duckdb.DuckDBPyConnection, table: RefTable, where: str, params: list[Any]
) -> list[tuple[int, str]]:
    """(event_seq, payload hash) of the rows of ``table`` matching ``where``."""
    cols = ", ".join(table.names)
    rows = con.execute(
        f"SELECT {cols}, event_seq FROM {table.name} WHERE {where} ORDER BY event_seq, row_no",
        params,
    ).fetchall()
    n = len(table.names)
    return [(int(r[n]), ref_row_hash(table, dict(zip(table.names, r[:n], strict=True))))
            for r in rows]


def verify_refs(
    con: duckdb.DuckDBPyConnection, events: list[dict[str, Any]], chain: VerifyResult
) -> VerifyResult:
    """Check every reference table against the digests recorded in the (valid) chain."""
    expected: dict[tuple[str, int], tuple[int, str]] = {}
    for ev in events:
        if ev.get("records"):
            rec = loads_json(ev["records"], "records")
            expected[(rec["table"], int(ev["seq"]))] = (int(rec["n_rows"]), rec["sha256"])
    problems: list[tuple[int, str]] = []
    for table in REF_TABLES.values():
        cols = ", ".join(table.names)
        rows = con.execute(  # a duckdb.Error here (table dropped...) is reported by the caller
            f"SELECT {cols}, event_seq FROM {table.name} ORDER BY event_seq, row_no"
        ).fetchall()
        groups: dict[int, list[str]] = {}
        n = len(table.names)
        for r in rows:
            seq = int(r[n])
            try:
                h = ref_row_hash(table, dict(zip(table.names, r[:n], strict=True)))
            except (StoreError, ValueError, TypeError):
                h = "unhashable"
            groups.setdefault(seq, []).append(h)
        for seq, hashes in groups.items():
            want = expected.get((table.name, seq))
            if want is None:
                problems.append((seq, f"{table.name} has rows for event {seq}, which recorded "
                                      "none there: rows were inserted"))
            elif want != (len(hashes), rows_digest(hashes)):
                problems.append((seq, f"{table.name} rows recorded by event {seq} do not match "
                                      "the digest in that event: rows were edited, deleted "
                                      "or added"))
        for (tname, seq), (n_rows, _) in expected.items():
            if tname == table.name and seq not in groups:
                problems.append((seq, f"the {n_rows} {tname} row(s) recorded by event {seq} "
                                      "are missing: rows were deleted"))
    if not problems:
        return chain
    seq, reason = min(problems)
    return VerifyResult(False, chain.n_events, seq, reason, chain.head_hash, chain.head_seq,
                        chain.complete)


def event_at(con: duckdb.DuckDBPyConnection, seq: int) -> Event:
    """The stored event ``seq``."""
    row = con.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE seq = ?", [seq]).fetchone()
    if row is None:
        raise StoreError(f"event {seq} is referenced but missing; run `workbench audit verify`")
    return Event.from_row(row)

def must_be_new_intervention(iid: str) -> Precheck:
    """Precheck: refuse a second proposal (or fix) with the same id."""
    def check(con: duckdb.DuckDBPyConnection) -> None:
        found = con.execute(
            "SELECT e.action, e.seq FROM interventions i JOIN events e ON e.seq = i.event_seq "
            "WHERE i.intervention_id = ?", [iid]
        ).fetchone()
        if found and found[0] == "fix_recorded":
            raise ValidationError(
                f"this fix is already recorded as {iid!r} (event #{found[1]}); change a strength "
                "or the shots to record another"
            )
        if found:
            raise ValidationError(
                f"intervention {iid!r} was already proposed; propose a new one with a new id"
            )

    return check

def must_exist_intervention(iid: str, *, proposed: bool = False) -> Precheck:
    """Precheck: refuse events about an intervention never proposed (or recorded as a fix).

    With ``proposed``, a test-time fix (``fix_recorded``) does not count: only a proposal can
    be applied to or reverted from the workspace's model.
    """
    def check(con: duckdb.DuckDBPyConnection) -> None:
        found = con.execute(
            "SELECT e.action FROM interventions i JOIN events e ON e.seq = i.event_seq "
            "WHERE i.intervention_id = ?", [iid]
        ).fetchone()
        if not found:
            raise ValidationError(f"unknown intervention {iid!r}: propose it first")
        if proposed and found[0] != "proposed":
            raise ValidationError(
                f"{iid!r} is a test-time fix (recorded with 'fix_recorded'), not a proposed "
                "intervention: it is exported as a patched model, never applied to the "
                "workspace's model; a dermatologist may propose the same spec to apply it"
            )

    return check

def idempotent(ins: RefInsert, key_cols: tuple[str, ...], what: str) -> Precheck:
    """Precheck: identical row exists -> return its event; different row -> refuse."""
    table = ins.table
    key = [ins.payloads[0][c] for c in key_cols]
    where = " AND ".join(f"{c} = ?" for c in key_cols)

    def check(con: duckdb.DuckDBPyConnection) -> Event | None:
        found = fetch_ref_rows(con, table, where, key)
        if not found:
            return None
        existing_seq, existing_hash = found[0]
        if existing_hash == ins.row_hashes[0]:
            return event_at(con, existing_seq)
        raise ValidationError(
            f"{what} is already registered (event {existing_seq}) with different "
            "content; records are append-only: register it under a new id or version"
        )

    return check
