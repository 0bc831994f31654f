"""The generic CSV importer (import_folder) and the class-sub-folder importer."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from concepts import DataError, ImageError
from concepts.data import Dataset
from concepts.importers import import_class_folders, import_folder, stratified_split

SIZE = 16


def _img(path: Path, seed: int, mode: str = "RGB", size: tuple[int, int] = (20, 20)) -> np.ndarray:
    """Write a noise image and return what load_image_rgb(path, SIZE) should give (RGB only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path)
    return arr


def _csv(path: Path, lines: Iterable[str], *, newline: str = "\n", encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(newline.join(lines).encode(encoding) + newline.encode())
    return path


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    if out.parent.exists():
        leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
        assert leftovers == []


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """data/cases.csv + data/img/c{i}.png: 10 cases, 2 classes, concept/artifact/metadata columns."""
    root = tmp_path / "data"
    lines = ["case_id,path,label,Pigment Network,Hair,patches,age,site"]
    for i in range(10):
        _img(root / "img" / f"c{i}.png", i)
        label = "melanoma" if i < 4 else "nevus"
        lines.append(f"c{i},img/c{i}.png,{label},{i % 2},{(i + 1) % 2},0,{40 + i},{'back' if i % 3 else ''}")
    _csv(root / "cases.csv", lines)
    return root


def _import(csv_path: Path, out: Path, **kw: object) -> Dataset:
    kw.setdefault("image_size", SIZE)
    return import_folder(csv_path, out, **kw)  # type: ignore[arg-type]


def _error(exc_type: type[Exception], csv_path: Path, out: Path, match: str, **kw: object) -> str:
    with pytest.raises(exc_type, match=match) as info:
        _import(csv_path, out, **kw)
    _assert_nothing_written(out)
    return str(info.value)


# ====================================================================== happy paths
def test_import_folder_basic(folder: Path, tmp_path: Path) -> None:
    ds = _import(folder / "cases.csv", tmp_path / "ws" / "ds")
    assert ds.info.kind == "folder"
    assert ds.info.name == "ds"
    assert ds.classes == ("melanoma", "nevus")
    assert ds.info.concepts == ("pigment_network",)
    assert ds.info.artifacts == ("hair", "patch")
    assert ds.info.metadata == ("age", "site")
    assert ds.images.shape == (10, SIZE, SIZE, 3)
    assert list(ds.cases["case_id"]) == [f"c{i}" for i in range(10)]
    assert list(ds.cases["source_path"]) == [f"img/c{i}.png" for i in range(10)]
    assert ds.cases["pigment_network"].tolist() == [i % 2 for i in range(10)]
    assert ds.cases["age"].dtype == np.int64
    assert ds.cases["site"].isna().sum() == 4
    assert set(ds.cases["split"]) <= {"train", "val", "test"}
    assert ds.info.extra["split_source"] == "stratified"
    # the pixels are those of load_image_rgb
    from concepts.data import load_image_rgb

    np.testing.assert_array_equal(ds.images[3], load_image_rgb(folder / "img" / "c3.png", SIZE))
    reloaded = Dataset.load(tmp_path / "ws" / "ds")
    assert reloaded.info == ds.info


def test_id_only_finds_the_extension(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _img(root / "a.JPG", 0)
    _img(root / "b.png", 1)
    _img(root / "sub" / "c.jpeg", 2)
    _img(root / "d.png", 3)
    _csv(root / "x.csv", ["case_id,label", "a,x", "b,y", "sub/c,x", "d.png,y"])
    ds = _import(root / "x.csv", tmp_path / "out")
    assert list(ds.cases["source_path"]) == ["a.JPG", "b.png", "sub/c.jpeg", "d.png"]
    assert list(ds.cases["case_id"]) == ["a", "b", "sub/c", "d.png"]


def test_path_only_and_images_dir(tmp_path: Path) -> None:
    _img(tmp_path / "pics" / "x" / "one.png", 0)
    _img(tmp_path / "pics" / "two.png", 1)
    _csv(tmp_path / "meta" / "t.csv", ["path,label", r"x\one.png,a", "two.png,b"])
    ds = _import(tmp_path / "meta" / "t.csv", tmp_path / "out", images_dir=tmp_path / "pics")
    assert list(ds.cases["case_id"]) == ["x/one", "two"]
    assert ds.info.extra["images_dir"] == str((tmp_path / "pics").resolve())


def test_absolute_path_inside_the_root_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "d" / "a.png"
    _img(p, 0)
    _csv(tmp_path / "d" / "t.csv", ["path,label", f"{p},a"])
    ds = _import(tmp_path / "d" / "t.csv", tmp_path / "out")
    assert ds.cases["source_path"].tolist() == ["a.png"]


def test_declared_columns_split_column_and_classes(tmp_path: Path) -> None:
    root = tmp_path / "d"
    lines = ["case_id,label,Split,shiny,stain,pigment_network"]
    for i, sp in enumerate(["train", "Validation", "TEST", "valid", "train", "dev"]):
        _img(root / f"{i}.png", i)
        lines.append(f"{i},{'b' if i % 2 else 'a'},{sp},{i % 2}.0,1,0")
    _csv(root / "t.csv", lines)
    ds = _import(
        root / "t.csv", tmp_path / "out", split_col="Split", classes=["b", "a"],
        concept_cols=["shiny"], artifact_cols=["stain"],
    )
    assert ds.cases["split"].tolist() == ["train", "val", "test", "val", "train", "val"]
    assert ds.classes == ("b", "a")
    assert ds.info.concepts == ("shiny", "pigment_network")
    assert ds.info.artifacts == ("stain",)
    assert ds.info.extra["split_source"] == "column"
    assert ds.labels().tolist() == [1, 0, 1, 0, 1, 0]


def test_column_named_split_is_used_by_default(tmp_path: Path) -> None:
    _img(tmp_path / "a.png", 0)
    _csv(tmp_path / "t.csv", ["path,label,split", "a.png,x,test"])
    assert _import(tmp_path / "t.csv", tmp_path / "out").cases["split"].tolist() == ["test"]


def test_csv_dialect_details(tmp_path: Path) -> None:
    """BOM, CRLF, quoted fields with commas and newlines, blank lines, trailing empty cells."""
    for i in range(3):
        _img(tmp_path / f"{i}.png", i)
    text = (
        '\ufeffcase_id,label,note\r\n'
        '0,a,"hello, world"\r\n'
        '\r\n'
        '1,b,"two\r\nlines",,\r\n'
        '2,a,plain\r\n'
    )
    (tmp_path / "t.csv").write_bytes(text.encode("utf-8"))
    ds = _import(tmp_path / "t.csv", tmp_path / "out")
    assert ds.cases["note"].tolist() == ["hello, world", "two\r\nlines", "plain"]
    assert ds.info.metadata == ("note",)


def test_line_numbers_count_physical_lines(tmp_path: Path) -> None:
    _img(tmp_path / "0.png", 0)
    text = 'case_id,label,note\n0,a,"multi\nline\nnote"\n\n9,,x\n'
    (tmp_path / "t.csv").write_text(text)
    msg = _error(DataError, tmp_path / "t.csv", tmp_path / "out", "line 6, column 'label'")
    assert "empty label" in msg


def test_other_delimiter(tmp_path: Path) -> None:
    _img(tmp_path / "a.png", 0)
    _csv(tmp_path / "t.csv", ["path;label", "a.png;x"])
    _error(DataError, tmp_path / "t.csv", tmp_path / "out", r"looks ';'-separated.*delimiter=';'")
    ds = _import(tmp_path / "t.csv", tmp_path / "out", delimiter=";")
    assert ds.classes == ("x",)


def test_metadata_types(tmp_path: Path) -> None:
    for i in range(3):
        _img(tmp_path / f"{i}.png", i)
    _csv(tmp_path / "t.csv", [
        "case_id,label,n,f,z,s,mixed,big",
        "0,a,1,1.5,007,x,1,12345678901234567890",
        "1,a,2,,010,y,b,1",
        "2,a,3,2e3,011,,3,2",
    ])
    c = _import(tmp_path / "t.csv", tmp_path / "out").cases
    assert c["n"].dtype == np.int64
    assert c["f"].dtype == np.float64 and np.isnan(c["f"][1]) and c["f"][2] == 2000.0
    assert c["z"].tolist() == ["007", "010", "011"]  # zero-padded codes stay text
    assert c["mixed"].tolist() == ["1", "b", "3"]
    assert c["big"].tolist() == ["12345678901234567890", "1", "2"]  # no float rounding


def test_overwrite(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _import(folder / "cases.csv", out)
    with pytest.raises(DataError, match="already exists"):
        _import(folder / "cases.csv", out)
    ds = _import(folder / "cases.csv", out, overwrite=True, image_size=8)
    assert ds.images.shape[1] == 8


def test_progress_callback(folder: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    _import(folder / "cases.csv", tmp_path / "out", progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (10, 10) and len(seen) == 10


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16"])
def test_non_rgb_images_are_converted(tmp_path: Path, mode: str) -> None:
    p = tmp_path / ("a.tiff" if mode == "CMYK" else "a.png")
    if mode == "I;16":
        Image.fromarray(np.full((12, 12), 40000, dtype=np.uint16)).save(p)
    else:
        _img(p, 0, mode=mode)
    _csv(tmp_path / "t.csv", ["path,label", f"{p.name},x"])
    ds = _import(tmp_path / "t.csv", tmp_path / "out")
    assert ds.images.shape == (1, SIZE, SIZE, 3)
    if mode == "I;16":
        assert int(ds.images[0, 0, 0, 0]) == round(40000 / 257)


# ====================================================================== splits
def test_stratified_split_is_deterministic_and_stratified() -> None:
    labels = ["a"] * 50 + ["b"] * 20 + ["c"] * 3
    ids = [f"id{i:03d}" for i in range(len(labels))]
    s = stratified_split(labels, ids, seed=1)
    df = pd.DataFrame({"label": labels, "split": s})
    counts = df.groupby(["label", "split"]).size().unstack(fill_value=0)
    assert counts.loc["a"].to_dict() == {"train": 30, "val": 10, "test": 10}
    assert counts.loc["b"].to_dict() == {"train": 12, "val": 4, "test": 4}
    assert counts.loc["c"].sum() == 3
    # same seed -> same result, independent of the row order
    perm = np.random.default_rng(0).permutation(len(labels))
    s2 = stratified_split([labels[i] for i in perm], [ids[i] for i in perm], seed=1)
    assert dict(zip([ids[i] for i in perm], s2, strict=True)) == dict(zip(ids, s, strict=True))
    assert not np.array_equal(stratified_split(labels, ids, seed=2), s)
    s3 = stratified_split(labels, ids, seed=1, fractions=(0.5, 0.5, 0.0))
    assert "test" not in set(s3)


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.5, 0.3, 0.3), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)])
def test_bad_fractions(fractions: tuple[float, ...]) -> None:
    with pytest.raises(DataError, match="fractions"):
        stratified_split(["a"], ["x"], fractions=fractions)


# ====================================================================== CSV errors
def test_missing_csv(tmp_path: Path) -> None:
    _error(DataError, tmp_path / "nope.csv", tmp_path / "out", "CSV file not found")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"case_id,label\n", "no data rows"),
        (b"\xff\xfec\x00a\x00", "UTF-16"),
        (b"case_id,label\na,b\nc,caf\xe9\n", r"line 3: byte 0xe9 is not valid UTF-8"),
        (b"\xef\xbb\xbfcase_id,label\na,b\n\nc,caf\xe9\n", r"line 4: byte 0xe9 is not valid UTF-8"),
        (b"case_id,label\na\x00,b\n", "line 2: contains NUL"),
        (b'case_id,label\na,"b\n', "line 2: malformed CSV"),
        (b'case_id,label\na,"b"x\n', "line 2: malformed CSV"),
        (b"case_id,,label\na,b,c\n", "header field 2 is empty"),
        (b"case_id,label,label\na,b,c\n", "duplicate column name 'label'"),
        (b"name,label\na,b\n", "needs an id column 'case_id' or a path column 'path'"),
        (b"case_id,diagnosis\na,b\n", "no label column 'label'"),
        (b"case_id\tlabel\na\tb\n", r"looks '\\t'-separated"),
    ],
)
def test_malformed_csv(tmp_path: Path, content: bytes, match: str) -> None:
    (tmp_path / "t.csv").write_bytes(content)
    _error(DataError, tmp_path / "t.csv", tmp_path / "out", match)


