"""Issue #13 items 2, 6, 7, 8, 9: each attack reproduced, and each now fails to harm."""

from __future__ import annotations

import csv
import json
import os
import pwd
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from store import Actor, PermissionDenied, Role, Store, ValidationError, read_export, verify_file
from store._schema import EVENT_COLUMNS
from workbench.auth._identity import cli_actor, granted_roles
from workbench.cli._audit import audit_app
from workbench.ui._history import anchor_note

DERM = Actor.from_oidc("sub-derm", "dermatologist", "Dr Derm")
ENG = Actor.from_oidc("sub-eng", "engineer", "Eng")
AUD = Actor.from_oidc("sub-aud", "auditor", "Aud")
INJECTIONS = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3",
              "@SUM(A1)", "\tTAB", "\rCR", "'quoted already", "plain"]

app = typer.Typer()
app.add_typer(audit_app, name="audit")
runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["audit", *args], env={"COLUMNS": "200"})
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    s = Store.for_workspace(workspace)
    with s.session():
        iv = s.record_intervention(DERM, {"op": "mask", "concept": "ink"}, intervention_id="iv-1",
                                   concept="ink", rationale=INJECTIONS[0])
        for text in INJECTIONS:
            s.append_event(ENG, "applied", intervention_id=iv.intervention_id, rationale=text)
    (workspace / "workspace.json").write_text("{}", encoding="utf-8")
    return workspace


def _store_intact(ws: Path, n: int) -> None:
    s = Store.for_workspace(ws, create=False)
    assert s.verify().ok and s.head()[0] >= n


# ------------------------------------------------------------------ 13.2 store never overwritten
@pytest.mark.parametrize("target", ["store.duckdb", "anchors.jsonl", "workspace.json", "roles.toml"])
def test_export_and_report_refuse_workspace_files(ws: Path, target: str) -> None:
    n = Store.for_workspace(ws).head()[0]
    before = (ws / "store.duckdb").read_bytes() if target == "store.duckdb" else None
    for args in (("export", "-w", str(ws), "--out", str(ws / target), "--format", "csv"),
                 ("report", "-w", str(ws), "-i", "iv-1", "--out", str(ws / target)),
                 ("export", "-w", str(ws), "--out", str(ws / target), "--format", "csv",
                  "--overwrite")):
        code, out, err = _run(*args)
        assert code == 1 and out == "" and err.startswith("error: ") and err.count("\n") == 1
        assert "refusing" in err or "exists" in err
    if before is not None:
        assert (ws / "store.duckdb").read_bytes() == before
    _store_intact(ws, n)


def test_a_symlink_or_hardlink_to_the_store_is_refused(ws: Path, tmp_path: Path) -> None:
    link = tmp_path / "innocent.csv"
    link.symlink_to(ws / "store.duckdb")
    code, _, err = _run("export", "-w", str(ws), "--out", str(link), "--overwrite")
    assert code == 1 and "symbolic link" in err
    hard = tmp_path / "hard.html"
    os.link(ws / "store.duckdb", hard)
    code, _, err = _run("report", "-w", str(ws), "-i", "iv-1", "--out", str(hard), "--overwrite")
    assert code == 1 and ("audit store" in err or "hard links" in err)
    _store_intact(ws, 10)


def test_directories_and_existing_files_need_overwrite(ws: Path, tmp_path: Path) -> None:
    code, _, err = _run("export", "-w", str(ws), "--out", str(ws), "--format", "csv")
    assert code == 1 and "directory" in err
    out = tmp_path / "h.csv"
    assert _run("export", "-w", str(ws), "--out", str(out))[0] == 0
    code, _, err = _run("export", "-w", str(ws), "--out", str(out))
    assert code == 1 and "--overwrite" in err
    assert _run("export", "-w", str(ws), "--out", str(out), "--overwrite")[0] == 0
    notes = tmp_path / "notes.txt"
    notes.write_text("mine", encoding="utf-8")
    code, _, err = _run("report", "-w", str(ws), "-i", "iv-1", "--out", str(notes), "--overwrite")
    assert code == 1 and notes.read_text(encoding="utf-8") == "mine"
    data = ws / "data.parquet"  # an existing file inside a workspace is never replaced
    data.write_bytes(b"PAR1")
    code, _, err = _run("export", "-w", str(ws), "--out", str(data), "--overwrite")
    assert code == 1 and "inside the workspace" in err and data.read_bytes() == b"PAR1"
    _store_intact(ws, 10)


