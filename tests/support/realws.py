"""A small non-demo workspace built as a user would: a folder of test-made images with a CSV
(``train/val/test`` split column, an ``ink`` artifact column, two 7-point criteria), imported
with ``workbench import folder`` and a tiny CNN trained with ``workbench train``.

The session fixture ``real_workspace`` (tests/workbench/cli/conftest.py) builds it once per run
through the workspace factory (tests/support/workspaces.py); tests that write to it copy it first
(``shutil.copytree``). No DermSynth configuration,
no ``test_debiased`` split: the workspace every page and command must handle like the demo.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.support.workspaces import WorkspaceSpec

__all__ = ["REAL_DATASET", "REAL_MODEL", "REAL_SPEC", "build_real", "build_real_workspace", "make_image_folder"]

#: Names of the data set and model in the built workspace.
REAL_DATASET = "clinic"
REAL_MODEL = "clinic-tiny-cnn"

_SPLITS = ("train", "val", "test")


def _image(rng: np.random.Generator, mel: bool, ink: int, veil: int, streaks: int) -> np.ndarray:
    img = (165 + rng.integers(0, 25, (32, 32, 3))).astype(np.uint8)
    lo, hi = (7, 25) if mel else (11, 21)
    img[lo:hi, lo:hi] = (95, 45, 35) if mel else (140, 100, 70)
    if veil:
        img[12:18, 12:20] = (90, 110, 170)
    if streaks:
        img[lo - 2 : lo, 10:22:3] = (60, 30, 20)
    if ink:
        img[26:29, 2:30] = (120, 30, 160)
    return img


def make_image_folder(root: Path, n: int = 96, seed: int = 0) -> Path:
    """Write ``n`` small PNGs and ``cases.csv`` (case_id, path, label, split, ink,
    blue_whitish_veil, streaks) into ``root``; returns the CSV's path.

    A third of the cases are melanomas (darker, larger); the violet ink bar is planted on 60 %
    of melanomas and 10 % of nevi, the blue-whitish veil and streaks ride with melanoma as in
    clinical practice. Splits are 50/25/25 % per class.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["case_id,path,label,split,ink,blue_whitish_veil,streaks"]
    for i in range(n):
        mel = i % 3 == 0
        ink = int(rng.random() < (0.6 if mel else 0.1))
        veil = int(rng.random() < (0.6 if mel else 0.15))
        streaks = int(rng.random() < (0.5 if mel else 0.15))
        split = _SPLITS[0] if (i // 3) % 4 < 2 else _SPLITS[1 + (i // 3) % 2]
        Image.fromarray(_image(rng, mel, ink, veil, streaks)).save(root / f"c{i:03d}.png")
        rows.append(f"c{i:03d},c{i:03d}.png,{'melanoma' if mel else 'nevus'},{split},{ink},{veil},{streaks}")
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    return root / "cases.csv"


def _cli(*args: str) -> str:
    from typer.testing import CliRunner

    from workbench.cli import app

    res = CliRunner().invoke(app, list(args))
    if res.exit_code != 0:
        raise RuntimeError(f"workbench {' '.join(args)} failed ({res.exit_code}):\n{res.output}")
    return res.output


def build_real_workspace(base: Path, *, epochs: int = 4, tcav_runs: int = 4) -> tuple[Path, dict[str, Any]]:
    """Images -> ``workbench workspace init`` -> ``import folder`` -> ``train`` (tiny CNN, with
    its precomputation). Returns the workspace path and ``train --format json``'s output."""
    csv = make_image_folder(base / "images")
    ws = base / "ws"
    _cli("workspace", "init", "-w", str(ws))
    _cli("import", "folder", str(csv), "--name", REAL_DATASET, "-w", str(ws), "--image-size", "32",
         "--format", "json")
    out = _cli("train", "-w", str(ws), "--architecture", "tiny-cnn", "--epochs", str(epochs),
               "--tcav-runs", str(tcav_runs), "--format", "json")
    return ws, json.loads(out[out.index("{"):])


#: The workspace factory's key of the CLI tests' non-demo workspace (tests/support/workspaces.py).
REAL_SPEC = WorkspaceSpec.of("real", epochs=4, tcav_runs=4)


def build_real(home: Path) -> Path:
    """The factory's builder of :data:`REAL_SPEC`: the workspace under ``home``."""
    return build_real_workspace(home, epochs=4, tcav_runs=4)[0]
