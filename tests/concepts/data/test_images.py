"""load_image_rgb: mode conversion, refusals, and fuzzing (only ImageError may escape)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from concepts import ImageError, WorkbenchError
from concepts.data import _images, load_image_rgb

FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _noise(w: int = 24, h: int = 16, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` but holds (almost) no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------------- conversions
@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("L", "PNG"),
        ("LA", "PNG"),
        ("P", "PNG"),
        ("RGBA", "PNG"),
        ("CMYK", "JPEG"),
        ("CMYK", "TIFF"),
        ("I;16", "PNG"),
        ("I", "TIFF"),
        ("F", "TIFF"),
        ("1", "PNG"),
        ("YCbCr", "TIFF"),
        ("RGB", "BMP"),
        ("RGB", "WEBP"),
        ("P", "GIF"),
    ],
)
def test_every_mode_becomes_rgb_uint8(tmp_path: Path, mode: str, fmt: str) -> None:
    img = _noise(20, 12).convert(mode) if mode not in ("I;16", "I", "F") else Image.new(mode, (20, 12))
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(_encode(img, fmt))
    with Image.open(path) as check:
        assert check.mode == mode or fmt in ("WEBP", "BMP", "GIF")  # the file really is that mode
    arr = load_image_rgb(path)
    assert arr.dtype == np.uint8
    assert arr.shape == (12, 20, 3)
    sq = load_image_rgb(path, 8)
    assert sq.shape == (8, 8, 3)


def test_grey_is_replicated_to_three_channels(tmp_path: Path) -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    arr = load_image_rgb(tmp_path / "g.png")
    for c in range(3):
        np.testing.assert_array_equal(arr[..., c], grey)


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red-ish, bottom half fully transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    arr = load_image_rgb(tmp_path / "a.png")
    np.testing.assert_array_equal(arr[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(arr[3, 3], [255, 255, 255])


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    img.info["transparency"] = 0
    img.putpixel((0, 0), 0)
    img.save(tmp_path / "p.png", transparency=0)
    arr = load_image_rgb(tmp_path / "p.png")
    np.testing.assert_array_equal(arr[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(arr[1, 1], [10, 20, 30])


def test_sixteen_bit_is_rescaled_not_clipped(tmp_path: Path) -> None:
    a = np.array([[0, 257 * 100, 65535, 257 * 50]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "d.png")
    with Image.open(tmp_path / "d.png") as im:
        assert im.mode.startswith("I;16")
    arr = load_image_rgb(tmp_path / "d.png")
    np.testing.assert_array_equal(arr[0, :, 0], [0, 100, 255, 50])


def test_float_image_in_unit_range(tmp_path: Path) -> None:
    a = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    Image.fromarray(a, mode="F").save(tmp_path / "f.tiff")
    arr = load_image_rgb(tmp_path / "f.tiff")
    np.testing.assert_array_equal(arr[0, :, 1], [0, 128, 255])


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = _noise(30, 10)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    img.save(tmp_path / "o.jpg", exif=exif.tobytes())
    assert load_image_rgb(tmp_path / "o.jpg").shape == (30, 10, 3)


def test_centre_crop_and_resize(tmp_path: Path) -> None:
    a = np.zeros((10, 30, 3), dtype=np.uint8)
    a[:, 10:20] = 255  # the centre square is white, the sides black
    Image.fromarray(a).save(tmp_path / "c.png")
    arr = load_image_rgb(tmp_path / "c.png", 10)
    assert arr.shape == (10, 10, 3)
    assert arr.min() == 255


# ---------------------------------------------------------------------- refusals
def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not found"):
        load_image_rgb(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="not found"):
        load_image_rgb(tmp_path)
    with pytest.raises(ImageError, match=r"cannot access|not found"):
        load_image_rgb(tmp_path / ("x" * 5000 + ".png"))  # name too long


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP", "BMP", "GIF"])
def test_truncated_image_is_refused(tmp_path: Path, fmt: str) -> None:
    data = _encode(_noise(64, 64), fmt)
    path = tmp_path / f"t.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"t\.") as exc:
        load_image_rgb(path)
    assert str(path) in str(exc.value)


def test_garbage_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "e.png").write_bytes(b"")
    (tmp_path / "g.jpg").write_bytes(b"this is not an image at all")
    for name in ("e.png", "g.jpg"):
        with pytest.raises(ImageError, match="not an image"):
            load_image_rgb(tmp_path / name)


def test_bad_png_crc_is_refused(tmp_path: Path) -> None:
    data = bytearray(_encode(_noise(), "PNG"))
    data[40] ^= 0xFF  # inside the first IDAT chunk
    (tmp_path / "crc.png").write_bytes(bytes(data))
    with pytest.raises(ImageError):
        load_image_rgb(tmp_path / "crc.png")


@pytest.mark.parametrize(("w", "h"), [(20_000, 20_000), (10_000, 10_000)])
def test_decompression_bomb_is_refused(tmp_path: Path, w: int, h: int) -> None:
    # 400 Mpx (Pillow's error range) and 100 Mpx (its warning range, made an error here)
    (tmp_path / "bomb.png").write_bytes(_png_header_only(w, h))
    with pytest.raises(ImageError, match="too large"):
        load_image_rgb(tmp_path / "bomb.png")
    assert Image.MAX_IMAGE_PIXELS != 1  # the global limit is restored


def test_pixel_limit_is_the_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _noise(100, 100).save(tmp_path / "n.png")
    monkeypatch.setattr(_images, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="too large"):
        load_image_rgb(tmp_path / "n.png")


def test_formats_outside_the_allow_list_are_refused(tmp_path: Path) -> None:
    (tmp_path / "x.eps").write_bytes(
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n"
    )
    _noise().save(tmp_path / "x.tga")
    for name in ("x.eps", "x.tga"):
        with pytest.raises(ImageError, match="not an image Pillow can read"):
            load_image_rgb(tmp_path / name)


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_bad_size(tmp_path: Path, size: object) -> None:
    _noise().save(tmp_path / "n.png")
    with pytest.raises(ImageError, match="size"):
        load_image_rgb(tmp_path / "n.png", size)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- fuzzing
def _check(path: Path, size: int | None = 8) -> None:
    try:
        arr = load_image_rgb(path, size)
    except ImageError as exc:
        assert str(path) in str(exc)
        return
    except WorkbenchError as exc:  # pragma: no cover - would be a wrong error class
        raise AssertionError(f"unexpected {type(exc).__name__}: {exc}") from exc
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3


_VALID = {
    fmt: _encode(_noise(32, 24, seed=i), fmt)
    for i, fmt in enumerate(["PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP"])
}


@FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_random_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "f.png"
    path.write_bytes(data)
    _check(path)


@FUZZ
@given(
    magic=st.sampled_from([v[:16] for v in _VALID.values()]),
    tail=st.binary(max_size=512),
)
def test_fuzz_valid_magic_random_body(tmp_path: Path, magic: bytes, tail: bytes) -> None:
    path = tmp_path / "m.img"
    path.write_bytes(magic + tail)
    _check(path)


@FUZZ
@given(fmt=st.sampled_from(sorted(_VALID)), frac=st.floats(0.0, 1.0))
def test_fuzz_truncations(tmp_path: Path, fmt: str, frac: float) -> None:
    data = _VALID[fmt]
    cut = int(len(data) * frac)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[:cut])
    _check(path, None)
    if fmt == "PNG" and cut < len(data) - 12:  # lost image data or chunks: must be refused
        with pytest.raises(ImageError):
            load_image_rgb(path)


@FUZZ
@given(
    fmt=st.sampled_from(sorted(_VALID)),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=6),
)
def test_fuzz_byte_mutations(tmp_path: Path, fmt: str, flips: list[tuple[int, int]]) -> None:
    data = bytearray(_VALID[fmt])
    for pos, xor in flips:
        data[pos % len(data)] ^= xor
    path = tmp_path / f"mut.{fmt.lower()}"
    path.write_bytes(bytes(data))
    _check(path)
