"""The derm7pt importer: label table, metadata reader, splits, images and every error path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from concepts import CRITERIA, DataError, Dataset, ImageError
from concepts.importers import (
    DERM7PT_CLASSES,
    DERM7PT_CRITERION_POINTS,
    DERM7PT_LABELS,
    DERM7PT_MELANOMA_DIAGNOSES,
    DERM7PT_METADATA,
    import_derm7pt,
    is_melanoma_diagnosis,
    read_derm7pt_meta,
    read_derm7pt_splits,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "derm7pt"
META = FIXTURE / "meta" / "meta.csv"


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """A writable copy of the fixture release."""
    root = tmp_path / "release"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return root


def _edit_meta(root: Path, row: int, column: str, value: str) -> None:
    p = root / "meta" / "meta.csv"
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    df.loc[row, column] = value
    df.to_csv(p, index=False)


def _nothing_written(out: Path) -> bool:
    return not out.exists() and not any(out.parent.glob(f".{out.name}*"))


# ---------------------------------------------------------------------- the facts
def test_label_table_matches_the_reference() -> None:
    assert tuple(DERM7PT_LABELS) == CRITERIA
    assert dict(DERM7PT_CRITERION_POINTS) == {
        "pigment_network": 2, "blue_whitish_veil": 2, "vascular_structures": 2,
        "pigmentation": 1, "streaks": 1, "dots_and_globules": 1, "regression_structures": 1,
    }
    scoring = {c: sorted(k for k, v in t.items() if v) for c, t in DERM7PT_LABELS.items()}
    assert scoring == {
        "pigment_network": ["atypical"],
        "blue_whitish_veil": ["present"],
        "vascular_structures": ["dotted", "linear irregular"],
        "pigmentation": ["diffuse irregular", "localized irregular"],
        "streaks": ["irregular"],
        "dots_and_globules": ["irregular"],
        "regression_structures": ["blue areas", "combinations", "white areas"],
    }
    assert len(DERM7PT_LABELS["vascular_structures"]) == 8
    assert sum(DERM7PT_CRITERION_POINTS.values()) == 10
    assert len(DERM7PT_MELANOMA_DIAGNOSES) == 6
    assert is_melanoma_diagnosis("  Melanoma  (in situ) ")
    assert not is_melanoma_diagnosis("clark nevus")
    assert not is_melanoma_diagnosis("melanosis")


# ---------------------------------------------------------------------- metadata
def test_read_meta_keeps_raw_labels_presence_points_and_metadata() -> None:
    m = read_derm7pt_meta(META)
    assert len(m) == 16
    assert m["case_num"].tolist() == list(range(1, 17))
    for c in CRITERIA:
        assert {f"{c}_raw", c, f"{c}_points"} <= set(m.columns)
        assert set(m[c]) <= {0, 1}
        np.testing.assert_array_equal(m[c], (m[f"{c}_points"] > 0).astype(int))
    for c in (*DERM7PT_METADATA, "derm_path", "clinic_path", "diagnosis", "notes", "derm7pt_case_id"):
        assert c in m.columns
    assert m.loc[0, "derm_path"] == "FX/fx001_derm.jpg"
    assert m.loc[0, "clinic_path"] == "FX/fx001_clin.jpg"
    assert m.loc[2, "elevation"] == "nodular"
    assert m.loc[0, "notes"] == "synthetic fixture case"
    assert pd.isna(m.loc[1, "notes"])
    assert m["label"].tolist() == ["melanoma"] * 6 + ["non_melanoma"] * 10
    assert m.loc[3, "diagnosis"] == "melanoma (0.76 to 1.5 mm)"


def test_fixture_covers_every_raw_label_and_every_melanoma_diagnosis() -> None:
    m = read_derm7pt_meta(META)
    for c, table in DERM7PT_LABELS.items():
        assert set(m[f"{c}_raw"]) == set(table), c
    assert set(DERM7PT_MELANOMA_DIAGNOSES) <= set(m["diagnosis"])


def test_points_sum_to_the_files_score_column() -> None:
    m = read_derm7pt_meta(META)
    total = m[[f"{c}_points" for c in CRITERIA]].sum(axis=1)
    assert total.tolist() == m["seven_point_score"].astype(int).tolist()


def test_read_meta_accepts_the_release_folder_and_normalises_labels(release: Path) -> None:
    _edit_meta(release, 4, "streaks", "  IRREGULAR ")
    _edit_meta(release, 4, "diagnosis", "Melanoma (more than 1.5 mm)")
    m = read_derm7pt_meta(release)
    assert m.loc[4, "streaks_raw"] == "irregular"
    assert m.loc[4, "label"] == "melanoma"


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("streaks", "wavy", r"row 5 \(case_num 6\), column 'streaks': unknown label 'wavy'"),
        ("vascular_structures", "", r"row 5 \(case_num 6\), column 'vascular_structures': empty label"),
        ("case_num", "six", r"row 5, column 'case_num': 'six' is not an integer"),
        ("case_num", "1", r"row 5 \(case_num 1\), column 'case_num': duplicate case_num 1"),
        ("diagnosis", "", r"row 5 \(case_num 6\), column 'diagnosis': empty diagnosis"),
        ("diagnosis", "melanoma (nodular)", r"column 'diagnosis': 'melanoma \(nodular\)' looks like a melanoma"),
        ("seven_point_score", "3.5", r"column 'seven_point_score': '3.5' is not an integer"),
        ("derm", "", r"column 'derm': empty image path"),
        ("clinic", "../../etc/passwd", r"column 'clinic': image path .* must be relative"),
    ],
)
def test_bad_values_name_row_and_column(release: Path, column: str, value: str, expected: str) -> None:
    _edit_meta(release, 5, column, value)
    with pytest.raises(DataError, match=expected):
        read_derm7pt_meta(release / "meta" / "meta.csv")


def test_unknown_label_lists_the_known_labels(release: Path) -> None:
    _edit_meta(release, 0, "pigment_network", "reticular")
    with pytest.raises(DataError, match=r"expected one of \['absent', 'typical', 'atypical'\]"):
        read_derm7pt_meta(release / "meta" / "meta.csv")


def test_missing_columns_are_named(release: Path) -> None:
    p = release / "meta" / "meta.csv"
    pd.read_csv(p, dtype=str).drop(columns=["streaks", "derm"]).to_csv(p, index=False)
    with pytest.raises(DataError, match=r"lacks the column\(s\) 'streaks', 'derm'"):
        read_derm7pt_meta(p)


def test_optional_columns_may_be_absent(release: Path) -> None:
    p = release / "meta" / "meta.csv"
    drop = ["seven_point_score", "notes", "case_id", "management"]
    pd.read_csv(p, dtype=str).drop(columns=drop).to_csv(p, index=False)
    m = read_derm7pt_meta(p)
    assert m["seven_point_score"].isna().all()
    assert m["management"].isna().all()


def test_missing_or_empty_meta_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="derm7pt metadata file not found"):
        read_derm7pt_meta(tmp_path / "meta.csv")
    with pytest.raises(DataError, match=r"no meta\.csv"):
        read_derm7pt_meta(tmp_path)
    (tmp_path / "meta.csv").write_text("")
    with pytest.raises(DataError, match="not a readable CSV"):
        read_derm7pt_meta(tmp_path / "meta.csv")
    header = pd.read_csv(META, nrows=0).columns
    (tmp_path / "meta.csv").write_text(",".join(header) + "\n")
    with pytest.raises(DataError, match="has no cases"):
        read_derm7pt_meta(tmp_path / "meta.csv")


# ---------------------------------------------------------------------- splits
def test_splits_from_index_files() -> None:
    s = read_derm7pt_splits(FIXTURE / "meta", 16)
    assert s.tolist().count("train") == 8
    assert s.tolist().count("val") == 3
    assert s.tolist().count("test") == 4
    assert s[15] == "unassigned"
    assert s[3] == "val" and s[4] == "test" and s[0] == "train"


@pytest.mark.parametrize(
    ("fname", "text", "expected"),
    [
        ("valid_indexes.csv", "idx\n3\n", r"valid_indexes.csv has no 'indexes' column"),
        ("valid_indexes.csv", "indexes\n3\nten\n", r"valid_indexes.csv line 3: 'ten' is not an integer"),
        ("test_indexes.csv", "indexes\n4\n16\n", r"test_indexes.csv line 3: row position 16 is outside"),
        ("test_indexes.csv", "indexes\n-1\n", r"row position -1 is outside"),
        ("test_indexes.csv", "indexes\n0\n", r"row 0 is already listed in train_indexes.csv"),
        ("test_indexes.csv", "indexes\n4\n4\n", r"row 4 is already listed in test_indexes.csv"),
        ("train_indexes.csv", "", r"train_indexes.csv: not a readable CSV"),
    ],
)
def test_bad_index_files(release: Path, fname: str, text: str, expected: str) -> None:
    (release / "meta" / fname).write_text(text)
    with pytest.raises(DataError, match=expected):
        read_derm7pt_splits(release / "meta", 16)
    out = release.parent / "ds"
    with pytest.raises(DataError, match=expected):
        import_derm7pt(release, out, 16)
    assert _nothing_written(out)


def test_missing_index_file(release: Path) -> None:
    (release / "meta" / "test_indexes.csv").unlink()
    with pytest.raises(DataError, match=r"split file not found: .*test_indexes\.csv"):
        read_derm7pt_splits(release / "meta", 16)


# ---------------------------------------------------------------------- import
def test_import_writes_a_dataset(tmp_path: Path) -> None:
    ds = import_derm7pt(FIXTURE, tmp_path / "d7", image_size=24)
    assert isinstance(ds, Dataset)
    assert ds.info.kind == "derm7pt"
    assert ds.info.classes == DERM7PT_CLASSES == ("melanoma", "non_melanoma")
    assert ds.info.concepts == CRITERIA
    assert ds.info.metadata == ("diagnosis", *DERM7PT_METADATA)
    assert ds.info.image_size == 24
    assert ds.images.shape == (16, 24, 24, 3) and ds.images.dtype == np.uint8
    c = ds.cases
    assert c["case_id"].tolist() == [str(i) for i in range(1, 17)]
    assert c["split"].value_counts().to_dict() == {"train": 8, "test": 4, "val": 3, "unassigned": 1}
    assert ds.labels().tolist() == [0] * 6 + [1] * 10
    assert c.loc[0, "derm_path"] == "FX/fx001_derm.jpg" and c.loc[0, "clinic_path"] == "FX/fx001_clin.jpg"
    assert c.loc[1, "diagnosis"] == "melanoma (in situ)"
    for col in ("pigment_network_raw", "pigment_network_points", "location", "sex", "management"):
        assert col in c.columns
    # the dermoscopic image is the one stored: the fixture's lesion is dark in the centre
    centre = ds.images[:, 10:14, 10:14].mean()
    border = ds.images[:, :2, :2].mean()
    assert centre < border
    reloaded = Dataset.load(tmp_path / "d7")
    assert reloaded.info.content_hash == ds.info.content_hash


def test_import_default_size_and_overwrite(tmp_path: Path) -> None:
    ds = import_derm7pt(FIXTURE, tmp_path / "d7")
    assert ds.images.shape[1:] == (224, 224, 3)
    with pytest.raises(DataError, match="already exists"):
        import_derm7pt(FIXTURE, tmp_path / "d7", 16)
    ds2 = import_derm7pt(FIXTURE, tmp_path / "d7", 16, overwrite=True, name="derm7pt-small")
    assert ds2.info.name == "derm7pt-small" and ds2.images.shape[1] == 16


def test_missing_dermoscopic_image_names_file_and_row(release: Path) -> None:
    (release / "images" / "FX" / "fx007_derm.jpg").unlink()
    out = release.parent / "ds"
    with pytest.raises(ImageError, match=r"meta.csv row 6 \(case_num 7\), column 'derm': image file not found: .*fx007_derm.jpg"):
        import_derm7pt(release, out, 16)
    assert _nothing_written(out)


def test_corrupt_dermoscopic_image_names_file_and_row(release: Path) -> None:
    p = release / "images" / "FX" / "fx010_derm.jpg"
    p.write_bytes(p.read_bytes()[:200])  # truncated JPEG
    out = release.parent / "ds"
    with pytest.raises(ImageError, match=r"row 9 \(case_num 10\), column 'derm': .*fx010_derm.jpg"):
        import_derm7pt(release, out, 16)
    assert _nothing_written(out)
    p.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match=r"fx010_derm.jpg: not an image"):
        import_derm7pt(release, out, 16)
    assert _nothing_written(out)


def test_missing_clinical_image_names_file_and_row(release: Path) -> None:
    (release / "images" / "FX" / "fx016_clin.jpg").unlink()
    out = release.parent / "ds"
    with pytest.raises(DataError, match=r"row 15 \(case_num 16\), column 'clinic': clinical image not found"):
        import_derm7pt(release, out, 16)
    assert _nothing_written(out)


def test_unknown_label_aborts_import_before_writing(release: Path) -> None:
    _edit_meta(release, 2, "regression_structures", "grey areas")
    out = release.parent / "ds"
    with pytest.raises(DataError, match=r"row 2 \(case_num 3\), column 'regression_structures'"):
        import_derm7pt(release, out, 16)
    assert _nothing_written(out)


def test_bad_release_layout_and_size(tmp_path: Path, release: Path) -> None:
    with pytest.raises(DataError, match="is not a derm7pt release"):
        import_derm7pt(tmp_path / "nothing", tmp_path / "ds")
    shutil.rmtree(release / "images")
    with pytest.raises(DataError, match="images/ folder is missing"):
        import_derm7pt(release, tmp_path / "ds")
    for bad in (0, 4, 2.5, True):
        with pytest.raises(DataError, match="image_size"):
            import_derm7pt(FIXTURE, tmp_path / "ds", bad)  # type: ignore[arg-type]
