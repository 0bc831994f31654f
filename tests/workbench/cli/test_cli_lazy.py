"""The ``workbench`` app loads a command's module only when the command is used, and converts
plain option values without pydantic (issue 14: ``audit verify`` starts in well under a second).

Every listed command is checked to load under its name; ``audit verify`` in a fresh interpreter is
checked to import its own module only (no other command's module, no pydantic, no pandas); the
plain conversion is checked against typer's own on the same options and values.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from store import Actor, Store
from workbench.cli import app
from workbench.cli._app import COMMANDS
from workbench.cli._coercion import plain_coercion

ROOT = Path(__file__).resolve().parents[3]


def test_every_command_loads_under_its_name_and_help_lists_them_in_order() -> None:
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    for name, entry in COMMANDS.items():
        command = group.get_command(ctx, name)  # type: ignore[attr-defined]
        assert command is not None and command.name == name and command.hidden == entry.hidden, name
    res = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    panel = res.output.split("Commands", 1)[1]
    listed = [m.group(1) for m in re.finditer(r"^│ ([a-z][a-z-]*) ", panel, re.MULTILINE)]
    assert listed == [n for n, e in COMMANDS.items() if not e.hidden]
    assert CliRunner().invoke(app, ["no-such-command"]).exit_code == 2


def test_audit_verify_imports_only_the_audit_command(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert CliRunner().invoke(app, ["workspace", "init", "-w", str(ws)]).exit_code == 0
    store = Store.for_workspace(ws)
    with store.session():
        store.append_event(Actor.from_oidc("sub-derm", "dermatologist", "Dr Derm"), "concept_named", concept="x")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    driver = ("import sys\nfrom workbench.cli import app\ntry:\n    app(sys.argv[1:], prog_name='workbench')\n"
              "except SystemExit as exc:\n    code = exc.code\nprint('MODULES', ' '.join(sorted(sys.modules)))\n"
              "sys.exit(code)\n")
    proc = subprocess.run([sys.executable, "-c", driver, "audit", "verify", "-w", str(ws)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0 and "OK: 1 events" in proc.stdout, proc.stderr[-2000:]
    modules = set(proc.stdout.rsplit("MODULES ", 1)[1].split())
    commands = {m for m in modules if m.startswith("workbench.cli._")}
    assert commands == {"workbench.cli._app", "workbench.cli._coercion", "workbench.cli._audit",
                        "workbench.cli._console"}, sorted(commands)
    tops = {m.split(".")[0] for m in modules}
    assert "duckdb" in tops and not tops & {"pydantic", "pandas", "numpy", "torch", "sklearn", "streamlit"}


def _probe() -> tuple[typer.Typer, dict[str, object]]:
    """A command with one option of each plain type; it keeps what it was given."""
    seen: dict[str, object] = {}
    probe = typer.Typer()

    @probe.command()
    def run(
        text: Annotated[str, typer.Option()] = "a",
        count: Annotated[int, typer.Option()] = 1,
        ratio: Annotated[float, typer.Option()] = 0.5,
        where: Annotated[Path, typer.Option()] = Path("x"),
        maybe: Annotated[Path | None, typer.Option()] = None,
        note: Annotated[str | None, typer.Option()] = None,
        flag: Annotated[bool, typer.Option("--flag/--no-flag")] = False,
    ) -> None:
        seen.update(text=text, count=count, ratio=ratio, where=where, maybe=maybe, note=note, flag=flag)

    @probe.command()
    def other() -> None:  # two commands: a group
        """Unused."""

    return probe, seen


@pytest.mark.parametrize(("args", "valid"), [
    ([], True),
    (["--text", "b c", "--count", "7", "--ratio", "2", "--where", "/tmp/y", "--maybe", "z", "--note", "", "--flag"],
     True),
    (["--count", "-3", "--ratio", "1e-3", "--no-flag"], True),
    (["--count", "2.5"], False),
    (["--ratio", "abc"], False),
    (["--count", ""], False),
])
def test_plain_conversion_gives_what_typer_gives(args: list[str], valid: bool) -> None:
    results = []
    for plain in (False, True):
        probe, seen = _probe()
        group = typer.main.get_group(probe)
        if plain:
            plain_coercion(group, typer.Context(group))
            assert all(getattr(p, "_runtime_param", None) is not None
                       for p in group.commands["run"].params), "every option of the probe is plain"
        try:
            group.main(["run", *args], prog_name="probe", standalone_mode=False)
            outcome = "ok"
        except typer.BadParameter as exc:  # a bad value: both name the same option
            outcome = f"bad {exc.param_hint or exc.param.name if exc.param else ''}"
        results.append((outcome, dict(seen)))
    assert results[0] == results[1]
    assert (results[1][0] == "ok") == valid, results