def test_ragged_rows_are_all_reported(folder: Path, tmp_path: Path) -> None:
    lines = (folder / "cases.csv").read_text().splitlines()
    lines[2] += ",extra"
    lines[5] = lines[5].rsplit(",", 2)[0]
    _csv(folder / "bad.csv", lines)
    msg = _error(DataError, folder / "bad.csv", tmp_path / "out", r"line 3: 9 fields but the header has 8")
    assert "2 problems in 2 of 10 rows" in msg
    assert "line 6: 6 fields" in msg


def test_row_problems_are_collected(folder: Path, tmp_path: Path) -> None:
    lines = (folder / "cases.csv").read_text().splitlines()
    lines[2] = lines[2].replace("melanoma", "")            # empty label, line 3
    lines[4] = lines[4].replace(",1,0,0,", ",2,0,0,")     # bad concept value, line 5
    lines[7] = lines[7].replace("c6,", "c1,")              # duplicate id, line 8
    _csv(folder / "bad.csv", lines)
    msg = _error(DataError, folder / "bad.csv", tmp_path / "out", r"line 3, column 'label': empty label")
    assert "3 problems in 3 of 10 rows" in msg
    assert "line 5, column 'Pigment Network': value '2' is not 0 or 1" in msg
    assert "line 8, column 'case_id': duplicate id 'c1' (first seen on line 3)" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("value", ["yes", "0.5", "", "nan", "-1", "1 1"])
