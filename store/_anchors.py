"""Head anchors: the chain's head recorded outside the database, checked by every verify.

A hash chain alone cannot tell a shorter chain (events removed from the end) or a chain
rewritten from scratch from the original. So every successful :meth:`Store.verify` and every
:meth:`Store.export` appends the head it saw (``seq``, ``hash``) to an append-only JSON-lines
file next to the database (``<workspace>/anchors.jsonl``), and every verify checks that each
anchored ``seq`` still exists with the anchored ``hash``. Exports also carry the head in their
``export_head_*`` columns, so a copy that left the machine is an anchor too.

The anchor file guards against changes made *inside the database* (by SQL, a DuckDB shell or
a restored backup). Someone who can rewrite both the database and the anchor file can forge
both; against that, copy the head elsewhere (``workbench audit head``) and pass it to
``audit verify --expect-head``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from store._chain import GENESIS_HASH, VerifyResult
from store._errors import StoreError
from store._schema import utc_now_iso

__all__ = ["Anchor", "anchors_path", "append_anchor", "check_anchors", "read_anchors"]

_STORE_FILENAME = "store.duckdb"


@dataclass(frozen=True)
class Anchor:
    """One recorded head: its ``seq`` and ``hash``, when and by what it was recorded."""

    seq: int
    hash: str
    ts: str
    source: str
    actor: str = ""


def anchors_path(store_path: Path) -> Path:
    """``<workspace>/anchors.jsonl`` for ``store.duckdb``, else ``<stem>.anchors.jsonl``."""
    if store_path.name == _STORE_FILENAME:
        return store_path.with_name("anchors.jsonl")
    return store_path.with_name(f"{store_path.stem}.anchors.jsonl")


def _parse_line(raw: bytes, lineno: int, path: Path) -> Anchor:
    where = f"{path} line {lineno}"
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{where} is not a JSON anchor ({exc}); the anchor file was edited") from None
    if not isinstance(obj, dict):
        raise StoreError(f"{where} is not a JSON object; the anchor file was edited")
    seq, hash_ = obj.get("seq"), obj.get("hash")
    if (not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not isinstance(hash_, str)
            or len(hash_) != 64):
        raise StoreError(f"{where} lacks a valid seq and hash; the anchor file was edited")
    return Anchor(seq, hash_, str(obj.get("ts", "")), str(obj.get("source", "")),
                  str(obj.get("actor", "")))


def read_anchors(path: Path) -> list[Anchor]:
    """Every anchor in the file (an empty list when it does not exist).

    Raises
    ------
    StoreError
        A line is not a valid anchor (the file was edited by hand).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"cannot read the anchor file {path}: {exc}") from None
    return [_parse_line(raw, i, path) for i, raw in enumerate(data.split(b"\n"), start=1)
            if raw.strip()]


def append_anchor(path: Path, seq: int, hash_: str, source: str, actor: str = "",
                  extra: Mapping[str, str] | None = None) -> bool:
    """Append one anchor line (nothing for an empty chain); False when it cannot be written.

    The file is opened append-only and never through a symbolic link; a read-only workspace
    only loses the anchor (verification still runs), it does not fail.
    """
    if seq < 1 or hash_ == GENESIS_HASH:
        return False
    line = json.dumps({"seq": seq, "hash": hash_, "ts": utc_now_iso(), "source": source,
                       "actor": actor, **(extra or {})}, sort_keys=True) + "\n"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError:
        return False
    return True


def check_anchors(
    result: VerifyResult, hashes: Mapping[int, str], anchors: list[Anchor]
) -> VerifyResult:
    """``result`` with the anchors checked: each anchored seq must hold the anchored hash.

    Returns a failed result naming the lowest anchor that does not match (events removed from
    the end, or the chain rewritten), else ``result`` with ``anchored_seq`` set to the highest
    anchored seq (0 when nothing was anchored).
    """
    if not result.ok:
        return result
    for a in sorted(anchors, key=lambda x: x.seq):
        when = f"anchored {a.ts} by {a.source or 'unknown'}"
        if a.seq > result.head_seq:
            reason = (f"the chain ends at event #{result.head_seq} but event #{a.seq} was "
                      f"{when}: events #{result.head_seq + 1}..#{a.seq} were removed")
        elif hashes.get(a.seq) != a.hash:
            reason = (f"event #{a.seq} no longer has the hash {a.hash[:12]}... it had when it "
                      f"was {when}: the chain was rewritten")
        else:
            continue
        return VerifyResult(False, result.n_events, a.seq, reason, result.head_hash,
                            result.head_seq, result.complete)
    top = max((a.seq for a in anchors), default=0)
    return VerifyResult(True, result.n_events, None, "", result.head_hash, result.head_seq,
                        result.complete, anchored_seq=top)
