"""Streaming extraction (flat memory, atomic files), device resolution and the compute options."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import concepts.models._activations as activations_mod
import concepts.models._compute as compute_mod
from concepts import (
    ActivationCache,
    ClassifierModel,
    Compute,
    ComputeError,
    ImageSet,
    extract_activations,
)
from concepts.models import RowWriter, on_device, resolve_device
from concepts.tcav import class_gradients
from workbench.cli import app


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)


def _peak_extraction_bytes(tmp_path: Path, n: int) -> tuple[int, np.ndarray]:
    m = ClassifierModel.build("tiny-cnn", ("a", "b"))
    iset = ImageSet.from_array(f"n{n}", _images(n))
    cache = ActivationCache(tmp_path / f"n{n}", batch_size=32)
    tracemalloc.start()
    try:
        out = cache.get(m, ["conv1", "pool"], iset, mmap=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, out["conv1"]


def test_extraction_memory_does_not_grow_with_n(tmp_path: Path) -> None:
    peak_n, _ = _peak_extraction_bytes(tmp_path, 128)
    peak_4n, conv1 = _peak_extraction_bytes(tmp_path, 512)
    full = conv1.nbytes  # 512 x 16 x 32 x 32 float32 = 32 MiB: what an in-memory layer would take
    assert isinstance(conv1, np.memmap) and not conv1.flags.writeable
    assert peak_4n < 1.5 * peak_n + (1 << 20), (peak_n, peak_4n)
    assert peak_4n < full / 8, (peak_4n, full)


def test_streamed_cache_equals_in_memory_extraction(tmp_path: Path) -> None:
    m = ClassifierModel.build("tiny-cnn", ("a", "b"))
    iset = ImageSet.from_array("x", _images(37))  # 37: a short last batch
    got = ActivationCache(tmp_path, batch_size=8).get(m, ["conv3", "pool"], iset, mmap=True)
    direct = extract_activations(m, iset.images, ["conv3", "pool"], batch_size=8)
    for layer in ("conv3", "pool"):
        np.testing.assert_array_equal(np.asarray(got[layer]), direct[layer])


def test_failed_extraction_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = ClassifierModel.build("tiny-cnn", ("a", "b"))
    iset = ImageSet.from_array("x", _images(40))
    calls = {"n": 0}
    real = activations_mod.forward_batch

    def flaky(*args: object, **kwargs: object) -> dict[str, np.ndarray]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker lost")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(activations_mod, "forward_batch", flaky)
    cache = ActivationCache(tmp_path, batch_size=8)
    with pytest.raises(RuntimeError, match="worker lost"):
        cache.get(m, "pool", iset)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "a partial or temporary file was left"
    monkeypatch.setattr(activations_mod, "forward_batch", real)
    assert cache.get(m, "pool", iset)["pool"].shape == (40, 64)


def test_row_writer_refuses_to_commit_with_a_missing_row(tmp_path: Path) -> None:
    final = tmp_path / "a" / "x.npy"
    w = RowWriter({"pool": final}, {"pool": (4,)}, 10)
    w.write(0, {"pool": np.ones((6, 4), np.float32)})
    w.write(6, {"pool": np.ones((3, 4), np.float32)})
    w.write(0, {"pool": np.full((2, 4), 2, np.float32)})  # a retried batch overwrites, never appends
    assert w.missing().tolist() == [9]
    with pytest.raises(ComputeError, match="1 of 10 rows"):
        w.commit()
    assert not list(tmp_path.rglob("*.npy"))
    w2 = RowWriter({"pool": final}, {"pool": (4,)}, 3)
    with pytest.raises(ComputeError, match="outside"):
        w2.write(2, {"pool": np.ones((2, 4), np.float32)})
    w2.abort()


def test_cache_key_is_unchanged_for_fp32_and_differs_for_bf16(tmp_path: Path) -> None:
    m = ClassifierModel.build("tiny-cnn", ("a", "b"))
    iset = ImageSet.from_array("x", _images(6))
    raw = "|".join([m.model_id, "pool", iset.key, m.preprocess.key()])  # the key before compute existed
    fp32 = ActivationCache(tmp_path).key(m, "pool", iset)
    assert fp32 == hashlib.sha256(raw.encode()).hexdigest()[:40]
    bf16 = ActivationCache(tmp_path, compute=Compute(precision="bf16"))
    assert bf16.key(m, "pool", iset) != fp32
    a16 = bf16.get(m, "pool", iset)["pool"]
    a32 = ActivationCache(tmp_path).get(m, "pool", iset)["pool"]
    assert a16.dtype == np.float32 and not np.array_equal(a16, a32)
    np.testing.assert_allclose(a16, a32, rtol=0.05, atol=0.02)


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compute_mod, "_cuda_available", lambda: True)
    monkeypatch.setattr(compute_mod, "_mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(compute_mod, "_cuda_available", lambda: False)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(compute_mod, "_mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ComputeError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ComputeError, match="MPS"):
        resolve_device("mps")
    with pytest.raises(ComputeError, match="unknown device"):
        Compute(device="tpu")
    with pytest.raises(ComputeError, match="needs --engine ray"):
        Compute(ray_address="127.0.0.1:6379")


def test_cpu_device_gives_the_default_results(tmp_path: Path) -> None:
    m = ClassifierModel.build("tiny-cnn", ("a", "b"))
    imgs = _images(12)
    acts = extract_activations(m, imgs, ["conv3"], compute=Compute(device="cpu"))["conv3"]
    np.testing.assert_array_equal(acts, extract_activations(m, imgs, ["conv3"])["conv3"])
    g = class_gradients(m, "conv3", acts, 1, device="cpu")
    np.testing.assert_array_equal(g, class_gradients(m, "conv3", acts, 1))
    with on_device(m, "auto" if not torch.cuda.is_available() else "cpu") as dev:
        assert dev == m.device == torch.device("cpu")
    assert m.device == torch.device("cpu")


def test_cli_rejects_bad_compute_options(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["clusters", "-w", str(tmp_path), "--engine", "spark"])
    assert res.exit_code == 1 and "unknown engine 'spark'" in res.output
    res = runner.invoke(app, ["tcav", "-w", str(tmp_path), "--ray-address", "127.0.0.1:6379"])
    assert res.exit_code == 1 and "needs --engine ray" in res.output
    res = runner.invoke(app, ["train", "-w", str(tmp_path), "--device", "tpu"])
    assert res.exit_code == 1 and "unknown device 'tpu'" in res.output


def test_training_on_an_explicit_cpu_device_matches_the_default() -> None:
    from concepts.models import train_end_to_end

    imgs = _images(24)
    labels = np.arange(24) % 2
    a = train_end_to_end(ClassifierModel.build("tiny-cnn", ("a", "b")), imgs, labels, epochs=1, batch_size=8)
    b = train_end_to_end(ClassifierModel.build("tiny-cnn", ("a", "b")), imgs, labels, epochs=1, batch_size=8,
                         device="cpu")
    assert a.model_id == b.model_id and b.device == torch.device("cpu")
