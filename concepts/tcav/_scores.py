"""Concept space: concept scores of image sets, concept maps, and attribution heatmaps.

* :func:`concept_scores` — the N x K matrix of signed distances ``(w·h + b) / ||w||`` of every
  image to every probe's hyperplane (PCBM-style concept space), from cached activations, and
  itself cached on disk keyed by the image set, the model and the CAVs.
* :func:`concept_maps` — for a conv layer: the dot product of each spatial position's channel
  vector with the CAV's channel profile (the CAV reshaped to ``(C, H, W)`` and averaged over
  positions), upsampled bilinearly onto the image. Arrays only; the UI draws them.
* :func:`attribution_map` — captum's ``LayerGradCam`` or ``IntegratedGradients`` heatmap of one
  case, for comparison with the concept maps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from concepts._errors import ConceptError, ModelError
from concepts.data import ImageSet
from concepts.models import ActivationCache, ClassifierModel
from concepts.tcav._cav import CAV
from store import atomic_path

__all__ = [
    "ATTRIBUTION_METHODS",
    "attribution_map",
    "channel_profile",
    "concept_map_from_activations",
    "concept_maps",
    "concept_scores",
]

ATTRIBUTION_METHODS: tuple[str, ...] = ("gradcam", "integrated_gradients")


def _as_cav_list(cavs: Sequence[CAV] | Mapping[str, CAV]) -> list[tuple[str, CAV]]:
    items = list(cavs.items()) if isinstance(cavs, Mapping) else [(c.concept, c) for c in cavs]
    if not items:
        raise ConceptError("no CAVs given — train CAVs first (run_tcav or CAVTrainer)")
    names = [n for n, _ in items]
    if len(set(names)) != len(names):  # the same concept at several layers
        items = [(f"{n}@{c.layer}", c) for n, c in items]
    return items


def _cav_key(items: list[tuple[str, CAV]]) -> str:
    h = hashlib.sha256()
    for name, c in items:
        h.update(f"{name}|{c.layer}|{c.intercept!r}".encode())
        h.update(np.ascontiguousarray(c.vector, dtype=np.float32).tobytes())
    return h.hexdigest()[:24]


def concept_scores(
    model: ClassifierModel,
    cavs: Sequence[CAV] | Mapping[str, CAV],
    image_set: ImageSet,
    cache: ActivationCache,
    *,
    store_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Signed distances of every image to every CAV's hyperplane (concept space).

    Parameters
    ----------
    model
        The classifier the CAVs belong to.
    cavs
        CAVs (a sequence, or name -> CAV); they may live at different layers. Column names are
        the concept names (``concept@layer`` when a concept appears at several layers).
    image_set
        The images to score (activations come from ``cache``).
    cache
        Activation cache.
    store_dir
        Where the N x K matrices are cached (e.g. ``<workspace>/results/concept_scores``);
        ``None`` computes without caching.

    Returns
    -------
    DataFrame
        ``(N, K)`` float32 scores, one column per CAV.
    """
    items = _as_cav_list(cavs)
    cols = [n for n, _ in items]
    path = None
    if store_dir is not None:
        key = hashlib.sha256(f"{model.model_id}|{image_set.key}|{_cav_key(items)}".encode()).hexdigest()[:32]
        path = Path(store_dir) / model.model_id / f"{key}.npy"
        if path.is_file():
            try:
                return pd.DataFrame(np.load(path), columns=cols)
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
    layers = list(dict.fromkeys(c.layer for _, c in items))
    acts = cache.get(model, layers, image_set)
    out = np.empty((len(image_set), len(items)), dtype=np.float32)
    for layer in layers:
        idx = [i for i, (_, c) in enumerate(items) if c.layer == layer]
        A = np.asarray(acts[layer], dtype=np.float32).reshape(len(image_set), -1)
        V = np.stack([items[i][1].vector for i in idx]).astype(np.float32)
        if V.shape[1] != A.shape[1]:
            raise ConceptError(
                f"CAVs at {layer!r} have {V.shape[1]} features but the layer has {A.shape[1]} — "
                "were they trained on another model?"
            )
        b = np.array([items[i][1].intercept for i in idx], dtype=np.float32)
        out[:, idx] = A @ V.T + b  # unit vectors: w·h + b is the signed distance
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, prefix=".tmp-", suffix=".npy") as tmp:
            np.save(tmp, out)
    return pd.DataFrame(out, columns=cols)


