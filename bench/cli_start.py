"""CLI start time: wall time of ``workbench --help`` against ``import torch``, measured in one run.

Usage: python bench/cli_start.py [--repeats 5]

Each repeat starts fresh interpreters (``sys.executable``), in turn: ``python -m workbench.cli
--help``, ``python -m workbench.cli audit verify -w <tmp workspace>`` (a workspace made here
with one recorded event), ``python -c "import torch"`` and ``python -c "pass"`` (the interpreter
alone). The same load weighs on all of them, so the ratio to ``import torch`` is the figure to
compare across machines; the CPU seconds (user + system) of each child are reported too (close
to the wall time on a quiet machine). Also reports whether torch, sklearn, captum or streamlit were imported
by ``--help`` (``-X importtime``).

Last line: ``help_over_torch: <median ratio>``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "sklearn", "captum", "streamlit")


def _timed(args: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of ``python ARGS`` in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _heavy_in_help() -> list[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "workbench.cli", "--help"], cwd=ROOT,
                          check=True, capture_output=True, text=True)
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in proc.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    return sorted(names & set(HEAVY))


def _workspace(root: Path) -> Path:
    from store import Actor, Store

    ws = root / "ws"
    subprocess.run([sys.executable, "-m", "workbench.cli", "workspace", "init", "-w", str(ws)], cwd=ROOT,
                   check=True, capture_output=True)
    store = Store.for_workspace(ws)
    with store.session():
        store.append_event(Actor.from_oidc("bench", "dermatologist", "Bench"), "concept_named", concept="x")
    return ws


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cli-start-") as tmp:
        ws = _workspace(Path(tmp))
        commands = {
            "workbench --help": ["-m", "workbench.cli", "--help"],
            "workbench audit verify": ["-m", "workbench.cli", "audit", "verify", "-w", str(ws)],
            "import torch": ["-c", "import torch"],
            "python (empty)": ["-c", "pass"],
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        cpu: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                wall, secs = _timed(cmd)
                times[name].append(wall)
                cpu[name].append(secs)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, ts in times.items():
        print(f"{name:24s} wall median {med[name]:6.2f} s (min {min(ts):6.2f}, max {max(ts):6.2f})   "
              f"CPU median {statistics.median(cpu[name]):6.2f} s")
    print(f"heavy packages imported by --help: {', '.join(_heavy_in_help()) or 'none'}")
    ratios = [h / t for h, t in zip(times["workbench --help"], times["import torch"], strict=True)]
    print(f"audit_verify_over_torch: {med['workbench audit verify'] / med['import torch']:.2f}")
    print(f"help_over_torch: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
