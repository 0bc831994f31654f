"""Fuzzing the importers: only WorkbenchError subclasses may escape, and a failed import
never leaves anything in the output folder's parent."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from concepts import WorkbenchError
from concepts.data import Dataset
from concepts.importers import import_folder, import_isic

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
N = 6
HEADER = ["case_id", "path", "label", "hair", "pigment_network", "split", "age"]
ROWS = [
    [f"c{i}", f"img/c{i}.png", "mel" if i % 2 else "nev", str(i % 2), "0", ["train", "val", "test"][i % 3], str(30 + i)]
    for i in range(N)
]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder with N small valid images, plus ISIC-named copies."""
    r = tmp_path_factory.mktemp("fuzz")
    (r / "img").mkdir()
    (r / "isic").mkdir()
    for i in range(N):
        arr = np.random.default_rng(i).integers(0, 256, (12, 12, 3), dtype=np.uint8)
        Image.fromarray(arr).save(r / "img" / f"c{i}.png")
        Image.fromarray(arr).save(r / "isic" / f"ISIC_{i}.png")
    (r / "outside.png").write_bytes((r / "img" / "c0.png").read_bytes())
    yield r


def _attempt(run: Callable[[Path], Dataset]) -> Dataset | None:
    """Run an import into a fresh parent folder; check the all-or-nothing contract."""
    parent = Path(tempfile.mkdtemp(prefix="fuzz-out-"))
    out = parent / "ds"
    try:
        try:
            ds = run(out)
        except WorkbenchError:
            assert list(parent.iterdir()) == [], "a failed import left files behind"
            return None
        assert [p.name for p in parent.iterdir()] == ["ds"]
        loaded = Dataset.load(out, mmap=False)
        assert len(loaded) == loaded.images.shape[0] == len(ds)
        assert set(loaded.cases["label"]) <= set(loaded.classes)
        return ds
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _folder(csv_path: Path, **kw: object) -> Callable[[Path], Dataset]:
    return lambda out: import_folder(csv_path, out, image_size=8, **kw)  # type: ignore[arg-type]


def _to_csv(rows: list[list[str]], sep: str = ",") -> str:
    return "\n".join(sep.join(r) for r in rows) + "\n"


def test_the_base_table_imports(root: Path) -> None:
    (root / "base.csv").write_text(_to_csv([HEADER, *ROWS]))
    assert _attempt(_folder(root / "base.csv")) is not None


# ---------------------------------------------------------------------- random input
@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_as_csv(root: Path, data: bytes) -> None:
    (root / "r.csv").write_bytes(data)
    _attempt(_folder(root / "r.csv"))
    _attempt(lambda out: import_isic(root / "r.csv", root / "isic", out, image_size=8))


_CSV_ALPHABET = st.sampled_from(
    [*"abcdefghij0123456789,,,;\"\"\n\n\r\t /\\._-", "../", "img/c1.png", "1", "0", "1.0", "\ufeff", "é"]
)


@FUZZ
@given(text=st.lists(_CSV_ALPHABET, max_size=120).map("".join), header=st.sampled_from(["", "case_id,path,label\n", "path,label\n", "image,MEL,NV\n"]))
def test_random_csv_text(root: Path, text: str, header: str) -> None:
    (root / "t.csv").write_text(header + text, encoding="utf-8")
    _attempt(_folder(root / "t.csv"))
    _attempt(lambda out: import_isic(root / "t.csv", root / "isic", out, image_size=8))


# ---------------------------------------------------------------------- mutations of a valid table
_CELL = st.one_of(
    st.sampled_from([
        "", "1", "0", "2", "1.0", "yes", "mel", "nev", "train", "holdout", "c1", "img/c3.png",
        "../outside.png", "../../etc/passwd", "/etc/passwd", "img/missing.png", '"', '"a,b"',
        "img", ".", "a\nb", "\x00", "img/c1.PNG", "img\\c2.png",
    ]),
    st.text(max_size=12),
)


