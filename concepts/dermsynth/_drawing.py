"""Drawing DermSynth cases tables into images, chunk by chunk, in a process pool or in this process.

Every row carries its own ``render_seed``, so the images do not depend on the chunking or on the
number of workers. Adjacent rows with the same lesion (counterfactual twins) share one lesion
drawing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from concepts._progress import ProgressFn
from concepts.data import ARTIFACTS, CRITERIA
from concepts.dermsynth._render import apply_artifacts, render_lesion

__all__ = ["render_tables"]




@dataclass(frozen=True)
class _Chunk:
    """Consecutive rows of one cases table to draw: where they go and what to draw."""

    table: int  # index of the table in the call
    start: int  # first row in that table
    size: int
    seeds: np.ndarray
    melanoma: np.ndarray
    criteria: np.ndarray
    artifacts: np.ndarray


def _render_chunk(job: _Chunk) -> np.ndarray:
    """Draw the rows of one chunk; adjacent twins share the lesion drawing."""
    size = job.size
    out = np.empty((len(job.seeds), size, size, 3), dtype=np.uint8)
    last_key: tuple[int, bool, bytes] | None = None
    lesion: np.ndarray | None = None
    for i in range(len(job.seeds)):
        key = (int(job.seeds[i]), bool(job.melanoma[i]), job.criteria[i].tobytes())
        if lesion is None or key != last_key:
            lesion = render_lesion(key[0], key[1], job.criteria[i].tolist(), size)
            last_key = key
        out[i] = apply_artifacts(lesion, key[0], job.artifacts[i].tolist())
    return out


def _chunks(table: int, cases: pd.DataFrame, size: int, chunk: int) -> list[_Chunk]:
    seeds = cases["render_seed"].to_numpy(np.int64)
    mel = (cases["label"] == "melanoma").to_numpy()
    crit = cases[list(CRITERIA)].to_numpy(np.int64)
    arts = cases[list(ARTIFACTS)].to_numpy(np.int64)
    return [
        _Chunk(table, i, size, seeds[i : i + chunk], mel[i : i + chunk], crit[i : i + chunk], arts[i : i + chunk])
        for i in range(0, len(cases), chunk)
    ]


class _Sink:
    """Stores drawn chunks into their tables' destinations and reports progress per table."""

    def __init__(self, tables: Sequence[tuple[str, pd.DataFrame]], outs: Sequence[Any],
                 progress: ProgressFn | None) -> None:
        self.stages = [stage for stage, _ in tables]
        self.totals = [len(t) for _, t in tables]
        self.done = [0] * len(tables)
        self.outs = outs
        self.progress = progress
        if progress is not None:
            for stage, total in zip(self.stages, self.totals, strict=True):
                progress(stage, 0, total)

    def put(self, job: _Chunk, images: np.ndarray) -> None:
        self.outs[job.table][job.start : job.start + len(images)] = images
        self.done[job.table] += len(images)
        if self.progress is not None:
            self.progress(self.stages[job.table], self.done[job.table], self.totals[job.table])


def _draw_in_pool(jobs: Sequence[_Chunk], sink: _Sink, workers: int) -> bool:
    """Draw every chunk in a process pool; False when no pool can be started here."""
    pool: ProcessPoolExecutor | None = None
    try:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(_render_chunk, jobs)  # submits every chunk now
    except (OSError, AssertionError, NotImplementedError):
        # no process pool here (sandbox without semaphores, daemon process): the caller draws in
        # this process instead; every row has its own seed, so the images are the same
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        return False
    try:
        for job, images in zip(jobs, results, strict=True):
            sink.put(job, images)
    finally:  # on an error (e.g. from progress) drop the chunks not yet started
        pool.shutdown(wait=True, cancel_futures=True)
    return True


def render_tables(
    tables: Sequence[tuple[str, pd.DataFrame]],
    size: int,
    workers: int,
    progress: ProgressFn | None,
    outs: Sequence[Any] | None = None,
) -> list[Any]:
    """Draw several cases tables (in one process pool when ``workers > 1``).

    Parameters
    ----------
    tables
        ``(stage, cases)`` pairs; ``stage`` names the table in progress reports.
    size
        Image side in pixels.
    workers
        Processes to draw with (1 draws here).
    progress
        Called with ``(stage, done, total)`` per table.
    outs
        The destinations, one per table (arrays or the ``images`` of a :meth:`Dataset.create`
        writer, filled chunk by chunk); default: new in-memory arrays.

    Returns
    -------
    list
        ``outs``.
    """
    total_rows = sum(len(t) for _, t in tables)
    chunk = max(8, min(64, 2 * math.ceil(total_rows / max(workers, 1) / 16)))
    chunk += chunk % 2  # twins (adjacent rows) never straddle chunks
    jobs = [j for k, (_, t) in enumerate(tables) for j in _chunks(k, t, size, chunk)]
    if outs is None:
        outs = [np.empty((len(t), size, size, 3), dtype=np.uint8) for _, t in tables]
    sink = _Sink(tables, outs, progress)
    if workers > 1 and len(jobs) > 1 and _draw_in_pool(jobs, sink, workers):
        return list(outs)
    for job in jobs:
        sink.put(job, _render_chunk(job))
    return list(outs)