def channel_profile(vector: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The CAV reshaped to ``(C, H, W)`` and averaged over positions: ``(C,)``."""
    shp = tuple(int(s) for s in shape)
    if len(shp) != 3:
        raise ConceptError(f"concept maps need a conv layer (C, H, W); this layer's shape is {shp}")
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    if v.size != int(np.prod(shp)):
        raise ConceptError(f"a CAV of {v.size} values does not fit activations of shape {shp}")
    return v.reshape(shp).mean(axis=(1, 2))  # type: ignore[no-any-return]


def concept_map_from_activations(
    vector: np.ndarray, acts: np.ndarray, size: int | None = None
) -> np.ndarray:
    """Concept maps of activations ``(N, C, H, W)`` (or ``(C, H, W)``) for a CAV ``vector``.

    Each position's channel vector is dotted with the CAV's channel profile; with ``size`` the
    ``(H, W)`` maps are upsampled bilinearly to ``(size, size)``.

    Returns
    -------
    ndarray
        ``(N, H', W')`` float32 (``(H', W')`` for a single activation).
    """
    a = np.asarray(acts, dtype=np.float32)
    single = a.ndim == 3
    if single:
        a = a[None]
    if a.ndim != 4:
        raise ConceptError(f"concept maps need conv activations (N, C, H, W), got shape {a.shape}")
    prof = channel_profile(vector, a.shape[1:])
    maps = np.einsum("nchw,c->nhw", a, prof)
    if size is not None and maps.shape[1:] != (size, size):
        t = torch.from_numpy(np.ascontiguousarray(maps))[:, None]
        maps = nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()
    return maps[0] if single else maps


def concept_maps(
    model: ClassifierModel,
    cav: CAV,
    images: np.ndarray,
    *,
    size: int | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Concept maps of uint8 images ``(N, H, W, 3)`` at the CAV's (conv) layer.

    ``size`` defaults to the images' side, so the maps overlay the images directly.
    """
    imgs = np.asarray(images)
    if imgs.ndim == 3:
        imgs = imgs[None]
    out = []
    with torch.inference_mode():
        for i in range(0, len(imgs), batch_size):
            x = model.preprocess(imgs[i : i + batch_size])
            a = model.activations(x, [cav.layer])[cav.layer].float().numpy()
            out.append(concept_map_from_activations(cav.vector, a, size or imgs.shape[1]))
    return np.concatenate(out) if out else np.zeros((0, size or 0, size or 0), np.float32)


def _layer_module(model: ClassifierModel, layer: str) -> nn.Module:
    model.check_layer(layer)
    modules = dict(model.module.named_modules())
    for name in (f"stages.{layer}", layer):
        if name in modules:
            return modules[name]
    raise ModelError(f"layer {layer!r} is not a submodule of {model.architecture}")


def attribution_map(
    model: ClassifierModel,
    image: np.ndarray,
    target: int | str,
    *,
    method: str = "gradcam",
    layer: str | None = None,
    n_steps: int = 32,
    size: int | None = None,
) -> np.ndarray:
    """An attribution heatmap of one uint8 image ``(H, W, 3)`` for class ``target``.

    Parameters
    ----------
    method
        ``gradcam`` (captum ``LayerGradCam`` at ``layer``, ReLU'd) or ``integrated_gradients``
        (captum ``IntegratedGradients`` from a zero baseline in normalised space, |attribution|
        summed over colour channels).
    layer
        GradCAM layer (default: the last layer with a spatial output).
    size
        Output side (default: the image's side).

    Returns
    -------
    ndarray
        ``(size, size)`` float32 heatmap.
    """
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ConceptError(f"attribution_map takes one (H, W, 3) image, got shape {img.shape}")
    k = model.classes.index(target) if isinstance(target, str) else int(target)
    if not 0 <= k < len(model.classes):
        raise ConceptError(f"target class {target!r} out of range for {list(model.classes)}")
    side = size or img.shape[0]
    x = model.preprocess(img[None])
    if method == "gradcam":
        lay = layer or _last_spatial_layer(model, x)
        gc = LayerGradCam(model.module, _layer_module(model, lay))
        att = gc.attribute(x, target=k, relu_attributions=True)
        att = LayerAttribution.interpolate(att, (side, side), interpolate_mode="bilinear")
        return att[0, 0].detach().float().numpy()  # type: ignore[no-any-return]
    if method == "integrated_gradients":
        ig = IntegratedGradients(model.module)
        att = ig.attribute(x, baselines=torch.zeros_like(x), target=k, n_steps=n_steps)
        heat = att[0].abs().sum(0, keepdim=True)[None]
        if heat.shape[-1] != side:
            heat = nn.functional.interpolate(heat, size=(side, side), mode="bilinear", align_corners=False)
        return heat[0, 0].detach().float().numpy()  # type: ignore[no-any-return]
    raise ConceptError(f"unknown attribution method {method!r}; choose one of {list(ATTRIBUTION_METHODS)}")


def _last_spatial_layer(model: ClassifierModel, x: torch.Tensor) -> str:
    with torch.inference_mode():
        acts = model.activations(x, model.layers)
    spatial = [n for n in model.layers if n in acts and acts[n].ndim == 4]
    if not spatial:
        raise ModelError(f"{model.architecture} has no layer with a spatial output for GradCAM")
    return spatial[-1]
