"""End-to-end training from a memory map (issue 15): above ``PREPROCESS_ONCE_BYTES`` each batch is
read (``RowView``) and preprocessed when used; the trained weights are the same bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import concepts.models._training as training
from concepts import ClassifierModel
from concepts.data import RowView
from concepts.models import train_end_to_end


def test_batch_by_batch_preprocessing_trains_the_same_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "img.npy", rng.integers(0, 256, (60, 96, 96, 3), dtype=np.uint8))
    mm = np.load(tmp_path / "img.npy", mmap_mode="r")
    rows = rng.permutation(60)[:40]
    labels = rows % 2
    once = train_end_to_end(ClassifierModel.build("tiny-cnn", ("a", "b")), np.asarray(mm)[rows], labels,
                            epochs=2, batch_size=8)
    monkeypatch.setattr(training, "PREPROCESS_ONCE_BYTES", 0)  # every batch preprocessed when used
    calls: list[int] = []
    real = training._batch_inputs

    def spy(*args: object) -> object:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(training, "_batch_inputs", spy)
    streamed = train_end_to_end(ClassifierModel.build("tiny-cnn", ("a", "b")), RowView(mm, rows), labels,
                                epochs=2, batch_size=8)
    from_memmap = train_end_to_end(ClassifierModel.build("tiny-cnn", ("a", "b")), mm[np.sort(rows)],
                                   labels[np.argsort(rows)], epochs=1, batch_size=8)
    assert len(calls) == 2 * 5 + 5  # 5 batches per epoch, read when used
    assert streamed.model_id == once.model_id  # the same weights
    assert from_memmap.model_id != once.model_id  # (a different training run differs)
