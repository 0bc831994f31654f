"""Concept space: concept scores (cached), concept maps, attribution heatmaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from concepts import ActivationCache, ClassifierModel, ConceptError, ImageSet
from concepts.tcav import (
    CAVTrainer,
    attribution_map,
    channel_profile,
    concept_map_from_activations,
    concept_maps,
    concept_scores,
)


@pytest.fixture(scope="module")
def world():
    model = ClassifierModel.build("tiny-cnn", ("melanoma", "nevus"), seed=0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 120, (40, 64, 64, 3), dtype=np.uint8)
    images[:20, 40:60, 4:24] = (30, 220, 60)  # a green square (bottom left) on the first half
    with torch.inference_mode():
        acts = model.activations(model.preprocess(images), ["conv1", "conv2"])
    cavs = []
    for layer in ("conv1", "conv2"):
        a = acts[layer].numpy()
        tr = CAVTrainer("pattern").fit(a, np.r_[np.ones(20), np.zeros(20)])
        cavs.append(tr.to_cav("green", "random", layer))
    return model, images, {k: v.numpy() for k, v in acts.items()}, cavs


def test_concept_scores_are_signed_distances_and_cached(world, tmp_path):
    model, images, acts, cavs = world
    iset = ImageSet.from_array("imgs", images)
    cache = ActivationCache(tmp_path / "acts")
    df = concept_scores(model, cavs, iset, cache, store_dir=tmp_path / "scores")
    assert list(df.columns) == ["green@conv1", "green@conv2"] and df.shape == (40, 2)
    np.testing.assert_allclose(df["green@conv2"], cavs[1].score(acts["conv2"]), rtol=1e-4, atol=1e-4)
    assert (df["green@conv1"][:20] > 0).mean() > 0.9 and (df["green@conv1"][20:] < 0).mean() > 0.9
    files = list((tmp_path / "scores").rglob("*.npy"))
    assert len(files) == 1
    misses = cache.misses
    again = concept_scores(model, cavs, iset, cache, store_dir=tmp_path / "scores")
    np.testing.assert_array_equal(again.to_numpy(), df.to_numpy())
    assert cache.misses == misses  # served from the score cache
    one = concept_scores(model, {"g": cavs[0]}, iset, cache)
    assert list(one.columns) == ["g"]
    with pytest.raises(ConceptError, match="no CAVs"):
        concept_scores(model, [], iset, cache)


def test_concept_maps_light_up_where_the_concept_is(world):
    model, images, acts, cavs = world
    maps = concept_maps(model, cavs[0], images[:4])
    assert maps.shape == (4, 64, 64)
    for m in maps:
        inside = m[40:60, 4:24].mean()
        outside = m[:30, 30:].mean()
        assert inside > outside
    prof = channel_profile(cavs[1].vector, acts["conv2"].shape[1:])
    assert prof.shape == (acts["conv2"].shape[1],)
    single = concept_map_from_activations(cavs[1].vector, acts["conv2"][0])
    np.testing.assert_allclose(single, np.einsum("chw,c->hw", acts["conv2"][0], prof), rtol=1e-5, atol=1e-5)
    with pytest.raises(ConceptError, match="conv layer"):
        channel_profile(np.ones(8), (8,))


@pytest.mark.parametrize("method", ["gradcam", "integrated_gradients"])
def test_attribution_maps(world, method):
    model, images, _, _ = world
    heat = attribution_map(model, images[0], "melanoma", method=method, n_steps=8)
    assert heat.shape == (64, 64) and np.isfinite(heat).all()
    if method == "gradcam":
        assert (heat >= 0).all()
        assert attribution_map(model, images[0], 1, layer="conv2", size=32).shape == (32, 32)
    with pytest.raises(ConceptError, match="unknown attribution method"):
        attribution_map(model, images[0], 0, method="lime")