# ------------------------------------------------------------------ 13.6 complete export gaps
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("drop", ["first", "middle", "last"])
def test_complete_export_with_a_deleted_row_fails(ws: Path, tmp_path: Path, fmt: str,
                                                  drop: str) -> None:
    out = tmp_path / f"all.{fmt}"
    Store.for_workspace(ws).export(out, actor=AUD)
    rows = read_export(out)
    assert verify_file(out).ok and verify_file(out).complete
    idx = {"first": 0, "middle": len(rows) // 2, "last": len(rows) - 1}[drop]
    kept = rows[:idx] + rows[idx + 1:]
    for r in kept:  # a careful attacker also fixes the row count
        r["export_n_rows"] = len(kept)
    tampered = tmp_path / f"tampered.{fmt}"
    _write_rows(tampered, kept, fmt)
    res = verify_file(tampered)
    assert not res.ok, res
    code, _, err = _run("verify", "--file", str(tampered))
    assert code == 1 and err.startswith("error: FAILED")


def test_partial_export_row_count_and_flag(ws: Path, tmp_path: Path) -> None:
    out = tmp_path / "eng.jsonl"
    Store.for_workspace(ws).export(out, actor=AUD, filters=None)
    rows = read_export(out)
    kept = rows[1:]
    for r in kept:  # pretend the export was filtered, without naming a filter
        r["export_complete"] = False
        r["export_n_rows"] = len(kept)
    _write_rows(out, kept, "jsonl")
    assert "marked partial" in verify_file(out).reason


def _write_rows(path: Path, rows: list[dict[str, object]], fmt: str) -> None:
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return
    con = duckdb.connect()
    cols = list(rows[0])
    con.execute(f"CREATE TABLE t ({', '.join(c + ' VARCHAR' for c in cols)})")
    con.executemany(f"INSERT INTO t VALUES ({', '.join('?' for _ in cols)})",
                    [[None if r[c] is None else str(r[c]) for c in cols] for r in rows])
    if fmt == "csv":  # re-neutralise as the exporter does
        for c in cols:
            con.execute(f"UPDATE t SET {c} = '''' || {c} WHERE regexp_matches({c}, "
                        "'^[=+@''\t\r-]')")
        con.execute("COPY t TO ? (FORMAT csv, HEADER true)", [str(path)])
    else:
        con.execute("COPY t TO ? (FORMAT parquet)", [str(path)])
    con.close()


# ------------------------------------------------------------------ 13.7 automatic anchors
def _sql(path: Path, sql: str) -> None:
    con = duckdb.connect(str(path))
    con.execute(sql)
    con.close()


def test_tail_truncation_is_caught_by_the_automatic_anchor(ws: Path) -> None:
    s = Store.for_workspace(ws)
    first = s.verify()
    assert first.ok and first.anchored_seq == 0 and not anchor_note(first)[0]
    again = s.verify()
    assert again.anchored_seq == again.head_seq and anchor_note(again)[0]
    _sql(s.path, f"DELETE FROM events WHERE seq = {first.head_seq}")
    res = s.verify()
    assert not res.ok and "were removed" in res.reason
    code, _, err = _run("verify", "-w", str(ws))
    assert code == 1 and "were removed" in err


def test_whole_chain_rewrite_is_caught(ws: Path, tmp_path: Path) -> None:
    s = Store.for_workspace(ws)
    s.export(tmp_path / "x.csv", actor=AUD)  # an export anchors the head too
    assert [a.source for a in s.anchors()] == ["export"]
    # rewrite: a fresh, valid chain with a different rationale, put in place of the original
    forged = Store(tmp_path / "forged" / "store.duckdb")
    iv = forged.record_intervention(DERM, {"op": "mask", "concept": "ink"}, intervention_id="iv-1",
                                    concept="ink", rationale="nothing to see")
    for _ in INJECTIONS:
        forged.append_event(ENG, "applied", intervention_id=iv.intervention_id, rationale="fine")
    assert forged.verify(anchor=False).ok
    os.replace(forged.path, s.path)
    res = Store.for_workspace(ws).verify()
    assert not res.ok and "rewritten" in res.reason


def test_edited_anchor_file_fails_loudly(ws: Path) -> None:
    s = Store.for_workspace(ws)
    s.verify()
    with open(s.anchors_path, "a", encoding="utf-8") as fh:
        fh.write("not json\n")
    res = s.verify()
    assert not res.ok and "anchor file was edited" in res.reason


def test_export_records_its_head_and_completeness(ws: Path, tmp_path: Path) -> None:
    s = Store.for_workspace(ws)
    head_seq, head_hash = s.head()
    res = s.export(tmp_path / "x.parquet", actor=AUD)
    row = read_export(res.path)[0]
    assert (row["export_head_seq"], row["export_head_hash"], row["export_complete"]) == (
        head_seq, head_hash, True)
    ev = res.event.evidence or {}
    assert ev["complete"] is True and ev["head_hash"] == head_hash


# ------------------------------------------------------------------ 13.8 CSV formula injection
def test_csv_cells_are_neutralised_but_verify(ws: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    Store.for_workspace(ws).export(out, actor=AUD)
    with open(out, newline="", encoding="utf-8") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    risky = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert risky == []
    assert "'=cmd|' /C calc'!A0" in cells and "''quoted already" in cells
    assert verify_file(out).ok
    originals = [r["rationale"] for r in read_export(out)]
    assert set(INJECTIONS) <= set(originals)
    jl = tmp_path / "x.jsonl"  # JSON lines keep the original text
    Store.for_workspace(ws).export(jl, actor=AUD)
    assert INJECTIONS[0] in [r["rationale"] for r in read_export(jl)]
    assert all(c in EVENT_COLUMNS or c.startswith("export_") for c in read_export(out)[0])


# ------------------------------------------------------------------ 13.9 roles from identity
def _as_user(monkeypatch: pytest.MonkeyPatch, name: str, uid: int) -> None:
    monkeypatch.setattr(pwd, "getpwuid", lambda _uid: SimpleNamespace(pw_name=name))
    monkeypatch.setattr(os, "geteuid", lambda: uid)


def test_the_workspace_owner_is_the_operator(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _as_user(monkeypatch, "olga", ws.stat().st_uid)
    assert granted_roles(ws).roles == tuple(Role)
    assert cli_actor(ws, None, default=Role.AUDITOR).role is Role.AUDITOR
    assert cli_actor(ws, "dermatologist").id == "olga"


def test_role_flag_alone_grants_nothing(ws: Path, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    _as_user(monkeypatch, "mallory", ws.stat().st_uid + 1)
    with pytest.raises(PermissionDenied, match="does not own"):
        cli_actor(ws, "dermatologist")
    code, _, err = _run("export", "-w", str(ws), "--out", str(tmp_path / "x.csv"),
                        "--role", "dermatologist")
    assert code == 1 and "does not own" in err and not (tmp_path / "x.csv").exists()
    (ws / "roles.toml").write_text('[os_users]\nmallory = "auditor"\n', encoding="utf-8")
    os.chmod(ws / "roles.toml", 0o644)
    with pytest.raises(PermissionDenied, match="not granted"):
        cli_actor(ws, "dermatologist")
    assert cli_actor(ws, None, default=Role.DERMATOLOGIST).role is Role.AUDITOR
    assert _run("export", "-w", str(ws), "--out", str(tmp_path / "x.csv"))[0] == 0
    exported = Store.for_workspace(ws).events()[-1]
    assert (exported.actor_id, exported.actor_role) == ("mallory", "auditor")


def test_roles_file_rules(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _as_user(monkeypatch, "olga", ws.stat().st_uid)
    roles = ws / "roles.toml"
    roles.write_text('[os_users]\nbob = ["engineer", "auditor"]\n', encoding="utf-8")
    os.chmod(roles, 0o644)
    with pytest.raises(PermissionDenied, match="no role"):  # the file, once present, decides
        cli_actor(ws, None)
    _as_user(monkeypatch, "bob", 4242)
    assert cli_actor(ws, None, default=(Role.DERMATOLOGIST, Role.ENGINEER)).role is Role.ENGINEER
    with pytest.raises(ValidationError, match="several roles"):
        cli_actor(ws, None, default=Role.DERMATOLOGIST)
    os.chmod(roles, 0o666)
    with pytest.raises(PermissionDenied, match="writable by every user"):
        cli_actor(ws, "engineer")
    os.chmod(roles, 0o644)
    roles.write_text('[os_users]\nbob = "root"\n', encoding="utf-8")
    with pytest.raises(ValidationError, match="unknown role"):
        cli_actor(ws, None)


# ------------------------------------------------------------------ hostile export files
@pytest.mark.parametrize("name,content", [
    ("x.csv", b"\x00\xff\xfe garbage"),
    ("x.parquet", b"PAR1 not really"),
    ("x.jsonl", b"[1, 2, 3]\n"),
    ("x.jsonl", b'{"seq": "NaN"}\n'),
    ("x.csv", b"seq,hash\n1,abc\n"),
    ("x.jsonl", b'{"seq": 99999999999999999999999, "hash": 5}\n'),
    ("x.txt", b"hello"),
])
def test_hostile_export_files_give_one_line_errors(ws: Path, tmp_path: Path, name: str,
                                                   content: bytes) -> None:
    f = tmp_path / name
    f.write_bytes(content)
    code, out, err = _run("verify", "--file", str(f))
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, (out, err)
    assert "Traceback" not in err
    _store_intact(ws, 10)


def test_the_ui_reads_a_roles_file_with_an_os_users_table() -> None:
    from workbench.auth._rolemap import RoleMap

    rm = RoleMap.from_dict({"os_users": {"alice": "auditor"}})  # accepted, and it grants
    assert rm.role_for({"sub": "alice", "iss": "https://idp.example"}) is None  # no UI role


def test_serve_checks_the_local_role(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.auth._identity import check_local_role

    _as_user(monkeypatch, "mallory", ws.stat().st_uid + 1)
    with pytest.raises(PermissionDenied):
        check_local_role(ws, "127.0.0.1", "dermatologist")
    check_local_role(ws, "0.0.0.0", "dermatologist")  # sign-in mode: roles come from the provider
