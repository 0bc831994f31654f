"""One batch through the model, and the row-indexed writer of activation files.

Shared by the local extraction (:mod:`concepts.models._activations`) and the Ray engine
(:mod:`concepts.models._engine_ray`): both write the same ``.npy`` files, row by row, bit for bit.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from concepts._errors import ComputeError
from concepts.models._classifier import ClassifierModel
from concepts.models._compute import autocast

__all__ = ["RowWriter", "forward_batch", "layer_shapes"]


def layer_shapes(model: ClassifierModel, layers: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Per-image activation shape of each layer (one forward pass of a blank image)."""
    size = model.preprocess.size
    x = model.preprocess(np.zeros((1, size, size, 3), np.uint8)).to(model.device)
    with torch.inference_mode():
        acts = model.activations(x, list(layers))
    return {layer: tuple(int(d) for d in acts[layer].shape[1:]) for layer in layers}


def forward_batch(
    model: ClassifierModel, images: np.ndarray, layers: Sequence[str], precision: str = "fp32"
) -> dict[str, np.ndarray]:
    """Activations of one batch of uint8 images on the model's device, as float32 CPU arrays."""
    dev = model.device
    x = model.preprocess(images).to(dev)
    with torch.inference_mode(), autocast(dev, precision):
        acts = model.activations(x, layers)
    return {layer: np.ascontiguousarray(acts[layer].detach().float().cpu().numpy()) for layer in layers}


class RowWriter:
    """Rows of a set of ``.npy`` files (one per layer) written by index, committed atomically.

    Each file is created at its full size under a temporary name next to ``finals[layer]``;
    :meth:`write` puts a batch at its row offset (a retried batch overwrites the same rows, so
    nothing is duplicated); :meth:`commit` checks that every row was written and renames the
    files into place; :meth:`abort` removes them.
    """

    def __init__(self, finals: dict[str, Path], shapes: dict[str, tuple[int, ...]], n: int):
        self.n = n
        self.shapes = shapes
        self.written = np.zeros(n, dtype=bool)
        self.finals = finals
        self._tmp: dict[str, str] = {}
        self._fd: dict[str, int] = {}
        self._offset: dict[str, int] = {}
        try:
            for layer, final in finals.items():
                self._create(layer, final)
        except BaseException:
            self.abort()
            raise

    def _create(self, layer: str, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=final.parent)
        os.close(fd)
        self._tmp[layer] = tmp
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(self.n, *self.shapes[layer]))
        self._offset[layer] = int(mm.offset)
        del mm  # header written, file sized; rows go in with pwrite (no mapping held: flat RSS)
        self._fd[layer] = os.open(tmp, os.O_WRONLY)

    def missing(self) -> np.ndarray:
        """Indices of the rows not written yet."""
        return np.flatnonzero(~self.written)

    def write(self, start: int, acts: dict[str, np.ndarray]) -> None:
        """Write rows ``start .. start + len`` of every layer."""
        count = {len(a) for a in acts.values()}
        if set(acts) != set(self._fd) or len(count) != 1:
            raise ComputeError(f"a batch must hold the same number of rows of {sorted(self._fd)}")
        rows = count.pop()
        if not 0 <= start <= self.n - rows:
            raise ComputeError(f"rows {start}..{start + rows} lie outside 0..{self.n}")
        for layer, a in acts.items():
            arr = np.ascontiguousarray(a, dtype=np.float32)
            if arr.shape[1:] != self.shapes[layer]:
                raise ComputeError(f"{layer}: batch of shape {arr.shape[1:]}, expected {self.shapes[layer]}")
            view = arr.reshape(-1).view(np.uint8).data  # the rows' bytes, no copy
            pos = self._offset[layer] + start * (arr.nbytes // rows) if rows else 0
            while view.nbytes:
                k = os.pwrite(self._fd[layer], view, pos)
                view, pos = view[k:], pos + k
        self.written[start : start + rows] = True

    def commit(self) -> None:
        """Rename every file into place; refuses if a row is missing."""
        missing = self.missing()
        if len(missing):
            self.abort()
            raise ComputeError(f"extraction incomplete: {len(missing)} of {self.n} rows never arrived "
                               f"(first: {missing[:5].tolist()}) — run the command again")
        for layer, fd in list(self._fd.items()):
            os.close(fd)
            del self._fd[layer]
            os.chmod(self._tmp[layer], 0o644)  # mkstemp creates 0600; the cache is shared by CLI and UI
            os.replace(self._tmp.pop(layer), self.finals[layer])

    def abort(self) -> None:
        """Close and remove the temporary files."""
        for fd in self._fd.values():
            os.close(fd)
        self._fd.clear()
        for tmp in self._tmp.values():
            Path(tmp).unlink(missing_ok=True)
        self._tmp.clear()
