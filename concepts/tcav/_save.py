"""The last stage of a TCAV analysis: write the table, the per-run scores and the run's record.

``results/tcav.parquet`` (one row per concept x class x layer), ``results/tcav_runs.parquet``
(one row per run) and ``results/tcav.json`` (settings, warnings, timings). The CAVs themselves
are cached by the CAV stage under ``results/cavs/``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from store import atomic_path

__all__ = ["save_results"]


def save_results(
    results_dir: Path,
    table: pd.DataFrame,
    scores: pd.DataFrame,
    settings: Mapping[str, Any],
    warnings: Sequence[str],
    timings: Mapping[str, float],
) -> None:
    """Write ``tcav.parquet``, ``tcav_runs.parquet`` and ``tcav.json`` under ``results_dir``."""
    results_dir.mkdir(parents=True, exist_ok=True)
    _write_parquet(table, results_dir / "tcav.parquet")
    _write_parquet(scores, results_dir / "tcav_runs.parquet")
    (results_dir / "tcav.json").write_text(json.dumps(
        {"settings": settings, "warnings": warnings, "timings": timings}, indent=1, default=str))


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path, private=False) as tmp:
        df.to_parquet(tmp, index=False)
