"""Out-of-core data sets (issue 15): chunked writing, streaming hashes, flat memory, mini-batch
clustering and the DuckDB co-occurrence path over Parquet."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import concepts.data._chunks as chunks
import concepts.discovery._cluster_fit as clusters
from concepts import DataError, Dataset, DatasetInfo, ImageSet
from concepts.data import hash_array
from concepts.discovery import (
    ClusteringResult,
    attribute_class_table,
    attribute_pair_table,
    cluster_activations,
)
from concepts.importers import import_class_folders


def _cases(n: int, seed: int = 0) -> tuple[DatasetInfo, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    lab = np.where(rng.random(n) < 0.4, "mel", "nev")
    ink = ((lab == "mel") & (rng.random(n) < 0.6)) | (rng.random(n) < 0.05)
    cases = pd.DataFrame({
        "case_id": [f"c{i}" for i in range(n)],
        "label": lab,
        "split": rng.choice(["train", "val"], n, p=[0.7, 0.3]),
        "ink": ink.astype(int),
        "hair": (rng.random(n) < 0.3).astype(int),
    })
    info = DatasetInfo("toy", "test", ("mel", "nev"), 12, artifacts=("ink", "hair"))
    return info, cases, rng.integers(0, 256, (n, 12, 12, 3), dtype=np.uint8)


def _old_content_hash(images: np.ndarray, cases: pd.DataFrame) -> str:
    """The content hash as it was computed before chunking: one pass over the whole array."""
    h = hashlib.sha256()
    h.update(str(images.shape).encode())
    h.update(str(images.dtype).encode())
    h.update(np.ascontiguousarray(images).data)
    h.update(cases.to_json(orient="records").encode())
    return h.hexdigest()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of about 3 images and a page hand-back every 5: every path runs many times."""
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 3 * 12 * 12 * 3)
    monkeypatch.setattr(chunks, "RELEASE_BYTES", 5 * 12 * 12 * 3)


def test_chunked_write_is_byte_identical_to_np_save_with_the_same_hash(tmp_path: Path, small_chunks: None) -> None:
    info, cases, images = _cases(50)
    ds = Dataset.write(tmp_path / "d", info, cases, images)
    np.save(tmp_path / "ref.npy", images)
    assert (tmp_path / "d" / "images.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()
    assert ds.info.content_hash == _old_content_hash(images, cases)
    assert isinstance(ds.images, np.memmap) and np.array_equal(ds.images, images)
    # a fresh process-level check (no cached verification) streams the file and agrees
    Dataset.load(tmp_path / "d", mmap=False, verify=False).verify()
    assert hash_array(ds.images) == hash_array(images) == hash_array(np.asarray(images), "")
    with pytest.raises(DataError, match="already exists"):
        Dataset.write(tmp_path / "d", info, cases, images)


def test_create_fills_rows_in_place_and_aborts_cleanly(tmp_path: Path, small_chunks: None) -> None:
    info, cases, images = _cases(20)
    with Dataset.create(tmp_path / "d", images.shape) as w:
        for i in range(0, 20, 7):  # slices and single rows, out of order
            w.images[i : i + 7] = images[i : i + 7]
        w.images[3] = images[3]
        ds = w.commit(info, cases)
    assert ds.info.content_hash == _old_content_hash(images, cases)
    assert np.array_equal(Dataset.load(tmp_path / "d").images, images)
    with pytest.raises(RuntimeError, match="boom"), Dataset.create(tmp_path / "e", images.shape) as w:
        w.images[0] = images[0]
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary directory left
    with Dataset.create(tmp_path / "f", images.shape) as w, pytest.raises(DataError, match="19 cases but 20 images"):
        w.commit(info, cases.iloc[:19])  # validation still runs on commit
    assert not (tmp_path / "f").exists()
    with pytest.raises(DataError, match=r"\(N, S, S, 3\)"):
        Dataset.create(tmp_path / "g", (4, 8, 8))


def test_empty_data_set_round_trips(tmp_path: Path) -> None:
    info, cases, images = _cases(0)
    ds = Dataset.write(tmp_path / "d", info, cases, images)
    assert ds.images.shape == (0, 12, 12, 3) and ds.info.content_hash == _old_content_hash(images, cases)


def test_image_set_of_a_run_of_rows_is_a_view_with_the_same_images(tmp_path: Path) -> None:
    info, cases, images = _cases(30)
    ds = Dataset.write(tmp_path / "d", info, cases, images)
    run, scattered = ds.image_set(np.arange(5, 25)), ds.image_set([5, 9, 2])
    assert np.shares_memory(run.images, ds.images)  # no copy of the rows
    assert np.array_equal(run.images, images[5:25]) and np.array_equal(scattered.images, images[[5, 9, 2]])
    assert run.key != ds.image_set(np.arange(5, 24)).key
    assert ImageSet.from_array("x", ds.images).key == ImageSet.from_array("x", images).key


def _png_folders(root: Path, n: int, size: int) -> Path:
    rng = np.random.default_rng(n)
    for i in range(n):
        folder = root / ("mel" if i % 2 else "nev")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"i{i}.png")
    return root