def test_non_binary_concept_values(folder: Path, tmp_path: Path, value: str) -> None:
    lines = (folder / "cases.csv").read_text().splitlines()
    cells = lines[1].split(",")
    cells[4] = value  # Hair
    lines[1] = ",".join(cells)
    _csv(folder / "bad.csv", lines)
    _error(DataError, folder / "bad.csv", tmp_path / "out", r"line 2, column 'Hair'")


def test_unknown_label_with_classes(folder: Path, tmp_path: Path) -> None:
    msg = _error(
        DataError, folder / "cases.csv", tmp_path / "out",
        r"line 6, column 'label': label 'nevus' is not one of \['melanoma', 'naevus'\]",
        classes=["melanoma", "naevus"],
    )
    assert "6 problems in 6 of 10 rows" in msg


def test_bad_split_values(tmp_path: Path) -> None:
    _img(tmp_path / "a.png", 0)
    _csv(tmp_path / "t.csv", ["path,label,split", "a.png,x,holdout"])
    _error(DataError, tmp_path / "t.csv", tmp_path / "out", r"line 2, column 'split': split 'holdout'")


def test_bad_column_arguments(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _error(DataError, folder / "cases.csv", out, "no split column 'fold'", split_col="fold")
    _error(DataError, folder / "cases.csv", out, "declared 0/1 column 'x'", concept_cols=["x"])
    _error(DataError, folder / "cases.csv", out, "'age' .*both", concept_cols=["age"], artifact_cols=["age"])
    _error(DataError, folder / "cases.csv", out, "not a 0/1 column", concept_cols=["label"])
    _error(DataError, folder / "cases.csv", out, r"line 2, column 'site'", artifact_cols=["site"])
    _error(DataError, folder / "cases.csv", out, "image_size", image_size=0)
    _error(DataError, folder / "cases.csv", out, "classes", classes=["a", "a"])
    _error(DataError, folder / "cases.csv", out, "fractions", split_fractions=(1.0, 0.1, 0.0))
    _error(DataError, folder / "cases.csv", out, "delimiter", delimiter=";;")


def test_reserved_and_clashing_columns(tmp_path: Path) -> None:
    _img(tmp_path / "a.png", 0)
    _csv(tmp_path / "t.csv", ["path,label,source_path", "a.png,x,y"])
    _error(DataError, tmp_path / "t.csv", tmp_path / "out", "clashes with the data set's own 'source_path'")
    _csv(tmp_path / "u.csv", ["path,label,hair,Hair", "a.png,x,0,1"])
    _error(DataError, tmp_path / "u.csv", tmp_path / "out", "both map to 'hair'")


# ====================================================================== path errors
@pytest.mark.parametrize(
    "bad",
    ["../../etc/passwd", "/etc/passwd", "img/../../outside.png", "..\\..\\etc\\passwd"],
)
def test_path_traversal_is_refused(folder: Path, tmp_path: Path, bad: str) -> None:
    _img(tmp_path / "outside.png", 0)
    lines = (folder / "cases.csv").read_text().splitlines()
    lines[3] = lines[3].replace("img/c2.png", bad)
    _csv(folder / "bad.csv", lines)
    _error(DataError, folder / "bad.csv", tmp_path / "out", r"line 4, column 'path': path .* points outside")


def test_id_traversal_is_refused(tmp_path: Path) -> None:
    _img(tmp_path / "secret.png", 0)
    _csv(tmp_path / "d" / "t.csv", ["case_id,label", "../secret,x"])
    _error(DataError, tmp_path / "d" / "t.csv", tmp_path / "out", "points outside")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    _img(tmp_path / "outside.png", 0)
    (tmp_path / "d").mkdir()
    os.symlink(tmp_path / "outside.png", tmp_path / "d" / "link.png")
    _csv(tmp_path / "d" / "t.csv", ["path,label", "link.png,x"])
    _error(DataError, tmp_path / "d" / "t.csv", tmp_path / "out", "symbolic link")


def test_missing_and_ambiguous_images(tmp_path: Path) -> None:
    _img(tmp_path / "two.png", 0)
    _img(tmp_path / "two.jpg", 1)
    _csv(tmp_path / "t.csv", ["case_id,label", "one,x", "two,x"])
    msg = _error(DataError, tmp_path / "t.csv", tmp_path / "out", r"line 2, column 'case_id': no image named one")
    assert "line 3, column 'case_id': several images match id 'two': two.jpg, two.png" in msg
    _csv(tmp_path / "p.csv", ["path,label", "gone.png,x", ",x", ".,x"])
    msg = _error(DataError, tmp_path / "p.csv", tmp_path / "out", r"line 2, column 'path': image file not found")
    assert "line 3, column 'path': empty image path" in msg
    assert "line 4, column 'path'" in msg


def test_missing_image_folder(folder: Path, tmp_path: Path) -> None:
    _error(DataError, folder / "cases.csv", tmp_path / "out", "image folder not found", images_dir=tmp_path / "x")


def test_corrupt_images_raise_image_error(folder: Path, tmp_path: Path) -> None:
    data = (folder / "img" / "c2.png").read_bytes()
    (folder / "img" / "c2.png").write_bytes(data[: len(data) // 2])
    (folder / "img" / "c7.png").write_bytes(b"not a png")
    msg = _error(ImageError, folder / "cases.csv", tmp_path / "out", r"cases.csv, line 4: .*c2.png: corrupt or truncated")
    assert "2 problems in 2 of 10 rows" in msg
    assert "line 9: " in msg and "c7.png: not an image" in msg


def test_decompression_bomb_in_import(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from concepts.data import _images

    monkeypatch.setattr(_images, "MAX_IMAGE_PIXELS", 100)  # every 20x20 image is now too large
    _error(ImageError, folder / "cases.csv", tmp_path / "out", "too large")


# ====================================================================== class sub-folders
def test_class_folders_flat(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    for i in range(6):
        _img(root / ("mel" if i < 2 else "nev") / f"{i}.png", i)
    _img(root / "nev" / "deep" / "x.jpg", 9)
    (root / "nev" / "notes.txt").write_text("ignored")
    (root / "nev" / ".DS_Store").write_bytes(b"\0")
    (root / ".hidden").mkdir()
    ds = import_class_folders(root, tmp_path / "out", image_size=SIZE)
    assert ds.info.kind == "class_folders"
    assert ds.classes == ("mel", "nev")
    assert sorted(ds.cases["case_id"]) == ["mel/0", "mel/1", "nev/2", "nev/3", "nev/4", "nev/5", "nev/deep/x"]
    assert ds.info.extra["ignored_files"] == 2
    assert ds.info.extra["split_source"] == "stratified"


def test_class_folders_with_splits(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    for i, (split, cls) in enumerate([("train", "a"), ("train", "b"), ("validation", "a"), ("test", "b")]):
        _img(root / split / cls / f"{i}.png", i)
    ds = import_class_folders(root, tmp_path / "out", image_size=SIZE, classes=["b", "a"])
    assert ds.classes == ("b", "a")
    assert dict(zip(ds.cases["case_id"], ds.cases["split"], strict=True)) == {
        "train/a/0": "train", "train/b/1": "train", "validation/a/2": "val", "test/b/3": "test",
    }


def test_class_folders_errors(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    out = tmp_path / "out"
    with pytest.raises(DataError, match="image folder not found"):
        import_class_folders(root, out)
    root.mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        import_class_folders(root, out)
    _img(root / "a" / "1.png", 1)
    _img(root / "stray.png", 0)
    with pytest.raises(DataError, match="outside class folders"):
        import_class_folders(root, out)
    (root / "stray.png").unlink()
    (root / "b").mkdir()
    with pytest.raises(DataError, match="class folder has no images"):
        import_class_folders(root, out)
    _img(root / "b" / "2.png", 2)
    with pytest.raises(DataError, match="not one of the classes"):
        import_class_folders(root, out, classes=["a"])
    with pytest.raises(DataError, match="no folder for class 'c'"):
        import_class_folders(root, out, classes=["a", "b", "c"])
    _img(root / "b" / "2.jpg", 3)
    with pytest.raises(DataError, match="share the id 'b/2'"):
        import_class_folders(root, out)
    (root / "b" / "2.jpg").write_bytes(b"junk")
    (root / "b" / "2.png").unlink()
    with pytest.raises(ImageError, match=r"2\.jpg"):
        import_class_folders(root, out)
    _assert_nothing_written(out)
