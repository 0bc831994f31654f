"""On-disk activation cache.

Activations of a model at named layers for an image set are computed once (batched, under
``torch.inference_mode``) and stored as ``.npy`` files in the workspace, keyed by the model id,
the layer, the image set's content key and the preprocessing. Any change of one of those parts
gives a different key, so stale activations are never reused. Files are written atomically
(temporary file + rename), so concurrent processes can share the cache.
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

from concepts._dataset import ImageSet
from concepts._models import ClassifierModel

__all__ = ["ActivationCache", "ProgressFn", "extract_activations"]

#: progress(stage, done, total)
ProgressFn = Callable[[str, int, int], None]


def extract_activations(
    model: ClassifierModel,
    images: np.ndarray,
    layers: Sequence[str],
    *,
    batch_size: int = 64,
    progress: ProgressFn | None = None,
    stage: str = "activations",
) -> dict[str, np.ndarray]:
    """Activations of ``layers`` for uint8 ``images`` (no caching), float32 arrays."""
    layers = list(dict.fromkeys(layers))
    for layer in layers:
        model.check_layer(layer)
    n = len(images)
    out: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            x = model.preprocess(images[start : start + batch_size])
            acts = model.activations(x, layers)
            for layer in layers:
                a = acts[layer].detach().float().numpy()
                if layer not in out:
                    out[layer] = np.empty((n, *a.shape[1:]), dtype=np.float32)
                out[layer][start : start + len(a)] = a
            if progress is not None:
                progress(stage, min(start + batch_size, n), n)
    if n == 0:
        # shapes unknown without a forward pass: run one dummy image
        x = model.preprocess(np.zeros((1, model.preprocess.size, model.preprocess.size, 3), np.uint8))
        with torch.inference_mode():
            acts = model.activations(x, layers)
        out = {k: np.empty((0, *v.shape[1:]), np.float32) for k, v in acts.items()}
    return out


class ActivationCache:
    """Activation cache under ``root`` (normally ``<workspace>/cache/activations``).

    Parameters
    ----------
    root
        Cache directory (created when needed).
    batch_size
        Forward batch size used for extraction.
    """

    def __init__(self, root: str | Path, batch_size: int = 64):
        self.root = Path(root)
        self.batch_size = batch_size
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(model: ClassifierModel, layer: str, image_set: ImageSet) -> str:
        """Cache key of (model id, layer, image-set key, preprocessing)."""
        raw = "|".join([model.model_id, layer, image_set.key, model.preprocess.key()])
        return hashlib.sha256(raw.encode()).hexdigest()[:40]

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

        All missing layers are extracted in one forward pass.
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
            fresh = extract_activations(
                model,
                image_set.images,
                missing,
                batch_size=self.batch_size,
                progress=progress,
                stage=f"activations {image_set.name}",
            )
            for layer, arr in fresh.items():
                self._store(self.path(model, layer, image_set), arr, model, layer, image_set)
                out[layer] = arr
        return {layer: out[layer] for layer in layer_list}

    def put(self, model: ClassifierModel, layer: str, image_set: ImageSet, arr: np.ndarray) -> None:
        """Store activations computed elsewhere (e.g. features below a head that was retrained:
        they are valid for the new model id too, which the cache cannot know by itself)."""
        model.check_layer(layer)
        self._store(self.path(model, layer, image_set), np.asarray(arr, dtype=np.float32), model, layer, image_set)

    def _store(
        self, p: Path, arr: np.ndarray, model: ClassifierModel, layer: str, image_set: ImageSet
    ) -> None:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, arr)
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is shared by the CLI and the UI
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        meta = {
            "model_id": model.model_id,
            "layer": layer,
            "image_set": image_set.name,
            "image_set_key": image_set.key,
            "preprocess": model.preprocess.key(),
            "shape": list(arr.shape),
        }
        p.with_suffix(".json").write_text(json.dumps(meta))
