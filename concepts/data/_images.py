"""Safe image loading: every failure becomes an :class:`ImageError` naming the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from concepts._errors import ImageError

__all__ = ["IMAGE_FORMATS", "MAX_IMAGE_PIXELS", "load_image_rgb", "to_square"]

#: Pillow's decompression-bomb limit used by the workbench (about 89 megapixels, Pillow's default).
MAX_IMAGE_PIXELS = 89_478_485

#: The Pillow formats :func:`load_image_rgb` opens. Others (PostScript, PDF, ...) are refused:
#: some hand the file to external programs (EPS runs Ghostscript) and none are used for
#: dermoscopy.
IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "TIFF", "BMP", "WEBP", "GIF", "PPM")

# Never silently accept half an image.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def to_square(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop ``img`` to a square and resize it to ``size`` x ``size``."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side != size:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return img


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """Rescale a 16-bit, 32-bit integer or float grey image to 8-bit ``L``.

    Pillow's own ``convert`` clips these at 255, which turns most 16-bit images white.
    """
    arr = np.asarray(img).astype(np.float64)
    if img.mode in _SIXTEEN_BIT_MODES:
        scaled = arr / 257.0
    else:
        finite = arr[np.isfinite(arr)]
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 0.0
        if img.mode == "F" and lo >= 0.0 and hi <= 1.0:
            scaled = arr * 255.0
        elif lo >= 0.0 and hi <= 255.0:
            scaled = arr
        elif lo >= 0.0 and hi <= 65535.0:
            scaled = arr / 257.0
        else:
            scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to ``RGB`` (alpha is composited onto white); RGB is returned as is."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        img.mode == "P" and "transparency" in img.info
    ):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in (*_SIXTEEN_BIT_MODES, "I", "F"):
        return _high_depth_to_l(img).convert("RGB")
    return img.convert("RGB")


def load_image_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """Read one image as an RGB ``uint8`` array.

    Any Pillow mode is converted to RGB: grey (``L``, ``1``), palette (``P``), CMYK, YCbCr,
    16-bit and float images (rescaled to 8 bit, not clipped) and images with alpha (``LA``,
    ``RGBA``, ``PA``, transparent ``P``: composited onto white). The EXIF orientation tag is
    applied. Only the formats in :data:`IMAGE_FORMATS` are opened.

    Parameters
    ----------
    path
        Image file.
    size
        If given, the image is centre-cropped to a square and resized to ``size`` px.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 (``(size, size, 3)`` when ``size`` is given).

    Raises
    ------
    ImageError
        Missing, unreadable, truncated or corrupt file, a format outside
        :data:`IMAGE_FORMATS`, or a decompression bomb (more than :data:`MAX_IMAGE_PIXELS`
        pixels). No other exception escapes.
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ImageError(f"image size must be a positive integer, got {size!r}")
    p = Path(path)
    try:
        found = p.is_file()
    except (OSError, ValueError) as exc:  # name too long, embedded NUL, ...
        raise ImageError(f"{p}: cannot access the image file ({exc})") from exc
    if not found:
        raise ImageError(f"image file not found: {p} — check the path column and the image folder")
    Image.init()  # register every plugin once, so that ``formats`` can name them all
    formats = [f for f in IMAGE_FORMATS if f in Image.OPEN]  # JPEG covers MPO
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        arr = _decode(p, size, formats)
    except ImageError:
        raise
    except Exception as exc:  # Pillow's decoders raise many types on corrupt input
        raise _decode_error(p, exc) from exc
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise ImageError(f"{p}: unexpected image shape {arr.shape}")
    return arr


def _decode(p: Path, size: int | None, formats: list[str]) -> np.ndarray:
    """Verify, decode, orient, convert to RGB and (with ``size``) square-resize one image file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on odd metadata
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(p, formats=formats) as probe:
            probe.verify()  # structural check (truncation, bad CRC)
        with Image.open(p, formats=formats) as img:
            if size is not None:  # JPEG: decode at a reduced scale still >= size (faster)
                img.draft(None, (size, size))
            img.load()
            w, h = img.size
            if w < 1 or h < 1:
                raise ImageError(f"{p}: image has no pixels ({w}x{h}) — replace or remove the file")
            rgb = _to_rgb(ImageOps.exif_transpose(img))
            if size is not None:
                rgb = to_square(rgb, size)
            return np.array(rgb, dtype=np.uint8)  # a copy, valid after the file is closed


def _decode_error(p: Path, exc: Exception) -> ImageError:
    """The one-line error for an exception raised while decoding ``p``."""
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return ImageError(
            f"{p}: image is too large ({exc}); images above {MAX_IMAGE_PIXELS:,} pixels are "
            "refused as possible decompression bombs — downscale it first"
        )
    if isinstance(exc, UnidentifiedImageError):
        return ImageError(
            f"{p}: not an image Pillow can read (accepted formats: {', '.join(IMAGE_FORMATS)}) "
            "— replace or remove the file"
        )
    if isinstance(exc, MemoryError):
        return ImageError(f"{p}: not enough memory to decode this image — downscale it first")
    return ImageError(
        f"{p}: corrupt or truncated image ({type(exc).__name__}: {exc}) — replace or remove "
        "the file"
    )
