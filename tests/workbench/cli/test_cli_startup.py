"""The CLI starts without the heavy stack: no torch, sklearn, captum or streamlit unless a
command needs a model (issue 14).

The checks run fresh interpreters in subprocesses (the test process has long imported
everything): one runs several commands in a row and records the packages loaded after each,
so a package any of them imports shows from that command on; one runs ``python -m
workbench.cli --help`` under ``-X importtime``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from store import Actor, Store
from workbench.cli import app

ROOT = Path(__file__).resolve().parents[3]

#: Never imported by ``import workbench.cli`` nor by the commands that need no model.
HEAVY = ("torch", "sklearn", "captum", "streamlit")
#: Not imported by ``--help`` either (the data stack: 0.5-1 s of start-up together).
DATA_STACK = ("pandas", "pyarrow", "numpy", "duckdb", "scipy")

#: Runs ``workbench ARGS`` for each ARGS of argv[1] (JSON) in one interpreter; prints, as JSON,
#: the top-level packages loaded after the import and after each command, and the exit codes.
_DRIVER = """
import json, sys
loaded = lambda: sorted({m.split(".")[0] for m in sys.modules})
from workbench.cli import app
steps = [{"args": ["import workbench.cli"], "code": 0, "loaded": loaded()}]
for args in json.loads(sys.argv[1]):
    try:
        app(args, prog_name="workbench")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    steps.append({"args": args, "code": code, "loaded": loaded()})
sys.stdout.flush()
print("STEPS " + json.dumps(steps))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, COLUMNS="120", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _imported(importtime_stderr: str) -> set[str]:
    """Top-level package names in ``python -X importtime`` output."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name.split(".")[0])
    return names


@pytest.fixture()
def audited_ws(tmp_path: Path) -> Path:
    """An initialised workspace whose store holds one event."""
    ws = tmp_path / "ws"
    res = CliRunner().invoke(app, ["workspace", "init", "-w", str(ws)])
    assert res.exit_code == 0, res.output
    store = Store.for_workspace(ws)
    with store.session():
        store.append_event(Actor.from_oidc("sub-derm", "dermatologist", "Dr Derm"), "concept_named",
                           concept="streaks")
    return ws


def test_commands_without_a_model_load_no_heavy_package(audited_ws: Path, tmp_path: Path) -> None:
    ws = str(audited_ws)
    export = tmp_path / "events.jsonl"
    light = [
        ["--help"],
        ["audit", "--help"],
        ["tcav", "--help"],
        ["audit", "verify", "-w", ws],
        ["audit", "head", "-w", ws],
        ["audit", "export", "-w", ws, "--out", str(export)],
        ["info", "-w", ws],
        ["workspace", "show", "-w", ws],
        ["models", "list", "-w", ws],
    ]
    model = ["tcav", "-w", ws]  # needs a model: torch is imported inside the command
    proc = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps([*light, model])], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = json.loads(proc.stdout.rsplit("STEPS ", 1)[1])
    assert [s["args"] for s in steps[1:]] == [*light, model]
    assert "OK: 1 events" in proc.stdout
    assert len(export.read_text().splitlines()) == 1
    for step in steps[:-1]:
        assert step["code"] == 0, step["args"]
        assert "workbench" in step["loaded"]
        assert not set(step["loaded"]) & set(HEAVY), (step["args"], sorted(set(step["loaded"]) & set(HEAVY)))
    helps, reads = steps[:4], steps[4:6]  # import + the three --help; then audit verify and head
    assert [s["args"] for s in reads] == [light[3], light[4]]
    for step in helps:
        assert not set(step["loaded"]) & set(DATA_STACK), (step["args"], sorted(set(step["loaded"]) & set(DATA_STACK)))
    for step in reads:  # the store needs duckdb, not pandas
        assert "duckdb" in step["loaded"] and "pandas" not in step["loaded"], step["args"]
    # the check can see torch: `tcav` imports it inside the command, then stops with one line
    assert steps[-1]["code"] == 1 and "torch" in steps[-1]["loaded"]
    assert "error: no model" in proc.stderr and "Traceback" not in proc.stderr


def test_python_m_workbench_cli_help_loads_no_heavy_package() -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "workbench.cli", "--help"], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Concept Workbench" in proc.stdout and "audit" in proc.stdout
    loaded = _imported(proc.stderr)
    assert {"typer", "workbench", "concepts"} <= loaded
    assert not loaded & {*HEAVY, *DATA_STACK}, sorted(loaded & {*HEAVY, *DATA_STACK})


def test_info_and_graph_on_a_built_workspace_load_no_heavy_package(small_workspace: Path,
                                                                   tmp_path: Path) -> None:
    """With a model, a data set and a concept bank present, ``info``, ``graph export`` (with
    co-occurrence learnt from the data set), ``concepts list`` and ``models list`` read files
    only: no torch, no sklearn."""
    ws = tmp_path / "ws"
    shutil.copytree(small_workspace, ws)
    dataset = ws / "datasets" / json.loads((ws / "workspace.json").read_text())["dataset"]
    cmds = [["info", "-w", str(ws)], ["graph", "export", "--dataset", str(dataset)],
            ["concepts", "list", "-w", str(ws)], ["models", "list", "-w", str(ws)]]
    proc = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(cmds)], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = json.loads(proc.stdout.rsplit("STEPS ", 1)[1])
    assert "next:" in proc.stdout and '"nodes"' in proc.stdout
    for step in steps:
        assert step["code"] == 0, (step["args"], proc.stderr[-2000:])
        assert not set(step["loaded"]) & set(HEAVY), (step["args"], sorted(set(step["loaded"]) & set(HEAVY)))
