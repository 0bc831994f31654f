"""The ISIC-style importer (one-hot ground truth, image folder, artifact annotations)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from concepts import DataError, ImageError
from concepts.importers import BINARY_CLASSES, import_isic

SIZE = 16
DIAG = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
# image -> diagnosis
CASES = {f"ISIC_{i:07d}": DIAG[i % len(DIAG)] for i in range(14)}


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _gt_lines(cases: dict[str, str], *, floats: bool = True) -> list[str]:
    one, zero = ("1.0", "0.0") if floats else ("1", "0")
    return ["image," + ",".join(DIAG)] + [
        f"{img}," + ",".join(one if d == dx else zero for d in DIAG) for img, dx in cases.items()
    ]


@pytest.fixture
def isic(tmp_path: Path) -> Path:
    root = tmp_path / "isic"
    for i, img in enumerate(CASES):
        arr = np.random.default_rng(i).integers(0, 256, (24, 32, 3), dtype=np.uint8)
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / "images" / f"{img}.jpg", quality=90)
    _write(root / "gt.csv", _gt_lines(CASES))
    art = ["image,dark_corner,hair,gel_border,gel_bubble,ruler,ink,patches"]
    for i, img in enumerate(CASES):
        art.append(f"{img}.jpg,{i % 2},{(i // 2) % 2},{int(i == 3)},0,{int(i < 5)},0,{int(i == 7)}")
    art.append("ISIC_9999999,1,1,1,1,1,1,1")  # not in the ground truth: ignored, counted
    _write(root / "artifacts.csv", art)
    return root


def _gone(out: Path) -> None:
    assert not out.exists()
    if out.parent.exists():
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_multiclass(isic: Path, tmp_path: Path) -> None:
    ds = import_isic(isic / "gt.csv", isic / "images", tmp_path / "out", image_size=SIZE)
    assert ds.info.kind == "isic"
    assert ds.classes == tuple(DIAG)
    assert ds.cases["label"].tolist() == list(CASES.values())
    assert ds.cases["diagnosis"].tolist() == list(CASES.values())
    assert ds.cases["case_id"].tolist() == list(CASES)
    assert ds.info.artifacts == ()
    assert ds.info.metadata == ("diagnosis",)
    assert ds.images.shape == (14, SIZE, SIZE, 3)
    assert ds.cases["source_path"].iloc[0] == "ISIC_0000000.jpg"


def test_binary_with_artifacts(isic: Path, tmp_path: Path) -> None:
    ds = import_isic(
        isic / "gt.csv", isic / "images", tmp_path / "out", image_size=SIZE,
        artifacts_csv=isic / "artifacts.csv", binary=True, seed=3,
    )
    assert ds.classes == BINARY_CLASSES == ("non_melanoma", "melanoma")
    mel = [d == "MEL" for d in CASES.values()]
    assert (ds.cases["label"] == "melanoma").tolist() == mel
    # the workbench's artifacts in concepts.ARTIFACTS order (patches -> patch), then gel_border
    assert ds.info.artifacts == ("ruler", "ink", "hair", "dark_corner", "patch", "gel_bubble", "gel_border")
    assert ds.cases["gel_border"].tolist() == [int(i == 3) for i in range(14)]
    assert ds.cases["patch"].tolist() == [int(i == 7) for i in range(14)]
    assert ds.cases["ruler"].tolist() == [int(i < 5) for i in range(14)]
    assert ds.info.extra["artifacts_unmatched"] == 1
    assert ds.info.extra["binary"] is True


def test_fixed_split_integer_values_and_other_extensions(isic: Path, tmp_path: Path) -> None:
    first = next(iter(CASES))
    Image.open(isic / "images" / f"{first}.jpg").save(isic / "images" / f"{first}.png")
    (isic / "images" / f"{first}.jpg").unlink()
    _write(isic / "gt2.csv", [line.replace("image,", "image_id,", 1) for line in _gt_lines(CASES, floats=False)])
    ds = import_isic(isic / "gt2.csv", isic / "images", tmp_path / "out", image_size=SIZE, split="validation")
    assert set(ds.cases["split"]) == {"val"}
    assert ds.cases["source_path"].iloc[0] == f"{first}.png"


def test_generated_split_is_stratified(isic: Path, tmp_path: Path) -> None:
    many = {f"ISIC_{i:07d}": ("MEL" if i % 5 == 0 else "NV") for i in range(14)}
    _write(isic / "gt.csv", _gt_lines(many))
    ds = import_isic(isic / "gt.csv", isic / "images", tmp_path / "out", image_size=SIZE, binary=True)
    counts = ds.cases.groupby(["label", "split"]).size().to_dict()
    assert counts[("melanoma", "train")] == 2  # 3 melanomas: 1.8 / 0.6 / 0.6
    assert counts[("non_melanoma", "train")] == 7  # 11: 6.6 / 2.2 / 2.2


def test_zero_and_several_hot_columns(isic: Path, tmp_path: Path) -> None:
    lines = _gt_lines(CASES)
    lines[3] = lines[3].replace("1.0", "0.0")            # line 4: no diagnosis
    lines[6] = lines[6].rsplit(",", 1)[0] + ",1.0"         # line 7: two diagnoses
    _write(isic / "bad.csv", lines)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"bad.csv, line 4: no diagnosis column is 1") as exc:
        import_isic(isic / "bad.csv", isic / "images", out)
    assert "2 problems in 2 of 14 rows" in str(exc.value)
    assert "line 7: several diagnosis columns are 1 (DF, VASC)" in str(exc.value)
    _gone(out)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda ls: ls.__setitem__(2, ls[2].replace("0.0", "0.3", 1)), r"line 3, column '\w+': value '0.3'"),
        (lambda ls: ls.__setitem__(2, ls[2].replace("0.0", "", 1)), r"line 3, column '\w+': empty cell"),
        (lambda ls: ls.__setitem__(2, ls[1]), r"line 3, column 'image': duplicate image id 'ISIC_0000000' \(first seen on line 2\)"),
        (lambda ls: ls.__setitem__(2, "," + ls[2].split(",", 1)[1]), r"line 3, column 'image': empty image id"),
        (lambda ls: ls.__setitem__(2, ls[2].replace("ISIC_0000001", "ISIC_7777777")), r"line 3, column 'image': no image named ISIC_7777777"),
        (lambda ls: ls.__setitem__(2, ls[2].replace("ISIC_0000001", "../ISIC_0000001")), r"line 3, column 'image': path .* points outside"),
        (lambda ls: ls.__setitem__(0, ls[0].replace("image,", "img,")), r"no image-id column \(looked for image"),
        (lambda ls: ls.__setitem__(0, "image"), r"no diagnosis columns"),
        (lambda ls: ls.__setitem__(2, ls[2] + ",1.0"), r"line 3: 9 fields but the header has 8"),
    ],
)
def test_ground_truth_errors(isic: Path, tmp_path: Path, edit: object, match: str) -> None:
    lines = _gt_lines(CASES)
    edit(lines)  # type: ignore[operator]
    _write(isic / "bad.csv", lines)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=match):
        import_isic(isic / "bad.csv", isic / "images", out)
    _gone(out)


def test_binary_needs_mel(isic: Path, tmp_path: Path) -> None:
    _write(isic / "gt.csv", ["image,NV,BKL", "ISIC_0000000,1,0"])
    with pytest.raises(DataError, match="binary=True needs a 'MEL' column"):
        import_isic(isic / "gt.csv", isic / "images", tmp_path / "out", binary=True)


def test_artifact_csv_errors(isic: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    art = (isic / "artifacts.csv").read_text().splitlines()
    bad = list(art)
    bad[4] = bad[4].replace(",0,", ",x,", 1)
    bad[6] = bad[1]
    _write(isic / "a.csv", bad)
    with pytest.raises(DataError, match=r"a.csv, line 5, column '\w+': value 'x' is not 0 or 1") as exc:
        import_isic(isic / "gt.csv", isic / "images", out, artifacts_csv=isic / "a.csv")
    assert "line 7, column 'image': duplicate image id 'ISIC_0000000' (first seen on line 2)" in str(exc.value)
    _gone(out)
    missing = art[:3] + art[4:]  # ISIC_0000002 unannotated
    _write(isic / "m.csv", missing)
    with pytest.raises(DataError, match=r"gt.csv, line 4, column 'image': image 'ISIC_0000002' has no row in the artifact file"):
        import_isic(isic / "gt.csv", isic / "images", out, artifacts_csv=isic / "m.csv")
    _gone(out)
    ds = import_isic(
        isic / "gt.csv", isic / "images", out, artifacts_csv=isic / "m.csv",
        missing_artifacts="drop", image_size=SIZE,
    )
    assert len(ds) == 13 and "ISIC_0000002" not in set(ds.cases["case_id"])
    assert ds.info.extra["dropped_unannotated"] == 1
    with pytest.raises(DataError, match="CSV file not found"):
        import_isic(isic / "gt.csv", isic / "images", tmp_path / "o2", artifacts_csv=isic / "nope.csv")
    _write(isic / "h.csv", ["image,hair,Hair", "ISIC_0000000,0,1"])
    with pytest.raises(DataError, match="both map to 'hair'"):
        import_isic(isic / "gt.csv", isic / "images", tmp_path / "o2", artifacts_csv=isic / "h.csv")


def test_argument_errors(isic: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(DataError, match="split= split 'holdout'"):
        import_isic(isic / "gt.csv", isic / "images", out, split="holdout")
    with pytest.raises(DataError, match="missing_artifacts"):
        import_isic(isic / "gt.csv", isic / "images", out, missing_artifacts="skip")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="image folder not found"):
        import_isic(isic / "gt.csv", isic / "nope", out)
    _gone(out)


def test_corrupt_image(isic: Path, tmp_path: Path) -> None:
    (isic / "images" / "ISIC_0000005.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ImageError, match=r"gt.csv, line 7: .*ISIC_0000005.jpg"):
        import_isic(isic / "gt.csv", isic / "images", tmp_path / "out")
    _gone(tmp_path / "out")
