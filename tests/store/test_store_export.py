"""Export for auditors: csv/parquet/jsonl round trips, filters, verify_file, HTML report."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from store import (
    Actor,
    EventFilter,
    NotFoundError,
    Store,
    ValidationError,
    read_export,
    verify_file,
)
from store._export import file_sha256
from store._schema import EVENT_COLUMNS

DERM = Actor.from_oidc("sub-derm", "dermatologist", 'Dr "Derm" <b>O\'Neil</b>')
ENG = Actor.from_oidc("sub-eng", "engineer", "Eng")
AUD = Actor.from_oidc("sub-aud", "auditor", "Aud")

TRICKY = [
    "",
    "plain",
    'quotes " and \' and ""',
    "comma, separated, values",
    "new\nline\r\nand\ttab",
    "nul\x00byte and \x01 control",
    "unicode é ü 東京 😀 \u2028 \u200b",
    "\\N",
    "NULL",
    "<script>alert('x')</script>",
    "'); DROP TABLE events; --",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    s = Store(tmp_path_factory.mktemp("export") / "store.duckdb")
    with s.session():
        s.register_model(ENG, "m1", "efficientnet_lite0", "a" * 64)
        iv = s.record_intervention(
            DERM, {"op": "suppress", "concept": "ruler", "alpha": 1.0, "note": "<img src=x onerror=alert(1)>"},
            intervention_id="iv-1", rationale="<script>alert('why')</script>", concept="ruler",
            model_id="m1",
        )
        s.append_event(ENG, "applied", intervention_id=iv.intervention_id, model_id="m1",
                       rationale="ruler shortcut & co", weights_sha_before="a" * 64,
                       weights_sha_after="b" * 64, evidence={"tcav": 0.91, "p_adj": 0.002, "runs": 20})
        s.record_effect(ENG, "iv-1", {"auc": 0.80, "sens": 0.7}, {"auc": 0.83, "sens": 0.72},
                        reliance={"ruler": 0.05}, model_id="m1")
        for i, text in enumerate(TRICKY):
            s.append_event(DERM, "concept_named", concept=f"concept-{i % 3}", rationale=text or None,
                           evidence={"text": text, "i": i, "x": i / 3})
        s.record_intervention(DERM, {"op": "amplify"}, intervention_id="iv-2", rationale="")
        s.append_event(DERM, "concept_named", concept="streaks", model_id="m2")
    assert s.verify().ok
    return s


def _db_rows(store: Store) -> list[dict[str, Any]]:
    con = duckdb.connect(str(store.path))
    try:
        cols = ", ".join(EVENT_COLUMNS)
        return [dict(zip(EVENT_COLUMNS, r, strict=True))
                for r in con.execute(f"SELECT {cols} FROM events ORDER BY seq").fetchall()]
    finally:
        con.close()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_round_trip_and_verify_file(store: Store, tmp_path: Path, fmt: str) -> None:
    db_rows = _db_rows(store)
    out = tmp_path / f"events.{fmt}"
    res = store.export(out, actor=AUD)
    assert res.format == fmt and res.n_rows == len(db_rows)
    assert res.sha256 == file_sha256(out)
    ev = res.event
    assert ev.action == "exported" and ev.actor_id == "sub-aud" and ev.evidence is not None
    assert ev.evidence["file_sha256"] == res.sha256 and ev.evidence["n_rows"] == len(db_rows)
    assert ev.evidence["last_seq"] == db_rows[-1]["seq"]

    back = sorted(read_export(out), key=lambda r: int(r["seq"]))
    assert len(back) == len(db_rows)
    for got, want in zip(back, db_rows, strict=True):
        assert int(got["seq"]) == want["seq"]
        for col in EVENT_COLUMNS[1:]:
            assert got[col] == want[col], (fmt, col, got[col], want[col])

    result = verify_file(out)
    assert result.ok and result.complete, result
    assert result.head_hash == db_rows[-1]["hash"] and result.n_events == len(db_rows)
    assert verify_file(out, fmt, expected_head=db_rows[3]["hash"]).ok
    assert not verify_file(out, expected_head="f" * 64).ok


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_tampered_export_is_detected(store: Store, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"events.{fmt}"
    store.export(out, actor=AUD)
    text = out.read_text(encoding="utf-8")
    assert "ruler shortcut & co" in text
    out.write_text(text.replace("ruler shortcut & co", "ruler shortcut & Co"), encoding="utf-8")
    res = verify_file(out)
    assert not res.ok and res.first_bad_seq == 3


def test_export_with_a_deleted_row_is_detected(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    store.export(out, actor=AUD)
    lines = out.read_bytes().split(b"\n")
    out.write_bytes(b"\n".join(lines[:4] + lines[5:]))
    res = verify_file(out)
    # the export records that it is complete and how many rows it holds (issue #13.6)
    assert not res.ok and "rows were deleted" in res.reason


def test_reordered_export_is_detected(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    store.export(out, actor=AUD)
    rows = [json.loads(line) for line in out.read_bytes().split(b"\n") if line]
    rows[2]["seq"], rows[4]["seq"] = rows[4]["seq"], rows[2]["seq"]
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert verify_file(out).first_bad_seq == 3


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (EventFilter(actor="sub-eng"), lambda r: r["actor_id"] == "sub-eng"),
        (EventFilter(concept="concept-1"), lambda r: r["concept"] == "concept-1"),
        (EventFilter(model="m1"), lambda r: r["model_id"] == "m1"),
        (EventFilter(model="m1", actor="sub-derm"),
         lambda r: r["model_id"] == "m1" and r["actor_id"] == "sub-derm"),
        (EventFilter(action="concept_named", concept="concept-0"),
         lambda r: r["action"] == "concept_named" and r["concept"] == "concept-0"),
        (EventFilter(actor="x' OR '1'='1"), lambda r: False),
        (EventFilter(since="2000-01-01", until="2999-12-31"), lambda r: True),
        (EventFilter(until="2000-01-01"), lambda r: False),
        (EventFilter(since="2999-01-01T00:00:00Z"), lambda r: False),
    ],
)
def test_filtered_exports(store: Store, tmp_path: Path, flt: EventFilter, expected: Any) -> None:
    rows = [r for r in _db_rows(store) if r["action"] != "exported"]
    want = [r["seq"] for r in rows if expected(r)]
    out = tmp_path / "filtered.parquet"
    res = store.export(out, actor=AUD, filters=flt)
    back = read_export(out)
    got = [int(r["seq"]) for r in back if r["action"] != "exported"]  # earlier tests' exports
    assert got == want and res.n_rows == len(back)
    assert verify_file(out).ok
    assert res.event.evidence is not None and res.event.evidence["filters"] == flt.describe()
    assert [e.seq for e in store.events(flt) if e.action != "exported"] == want


def test_since_until_bounds(store: Store) -> None:
    events = store.events()
    middle = events[len(events) // 2]
    after = store.events(EventFilter(since=middle.ts))
    before = store.events(EventFilter(until=middle.timestamp))
    assert after[0].seq <= middle.seq <= before[-1].seq
    assert {e.seq for e in after} | {e.seq for e in before} == {e.seq for e in events}
    with pytest.raises(ValidationError, match="ISO date"):
        store.events(EventFilter(since="last tuesday"))


def test_partial_export_is_marked_incomplete(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    store.export(out, actor=AUD, filters=EventFilter(concept="concept-2"))
    res = verify_file(out)
    assert res.ok and not res.complete and "partial" in res.summary()


def test_export_errors_are_clear_and_leave_nothing(store: Store, tmp_path: Path) -> None:
    n = store.head()[0]
    with pytest.raises(ValidationError, match="does not exist"):
        store.export(tmp_path / "missing" / "x.csv", actor=AUD)
    with pytest.raises(ValidationError, match="cannot tell the format"):
        store.export(tmp_path / "x.txt", actor=AUD)
    with pytest.raises(ValidationError, match="unknown export format"):
        store.export(tmp_path / "x.csv", "xlsx", actor=AUD)
    assert store.head()[0] == n
    assert list(tmp_path.iterdir()) == []
    res = store.export(tmp_path / "x.data", "json", actor=AUD)
    assert res.format == "jsonl" and verify_file(res.path, "jsonl").ok


def test_verify_file_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        verify_file(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValidationError, match="lacks the event columns"):
        verify_file(bad)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(ValidationError, match="cannot read"):
        verify_file(junk)


# ---------------------------------------------------------------- HTML report
def test_report_has_who_when_why_evidence_effect_and_escapes(store: Store) -> None:
    page = store.report_html("iv-1")
    assert page.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # nothing from the store appears unescaped
    assert "<script>" not in page and "<img" not in page and "<b>O" not in page
    assert html.escape("<script>alert('why')</script>", quote=True) in page
    assert html.escape('Dr "Derm" <b>O\'Neil</b>', quote=True) in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    for needle in ("proposed", "applied", "effect_recorded", "ruler shortcut &amp; co",
                   "p_adj: 0.002", "sub-eng", "AUC", "+0.030", "Chain verified up to head #"):
        assert needle in page, needle
    hist = store.intervention_history("iv-1")
    for ev in hist.events:
        assert ev.ts[:19].replace("T", " ") in page and ev.hash[:12] in page


def test_report_unknown_intervention(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no intervention 'nope'"):
        store.report_html("nope")


def test_intervention_history(store: Store) -> None:
    hist = store.intervention_history("iv-1")
    assert hist.spec is not None and hist.spec["op"] == "suppress"
    assert [e.action for e in hist.events] == ["proposed", "applied", "effect_recorded"]
    assert hist.effects[0]["metrics_after"] == {"auc": 0.83, "sens": 0.72}
    assert hist.effects[0]["reliance"] == {"ruler": 0.05}
