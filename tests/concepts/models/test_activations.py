"""Activation cache: computed once, reused across instances, invalidated by any key part."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from concepts import ActivationCache, ClassifierModel, ImageSet, extract_activations


def _images(n: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)


def test_cache_hits_and_matches_direct_extraction(tmp_path: Path) -> None:
    m = ClassifierModel.build("tiny-cnn", ("a", "b"))
    iset = ImageSet.from_array("x", _images())
    cache = ActivationCache(tmp_path, batch_size=4)
    a1 = cache.get(m, ["conv2", "pool"], iset)
    assert cache.misses == 2 and cache.hits == 0
    direct = extract_activations(m, iset.images, ["conv2", "pool"])
    np.testing.assert_array_equal(a1["conv2"], direct["conv2"])
    cache2 = ActivationCache(tmp_path)  # a new instance (another process) reuses the files
    a2 = cache2.get(m, "pool", iset)
    assert cache2.hits == 1 and cache2.misses == 0
    np.testing.assert_array_equal(a2["pool"], a1["pool"])


def test_cache_key_changes_with_model_images_and_preprocessing(tmp_path: Path) -> None:
    m = ClassifierModel.build("tiny-cnn", ("a", "b"))
    iset = ImageSet.from_array("x", _images())
    cache = ActivationCache(tmp_path)
    k = cache.key(m, "pool", iset)
    assert cache.key(m, "conv3", iset) != k
    assert cache.key(m, "pool", ImageSet.from_array("x", _images(seed=1))) != k
    m2 = ClassifierModel.build("tiny-cnn", ("a", "b"))
    with torch.no_grad():
        m2.module.stages["fc"].bias.add_(1.0)
    m2.invalidate_id()
    assert cache.key(m2, "pool", iset) != k
    from dataclasses import replace

    m3 = ClassifierModel.build("tiny-cnn", ("a", "b"))
    m3.preprocess = replace(m3.preprocess, size=32)
    assert cache.key(m3, "pool", iset) != k


def test_corrupt_cache_entry_is_recomputed(tmp_path: Path) -> None:
    m = ClassifierModel.build("tiny-cnn", ("a", "b"))
    iset = ImageSet.from_array("x", _images(4))
    cache = ActivationCache(tmp_path)
    a = cache.get(m, "pool", iset)["pool"]
    cache.path(m, "pool", iset).write_bytes(b"garbage")
    b = ActivationCache(tmp_path).get(m, "pool", iset)["pool"]
    np.testing.assert_array_equal(a, b)


def test_empty_image_set(tmp_path: Path) -> None:
    m = ClassifierModel.build("tiny-cnn", ("a", "b"))
    out = extract_activations(m, np.zeros((0, 64, 64, 3), np.uint8), ["pool"])
    assert out["pool"].shape == (0, 64)
