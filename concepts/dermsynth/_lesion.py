"""DermSynth's skin and lesion geometry: random streams, skin tone, grids, noise and the base lesion.

A lesion is a pure function of ``(render_seed, diagnosis, criteria flags, size)``: every
component draws from its own random stream (:func:`stream_rng`) derived from the render seed, so
switching one criterion or one artifact on or off leaves every other component exactly as it was.
The criteria are drawn on top by :mod:`concepts.dermsynth._criteria`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.spatial import cKDTree

from concepts.dermsynth._artifacts import (
    _F,
    _blend,
    _jitter,
    _smoothstep,
)

__all__ = ["SKIN_TONE_GROUPS", "skin_tone_group", "skin_tone_value", "stream_rng"]

#: Fitzpatrick-like skin-tone groups and their shares among DermSynth cases.
SKIN_TONE_GROUPS: tuple[str, ...] = ("light", "medium", "dark")
_TONE_SHARES = (0.5, 0.3, 0.2)

# Random-stream ids (second entropy word after the render seed).
_STREAM_TONE = 1
_STREAM_LESION = 2
_STREAM_FINISH = 3
_STREAM_CRITERION = 10  # + index in CRITERIA
_STREAM_ARTIFACT = 30  # + index in ARTIFACTS

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
