"""DermSynth's lesions: skin, lesion shape and the seven 7-point-checklist criteria.

Everything here is vectorised numpy on precomputed coordinate grids (no per-pixel Python loops;
loops run over drawn objects only). A lesion is a pure function of ``(render_seed, diagnosis,
criteria flags, size)``: every component draws from its own random stream derived from the
render seed, so switching one criterion or one artifact on or off leaves every other component
exactly as it was (the basis of counterfactual twins). Artifacts are drawn by
:mod:`concepts.dermsynth._artifacts`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from concepts._errors import DataError
from concepts.data import ARTIFACTS, CRITERIA
from concepts.dermsynth._artifacts import (
    _F,
    ARTIFACT_ORDER,
    _blend,
    _discs,
    _jitter,
    _resample,
    _smoothstep,
    _stroke,
    draw_artifact,
    draw_artifact_with_mask,
)

__all__ = [
    "SKIN_TONE_GROUPS",
    "apply_artifacts",
    "artifact_mask",
    "render_image",
    "render_lesion",
    "skin_tone_group",
    "skin_tone_value",
    "stream_rng",
]

#: Fitzpatrick-like skin-tone groups and their shares among DermSynth cases.
SKIN_TONE_GROUPS: tuple[str, ...] = ("light", "medium", "dark")
_TONE_SHARES = (0.5, 0.3, 0.2)

# Random-stream ids (second entropy word after the render seed).
_STREAM_TONE = 1
_STREAM_LESION = 2
_STREAM_FINISH = 3
_STREAM_CRITERION = 10  # + index in CRITERIA
_STREAM_ARTIFACT = 30  # + index in ARTIFACTS

# Drawing order of the criteria (structureless areas first, fine structures on top).
_CRITERION_ORDER: tuple[str, ...] = (
    "pigmentation",
    "pigment_network",
    "regression_structures",
    "blue_whitish_veil",
    "streaks",
    "dots_and_globules",
    "vascular_structures",
)

_Array = np.ndarray


def stream_rng(render_seed: int, stream: int) -> np.random.Generator:
    """The random generator of one drawing component of one case.

    Parameters
    ----------
    render_seed
        The case's render seed (non-negative).
    stream
        Component id; different components never share a stream.
    """
    return np.random.default_rng([int(render_seed), int(stream), 0xD5])


# ---------------------------------------------------------------------------------- skin tone
def skin_tone_value(render_seed: int) -> float:
    """Numeric skin tone of a case in ``[0, 1)`` (0 = lightest), a function of its render seed.

    The three groups of :data:`SKIN_TONE_GROUPS` cover ``[0, 1/3)``, ``[1/3, 2/3)`` and
    ``[2/3, 1)`` and hold 50 %, 30 % and 20 % of the cases.
    """
    u = float(stream_rng(render_seed, _STREAM_TONE).random())
    lo = 0.0
    for g, share in enumerate(_TONE_SHARES):
        if u < lo + share or g == len(_TONE_SHARES) - 1:
            frac = min(max((u - lo) / share, 0.0), 0.999999)
            return (g + frac) / 3.0
        lo += share
    raise AssertionError("unreachable")  # pragma: no cover


def skin_tone_group(value: float) -> str:
    """The group name (``"light"``, ``"medium"`` or ``"dark"``) of a numeric skin tone."""
    return SKIN_TONE_GROUPS[min(int(value * 3.0), 2)]


def _skin_colour(tone: float) -> _Array:
    anchors = np.array(
        [[0.95, 0.78, 0.72], [0.86, 0.64, 0.52], [0.66, 0.46, 0.34], [0.42, 0.28, 0.20]], dtype=_F
    )
    pos = tone * (len(anchors) - 1)
    i = min(int(pos), len(anchors) - 2)
    f = pos - i
    return ((1 - f) * anchors[i] + f * anchors[i + 1]).astype(_F)


# ---------------------------------------------------------------------------------- helpers
@lru_cache(maxsize=16)
def _grid(size: int) -> tuple[_Array, _Array]:
    """Unit coordinates of the pixel centres, ``X`` (columns) and ``Y`` (rows), in ``(0, 1)``."""
    c = ((np.arange(size, dtype=_F) + 0.5) / size).astype(_F)
    X, Y = np.meshgrid(c, c)
    X.setflags(write=False)
    Y.setflags(write=False)
    return X, Y


@lru_cache(maxsize=64)
def _interp_matrix(size: int, cells: int) -> _Array:
    """``(size, cells)`` smooth interpolation weights from a coarse grid to pixels."""
    t = (np.arange(size, dtype=np.float64) + 0.5) / size * (cells - 1)
    i0 = np.minimum(np.floor(t).astype(np.int64), cells - 2)
    f = t - i0
    f = f * f * (3 - 2 * f)
    M = np.zeros((size, cells), dtype=_F)
    M[np.arange(size), i0] = 1 - f
    M[np.arange(size), i0 + 1] += f
    M.setflags(write=False)
    return M


def _noise(rng: np.random.Generator, size: int, cells: int) -> _Array:
    """Smooth value noise of roughly unit standard deviation, ``(size, size)``."""
    M = _interp_matrix(size, cells)
    G = rng.standard_normal((cells, cells)).astype(_F)
    return (M @ G @ M.T) * _F(1.35)


def _blob(X: _Array, Y: _Array, cx: float, cy: float, rx: float, ry: float, rng: np.random.Generator,
          soft: float = 0.25, wobble: float = 0.15) -> _Array:
    """Soft irregular ellipse (unit coordinates) with a random harmonic boundary."""
    rot = rng.uniform(0, np.pi)
    c, s = np.cos(rot), np.sin(rot)
    dx, dy = X - _F(cx), Y - _F(cy)
    u = (dx * _F(c) + dy * _F(s)) / _F(rx)
    v = (-dx * _F(s) + dy * _F(c)) / _F(ry)
    rho = np.sqrt(u * u + v * v)
    phi = np.arctan2(v, u)
    bound = np.ones_like(rho)
    for k in (2, 3, 5):
        bound += _F(rng.normal(0, wobble / k**0.5)) * np.cos(k * phi + _F(rng.uniform(0, 2 * np.pi)))
    rho = rho / np.clip(bound, 0.5, 1.6)
    return _smoothstep(1 + soft / 2, 1 - soft / 2, rho)


# ---------------------------------------------------------------------------------- lesion
@dataclass(frozen=True)
class _Lesion:
    """Geometry and base colour of one lesion (unit coordinates)."""

    size: int
    X: _Array
    Y: _Array
    cx: float
    cy: float
    R: float
    harm: tuple[tuple[int, float, float], ...]
    d: _Array  # distance from the centre divided by the border radius at that angle
    mask: _Array  # soft lesion mask
    colour: _Array  # (3,) mean lesion colour

    def border(self, ang: _Array) -> _Array:
        """Border radius (unit coordinates) at angles ``ang``."""
        b = np.ones_like(ang)
        for k, a, p in self.harm:
            b = b + a * np.cos(k * ang + p)
        return self.R * np.clip(b, 0.55, 1.5)

    def px(self, u: _Array) -> _Array:
        """Unit coordinate to pixel coordinate."""
        return u * self.size - 0.5

    def inside(self, rng: np.random.Generator, n: int, lo: float = 0.0, hi: float = 0.9,
               centre: tuple[float, float] | None = None, spread: float | None = None) -> tuple[_Array, _Array]:
        """``n`` random points (unit coordinates) in the lesion (``lo <= d < hi``) or around a centre."""
        if centre is not None and spread is not None:
            x = centre[0] + rng.normal(0, spread, n)
            y = centre[1] + rng.normal(0, spread, n)
            return x, y
        ang = rng.uniform(0, 2 * np.pi, n)
        rad = np.sqrt(rng.uniform(lo * lo, hi * hi, n)) * self.border(ang)
        return self.cx + rad * np.cos(ang), self.cy + rad * np.sin(ang)


def _make_lesion(rng: np.random.Generator, size: int, melanoma: bool, tone: float) -> _Lesion:
    X, Y = _grid(size)
    cx = 0.5 + float(np.clip(rng.normal(0, 0.035), -0.08, 0.08))
    cy = 0.5 + float(np.clip(rng.normal(0, 0.035), -0.08, 0.08))
    R = float(np.clip(rng.normal(0.27 + 0.02 * melanoma, 0.045), 0.16, 0.38))
    irregular = 0.06 + 0.025 * melanoma
    harm = tuple(
        (k, float(rng.normal(0, irregular * (1.4 if k == 2 else 1.0) / k**0.6)), float(rng.uniform(0, 2 * np.pi)))
        for k in (2, 3, 4, 5, 7)
    )
    dx, dy = X - _F(cx), Y - _F(cy)
    theta = np.arctan2(dy, dx)
    dist = np.sqrt(dx * dx + dy * dy)
    les = _Lesion(size, X, Y, cx, cy, R, harm, dist, dist, np.zeros(3, _F))
    d = (dist / les.border(theta)).astype(_F)
    edge = rng.uniform(0.05, 0.14)
    mask = _smoothstep(1 + edge / 2, 1 - edge / 2, d)
    light = _jitter(rng, (0.66, 0.45, 0.30), 0.08)
    dark = _jitter(rng, (0.33, 0.19, 0.11), 0.08)
    colour = ((0.5 * light + 0.5 * dark) * (1 - 0.4 * tone)).astype(_F)
    return _Lesion(size, X, Y, cx, cy, R, harm, d, mask, colour)


def _base_image(rng: np.random.Generator, les: _Lesion, tone: float) -> _Array:
    S = les.size
    skin = _skin_colour(tone) * _F(1 + rng.uniform(-0.04, 0.04))
    shade = 1 + 0.05 * _noise(rng, S, 4) + 0.012 * _noise(rng, S, 11)
    gx, gy = rng.normal(0, 0.05, 2)
    shade += _F(gx) * (les.X - 0.5) + _F(gy) * (les.Y - 0.5)
    img = skin[None, None, :] * shade[..., None]
    # faint erythema around the lesion
    _blend(img, (0.85, 0.45, 0.45), 0.12 * _smoothstep(1.6, 1.0, les.d) * (1 - 0.6 * tone))
    light = np.asarray(les.colour, _F) * _F(1.45)
    dark = np.asarray(les.colour, _F) * _F(0.6)
    f = np.clip(0.3 + 0.45 * (1 - les.d) + 0.18 * _noise(rng, S, 6), 0, 1)[..., None]
    col = light * (1 - f) + dark * f
    a = les.mask[..., None]
    img = img * (1 - a) + col * a
    return img.astype(_F)


def _voronoi_edges_px(les: _Lesion, seeds: _Array, d_max: float) -> tuple[_Array, tuple[slice, slice]]:
    """Distance in px to the nearest Voronoi cell boundary where ``les.d < d_max`` (inf elsewhere).

    Returns the distances on the bounding box of that region and the box's slices.
    """
    inside = les.d < d_max
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if len(rows) == 0:
        return np.zeros((0, 0), _F), (slice(0, 0), slice(0, 0))
    sl = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    sub = inside[sl]
    pts = np.stack([les.X[sl][sub], les.Y[sl][sub]], axis=1)
    dd, ii = cKDTree(seeds).query(pts, k=2)
    p1, p2 = seeds[ii[:, 0]], seeds[ii[:, 1]]
    sep = np.maximum(np.hypot(*(p2 - p1).T), 1e-6)
    e = np.full(sub.shape, np.inf, dtype=_F)
    e[sub] = (dd[:, 1] ** 2 - dd[:, 0] ** 2) / (2 * sep) * les.size
    return e, sl


# ---------------------------------------------------------------------------------- criteria
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


_CRITERION_DRAW: dict[str, Callable[[_Array, _Lesion, np.random.Generator, bool], None]] = {
    "pigment_network": _pigment_network,
    "blue_whitish_veil": _blue_whitish_veil,
    "vascular_structures": _vascular,
    "pigmentation": _pigmentation,
    "streaks": _streaks,
    "dots_and_globules": _dots_and_globules,
    "regression_structures": _regression,
}


def render_lesion(render_seed: int, melanoma: bool, criteria: Sequence[int], size: int) -> np.ndarray:
    """Draw one lesion without artifacts.

    Parameters
    ----------
    render_seed
        The case's render seed.
    melanoma
        Diagnosis (changes the base lesion's size and border irregularity a little).
    criteria
        Presence of each criterion, in the order of ``concepts.CRITERIA``.
    size
        Image side in pixels.

    Returns
    -------
    numpy.ndarray
        ``(size, size, 3)`` uint8.
    """
    if len(criteria) != len(CRITERIA):
        raise DataError(f"need {len(CRITERIA)} criterion flags ({', '.join(CRITERIA)}), got {len(criteria)}")
    tone = skin_tone_value(render_seed)
    rng = stream_rng(render_seed, _STREAM_LESION)
    les = _make_lesion(rng, size, bool(melanoma), tone)
    img = _base_image(rng, les, tone)
    flags = dict(zip(CRITERIA, (bool(c) for c in criteria), strict=True))
    for name in _CRITERION_ORDER:
        crng = stream_rng(render_seed, _STREAM_CRITERION + CRITERIA.index(name))
        _CRITERION_DRAW[name](img, les, crng, flags[name])
    fin = stream_rng(render_seed, _STREAM_FINISH)
    img = ndimage.gaussian_filter(img, (0.45 * size / 128.0, 0.45 * size / 128.0, 0), truncate=2.5)
    img += fin.normal(0, 0.012, img.shape).astype(_F)
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def render_image(render_seed: int, melanoma: bool, criteria: Sequence[int],
                 artifacts: Sequence[int], size: int) -> np.ndarray:
    """Draw one case: the lesion, then each present artifact in :data:`ARTIFACT_ORDER`.

    ``artifacts`` are flags in the order of ``concepts.ARTIFACTS``; each artifact draws from its
    own random stream, so toggling one leaves the others unchanged.
    """
    img = render_lesion(render_seed, melanoma, criteria, size)
    return apply_artifacts(img, render_seed, artifacts)


def apply_artifacts(img: np.ndarray, render_seed: int, artifacts: Sequence[int]) -> np.ndarray:
    """Draw the present artifacts (flags in ``concepts.ARTIFACTS`` order) onto a lesion image."""
    if len(artifacts) != len(ARTIFACTS):
        raise DataError(f"need {len(ARTIFACTS)} artifact flags ({', '.join(ARTIFACTS)}), got {len(artifacts)}")
    flags = dict(zip(ARTIFACTS, (bool(a) for a in artifacts), strict=True))
    for name in ARTIFACT_ORDER:
        if flags[name]:
            img = draw_artifact(img, name, stream_rng(render_seed, _STREAM_ARTIFACT + ARTIFACTS.index(name)))
    return img



def artifact_mask(render_seed: int, artifact: str, size: int) -> np.ndarray:
    """``(size, size)`` bool mask of where ``artifact`` is (or would be) drawn on a case.

    The region depends only on the render seed and the size, never on the lesion or the other
    artifacts.
    """
    if artifact not in ARTIFACTS:
        raise DataError(f"unknown artifact {artifact!r}; valid artifacts are {', '.join(ARTIFACTS)}")
    rng = stream_rng(render_seed, _STREAM_ARTIFACT + ARTIFACTS.index(artifact))
    return draw_artifact_with_mask(np.zeros((size, size, 3), np.uint8), artifact, rng)[1]