def _import_peak(tmp_path: Path, n: int, size: int) -> int:
    src = _png_folders(tmp_path / f"src{n}", n, size)
    tracemalloc.start()
    try:
        ds = import_class_folders(src, tmp_path / f"out{n}", image_size=size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(ds) == n
    return peak


def test_import_memory_does_not_grow_with_the_number_of_images(tmp_path: Path) -> None:
    size, n = 96, 24
    per_image = size * size * 3
    small, large = _import_peak(tmp_path, n, size), _import_peak(tmp_path, 4 * n, size)
    # holding the images would add 3 n images (about 0.66 MB) between the two imports; the
    # chunked writer adds less than a quarter of that (the cases table and file lists grow)
    assert large - small < 0.25 * 3 * n * per_image, (small, large)


def _blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two classes, each with a well separated sub-cluster (an 'artifact') in 40% of its cases."""
    rng = np.random.default_rng(seed)
    lab = np.where(np.arange(n) % 2 == 0, "a", "b").astype(object)
    x = rng.normal(size=(n, 12))
    x[lab == "a", :2] += 3.0
    art = rng.random(n) < 0.4
    x[art, 6:10] += 8.0
    return x, lab, art


def test_minibatch_kmeans_above_the_threshold_finds_the_same_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    x, lab, art = _blobs(600)
    full = cluster_activations(x, lab, classes=("a", "b"), k=2, seed=0)
    called: list[int] = []
    real = clusters._fit_minibatch

    def spy(z: np.ndarray, k: int, seed: int, n_init: int, epochs: int = 3) -> np.ndarray:
        called.append(len(z))
        return real(z, k, seed, n_init, epochs)

    monkeypatch.setattr(clusters, "MINIBATCH_MIN_ROWS", 50)
    monkeypatch.setattr(clusters, "MINIBATCH_ROWS", 64)
    monkeypatch.setattr(clusters, "_fit_minibatch", spy)
    mini = cluster_activations(x, lab, classes=("a", "b"), k=2, seed=0)
    assert called and min(called) >= 50  # the mini-batch path ran, per class
    assert isinstance(mini, ClusteringResult) and list(mini.clusters.columns) == list(full.clusters.columns)
    assert mini.k == full.k == {"a": 2, "b": 2}
    assert mini.holdout is not None
    disc = ~mini.holdout
    for res in (full, mini):  # both split each class into artifact / no artifact
        for c in res.clusters["cluster"]:
            share = art[disc & res.member_mask(int(c))].mean()
            assert share < 0.05 or share > 0.95
    # same partition up to the cluster ids
    pairs = set(zip(full.assignments[disc].tolist(), mini.assignments[disc].tolist(), strict=True))
    assert len(pairs) == 4
    again = cluster_activations(x, lab, classes=("a", "b"), k=2, seed=0)
    assert np.array_equal(again.assignments, mini.assignments)  # deterministic


def test_chunked_pooling_of_memory_mapped_conv_maps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(70, 4, 3, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", maps)
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    ref = {p: clusters.pool_activations(maps, p) for p in clusters.POOLINGS}
    monkeypatch.setattr(clusters, "MINIBATCH_MIN_ROWS", 10)
    monkeypatch.setattr(clusters, "MINIBATCH_ROWS", 16)
    for p, want in ref.items():
        np.testing.assert_array_equal(clusters.pool_activations(mm, p), want)


def test_duckdb_over_parquet_equals_the_in_memory_tables(tmp_path: Path) -> None:
    info, cases, images = _cases(3000, seed=1)
    Dataset.write(tmp_path / "d", info, cases, images)
    from_dir = attribute_class_table(tmp_path / "d")
    in_memory = attribute_class_table(cases)
    pd.testing.assert_frame_equal(from_dir.reset_index(drop=True), in_memory.reset_index(drop=True))
    streamed = attribute_pair_table(tmp_path / "d", batch_size=97)  # many small batches
    whole = attribute_pair_table(cases, batch_size=1_000_000)
    pd.testing.assert_frame_equal(streamed, whole)
    ink = from_dir[(from_dir["split"] == "train") & (from_dir["attribute"] == "ink") & (from_dir["class"] == "mel")]
    assert float(ink["odds_ratio"].iloc[0]) > 5  # the planted association is found
