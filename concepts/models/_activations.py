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
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from concepts._progress import ProgressFn
from concepts.data import ImageSet, RowView, release_pages
from concepts.models._batches import RowWriter, forward_batch, layer_shapes
from concepts.models._classifier import ClassifierModel
from concepts.models._compute import Compute, on_device

__all__ = [
    "ActivationCache",
    "extract_activations",
]

#: progress(stage, done, total)
#: Image sets smaller than this are extracted locally even with ``engine="ray"``.
RAY_MIN_ROWS = 1024
#: write(start_row, {layer: (rows, ...) float32})
WriteFn = Callable[[int, dict[str, np.ndarray]], None]


def _local_batches(
    model: ClassifierModel,
    images: np.ndarray | RowView,
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
    images: np.ndarray | RowView,
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
