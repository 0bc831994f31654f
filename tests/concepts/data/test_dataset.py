"""The on-disk data-set format: validation and atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from concepts import DataError, Dataset, DatasetInfo, WorkspaceError


def _parts(n: int = 6) -> tuple[DatasetInfo, pd.DataFrame, np.ndarray]:
    info = DatasetInfo(name="t", kind="test", classes=("melanoma", "nevus"), image_size=8, artifacts=("ink",))
    cases = pd.DataFrame(
        {
            "case_id": [f"c{i}" for i in range(n)],
            "label": ["melanoma", "nevus"] * (n // 2),
            "split": ["train"] * (n - 2) + ["val"] * 2,
            "ink": [1, 0] * (n // 2),
        }
    )
    return info, cases, np.zeros((n, 8, 8, 3), np.uint8)


def test_write_and_load(tmp_path: Path) -> None:
    info, cases, images = _parts()
    ds = Dataset.write(tmp_path / "d", info, cases, images)
    assert len(ds) == 6 and ds.info.content_hash
    assert list(ds.indices("val")) == [4, 5]
    assert list(ds.indices("train", ink=1)) == [0, 2]
    assert list(ds.labels([0, 1])) == [0, 1]
    assert ds.image_set([0, 1]).key != ds.image_set([1, 0]).key
    with pytest.raises(DataError, match="unknown split"):
        ds.indices("nope")


@pytest.mark.parametrize(
    ("mutate", "msg"),
    [
        (lambda c: c.assign(case_id=["c0"] * 6), "duplicate case_id"),
        (lambda c: c.assign(label=["melanoma", "cat"] * 3), "'cat' is not one of"),
        (lambda c: c.assign(ink=[2] * 6), "0/1 only"),
        (lambda c: c.drop(columns=["split"]), "required column 'split'"),
    ],
)
def test_invalid_tables_are_refused_and_nothing_written(tmp_path: Path, mutate, msg: str) -> None:  # type: ignore[no-untyped-def]
    info, cases, images = _parts()
    with pytest.raises(DataError, match=msg):
        Dataset.write(tmp_path / "d", info, mutate(cases), images)
    assert not (tmp_path / "d").exists()
    assert list(tmp_path.iterdir()) == []


def test_no_overwrite_without_flag(tmp_path: Path) -> None:
    info, cases, images = _parts()
    Dataset.write(tmp_path / "d", info, cases, images)
    with pytest.raises(DataError, match="already exists"):
        Dataset.write(tmp_path / "d", info, cases, images)
    Dataset.write(tmp_path / "d", info, cases.assign(ink=0), images, overwrite=True)
    assert Dataset.load(tmp_path / "d").cases["ink"].sum() == 0


def test_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="workbench demo"):
        Dataset.load(tmp_path / "none")
