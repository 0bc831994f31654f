"""Scattered rows of a memory-mapped array (issue 15): ``take_rows`` reads them in sorted windows
and releases the map's pages, ``RowView`` gathers one slice (a batch) at a time."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import concepts.data._chunks as chunks
from concepts import ClassifierModel, extract_activations
from concepts.data import RowView, take_rows


def _memmap(tmp_path: Path, n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    np.save(tmp_path / f"img{n}.npy", rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))
    return np.load(tmp_path / f"img{n}.npy", mmap_mode="r")


def test_take_rows_equals_fancy_indexing_in_any_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mm = _memmap(tmp_path, 300)
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 5 * mm[0].nbytes)  # windows of 5 rows: many of them
    rng = np.random.default_rng(1)
    for rows in (rng.permutation(300)[:120], np.r_[7, 7, 299, -1, 0, 150, 3], np.arange(40, 90),
                 rng.choice(300, 17) * 0 + 12, np.zeros(0, np.int64)):
        got = take_rows(mm, rows)
        want = np.asarray(mm)[rows]
        assert type(got) is np.ndarray and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    plain = np.asarray(mm).copy()
    np.testing.assert_array_equal(take_rows(plain, [5, 2]), plain[[5, 2]])  # not a map: plain indexing
    with pytest.raises(IndexError):
        take_rows(mm, [0, 300])
    with pytest.raises(IndexError):
        take_rows(mm, [-301])


def test_row_view_gathers_slices_lazily(tmp_path: Path) -> None:
    mm = _memmap(tmp_path, 50)
    rows = np.random.default_rng(2).permutation(50)[:23]
    view = RowView(mm, rows)
    assert len(view) == 23 and view.shape == (23, 32, 32, 3) and view.dtype == np.uint8
    np.testing.assert_array_equal(view[5:12], np.asarray(mm)[rows[5:12]])
    np.testing.assert_array_equal(np.asarray(view), np.asarray(mm)[rows])
    np.testing.assert_array_equal(view[np.array([3, 0])], np.asarray(mm)[rows[[3, 0]]])
    np.testing.assert_array_equal(view[4], mm[rows[4]])


def _rss_file_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile line")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_gathering_releases_the_pages_of_the_map(tmp_path: Path) -> None:
    mm = _memmap(tmp_path, 1500, size=64)  # 18 MB of images
    rows = np.random.default_rng(3).permutation(1500)[:1000]
    before = _rss_file_kb()
    got = take_rows(mm, rows)
    grown_take = _rss_file_kb() - before
    again = np.load(tmp_path / "img1500.npy", mmap_mode="r")  # a fresh map of the file, indexed the old way
    before = _rss_file_kb()
    old = np.asarray(again[rows])
    grown_fancy = _rss_file_kb() - before
    np.testing.assert_array_equal(got, old)
    # the fancy index leaves about the gathered rows' pages (12 MB) resident in this process;
    # take_rows keeps at most one window of pages
    assert grown_take * 1024 < 2 * chunks.CHUNK_BYTES, (grown_take, grown_fancy)
    assert grown_fancy * 1024 > 0.5 * got.nbytes, (grown_take, grown_fancy)


def _peak_extraction(mm: np.ndarray, rows: np.ndarray) -> tuple[int, np.ndarray]:
    m = ClassifierModel.build("tiny-cnn", ("a", "b"))
    tracemalloc.start()
    try:
        out = extract_activations(m, RowView(mm, rows), ["pool"], batch_size=16)["pool"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, out


def test_extraction_from_a_row_view_holds_one_batch_of_images(tmp_path: Path) -> None:
    mm = _memmap(tmp_path, 1200, size=48)
    rng = np.random.default_rng(4)
    small_rows, large_rows = rng.permutation(1200)[:150], rng.permutation(1200)[:600]
    peak_n, _ = _peak_extraction(mm, small_rows)
    peak_4n, acts = _peak_extraction(mm, large_rows)
    m = ClassifierModel.build("tiny-cnn", ("a", "b"))
    ref = extract_activations(m, np.asarray(mm)[large_rows[:40]], ["pool"], batch_size=16)["pool"]
    np.testing.assert_allclose(acts[:40], ref, rtol=1e-5, atol=1e-6)  # same rows, same order
    gathered = 450 * mm[0].nbytes  # what gathering the extra 450 images first would add (3.1 MB)
    assert peak_4n - peak_n < 0.25 * gathered, (peak_n, peak_4n)
