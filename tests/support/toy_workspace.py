"""A workspace with one tiny data set ``toy`` and a store holding one event, and the CLI app
(tests/concepts/data/test_dataset_integrity.py, tests/workbench/cli/test_workspace_fuzz.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from concepts import Dataset, DatasetInfo, Workspace
from store import Actor, Role, Store

__all__ = ["cli_app", "make_workspace", "store_digest"]


def cli_app() -> object:
    from workbench.cli import app

    return app


def make_workspace(root: Path, n: int = 12, size: int = 8) -> Workspace:
    """A workspace with one small data set ``toy`` and a store holding one event."""
    rng = np.random.default_rng(0)
    cases = pd.DataFrame({
        "case_id": [f"c{i}" for i in range(n)],
        "label": ["mel", "nev"] * (n // 2),
        "split": ["train", "val", "test"] * (n // 3),
        "ink": rng.integers(0, 2, n),
    })
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    ws = Workspace(root).ensure()
    Dataset.write(ws.datasets_dir / "toy", DatasetInfo("toy", "test", ("mel", "nev"), size, artifacts=("ink",)),
                  cases, images)
    ws.update_manifest(dataset="toy")
    Store(ws.store_path).append_event(Actor.from_os_user(Role.DERMATOLOGIST), "concept_named", concept="ink")
    return ws


def store_digest(ws: Workspace) -> list[str]:
    return [e.hash for e in Store(ws.store_path).events()]
