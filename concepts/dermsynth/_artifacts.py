"""DermSynth's drawing primitives and its artifacts (:func:`draw_artifact`).

Artifacts are drawn in pixel units on an image of any size (scaled to its shorter side), so the
same code inserts them into DermSynth lesions and into a user's real images (counterfactual
twins). Every primitive is vectorised numpy; loops run over drawn objects only, each on its own
bounding box.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from concepts._errors import DataError
from concepts.data import ARTIFACTS

__all__ = ["ARTIFACT_ORDER", "draw_artifact", "draw_artifact_with_mask"]

#: Fixed order in which present artifacts are drawn onto a lesion (physical objects first,
#: the optics' vignetting last).
ARTIFACT_ORDER: tuple[str, ...] = ("ink", "patch", "hair", "ruler", "gel_bubble", "dark_corner")

_F = np.float32
_Array = np.ndarray


# ---------------------------------------------------------------------------------- primitives
def _smoothstep(e0: float, e1: float, x: _Array) -> _Array:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(_F)


def _blend(img: _Array, colour: _Array | Sequence[float], alpha: _Array) -> None:
    """Alpha-composite ``colour`` over ``img`` in place (``alpha`` is ``(H, W)``)."""
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if len(rows) == 0:
        return
    r = slice(int(rows[0]), int(rows[-1]) + 1)
    c = slice(int(cols[0]), int(cols[-1]) + 1)
    col = np.asarray(colour, dtype=_F)
    if col.ndim == 3:
        col = col[r, c]
    delta = col - img[r, c]
    delta *= alpha[r, c, None]
    img[r, c] += delta


def _jitter(rng: np.random.Generator, colour: Sequence[float], amount: float) -> _Array:
    """Random brightness change of up to ``amount`` and a small hue-preserving per-channel one."""
    c = np.asarray(colour, dtype=_F) * _F(1 + rng.uniform(-amount, amount))
    c = c * (1 + rng.uniform(-amount / 4, amount / 4, 3)).astype(_F)
    return np.clip(c, 0, 1).astype(_F)


def _discs(shape: tuple[int, int], cx: _Array, cy: _Array, r: _Array) -> _Array:
    """Anti-aliased union of discs (pixel units, pixel centres at integer coordinates)."""
    H, W = shape
    out = np.zeros((H, W), dtype=_F)
    for x, y, rr in zip(cx.tolist(), cy.tolist(), r.tolist(), strict=True):
        x0, x1 = max(int(np.floor(x - rr - 1)), 0), min(int(np.ceil(x + rr + 2)), W)
        y0, y1 = max(int(np.floor(y - rr - 1)), 0), min(int(np.ceil(y + rr + 2)), H)
        if x0 >= x1 or y0 >= y1:
            continue
        xs = np.arange(x0, x1, dtype=_F) - _F(x)
        ys = np.arange(y0, y1, dtype=_F) - _F(y)
        dist = np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2)
        a = np.clip(_F(rr + 0.5) - dist, 0, 1)
        np.maximum(out[y0:y1, x0:x1], a, out=out[y0:y1, x0:x1])
    return out


def _resample(xs: _Array, ys: _Array, step: float = 0.35) -> tuple[_Array, _Array]:
    """Points every ``step`` px along a polyline."""
    seg = np.hypot(np.diff(xs), np.diff(ys))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(np.ceil(cum[-1] / step)) + 1, 2)
    t = np.linspace(0.0, cum[-1], n)
    return np.interp(t, cum, xs), np.interp(t, cum, ys)


def _stroke(shape: tuple[int, int], xs: _Array, ys: _Array, width: float, step: float = 0.35) -> _Array:
    """Alpha ``(H, W)`` of a stroke through densely sampled points (pixel units).

    Points are splatted bilinearly and blurred with a Gaussian; the scaled result is opaque over
    about ``width`` px and anti-aliased at the sides.
    """
    H, W = shape
    out = np.zeros((H, W), dtype=_F)
    if len(xs) == 0:
        return out
    sigma = max(width / 2.7, 0.4)
    pad = int(np.ceil(3 * sigma)) + 2
    x0, x1 = max(int(np.floor(xs.min())) - pad, 0), min(int(np.ceil(xs.max())) + pad + 1, W)
    y0, y1 = max(int(np.floor(ys.min())) - pad, 0), min(int(np.ceil(ys.max())) + pad + 1, H)
    if x0 >= x1 or y0 >= y1:
        return out
    h, w = y1 - y0, x1 - x0
    lx, ly = xs - x0, ys - y0
    ix, iy = np.floor(lx).astype(np.int64), np.floor(ly).astype(np.int64)
    fx, fy = lx - ix, ly - iy
    idx_parts, wt_parts = [], []
    for dx, dy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        jx, jy = ix + dx, iy + dy
        ok = (jx >= 0) & (jx < w) & (jy >= 0) & (jy < h)
        idx_parts.append(jy[ok] * w + jx[ok])
        wt_parts.append(wt[ok])
    acc = np.bincount(np.concatenate(idx_parts), np.concatenate(wt_parts), minlength=h * w)
    acc = acc.reshape(h, w).astype(_F)
    blur = ndimage.gaussian_filter(acc, sigma, mode="constant", truncate=3.0)
    peak = (1.0 / step) / (np.sqrt(2 * np.pi) * sigma)
    a = np.clip(blur * _F(2.5 / peak), 0, 1)
    a[a < 0.02] = 0
    out[y0:y1, x0:x1] = a
    return out


# ---------------------------------------------------------------------------------- artifacts
def _centre_grid(H: int, W: int) -> tuple[_Array, _Array]:
    ys = np.arange(H, dtype=_F)[:, None]
    xs = np.arange(W, dtype=_F)[None, :]
    return xs, ys


def _art_ink(f: _Array, rng: np.random.Generator) -> tuple[_Array, _Array]:
    H, W = f.shape[:2]
    s = float(min(H, W))
    colour = _jitter(rng, [(0.40, 0.16, 0.62), (0.26, 0.18, 0.66), (0.20, 0.24, 0.70), (0.50, 0.14, 0.56)][
        int(rng.integers(4))], 0.08)
    width = max(s * rng.uniform(0.022, 0.034), 1.5)
    cx, cy = (W - 1) / 2 + rng.normal(0, 0.03 * s), (H - 1) / 2 + rng.normal(0, 0.03 * s)
    style = rng.choice(3, p=[0.5, 0.35, 0.15])
    if style == 2:  # dots around the lesion
        n = int(rng.integers(6, 13))
        ang = rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n + rng.normal(0, 0.15, n)
        rad = s * rng.uniform(0.36, 0.46, n)
        alpha = _discs((H, W), cx + rad * np.cos(ang), cy + rad * np.sin(ang),
                       np.full(n, max(s * rng.uniform(0.028, 0.045), 1.2)))
    else:
        xs_all, ys_all = [], []
        if style == 0:  # hand-drawn circle or ellipse around the lesion, possibly not closed
            n = 400
            start, span = rng.uniform(0, 2 * np.pi), rng.uniform(1.7 * np.pi, 2.1 * np.pi)
            t = start + np.linspace(0, span, n)
            rx, ry = s * rng.uniform(0.38, 0.46), s * rng.uniform(0.38, 0.46)
            wob = 1 + 0.03 * np.sin(t * rng.integers(2, 4) + rng.uniform(0, 6)) + 0.015 * rng.normal()
            xs_all.append(cx + rx * wob * np.cos(t))
            ys_all.append(cy + ry * wob * np.sin(t))
        else:  # a few marker strokes next to the lesion
            for _ in range(int(rng.integers(2, 5))):
                a, dist = rng.uniform(0, 2 * np.pi), s * rng.uniform(0.3, 0.42)
                mx, my = cx + dist * np.cos(a), cy + dist * np.sin(a)
                ln = s * rng.uniform(0.18, 0.35)
                ori = a + np.pi / 2 + rng.normal(0, 0.3) if rng.random() < 0.6 else a + rng.normal(0, 0.3)
                t = np.linspace(-0.5, 0.5, 20)
                bend = rng.normal(0, 0.08) * ln * (1 - 4 * t**2)
                xs_all.append(mx + t * ln * np.cos(ori) - bend * np.sin(ori))
                ys_all.append(my + t * ln * np.sin(ori) + bend * np.cos(ori))
        pts = [_resample(x, y) for x, y in zip(xs_all, ys_all, strict=True)]
        alpha = _stroke((H, W), np.concatenate([p[0] for p in pts]), np.concatenate([p[1] for p in pts]), width)
    out = f.copy()
    _blend(out, colour, alpha * _F(rng.uniform(0.85, 0.95)))
    return out, alpha > 0


def _art_hair(f: _Array, rng: np.random.Generator) -> tuple[_Array, _Array]:
    H, W = f.shape[:2]
    s = float(min(H, W))
    out = f.copy()
    changed = np.zeros((H, W), bool)
    for _ in range(int(rng.integers(2, 9))):
        # a quadratic Bezier from one side of the image across it
        side = int(rng.integers(4))
        pts = rng.uniform(0, 1, (3, 2)) * np.array([W - 1, H - 1])
        if side == 0:
            pts[0, 1] = -2
        elif side == 1:
            pts[0, 1] = H + 1
        elif side == 2:
            pts[0, 0] = -2
        else:
            pts[0, 0] = W + 1
        pts[1] += rng.normal(0, 0.25 * s, 2)
        t = np.linspace(0, 1, 60)[:, None]
        curve = (1 - t) ** 2 * pts[0] + 2 * (1 - t) * t * pts[1] + t**2 * pts[2]
        x, y = _resample(curve[:, 0], curve[:, 1])
        a = _stroke((H, W), x, y, max(s * rng.uniform(0.008, 0.014), 1.1))
        _blend(out, _jitter(rng, (0.09, 0.06, 0.05), 0.3), a * _F(rng.uniform(0.85, 0.95)))
        changed |= a > 0
    return out, changed


def _art_ruler(f: _Array, rng: np.random.Generator) -> tuple[_Array, _Array]:
    H, W = f.shape[:2]
    s = float(min(H, W))
    xs, ys = _centre_grid(H, W)
    edge = int(rng.integers(4))
    if edge == 0:
        a, b, L = xs + 0 * ys, ys + 0 * xs, W
    elif edge == 1:
        a, b, L = xs + 0 * ys, (H - 1 - ys) + 0 * xs, W
    elif edge == 2:
        a, b, L = ys + 0 * xs, xs + 0 * ys, H
    else:
        a, b, L = ys + 0 * xs, (W - 1 - xs) + 0 * ys, H
    bw = s * rng.uniform(0.11, 0.16)
    off = s * rng.uniform(-0.02, 0.03)
    tilt = np.tan(np.deg2rad(rng.normal(0, 3.0)))
    bb = b - _F(off) - _F(tilt) * (a - _F(L / 2))
    body = np.clip(bb + 0.5, 0, 1) * np.clip(_F(bw) + 0.5 - bb, 0, 1)
    pitch = max(s * rng.uniform(0.032, 0.045), 3.0)
    phase = rng.uniform(0, pitch)
    k = np.rint((a - _F(phase)) / _F(pitch))
    dist = np.abs(a - _F(phase) - k * _F(pitch))
    tw = max(s * 0.008, 1.0)
    length = np.where(k % 10 == 0, 0.75, np.where(k % 5 == 0, 0.55, 0.33)).astype(_F) * _F(bw)
    tick = np.clip(_F(tw / 2 + 0.5) - dist, 0, 1) * np.clip(bb - (_F(bw) - length) + 0.5, 0, 1) * body
    line = np.clip(_F(tw / 2 + 0.5) - np.abs(bb - _F(bw - tw / 2)), 0, 1) * body
    out = f.copy()
    body_col = _jitter(rng, (0.93, 0.93, 0.88), 0.03) if rng.random() < 0.7 else _jitter(rng, (0.95, 0.86, 0.45), 0.04)
    _blend(out, body_col, body * _F(rng.uniform(0.6, 0.8)))
    ink = np.maximum(tick, line)
    _blend(out, (0.06, 0.06, 0.07), ink * _F(0.95))
    return out, body > 0


def _art_dark_corner(f: _Array, rng: np.random.Generator) -> tuple[_Array, _Array]:
    H, W = f.shape[:2]
    s = float(min(H, W))
    xs, ys = _centre_grid(H, W)
    cx, cy = (W - 1) / 2 + rng.normal(0, 0.03 * s), (H - 1) / 2 + rng.normal(0, 0.03 * s)
    rho = np.sqrt((xs - _F(cx)) ** 2 + (ys - _F(cy)) ** 2) / _F(0.5 * s)
    r0, soft = rng.uniform(0.86, 1.0), rng.uniform(0.08, 0.2)
    dark = _smoothstep(r0, r0 + soft, rho) * _F(rng.uniform(0.93, 1.0))
    out = f.copy()
    _blend(out, (0.02, 0.02, 0.02), dark)
    return out, dark > 0


def _art_patch(f: _Array, rng: np.random.Generator) -> tuple[_Array, _Array]:
    H, W = f.shape[:2]
    s = float(min(H, W))
    palette = [(0.99, 0.86, 0.10), (1.0, 0.55, 0.10), (0.30, 0.86, 0.32), (0.98, 0.42, 0.70), (0.98, 0.22, 0.20)]
    out = f.copy()
    changed = np.zeros((H, W), bool)
    n = 1 if rng.random() < 0.85 else 2
    a0 = rng.uniform(0, 2 * np.pi)
    for i in range(n):
        colour = _jitter(rng, palette[int(rng.integers(len(palette)))], 0.04)
        r = max(s * rng.uniform(0.08, 0.12), 2.0)
        ang, dist = a0 + i * np.pi + rng.normal(0, 0.3), s * rng.uniform(0.37, 0.45)
        cx, cy = (W - 1) / 2 + dist * np.cos(ang), (H - 1) / 2 + dist * np.sin(ang)
        disc = _discs((H, W), np.array([cx]), np.array([cy]), np.array([r]))
        xs, ys = _centre_grid(H, W)
        rho = np.sqrt((xs - _F(cx)) ** 2 + (ys - _F(cy)) ** 2) / _F(r)
        shade = (1 - 0.18 * np.clip(rho, 0, 1) ** 2)[..., None]
        layer = colour * shade
        rim = _smoothstep(0.8, 0.95, rho)[..., None]
        layer = layer * (1 - 0.3 * rim)
        hl = _discs((H, W), np.array([cx - 0.35 * r]), np.array([cy - 0.35 * r]), np.array([0.22 * r]))
        layer = layer * (1 - 0.5 * hl[..., None]) + 0.5 * hl[..., None]
        _blend(out, layer.astype(_F), disc)
        changed |= disc > 0
    return out, changed


def _art_gel_bubble(f: _Array, rng: np.random.Generator) -> tuple[_Array, _Array]:
    H, W = f.shape[:2]
    s = float(min(H, W))
    out = f.copy()
    changed = np.zeros((H, W), bool)
    for _ in range(int(rng.integers(2, 7))):
        r = max(s * rng.uniform(0.04, 0.1), 2.0)
        cx, cy = rng.uniform(0, W - 1), rng.uniform(0, H - 1)
        x0, x1 = max(int(cx - r - 3), 0), min(int(np.ceil(cx + r + 4)), W)
        y0, y1 = max(int(cy - r - 3), 0), min(int(np.ceil(cy + r + 4)), H)
        if x0 >= x1 or y0 >= y1:
            continue
        xs = np.arange(x0, x1, dtype=_F)[None, :] - _F(cx)
        ys = np.arange(y0, y1, dtype=_F)[:, None] - _F(cy)
        dist = np.sqrt(xs * xs + ys * ys)
        fill = np.clip(_F(r + 0.5) - dist, 0, 1)
        rim_w = max(0.12 * r, 1.0)
        rim = np.clip(_F(rim_w / 2 + 0.5) - np.abs(dist - _F(r - rim_w / 2)), 0, 1)
        outer = np.clip(_F(1.0) - np.abs(dist - _F(r + 0.7)), 0, 1) * _F(0.35)
        hx, hy, hr = -0.38 * r, -0.38 * r, max(0.2 * r, 1.0)
        spec = np.clip(_F(hr + 0.5) - np.sqrt((xs - _F(hx)) ** 2 + (ys - _F(hy)) ** 2), 0, 1)
        spec2 = np.clip(_F(0.5 * hr + 0.5) - np.sqrt((xs + _F(hx)) ** 2 + (ys + _F(hy)) ** 2), 0, 1)
        sub = out[y0:y1, x0:x1]
        _blend(sub, (0.10, 0.10, 0.12), outer)
        _blend(sub, (1.0, 1.0, 1.0), fill * _F(0.22))
        _blend(sub, (0.97, 0.98, 1.0), rim * _F(0.75))
        _blend(sub, (1.0, 1.0, 1.0), spec * _F(0.95))
        _blend(sub, (1.0, 1.0, 1.0), spec2 * _F(0.6))
        changed[y0:y1, x0:x1] |= (fill > 0) | (outer > 0)
    return out, changed


_ARTIFACT_DRAW: dict[str, Callable[[_Array, np.random.Generator], tuple[_Array, _Array]]] = {
    "ruler": _art_ruler,
    "ink": _art_ink,
    "hair": _art_hair,
    "dark_corner": _art_dark_corner,
    "patch": _art_patch,
    "gel_bubble": _art_gel_bubble,
}


def draw_artifact(image: np.ndarray, artifact: str, rng: np.random.Generator) -> np.ndarray:
    """Draw one artifact onto any RGB image.

    Parameters
    ----------
    image
        ``(H, W, 3)`` uint8 image of any size (not modified).
    artifact
        One of ``concepts.ARTIFACTS``: ``ruler`` (graduated scale near an edge), ``ink``
        (purple/blue marker circle, strokes or dots around the centre), ``hair`` (dark thin
        curved lines), ``dark_corner`` (vignetting), ``patch`` (bright round adhesive sticker near
        the border), ``gel_bubble`` (light circles with specular highlights).
    rng
        Source of randomness (placement, shape, colour).

    Returns
    -------
    numpy.ndarray
        A new ``(H, W, 3)`` uint8 image; pixels outside the drawn artifact are bit-identical to
        the input.

    Raises
    ------
    DataError
        Unknown artifact name or an image that is not ``(H, W, 3)`` uint8.
    """
    return draw_artifact_with_mask(image, artifact, rng)[0]


def draw_artifact_with_mask(
    image: np.ndarray, artifact: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`draw_artifact`, also returning where the artifact was drawn.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The new ``(H, W, 3)`` uint8 image and an ``(H, W)`` bool mask of the pixels the artifact
        covers (with any opacity). The mask depends only on the image size and ``rng``, never on
        the pixel values; outside it the new image equals the input.
    """
    if artifact not in _ARTIFACT_DRAW:
        raise DataError(f"unknown artifact {artifact!r}; valid artifacts are {', '.join(ARTIFACTS)}")
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DataError(
            f"draw_artifact needs an (H, W, 3) uint8 RGB image, got shape {arr.shape} and dtype "
            f"{arr.dtype} — convert with numpy.asarray(PIL.Image.open(p).convert('RGB'))"
        )
    f = arr.astype(_F) / _F(255)
    drawn, changed = _ARTIFACT_DRAW[artifact](f, rng)
    new = np.clip(np.rint(drawn * 255), 0, 255).astype(np.uint8)
    return np.where(changed[..., None], new, arr), changed
