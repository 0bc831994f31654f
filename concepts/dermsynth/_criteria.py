"""DermSynth's seven 7-point-checklist criteria, each drawn onto a lesion from its own random stream.

Every drawer takes ``(image, lesion, rng, present)`` and draws the typical (absent) or atypical
(present) form in place; :data:`CRITERION_ORDER` is the drawing order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from concepts.dermsynth._artifacts import (
    _F,
    _blend,
    _discs,
    _jitter,
    _resample,
    _smoothstep,
    _stroke,
)
from concepts.dermsynth._lesion import _Array, _blob, _Lesion, _noise, _voronoi_edges_px

__all__ = ["CRITERION_DRAW", "CRITERION_ORDER"]

# Drawing order of the criteria (structureless areas first, fine structures on top).
CRITERION_ORDER: tuple[str, ...] = (
    "pigmentation",
    "pigment_network",
    "regression_structures",
    "blue_whitish_veil",
    "streaks",
    "dots_and_globules",
    "vascular_structures",
)


def _pigment_network(img: _Array, les: _Lesion, rng: np.random.Generator, present: bool) -> None:
    S, R = les.size, les.R
    scale = S / 128.0
    if present:  # atypical: thick, dark, irregular, broken mesh with variable holes
        h = rng.uniform(0.07, 0.095)
        g = np.arange(-1.5 * R, 1.5 * R + h, h)
        gx, gy = np.meshgrid(les.cx + g, les.cy + g)
        grid = np.stack([gx.ravel(), gy.ravel()], axis=1) + rng.normal(0, 0.3 * h, (gx.size, 2))
        extra = np.stack(les.inside(rng, int(rng.integers(5, 20)), 0.0, 1.0), axis=1)
        seeds = np.concatenate([grid, extra])
        e, sl = _voronoi_edges_px(les, seeds, 1.12)
        hw = rng.uniform(0.8, 1.15) * scale * (1 + 0.45 * _noise(rng, S, 7)[sl])
        a = np.clip(hw + 0.5 - e, 0, 1)
        region = _smoothstep(-1.9, -1.0, _noise(rng, S, 4)[sl])
        broken = _smoothstep(-1.5, -0.9, _noise(rng, S, 10)[sl])
        alpha = np.zeros((S, S), _F)
        alpha[sl] = a * region * broken * _smoothstep(1.12, 0.98, les.d[sl]) * _F(0.92)
        _blend(img, _jitter(rng, (0.12, 0.07, 0.05), 0.15), alpha)
    elif rng.random() < 0.6:  # typical: fine, regular, light-brown honeycomb fading to the rim
        h = rng.uniform(0.042, 0.055)
        g = np.arange(-1.3 * R, 1.3 * R + h, h)
        gx, gy = np.meshgrid(les.cx + g, les.cy + g)
        gx = gx + (np.arange(gx.shape[0])[:, None] % 2) * h / 2
        seeds = np.stack([gx.ravel(), gy.ravel()], axis=1) + rng.normal(0, 0.1 * h, (gx.size, 2))
        e, sl = _voronoi_edges_px(les, seeds, 0.98)
        a = np.clip(_F(max(0.45 * scale, 0.4)) + 0.5 - e, 0, 1)
        alpha = np.zeros((S, S), _F)
        alpha[sl] = a * _smoothstep(0.98, 0.45, les.d[sl]) * _F(0.45)
        _blend(img, les.colour * _F(0.55), alpha)


def _blue_whitish_veil(img: _Array, les: _Lesion, rng: np.random.Generator, present: bool) -> None:
    if not present:
        return
    ang, off = rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.4) * les.R
    bx, by = les.cx + off * np.cos(ang), les.cy + off * np.sin(ang)
    blob = _blob(les.X, les.Y, bx, by, les.R * rng.uniform(0.45, 0.7), les.R * rng.uniform(0.4, 0.6),
                 rng, soft=0.5, wobble=0.2)
    haze = np.clip(0.5 + 0.35 * _noise(rng, les.size, 7), 0, 1)[..., None]
    blue = _jitter(rng, (0.42, 0.52, 0.74), 0.06)
    white = np.array([0.80, 0.84, 0.90], _F)
    colour = blue * (1 - haze) + white * haze
    _blend(img, colour, blob * _smoothstep(1.05, 0.85, les.d) * _F(0.85))


def _vascular(img: _Array, les: _Lesion, rng: np.random.Generator, present: bool) -> None:
    if not present:
        return
    S = les.size
    scale = S / 128.0
    red = _jitter(rng, (0.80, 0.09, 0.16), 0.08)
    ang, off = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.5) * les.R
    centre = (les.cx + off * np.cos(ang), les.cy + off * np.sin(ang))
    blush = _blob(les.X, les.Y, centre[0], centre[1], les.R * 0.6, les.R * 0.5, rng, soft=0.6)
    _blend(img, (0.90, 0.42, 0.46), blush * les.mask * _F(0.35))
    style = rng.choice(3)  # 0 dotted, 1 linear irregular, 2 both
    if style != 1:
        n = int(rng.integers(22, 45))
        x, y = les.inside(rng, n, centre=centre, spread=les.R * 0.4)
        r = rng.uniform(0.75, 1.25, n) * scale
        _blend(img, red, _discs((S, S), les.px(x), les.px(y), r) * _F(0.95))
    if style != 0:
        xs_all, ys_all = [], []
        for _ in range(int(rng.integers(2, 5))):
            x0, y0 = les.inside(rng, 1, centre=centre, spread=les.R * 0.35)
            steps = int(rng.integers(8, 16))
            head = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.8, steps))
            ln = les.R * 0.05
            xs = les.px(np.concatenate([x0, x0 + np.cumsum(ln * np.cos(head))]))
            ys = les.px(np.concatenate([y0, y0 + np.cumsum(ln * np.sin(head))]))
            rx, ry = _resample(xs, ys)
            xs_all.append(rx)
            ys_all.append(ry)
        a = _stroke((S, S), np.concatenate(xs_all), np.concatenate(ys_all), 1.3 * scale)
        _blend(img, red, a * _F(0.95))


def _pigmentation(img: _Array, les: _Lesion, rng: np.random.Generator, present: bool) -> None:
    if present:  # irregular dark blotches, off-centre
        total = np.zeros((les.size, les.size), _F)
        for _ in range(int(rng.integers(1, 4))):
            ang, off = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.6) * les.R
            b = _blob(les.X, les.Y, les.cx + off * np.cos(ang), les.cy + off * np.sin(ang),
                      les.R * rng.uniform(0.22, 0.42), les.R * rng.uniform(0.18, 0.35), rng,
                      soft=0.3, wobble=0.3)
            np.maximum(total, b, out=total)
        alpha = total * _smoothstep(1.05, 0.9, les.d) * _F(0.92)
        _blend(img, _jitter(rng, (0.10, 0.06, 0.05), 0.2), alpha)
    elif rng.random() < 0.5:  # regular: symmetric, concentric darker centre
        _blend(img, les.colour * _F(0.6), _smoothstep(0.65, 0.0, les.d) * _F(0.35))


def _streaks(img: _Array, les: _Lesion, rng: np.random.Generator, present: bool) -> None:
    S = les.size
    scale = S / 128.0
    if present:  # irregular: clustered on part of the rim, uneven lengths, bulbous tips
        n = int(rng.integers(7, 15))
        ang0, width = rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 2.6)
        angs = ang0 + rng.uniform(-width / 2, width / 2, n)
        lengths = rng.uniform(0.12, 0.42, n)
        stroke_w, colour, alpha_max = rng.uniform(1.2, 1.7) * scale, (0.14, 0.08, 0.06), 0.95
    elif rng.random() < 0.12:  # regular: symmetric starburst
        n = int(rng.integers(18, 28))
        angs = rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n
        lengths = np.full(n, rng.uniform(0.12, 0.18))
        stroke_w, colour, alpha_max = 1.0 * scale, tuple(les.colour * 0.7), 0.7
    else:
        return
    xs_all, ys_all, tips_x, tips_y = [], [], [], []
    for a, ln in zip(angs, lengths, strict=True):
        b = float(les.border(np.array([a]))[0])
        t = np.linspace(0.0, 1.0, 8)
        rad = b * (0.82 + t * (0.18 + ln))
        wig = (0.05 if present else 0.02) * np.sin(t * np.pi * rng.uniform(1, 3)) * rng.normal()
        xs = les.px(les.cx + rad * np.cos(a + wig))
        ys = les.px(les.cy + rad * np.sin(a + wig))
        rx, ry = _resample(xs, ys)
        xs_all.append(rx)
        ys_all.append(ry)
        if present and rng.random() < 0.5:
            tips_x.append(xs[-1])
            tips_y.append(ys[-1])
    alpha = _stroke((S, S), np.concatenate(xs_all), np.concatenate(ys_all), stroke_w)
    if tips_x:
        tips = _discs((S, S), np.array(tips_x), np.array(tips_y), np.full(len(tips_x), 1.6 * scale))
        np.maximum(alpha, tips, out=alpha)
    _blend(img, np.asarray(colour, _F), alpha * _F(alpha_max))


def _dots_and_globules(img: _Array, les: _Lesion, rng: np.random.Generator, present: bool) -> None:
    S = les.size
    scale = S / 128.0
    if present:  # irregular: varied sizes and colours, clustered and at the periphery
        n = int(rng.integers(16, 40))
        n_cl = int(n * 0.6)
        xs_parts, ys_parts = [], []
        for c in range(int(rng.integers(1, 4))):
            m = n_cl // 3 + (1 if c == 0 else 0)
            cx, cy = les.inside(rng, 1, 0.2, 0.8)
            x, y = les.inside(rng, m, centre=(float(cx[0]), float(cy[0])), spread=les.R * 0.14)
            xs_parts.append(x)
            ys_parts.append(y)
        x, y = les.inside(rng, n - sum(len(p) for p in xs_parts), 0.6, 1.12)
        x, y = np.concatenate([*xs_parts, x]), np.concatenate([*ys_parts, y])
        r = np.clip(rng.lognormal(np.log(1.4), 0.4, len(x)), 0.8, 3.4) * scale
        blue = rng.random(len(x)) < 0.3
        for sel, col in ((~blue, (0.13, 0.07, 0.05)), (blue, (0.17, 0.17, 0.26))):
            _blend(img, col, _discs((S, S), les.px(x[sel]), les.px(y[sel]), r[sel]) * _F(0.93))
    elif rng.random() < 0.35:  # regular: similar small brown globules, evenly spread
        h = rng.uniform(0.07, 0.09)
        g = np.arange(-les.R, les.R + h, h)
        gx, gy = np.meshgrid(les.cx + g, les.cy + g)
        x, y = gx.ravel() + rng.normal(0, 0.1 * h, gx.size), gy.ravel() + rng.normal(0, 0.1 * h, gx.size)
        ang = np.arctan2(y - les.cy, x - les.cx)
        keep = np.hypot(x - les.cx, y - les.cy) < 0.65 * les.border(ang)
        r = np.full(int(keep.sum()), 1.1 * scale)
        _blend(img, les.colour * _F(0.55), _discs((S, S), les.px(x[keep]), les.px(y[keep]), r) * _F(0.85))


def _regression(img: _Array, les: _Lesion, rng: np.random.Generator, present: bool) -> None:
    if not present:
        return
    S = les.size
    total = np.zeros((S, S), _F)
    centres = []
    for _ in range(int(rng.integers(1, 3))):
        cx, cy = les.inside(rng, 1, 0.1, 0.7)
        centres.append((float(cx[0]), float(cy[0])))
        b = _blob(les.X, les.Y, centres[-1][0], centres[-1][1], les.R * rng.uniform(0.2, 0.36),
                  les.R * rng.uniform(0.16, 0.3), rng, soft=0.45, wobble=0.3)
        np.maximum(total, b, out=total)
    _blend(img, _jitter(rng, (0.94, 0.90, 0.89), 0.03), total * les.mask * _F(0.88))
    # peppering: fine grey-blue granules in and around the white areas
    n = int(rng.integers(60, 120))
    xs, ys = [], []
    for i, c in enumerate(centres):
        m = n // len(centres) if i else n - (len(centres) - 1) * (n // len(centres))
        x, y = les.inside(rng, m, centre=c, spread=les.R * 0.3)
        xs.append(x)
        ys.append(y)
    px, py = les.px(np.concatenate(xs)), les.px(np.concatenate(ys))
    pep = _discs((S, S), px, py, np.full(len(px), 0.6 * S / 128.0))
    _blend(img, (0.33, 0.35, 0.45), pep * les.mask * _F(0.9))


CRITERION_DRAW: dict[str, Callable[[_Array, _Lesion, np.random.Generator, bool], None]] = {
    "pigment_network": _pigment_network,
    "blue_whitish_veil": _blue_whitish_veil,
    "vascular_structures": _vascular,
    "pigmentation": _pigmentation,
    "streaks": _streaks,
    "dots_and_globules": _dots_and_globules,
    "regression_structures": _regression,
}
