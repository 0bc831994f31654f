"""A small workspace that is not the demo, for the UI tests of the Case explorer and
Interventions pages: a folder of test-made images (``train/val/test`` split column, an ``ink``
artifact column with a mask file per inked case, one 7-point criterion), imported with
``workbench import folder`` and a tiny CNN trained with ``workbench train``.

The session fixture ``ui_real_workspace`` (tests/conftest.py) builds it once per run through the
workspace factory (tests/support/workspaces.py); each test process gets a copy; the fixture
``ui_real_inked`` gives the ids of the inked training cases.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.support.workspaces import WorkspaceSpec

__all__ = ["INKED_FILE", "UI_REAL_SPEC", "build_ui_real", "build_ui_real_workspace", "copy_workspace", "make_marked_folder"]

SIZE = 32
_SPLITS = ("train", "train", "val", "test")

#: Next to the built workspace: the case ids of the inked training cases (a JSON list), for tests
#: that build a concept from them.
INKED_FILE = "inked.json"


def _image(rng: np.random.Generator, mel: bool, veil: int) -> np.ndarray:
    img = (165 + rng.integers(0, 25, (SIZE, SIZE, 3))).astype(np.uint8)
    lo, hi = (7, 25) if mel else (11, 21)
    img[lo:hi, lo:hi] = (95, 45, 35) if mel else (140, 100, 70)
    if veil:
        img[12:18, 12:20] = (90, 110, 170)
    return img


def make_marked_folder(root: Path, n: int = 144, seed: int = 0) -> tuple[Path, list[str]]:
    """``n`` PNGs plus ``cases.csv`` (case_id, path, label, split, ink, ink_mask,
    blue_whitish_veil) in ``root``: a third melanomas (darker, larger); a violet marker stroke
    (with its mask image) on 60 % of melanomas and 10 % of nevi. Returns the CSV and the ids of
    the inked training cases."""
    rng = np.random.default_rng(seed)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rows = ["case_id,path,label,split,ink,ink_mask,blue_whitish_veil"]
    inked: list[str] = []
    for i in range(n):
        mel = i % 3 == 0
        ink = int(rng.random() < (0.6 if mel else 0.1))
        veil = int(rng.random() < (0.5 if mel else 0.3))
        split = _SPLITS[(i // 3) % 4]
        img = _image(rng, mel, veil)
        cid, mask_path = f"c{i:03d}", ""
        if ink:
            m = np.zeros((SIZE, SIZE), bool)
            r0 = int(rng.integers(1, 5)) if rng.random() < 0.5 else int(rng.integers(25, 29))
            m[r0 : r0 + 3, 2 : SIZE - 2] = True
            img[m] = (120, 30, 160)
            mask_path = f"masks/{cid}.png"
            Image.fromarray((m * 255).astype(np.uint8)).save(root / mask_path)
            if split == "train":
                inked.append(cid)
        Image.fromarray(img).save(root / f"{cid}.png")
        rows.append(f"{cid},{cid}.png,{'melanoma' if mel else 'nevus'},{split},{ink},{mask_path},{veil}")
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    return root / "cases.csv", inked


def _cli(*args: str) -> str:
    from typer.testing import CliRunner

    from workbench.cli import app

    res = CliRunner().invoke(app, list(args))
    if res.exit_code != 0:
        raise RuntimeError(f"workbench {' '.join(args)} failed ({res.exit_code}):\n{res.output}")
    return res.output


def build_ui_real_workspace(base: Path, *, epochs: int = 4, tcav_runs: int = 4) -> tuple[Path, dict[str, Any]]:
    """Images -> ``workbench import folder`` -> ``workbench train`` (tiny CNN). Returns the
    workspace and ``train --format json``'s output; writes the inked training cases' ids to
    ``base/inked.json``."""
    csv, inked = make_marked_folder(base / "images")
    (base / INKED_FILE).write_text(json.dumps(inked))
    ws = base / "ws"
    _cli("import", "folder", str(csv), "--name", "clinic", "-w", str(ws), "--image-size", str(SIZE),
         "--artifact-col", "ink", "--format", "json")
    out = _cli("train", "-w", str(ws), "--architecture", "tiny-cnn", "--epochs", str(epochs),
               "--tcav-runs", str(tcav_runs), "--format", "json")
    return ws, json.loads(out[out.index("{"):])


def copy_workspace(src: Path, dst: Path) -> Path:
    """A private copy of a workspace (the image folder it was imported from stays shared)."""
    shutil.copytree(src, dst)
    return dst


#: The workspace factory's key of the UI tests' non-demo workspace (tests/support/workspaces.py).
UI_REAL_SPEC = WorkspaceSpec.of("ui_real", epochs=4, tcav_runs=4)


def build_ui_real(home: Path) -> Path:
    """The factory's builder of :data:`UI_REAL_SPEC`: the workspace (and ``inked.json``) under ``home``."""
    return build_ui_real_workspace(home, epochs=4, tcav_runs=4)[0]
