"""On-disk activation cache.

Activations of a model at named layers for an image set are computed once (batched, under
``torch.inference_mode``) and stored as ``.npy`` files in the workspace, keyed by the model id,
the layer, the image set's content key and the preprocessing (and the precision when it is not
fp32). Any change of one of those parts gives a different key, so stale activations are never
reused.

Extraction streams: the ``.npy`` is created at its full size on a temporary file next to its
final place (:func:`numpy.lib.format.open_memmap` writes the header), every batch is written at
its row offset as it comes, a bitmap records the rows written, and the file is renamed into
place only when every row is there. Memory therefore stays flat as N grows, a crash leaves no
partial entry, and concurrent processes can share the cache. The batches come from this process
(``engine="local"``) or from an actor pool on a Ray cluster (``engine="ray"``,
:mod:`concepts.models._engine_ray`); both write the same file, bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from concepts._errors import ComputeError
from concepts._progress import ProgressFn
from concepts.data import ImageSet, release_pages
from concepts.models._classifier import ClassifierModel
from concepts.models._compute import Compute, autocast, on_device

__all__ = ["ActivationCache", "ProgressFn", "RowWriter", "extract_activations", "layer_shapes"]

#: progress(stage, done, total)
#: Image sets smaller than this are extracted locally even with ``engine="ray"``.
RAY_MIN_ROWS = 1024
#: write(start_row, {layer: (rows, ...) float32})
WriteFn = Callable[[int, dict[str, np.ndarray]], None]


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


def _local_batches(
    model: ClassifierModel,
    images: np.ndarray,
    layers: Sequence[str],
    write: WriteFn,
    *,
    batch_size: int,
    compute: Compute,
    progress: ProgressFn | None,
    stage: str,
) -> None:
    """The local engine: batches in this process, each handed to ``write`` as it is computed."""
    n = len(images)
    with on_device(model, compute.device):
        for start in range(0, n, batch_size):
            write(start, forward_batch(model, images[start : start + batch_size], layers, compute.precision))
            release_pages(images)  # a memory-mapped image set keeps one batch resident, not all of it
            if progress is not None:
                progress(stage, min(start + batch_size, n), n)


def extract_activations(
    model: ClassifierModel,
    images: np.ndarray,
    layers: Sequence[str],
    *,
    batch_size: int = 64,
    progress: ProgressFn | None = None,
    stage: str = "activations",
    compute: Compute | None = None,
) -> dict[str, np.ndarray]:
    """Activations of ``layers`` for uint8 ``images`` (no caching), float32 arrays in memory.

    ``compute`` names the device and precision (default: CPU, fp32); the engine is always local
    here (the cache streams to disk and may use Ray).
    """
    layers = list(dict.fromkeys(layers))
    for layer in layers:
        model.check_layer(layer)
    cfg = compute or Compute()
    n = len(images)
    with on_device(model, cfg.device):
        shapes = layer_shapes(model, layers)
        out = {layer: np.empty((n, *shapes[layer]), dtype=np.float32) for layer in layers}

        def write(start: int, acts: dict[str, np.ndarray]) -> None:
            for layer, a in acts.items():
                out[layer][start : start + len(a)] = a

        _local_batches(model, images, layers, write, batch_size=batch_size, compute=cfg,
                       progress=progress, stage=stage)
    return out


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


class ActivationCache:
    """Activation cache under ``root`` (normally ``<workspace>/cache/activations``).

    Parameters
    ----------
    root
        Cache directory (created when needed).
    batch_size
        Forward batch size used for extraction.
    compute
        Engine (local or Ray), device and precision of extraction (default: local, CPU, fp32).
    ray_min_rows
        With the Ray engine, image sets smaller than this are extracted locally (starting an
        actor pool costs seconds; the files are the same either way).
    """

    def __init__(self, root: str | Path, batch_size: int = 64, compute: Compute | None = None,
                 ray_min_rows: int = RAY_MIN_ROWS):
        self.root = Path(root)
        self.batch_size = batch_size
        self.compute = compute or Compute()
        self.ray_min_rows = ray_min_rows
        self.hits = 0
        self.misses = 0

    def key(self, model: ClassifierModel, layer: str, image_set: ImageSet) -> str:
        """Cache key of (model id, layer, image-set key, preprocessing[, precision])."""
        parts = [model.model_id, layer, image_set.key, model.preprocess.key()]
        if self.compute.precision != "fp32":
            parts.append(f"amp={self.compute.precision}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]

    def path(self, model: ClassifierModel, layer: str, image_set: ImageSet) -> Path:
        return self.root / model.model_id / layer / f"{self.key(model, layer, image_set)}.npy"

    def get(
        self,
        model: ClassifierModel,
        layers: str | Sequence[str],
        image_set: ImageSet,
        *,
        progress: ProgressFn | None = None,
        mmap: bool = False,
    ) -> dict[str, np.ndarray]:
        """Activations of ``layers`` for ``image_set``; computes and stores missing layers.

        All missing layers are extracted in one pass, streamed to disk. ``mmap=True`` returns
        read-only memory maps of the files (flat memory for any N), else arrays in memory.
        """
        layer_list = [layers] if isinstance(layers, str) else list(dict.fromkeys(layers))
        out: dict[str, np.ndarray] = {}
        missing: list[str] = []
        for layer in layer_list:
            model.check_layer(layer)
            p = self.path(model, layer, image_set)
            if p.is_file():
                try:
                    out[layer] = np.load(p, mmap_mode="r" if mmap else None)
                    self.hits += 1
                    continue
                except (OSError, ValueError):
                    p.unlink(missing_ok=True)  # corrupt entry: recompute
            missing.append(layer)
        if missing:
            self.misses += len(missing)
            self._extract(model, missing, image_set, progress)
            for layer in missing:
                out[layer] = np.load(self.path(model, layer, image_set), mmap_mode="r" if mmap else None)
        return {layer: out[layer] for layer in layer_list}

    def _extract(
        self, model: ClassifierModel, layers: list[str], image_set: ImageSet, progress: ProgressFn | None
    ) -> None:
        """Stream the activations of ``layers`` into their cache files (engine of ``compute``)."""
        stage = f"activations {image_set.name}"
        shapes = layer_shapes(model, layers)
        writer = RowWriter({la: self.path(model, la, image_set) for la in layers}, shapes, len(image_set))
        try:
            if self.compute.engine == "ray" and len(image_set) >= self.ray_min_rows:
                from concepts.models._engine_ray import ray_extract

                ray_extract(model, image_set, layers, writer, batch_size=self.batch_size,
                            compute=self.compute, staging_dir=self.root / "_ray_inputs",
                            progress=progress, stage=stage)
            else:
                _local_batches(model, image_set.images, layers, writer.write, batch_size=self.batch_size,
                               compute=self.compute, progress=progress, stage=stage)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        for layer in layers:
            self._write_meta(self.path(model, layer, image_set), shapes[layer], len(image_set),
                             model, layer, image_set)

    def put(self, model: ClassifierModel, layer: str, image_set: ImageSet, arr: np.ndarray) -> None:
        """Store activations computed elsewhere (e.g. features below a head that was retrained:
        they are valid for the new model id too, which the cache cannot know by itself)."""
        model.check_layer(layer)
        p = self.path(model, layer, image_set)
        a = np.asarray(arr)
        writer = RowWriter({layer: p}, {layer: tuple(a.shape[1:])}, len(a))
        try:
            step = max(1, (64 << 20) // max(1, a[0].nbytes if len(a) else 1))  # ~64 MB per write
            for start in range(0, len(a), step):
                writer.write(start, {layer: a[start : start + step]})
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        self._write_meta(p, tuple(a.shape[1:]), len(a), model, layer, image_set)

    def _write_meta(
        self, p: Path, shape: tuple[int, ...], n: int, model: ClassifierModel, layer: str, image_set: ImageSet
    ) -> None:
        meta = {
            "model_id": model.model_id,
            "layer": layer,
            "image_set": image_set.name,
            "image_set_key": image_set.key,
            "preprocess": model.preprocess.key(),
            "precision": self.compute.precision,
            "shape": [n, *shape],
        }
        p.with_suffix(".json").write_text(json.dumps(meta))