def _mutated_table(base: list[list[str]]) -> st.SearchStrategy[tuple[list[list[str]], str]]:
    """Up to three random edits of ``base`` (header + rows) and a (mostly comma) separator."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[list[list[str]], str]:
        rows = [list(r) for r in base]
        width = len(base[0])
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(
                ["cell", "cell", "cell", "drop_cell", "add_cell", "dup_row", "drop_col", "rename", "drop_row"]
            ))
            r = draw(st.integers(0, len(rows) - 1))
            if kind == "cell" and rows[r]:
                rows[r][draw(st.integers(0, len(rows[r]) - 1))] = draw(_CELL)
            elif kind == "drop_cell" and rows[r]:
                rows[r].pop(draw(st.integers(0, len(rows[r]) - 1)))
            elif kind == "add_cell":
                rows[r].append(draw(_CELL))
            elif kind == "dup_row" and len(rows) > 1:
                rows.append(list(rows[draw(st.integers(1, len(rows) - 1))]))
            elif kind == "drop_col":
                c = draw(st.integers(0, width - 1))
                rows = [[x for j, x in enumerate(row) if j != c] for row in rows]
            elif kind == "rename" and rows[0]:
                rows[0][draw(st.integers(0, len(rows[0]) - 1))] = draw(st.sampled_from(
                    ["", "case_id", "label", "Hair", "ruler", "source_path", "split", "x y", "image", "MEL"]
                ))
            elif kind == "drop_row" and len(rows) > 1:
                rows.pop(draw(st.integers(1, len(rows) - 1)))
        sep = draw(st.sampled_from([",", ",", ",", ",", ";", "\t"]))
        return rows, sep

    return build()


@FUZZ
@given(
    table=_mutated_table([HEADER, *ROWS]),
    encoding=st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    classes=st.sampled_from([None, None, ["mel", "nev"], ["mel"]]),
)
def test_mutated_csv(
    root: Path, table: tuple[list[list[str]], str], encoding: str, newline: str, classes: list[str] | None
) -> None:
    rows, sep = table
    text = _to_csv(rows, sep).replace("\n", newline)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-8")
    (root / "m.csv").write_bytes(data)
    ds = _attempt(_folder(root / "m.csv", classes=classes))
    if ds is not None:  # whatever was accepted stays inside the image folder
        assert ds.info.extra["images_dir"] == str(root.resolve())
        assert all(not str(p).startswith(("..", "/")) for p in ds.cases["source_path"])


ISIC_GT = [["image", "MEL", "NV", "BCC"]] + [
    [f"ISIC_{i}", *("1.0" if j == i % 3 else "0.0" for j in range(3))] for i in range(N)
]


@FUZZ
@given(table=_mutated_table(ISIC_GT), binary=st.booleans())
def test_mutated_isic(root: Path, table: tuple[list[list[str]], str], binary: bool) -> None:
    rows, sep = table
    (root / "g.csv").write_text(_to_csv(rows, sep))
    _attempt(lambda out: import_isic(root / "g.csv", root / "isic", out, image_size=8, binary=binary))


# ---------------------------------------------------------------------- random image files
@FUZZ
@given(
    which=st.integers(0, N - 1),
    content=st.one_of(
        st.binary(max_size=400),
        st.tuples(st.integers(0, 10**5), st.integers(1, 255)).map(lambda t: ("flip", *t)),
        st.floats(0.0, 1.0).map(lambda f: ("cut", f)),
    ),
)
def test_random_image_files(root: Path, which: int, content: object) -> None:
    work = Path(tempfile.mkdtemp(prefix="fuzz-img-"))
    try:
        shutil.copytree(root / "img", work / "img")
        target = work / "img" / f"c{which}.png"
        data = bytearray(target.read_bytes())
        if isinstance(content, bytes):
            data = bytearray(content)
        elif isinstance(content, tuple) and content[0] == "flip":
            data[content[1] % len(data)] ^= content[2]
        elif isinstance(content, tuple):
            data = data[: int(len(data) * content[1])]
        target.write_bytes(bytes(data))
        (work / "cases.csv").write_text(_to_csv([HEADER, *ROWS]))
        _attempt(_folder(work / "cases.csv"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
