"""``workbench audit ...`` through typer's CliRunner on a small app built here."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from store import Actor, Store, verify_file
from workbench.cli._audit import audit_app

ROOT = Path(__file__).resolve().parents[3]
DERM = Actor.from_oidc("sub-derm", "dermatologist", "Dr [bold red]Markup[/]")
ENG = Actor.from_oidc("sub-eng", "engineer", "Eng")

app = typer.Typer()
app.add_typer(audit_app, name="audit")
runner = CliRunner()


@pytest.fixture()
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: SimpleNamespace(pw_name="audrey"))
    workspace = tmp_path / "ws"
    store = Store.for_workspace(workspace)
    with store.session():
        iv = store.record_intervention(DERM, {"op": "suppress", "concept": "ruler"},
                                       intervention_id="iv-1", concept="ruler", model_id="m1")
        store.append_event(ENG, "applied", intervention_id=iv.intervention_id, model_id="m1",
                           rationale="shortcut\x1b[31m on rulers [bold]x[/bold]")
        store.append_event(DERM, "concept_named", concept="streaks")
    return workspace


def _run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["audit", *args], env={"COLUMNS": "240"})
    return res.exit_code, res.stdout, res.stderr


def test_verify_ok(ws: Path) -> None:
    code, out, _ = _run("verify", "--workspace", str(ws))
    assert code == 0 and out.startswith("OK: 3 events")


def test_verify_names_the_first_bad_row(ws: Path) -> None:
    con = duckdb.connect(str(ws / "store.duckdb"))
    con.execute("UPDATE events SET rationale = 'edited' WHERE seq = 2")
    con.close()
    code, out, err = _run("verify", "--workspace", str(ws))
    assert code == 1 and out == ""
    assert err.startswith("error: FAILED at seq 2:") and err.count("\n") == 1


def test_head_and_expect_head(ws: Path) -> None:
    code, out, _ = _run("head", "--workspace", str(ws))
    head = out.strip()
    assert code == 0 and head == Store.for_workspace(ws).head_hash()
    code, out, _ = _run("head", "-w", str(ws), "--json")
    assert json.loads(out) == {"seq": 3, "hash": head}
    assert _run("verify", "-w", str(ws), "--expect-head", head)[0] == 0
    assert _run("verify", "-w", str(ws), "--expect-head", "0" * 63 + "1")[0] == 1


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_export_then_verify_file(ws: Path, tmp_path: Path, fmt: str) -> None:
    out_file = tmp_path / f"audit.{fmt}"
    code, out, err = _run("export", "--workspace", str(ws), "--format", fmt, "--out", str(out_file))
    assert code == 0, err
    assert "exported 3 events" in out and "recorded as event 4" in out
    assert verify_file(out_file).ok
    code, out, _ = _run("verify", "--file", str(out_file))
    assert code == 0 and out.startswith("OK: 3 events")
    exported = Store.for_workspace(ws).events()[-1]
    assert (exported.action, exported.actor_id, exported.actor_role, exported.actor_source) == (
        "exported", "audrey", "auditor", "os")


def test_export_filters(ws: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "eng.jsonl"
    code, out, _ = _run("export", "-w", str(ws), "--out", str(out_file), "--actor", "sub-eng",
                        "--model", "m1", "--since", "2000-01-01", "--until", "2999-01-01")
    assert code == 0 and "exported 1 events" in out
    code, out, _ = _run("verify", "--file", str(out_file))
    assert code == 0 and "partial export" in out


def test_export_with_unknown_role_is_one_line(ws: Path, tmp_path: Path) -> None:
    code, _, err = _run("export", "-w", str(ws), "--out", str(tmp_path / "x.csv"),
                        "--role", "superuser")
    assert code == 1 and "unknown role 'superuser'" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()


def test_missing_store_is_one_line(tmp_path: Path) -> None:
    for args in (("verify", "-w", str(tmp_path / "nope")), ("head", "-w", str(tmp_path / "nope")),
                 ("log", "-w", str(tmp_path / "nope"))):
        code, _, err = _run(*args)
        assert code == 1 and "no store at" in err and err.count("\n") == 1
    assert not (tmp_path / "nope").exists()


def test_verify_sources(ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run("verify", "-w", str(ws), "--file", str(tmp_path / "x.csv"))
    assert code == 1 and "not both" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    code, _, err = _run("verify")  # default: ./workspace
    assert code == 1 and "no store at" in err and "workspace" in err
    Store.for_workspace("workspace")
    assert _run("verify")[1].startswith("OK: 0 events")
    code, _, err = _run("verify", "--file", str(tmp_path / "missing.csv"))
    assert code == 1 and "no such export file" in err


def test_report(ws: Path, tmp_path: Path) -> None:
    page = tmp_path / "iv-1.html"
    code, out, _ = _run("report", "-w", str(ws), "--intervention", "iv-1", "--out", str(page))
    assert code == 0 and str(page) in out
    text = page.read_text(encoding="utf-8")
    assert "Dr [bold red]Markup[/]" in text and "shortcut" in text
    code, _, err = _run("report", "-w", str(ws), "-i", "nope", "-o", str(tmp_path / "n.html"))
    assert code == 1 and "no intervention 'nope'" in err


def test_log_table_is_terminal_safe(ws: Path) -> None:
    code, out, _ = _run("log", "-w", str(ws))
    assert code == 0
    assert "3 events" in out and "applied" in out and "concept_named" in out
    assert "\x1b[31m" not in out and "\\x1b" in out  # escape sequences shown, not executed
    assert "[bold]x[/bold]" in out  # rich markup shown literally
    assert "Dr [bold red]Markup[/]" in out
    code, out, _ = _run("log", "-w", str(ws), "--action", "applied", "--last", "5")
    assert code == 0 and "1 events" in out
    code, out, _ = _run("log", "-w", str(ws), "--json", "--last", "2")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in rows] == [2, 3] and rows[0]["rationale"].startswith("shortcut\x1b")


def test_busy_store_is_one_line(ws: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time, duckdb
            con = duckdb.connect(sys.argv[1]); print("locked", flush=True); time.sleep(30)
        """), str(ws / "store.duckdb")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        code, _, err = _run("verify", "-w", str(ws), "--busy-timeout", "0.3")
        assert code == 1 and "is busy" in err and err.count("\n") == 1
    finally:
        holder.kill()
        holder.wait(timeout=30)
