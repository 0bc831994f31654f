"""The hash chain: event hashes, reference-row digests and verification.

``hash = sha256(canonical_json(event))`` where ``event`` is the object of every column of the
``events`` table except ``hash`` (``seq`` as an integer, JSON columns as parsed values, SQL
NULL as ``null``), and ``prev_hash`` is the previous event's ``hash`` (64 zeros for seq 1).
Because ``seq`` and ``prev_hash`` are hashed, an edited, deleted, inserted or reordered row
breaks the chain at that row. Removing events from the *end* leaves a shorter valid chain;
that is caught by comparing with a head hash anchored elsewhere (``expected_head``, and the
automatic anchors of ``store._anchors``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from store._canonical import canonical_json, loads_json, sha256_hex
from store._errors import ChainError, StoreError
from store._schema import EVENT_COLUMNS, JSON_EVENT_COLUMNS, RefTable

__all__ = [
    "GENESIS_HASH",
    "VerifyResult",
    "event_hash",
    "ref_row_hash",
    "rows_digest",
    "verify_event_rows",
]

#: ``prev_hash`` of the first event.
GENESIS_HASH = "0" * 64
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of verifying a store or an exported file.

    Attributes
    ----------
    ok
        True when every check passed.
    n_events
        Number of events examined.
    first_bad_seq
        ``seq`` of the first row that fails a check (None when ``ok``).
    reason
        Human-readable explanation of the failure ("" when ``ok``).
    head_hash
        Hash of the last event examined (the genesis hash for an empty log).
    head_seq
        ``seq`` of the last event examined (0 for an empty log).
    complete
        True when the events examined are the whole chain from seq 1 (always true for a
        store; false for a filtered export, whose gaps cannot be checked for links).
    anchored_seq
        For a store: the highest ``seq`` whose hash was anchored outside the database before
        this verification (0: never anchored). Events after it are only as trustworthy as the
        chain itself: a truncation or rewrite of them would go unnoticed.
    note
        A caveat to show with the result (e.g. an export too old to record completeness).
    """

    ok: bool
    n_events: int
    first_bad_seq: int | None
    reason: str
    head_hash: str
    head_seq: int = 0
    complete: bool = True
    anchored_seq: int = 0
    note: str = ""

    def raise_if_bad(self) -> None:
        """Raise :class:`~store.ChainError` with the reason if not ``ok``."""
        if not self.ok:
            raise ChainError(f"chain broken at seq {self.first_bad_seq}: {self.reason}")

    def summary(self) -> str:
        """One line for humans."""
        if self.ok:
            scope = "" if self.complete else " (partial export: links checked where seqs are consecutive)"
            note = f" ({self.note})" if self.note else ""
            return (f"OK: {self.n_events} events, head seq {self.head_seq} hash "
                    f"{self.head_hash}{scope}{note}")
        return f"FAILED at seq {self.first_bad_seq}: {self.reason}"

    @property
    def unanchored(self) -> bool:
        """True when events after the last anchor exist (verified by the chain alone)."""
        return self.ok and self.head_seq > self.anchored_seq


def _parse(value: Any, column: str) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return loads_json(value, column)
    return value  # already parsed (e.g. read from JSON lines)


def event_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The object that is hashed for an event row (all columns but ``hash``)."""
    payload: dict[str, Any] = {}
    for col in EVENT_COLUMNS:
        if col == "hash":
            continue
        value = row.get(col)
        if col in JSON_EVENT_COLUMNS:
            value = _parse(value, col)
        elif col == "seq":
            value = int(value) if value is not None else None
        payload[col] = value
    return payload


def event_hash(row: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of an event row."""
    return sha256_hex(canonical_json(event_payload(row)))


def ref_row_hash(table: RefTable, row: Mapping[str, Any]) -> str:
    """sha256 hex of one reference-table row's payload (JSON columns parsed)."""
    payload: dict[str, Any] = {"table": table.name}
    for col, kind in table.columns:
        value = row.get(col)
        payload[col] = _parse(value, col) if kind == "json" else value
    return sha256_hex(canonical_json(payload))


def rows_digest(row_hashes: Iterable[str]) -> str:
    """Digest of an event's reference rows, in ``row_no`` order."""
    return sha256_hex("\n".join(row_hashes).encode("ascii"))


def _row_problem(
    row: Mapping[str, Any], seq: int, i: int, prev_seq: int, prev_hash: str,
    require_complete: bool,
) -> str:
    """Why ``row`` breaks the chain ("" if it does not)."""
    if seq == prev_seq:
        return f"seq {seq} appears twice (inserted row?)"
    if seq != prev_seq + 1 and require_complete:
        missing = f"{prev_seq + 1}" if seq == prev_seq + 2 else f"{prev_seq + 1}..{seq - 1}"
        return f"seq jumps from {prev_seq} to {seq}: event {missing} missing (deleted?)"
    stored = row.get("hash")
    try:
        recomputed = event_hash(row)
    except (StoreError, ValueError, TypeError) as exc:
        return f"row cannot be hashed ({exc}); it was edited"
    if not isinstance(stored, str) or not _HEX64.match(stored):
        return f"stored hash {stored!r} is not a sha256 hex digest"
    if recomputed != stored:
        return (
            f"content does not match its hash (stored {stored[:12]}..., recomputed "
            f"{recomputed[:12]}...): the row was edited, inserted or moved"
        )
    link = row.get("prev_hash")
    if seq == prev_seq + 1 and (i > 0 or seq == 1) and link != prev_hash:
        what = "the genesis hash" if seq == 1 else f"the hash of event {prev_seq}"
        return (
            f"prev_hash does not match {what}: event {prev_seq} was rewritten or this row "
            "was inserted or moved"
        )
    return ""


def verify_event_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    require_complete: bool = True,
    expected_head: str | None = None,
) -> VerifyResult:
    """Recompute the chain over ``rows`` (any order; they are sorted by ``seq``).

    Parameters
    ----------
    rows
        Event rows as mappings of column -> stored value.
    require_complete
        True for a store: seqs must run 1..n without gaps. False for an exported file, which
        may be filtered: gaps are allowed, links are checked only between consecutive seqs.
    expected_head
        A head hash anchored outside the database; verification fails if no examined event
        has that hash (events were removed from the end, or the chain was rewritten).
    """
    try:
        ordered = sorted(rows, key=lambda r: int(r["seq"]))
    except (KeyError, TypeError, ValueError) as exc:
        return VerifyResult(False, 0, None, f"rows without a valid seq column ({exc})",
                            GENESIS_HASH, 0, False)
    prev_seq = 0
    prev_hash = GENESIS_HASH
    complete = True
    seen_hashes: set[str] = set()
    for i, row in enumerate(ordered):
        seq = int(row["seq"])
        if seq != prev_seq + 1 and seq != prev_seq and not require_complete:
            complete = False
        reason = _row_problem(row, seq, i, prev_seq, prev_hash, require_complete)
        if reason:
            return VerifyResult(False, i, seq, reason, prev_hash, prev_seq, complete)
        stored = str(row["hash"])
        seen_hashes.add(stored)
        prev_seq, prev_hash = seq, stored
    if ordered and int(ordered[0]["seq"]) != 1:
        complete = False
    n = len(ordered)
    if expected_head is not None and expected_head != GENESIS_HASH and expected_head not in seen_hashes:
        return VerifyResult(
            False, n, prev_seq + 1,
            f"the anchored head {expected_head[:12]}... is not in the chain: events were "
            "removed from the end or the chain was rewritten",
            prev_hash, prev_seq, complete,
        )
    return VerifyResult(True, n, None, "", prev_hash, prev_seq, complete)
