"""Clustering at large N (issue 15): above ``MINIBATCH_MIN_ROWS`` the features are pooled chunk by
chunk from the (memory-mapped) activations, standardised with ``partial_fit`` and reduced with an
``IncrementalPCA``; memory grows only by the ``(N, components)`` scores."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import concepts.discovery._cluster_fit as fit
from concepts.discovery import cluster_activations


def _planted_maps(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conv maps (N, 8, 4, 4): class ``a`` lifts channels 0-1 everywhere; an 'artifact' in 35 % of
    the cases (either class) is a bright spot in channels 4-6 of one corner."""
    rng = np.random.default_rng(seed)
    lab = np.where(rng.random(n) < 0.5, "a", "b").astype(object)
    maps = rng.normal(size=(n, 8, 4, 4)).astype(np.float32)
    maps[lab == "a", :2] += 1.5
    art = rng.random(n) < 0.35
    maps[np.ix_(art, np.array([4, 5, 6]), np.array([0, 1]), np.array([0, 1]))] += 6.0
    return maps, lab, art


@pytest.fixture
def large_from_300(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The large-N path from 300 rows on, in chunks of 64 rows; records the streamed reductions."""
    monkeypatch.setattr(fit, "MINIBATCH_MIN_ROWS", 300)
    monkeypatch.setattr(fit, "MINIBATCH_ROWS", 64)
    calls: list[int] = []
    real = fit._reduce_streaming

    def spy(x: fit.PooledRows, disc: np.ndarray, n_components: int) -> tuple[np.ndarray, int]:
        calls.append(len(x))
        return real(x, disc, n_components)

    monkeypatch.setattr(fit, "_reduce_streaming", spy)
    return calls


def test_large_path_is_taken_and_separates_the_planted_artifact(tmp_path: Path, large_from_300: list[int]) -> None:
    maps, lab, art = _planted_maps(1200)
    np.save(tmp_path / "acts.npy", maps)
    mm = np.load(tmp_path / "acts.npy", mmap_mode="r")
    kw = {"classes": ("a", "b"), "k": 2, "n_components": 6, "seed": 0}
    res = cluster_activations(mm, lab, **kw)  # type: ignore[arg-type]
    assert large_from_300 == [1200]  # streamed: pooled chunk by chunk, IncrementalPCA
    assert "6 PCA components" in res.k_selection
    assert res.holdout is not None
    disc = ~res.holdout
    for c in res.clusters["cluster"]:  # each class splits into artifact / no artifact
        share = art[disc & res.member_mask(int(c))].mean()
        assert share < 0.05 or share > 0.95, share
    again = cluster_activations(mm, lab, **kw)  # type: ignore[arg-type]
    assert np.array_equal(again.assignments, res.assignments)  # deterministic
    small = cluster_activations(maps[:299], lab[:299], **kw)  # type: ignore[arg-type]
    assert large_from_300 == [1200, 1200] and small.k == {"a": 2, "b": 2}  # below: the in-memory path


def test_streamed_reduction_matches_pca_up_to_sign(large_from_300: list[int]) -> None:
    maps, _, _ = _planted_maps(900, seed=1)
    disc = np.random.default_rng(0).random(900) < 0.5
    x = fit.cluster_features(maps, "meanmax")
    assert isinstance(x, fit.PooledRows) and x.n_features == 16
    z, nc = fit._reduce(x, disc, 5, 0)
    ref, nc_ref = fit._reduce(fit.pool_activations(maps, "meanmax"), disc, 5, 0)
    assert nc == nc_ref == 5 and z.shape == ref.shape == (900, 5)
    for j in range(3):  # the leading components (well separated eigenvalues) agree up to sign
        r = abs(np.corrcoef(z[:, j], ref[:, j])[0, 1])
        assert r > 0.99, (j, r)


def _peak_reduce_bytes(tmp_path: Path, n: int) -> int:
    rng = np.random.default_rng(n)
    np.save(tmp_path / f"x{n}.npy", rng.normal(size=(n, 256)).astype(np.float32))
    mm = np.load(tmp_path / f"x{n}.npy", mmap_mode="r")
    disc = rng.random(n) < 0.5
    tracemalloc.start()
    try:
        z, nc = fit._reduce(fit.cluster_features(mm, "meanmax"), disc, 8, 0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert z.shape == (n, 8) and nc == 8
    return peak


def test_reduction_memory_grows_only_by_the_scores(tmp_path: Path, large_from_300: list[int]) -> None:
    small, large = _peak_reduce_bytes(tmp_path, 2000), _peak_reduce_bytes(tmp_path, 8000)
    extra_rows = 6000
    scores = extra_rows * 8 * 8  # the (N, 8) float64 scores of the extra rows: 0.4 MB
    features = extra_rows * 256 * 8  # what holding the pooled features would add: 12 MB
    assert large - small < 2 * scores + (1 << 19), (small, large)
    assert large - small < features / 8
