"""The Ray engine against a local Ray cluster on loopback (a head and two worker nodes).

Activations written by the Ray actor pool must be the local engine's file byte for byte, and a
run in which one worker process is killed (SIGKILL) midway must finish with every row written
once. The cluster and the driver run in a child process (tests/concepts/models/ray_engine_run.py), so Ray's
threads never share the pytest process with other tests. Slow; skipped without Ray.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                       reason="Ray is not installed: pip install 'concept-workbench[ray]'"),
]

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "concepts/models" / "ray_engine_run.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"the Ray run failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("RESULT "):])  # type: ignore[no-any-return]


def test_ray_engine_writes_the_local_file_bit_for_bit(run: dict[str, Any]) -> None:
    r = run["plain"]
    assert r["same_key"] and all(r["identical"].values()), r
    assert r["misses"] == 2 and r["leftovers"] == 0
    assert r["staged"] == 1  # images staged once


def test_ray_engine_survives_a_killed_worker(run: dict[str, Any]) -> None:
    r = run["killed"]
    assert r["n_killed"] == 1, "the run ended before a worker could be killed"
    assert r["same_key"] and all(r["identical"].values()), r
    assert r["leftovers"] == 0
    assert r["actors_started"] >= 3, f"the killed actor was not replaced ({r['actors_started']} actors)"
