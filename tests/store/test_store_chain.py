"""Hash chain: canonical JSON, event hashes, and tamper detection through raw DuckDB edits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from store import Actor, ChainError, Store, StoreError, ValidationError, canonical_json
from store._chain import GENESIS_HASH, event_hash
from store._schema import EVENT_COLUMNS

DERM = Actor.from_oidc("sub-derm", "dermatologist", "Dr Derm")
ENG = Actor.from_oidc("sub-eng", "engineer", "Eng")


# ---------------------------------------------------------------- canonical JSON
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (100.0, "100"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (4.5, "4.5"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (123456789012345680000.0, "123456789012345680000"),
        (333333333.33333329, "333333333.3333333"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-1.5e-10, "-1.5e-10"),
        (2**60, "1152921504606846976"),
        (True, "true"),
        (None, "null"),
    ],
)
def test_canonical_numbers_follow_ecmascript(value: Any, text: str) -> None:
    assert canonical_json(value) == text.encode()


def test_canonical_objects_sort_keys_by_utf16_and_drop_whitespace() -> None:
    # the key-order example of RFC 8785 §3.2.3
    obj = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}
    keys = list(json.loads(canonical_json(obj)).keys())
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert canonical_json({"b": [1, {"d": None, "c": "x"}], "a": "é\n\"\\\x01"}) == (
        '{"a":"é\\n\\"\\\\\\u0001","b":[1,{"c":"x","d":null}]}'.encode()
    )


def test_canonical_refuses_nonfinite_and_lone_surrogates() -> None:
    with pytest.raises(ValidationError, match="replace non-finite"):
        canonical_json({"x": float("nan")})
    with pytest.raises(ValidationError, match="surrogate"):
        canonical_json({"x": "\ud800"})


def test_event_hash_known_answer() -> None:
    row: dict[str, Any] = {c: None for c in EVENT_COLUMNS}
    row.update(
        seq=1, event_id="e", ts="2026-01-01T00:00:00.000000Z", actor_id="a", actor_role="auditor",
        actor_name="A", actor_source="os", action="exported", evidence='{"b":1.0,"a":"é"}',
        project_version="0.1.0", prev_hash=GENESIS_HASH, hash="ignored",
    )
    expected = (
        '{"action":"exported","actor_id":"a","actor_name":"A","actor_role":"auditor",'
        '"actor_source":"os","concept":null,"dataset_hash":null,"event_id":"e",'
        '"evidence":{"a":"é","b":1},"intervention_id":null,"metric_deltas":null,'
        '"model_id":null,"prev_hash":"' + GENESIS_HASH + '","project_version":"0.1.0",'
        '"rationale":null,"records":null,"seq":1,"spec":null,'
        '"ts":"2026-01-01T00:00:00.000000Z","weights_sha_after":null,"weights_sha_before":null}'
    )
    assert event_hash(row) == hashlib.sha256(expected.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- tampering
@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store.duckdb")
    with s.session():
        _populate(s)
    assert s.verify().ok
    return s


def _populate(s: Store) -> None:
    s.register_model(ENG, "m1", "efficientnet_lite0", "a" * 64)                  # 1
    iv = s.record_intervention(DERM, {"op": "suppress", "concept": "ruler"})   # 2
    s.append_event(ENG, "applied", intervention_id=iv.intervention_id,           # 3
                   rationale="ruler shortcut", evidence={"tcav": 0.91, "p_adj": 0.002})
    s.record_tcav_results(DERM, pd.DataFrame({                                   # 4
        "concept": ["ruler", "ink"], "layer": ["b6", "b6"], "tcav_score": [0.9, 0.4]}))
    s.append_event(DERM, "concept_named", concept="blue_whitish_veil")           # 5
    s.append_event(DERM, "reverted", intervention_id=iv.intervention_id,         # 6
                   rationale="hurts sensitivity")


def _sql(path: Path, sql: str, params: list[Any] | None = None) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(sql, params or [])
    finally:
        con.close()


def _rewrite(path: Path, fn: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    """Replace the events table by fn(rows): how a tamperer reorders or renumbers rows."""
    con = duckdb.connect(str(path))
    try:
        cols = ", ".join(EVENT_COLUMNS)
        rows = [dict(zip(EVENT_COLUMNS, r, strict=True))
                for r in con.execute(f"SELECT {cols} FROM events ORDER BY seq").fetchall()]
        new = fn(rows)
        con.execute("CREATE TABLE events_new AS SELECT * FROM events LIMIT 0")
        con.executemany(
            f"INSERT INTO events_new ({cols}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
            [[r[c] for c in EVENT_COLUMNS] for r in new],
        )
        con.execute("DROP TABLE events")
        con.execute("ALTER TABLE events_new RENAME TO events")
    finally:
        con.close()


def _rehash(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "hash": event_hash(row)}


def test_edited_row_is_named(store: Store) -> None:
    _sql(store.path, "UPDATE events SET rationale = 'no reason' WHERE seq = 3")
    res = store.verify()
    assert not res.ok and res.first_bad_seq == 3 and "edited" in res.reason
    with pytest.raises(ChainError, match="seq 3"):
        res.raise_if_bad()


def test_edited_json_field_is_named(store: Store) -> None:
    _sql(store.path, """UPDATE events SET evidence = '{"p_adj":0.2,"tcav":0.91}' WHERE seq = 3""")
    assert store.verify().first_bad_seq == 3


def test_edited_row_with_recomputed_hash_breaks_the_next_link(store: Store) -> None:
    def edit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows[2] = _rehash({**rows[2], "actor_id": "someone-else"})
        return rows

    _rewrite(store.path, edit)
    res = store.verify()
    assert res.first_bad_seq == 4 and "prev_hash" in res.reason and "event 3" in res.reason


def test_deleted_row_is_named(store: Store) -> None:
    _sql(store.path, "DELETE FROM events WHERE seq = 3")
    res = store.verify()
    assert res.first_bad_seq == 4 and "event 3 missing" in res.reason


def test_deleted_row_with_renumbering_is_named(store: Store) -> None:
    _rewrite(store.path, lambda rows: [
        {**r, "seq": i} for i, r in enumerate([r for r in rows if r["seq"] != 3], start=1)])
    assert store.verify().first_bad_seq == 3


def test_deleted_first_row_is_named(store: Store) -> None:
    _sql(store.path, "DELETE FROM events WHERE seq = 1")
    assert store.verify().first_bad_seq == 2


def test_truncated_tail_is_caught_by_the_automatic_anchor(store: Store) -> None:
    anchored = store.head_hash()  # the fixture's verify anchored head #6
    _sql(store.path, "DELETE FROM events WHERE seq = 6")
    res = store.verify()
    assert not res.ok and res.first_bad_seq == 6 and "were removed" in res.reason
    store.anchors_path.unlink()  # without the anchor file a shorter chain is still a chain...
    assert store.verify(anchor=False).ok
    res = store.verify(expected_head=anchored)  # ...but not the one that was anchored by hand
    assert not res.ok and res.first_bad_seq == 6 and "anchored head" in res.reason


def test_anchored_head_older_than_the_chain_is_fine(store: Store) -> None:
    anchored = store.head_hash()
    store.append_event(DERM, "concept_named", concept="streaks")
    assert store.verify(expected_head=anchored).ok


def test_inserted_row_at_the_end_is_named(store: Store) -> None:
    def insert(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        fake = {**rows[-1], "seq": 7, "event_id": "forged", "prev_hash": rows[-1]["hash"],
                "hash": "f" * 64}
        return [*rows, fake]

    _rewrite(store.path, insert)
    assert store.verify().first_bad_seq == 7


def test_inserted_row_in_the_middle_is_named(store: Store) -> None:
    def insert(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        fake = {**rows[1], "seq": 3, "event_id": "forged", "rationale": "forged",
                "prev_hash": rows[1]["hash"], "hash": "e" * 64}
        shifted = [{**r, "seq": r["seq"] + 1} for r in rows[2:]]
        return [*rows[:2], fake, *shifted]

    _rewrite(store.path, insert)
    res = store.verify()
    assert res.first_bad_seq == 3


def test_forged_but_self_consistent_insert_breaks_at_the_next_row(store: Store) -> None:
    def insert(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        fake = _rehash({**rows[1], "seq": 3, "event_id": "forged", "prev_hash": rows[1]["hash"]})
        shifted = [{**r, "seq": r["seq"] + 1} for r in rows[2:]]
        return [*rows[:2], fake, *shifted]

    _rewrite(store.path, insert)
    assert store.verify().first_bad_seq == 4


def test_duplicated_seq_is_named(store: Store) -> None:
    _rewrite(store.path, lambda rows: [*rows[:3], {**rows[2], "event_id": "dup"}, *rows[3:]])
    res = store.verify()
    assert res.first_bad_seq == 3 and "twice" in res.reason


def test_reordered_rows_are_named(store: Store) -> None:
    def swap(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows[1]["seq"], rows[3]["seq"] = 4, 2
        return rows

    _rewrite(store.path, swap)
    res = store.verify()
    assert res.first_bad_seq == 2


def test_physical_row_order_does_not_matter(store: Store) -> None:
    _rewrite(store.path, lambda rows: list(reversed(rows)))
    assert store.verify().ok


def test_edited_reference_row_is_named(store: Store) -> None:
    _sql(store.path, "UPDATE models SET weights_sha256 = ? WHERE model_id = 'm1'", ["b" * 64])
    res = store.verify()
    assert res.first_bad_seq == 1 and "models" in res.reason


def test_deleted_reference_row_is_named(store: Store) -> None:
    _sql(store.path, "DELETE FROM tcav_results WHERE concept = 'ink'")
    res = store.verify()
    assert res.first_bad_seq == 4 and "tcav_results" in res.reason


def test_inserted_reference_row_is_named(store: Store) -> None:
    _sql(store.path, "INSERT INTO models VALUES ('m2', 'x', ?, NULL, 5, 0)", ["c" * 64])
    res = store.verify()
    assert res.first_bad_seq == 5 and "inserted" in res.reason


def test_deleted_intervention_spec_is_named(store: Store) -> None:
    _sql(store.path, "DELETE FROM interventions")
    res = store.verify()
    assert res.first_bad_seq == 2 and "missing" in res.reason


def test_events_are_hashable_and_round_trip(store: Store) -> None:
    events = store.events()
    assert len(set(events)) == len(events) == 6
    assert events[2].evidence == {"tcav": 0.91, "p_adj": 0.002}
    assert events[2].timestamp.tzinfo is not None
    assert event_hash(events[2].to_dict()) == events[2].hash


def test_appends_continue_the_chain_after_reopen(store: Store) -> None:
    head = store.head()
    again = Store(store.path)
    ev = again.append_event(DERM, "concept_named", concept="dots")
    assert (ev.seq, ev.prev_hash) == (head[0] + 1, head[1])
    assert again.verify().ok and again.verify().head_hash == ev.hash


def test_dropped_table_is_a_clear_error(store: Store) -> None:
    _sql(store.path, "DROP TABLE tcav_results")
    with pytest.raises(StoreError, match="tables altered"):
        store.verify()


def test_nan_written_behind_the_store_is_reported_not_raised(store: Store) -> None:
    _sql(store.path, "UPDATE tcav_results SET tcav_score = 'nan'::DOUBLE WHERE concept = 'ink'")
    res = store.verify()
    assert not res.ok and res.first_bad_seq == 4
