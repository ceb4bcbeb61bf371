"""Synthetic aerial scenes: the embedded demo dataset (procedural, UC Merced / AID-like classes).

Every image is drawn top-down in *scene units* (about one metre; an image spans ~58-90 units) on a
randomly rotated, scaled coordinate frame ``(u, v)``; all primitives are vectorised functions of
those coordinates (value-noise textures, distance fields of boxes, discs, bands and curves, jittered
grids of objects with their shadows), so rotation is exact and no pixel loop is needed. Each image
then gets random illumination, colour, blur / resolution and sensor noise.

The classes come in groups that are hard to tell apart on purpose (the three residential densities
share one house texture; freeway / runway / intersection; beach / bare_land / desert; water / river
/ harbor; forest / meadow / golf_course / chaparral), so distillation methods have confusable
classes to show their value on.

Image ``i`` of class ``c`` is drawn from ``default_rng(SeedSequence([seed, c, i]))``: it does not
depend on how many classes or images were asked for. :func:`generate_dataset` writes
``OUT/<class>/<class>_<i:04d>.png`` plus ``OUT/synth.json`` atomically (temporary sibling folder,
renamed at the end).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError

GENERATOR_VERSION = 1

SCENE_CLASSES: tuple[str, ...] = (
    # the default first 12
    "water", "forest", "agricultural", "beach", "river", "freeway", "runway",
    "dense_residential", "medium_residential", "sparse_residential", "parking_lot", "bare_land",
    # more (UC Merced-like)
    "meadow", "storage_tanks", "baseball_diamond", "tennis_court", "harbor", "airplane",
    "industrial", "golf_course", "intersection", "desert", "chaparral",
)

MIN_SIZE, MAX_SIZE = 16, 1024
_F = np.float32


# ------------------------------------------------------------------------------------------------
# canvas and vectorised primitives
# ------------------------------------------------------------------------------------------------


class _Canvas:
    """A randomly rotated / scaled scene frame: ``u, v`` (scene units) for every pixel and the image."""

    def __init__(self, size: int, rng: np.random.Generator):
        self.rng = rng
        self.n = size
        self.ext = 72.0 * float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
        self.px = self.ext / size  # scene units per pixel
        th = self.theta = rng.uniform(0.0, 2 * np.pi)
        g = (((np.arange(size) + 0.5) - size / 2) * self.px).astype(_F)
        x, y = g[None, :], g[:, None]
        ct, st = _F(np.cos(th)), _F(np.sin(th))
        self.u = ct * x + st * y
        self.v = -st * x + ct * y
        sa = rng.uniform(0.0, 2 * np.pi)
        self.sun = (float(np.cos(sa)), float(np.sin(sa)))  # direction shadows are cast, scene frame
        self.shadow = rng.uniform(0.35, 1.0)  # shadow length per unit of height
        elev = np.arctan(1.0 / self.shadow)
        self.light = np.array([-self.sun[0] * np.cos(elev), -self.sun[1] * np.cos(elev), np.sin(elev)], _F)
        self.img = np.zeros((size, size, 3), _F)

    def shifted(self, height: float) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates of the point whose shadow (for an object of ``height``) falls on each pixel."""
        k = height * self.shadow
        return self.u - _F(self.sun[0] * k), self.v - _F(self.sun[1] * k)


def _vnoise(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Value noise in [0, 1] at lattice coordinates ``x, y`` (smoothstep-bilinear over random lattice)."""
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    xmin, ymin = int(x0.min()), int(y0.min())
    lat = rng.random((int(y0.max()) - ymin + 2, int(x0.max()) - xmin + 2), dtype=_F)
    ix, iy = (x0 - xmin).astype(np.intp), (y0 - ymin).astype(np.intp)
    sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    a, b = lat[iy, ix], lat[iy, ix + 1]
    c, d = lat[iy + 1, ix], lat[iy + 1, ix + 1]
    top = a + (b - a) * sx
    return top + (c + (d - c) * sx - top) * sy


def _noise(c: _Canvas, scale: float, octaves: int = 1, u=None, v=None, aniso: float = 1.0) -> np.ndarray:
    """Zero-mean, roughly unit-std fractal value noise with feature size ``scale`` (scene units)."""
    u = c.u if u is None else u
    v = c.v if v is None else v
    off = c.rng.uniform(-1000, 1000, 2).astype(_F)
    tot = np.zeros(u.shape, _F)
    amp, amps = 1.0, []
    for k in range(octaves):
        f = 2.0**k / scale
        tot += _F(amp) * _vnoise(c.rng, (u + off[0]) * _F(f), (v + off[1]) * _F(f * aniso))
        amps.append(amp)
        amp *= 0.5
    s = sum(amps)
    return (tot / _F(s) - _F(0.5)) / _F(0.19 * np.sqrt(sum(a * a for a in amps)) / s)


def _alpha(sd: np.ndarray, px: float) -> np.ndarray:
    """Anti-aliased coverage of the shape with signed distance ``sd`` (negative inside)."""
    return np.clip(_F(0.5) - sd / _F(px), 0, 1)


def _line(d: np.ndarray, half: float, px: float) -> np.ndarray:
    """Exact pixel coverage of a band ``|d| < half`` (works for bands thinner than a pixel)."""
    h = _F(px / 2)
    return np.clip(np.minimum(_F(half), d + h) - np.maximum(_F(-half), d - h), 0, None) / _F(px)


def _box(x: np.ndarray, y: np.ndarray, hw, hh, r: float = 0.0) -> np.ndarray:
    """Signed distance to an axis-aligned (optionally rounded) box of half sizes ``hw, hh``."""
    qx, qy = np.abs(x) - hw + r, np.abs(y) - hh + r
    out = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    return out + np.minimum(np.maximum(qx, qy), 0) - _F(r)


def _rot(x: np.ndarray, y: np.ndarray, a: float) -> tuple[np.ndarray, np.ndarray]:
    ca, sa = _F(np.cos(a)), _F(np.sin(a))
    return ca * x + sa * y, -sa * x + ca * y


def _poly(x: np.ndarray, y: np.ndarray, pts) -> np.ndarray:
    """Signed distance (exact inside, approximate outside) to a convex polygon (either orientation)."""
    area = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]))
    if area < 0:
        pts = pts[::-1]
    out = None
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
        nx, ny = y2 - y1, x1 - x2  # outward normal of a counter-clockwise edge
        ln = np.hypot(nx, ny)
        d = (_F(nx / ln) * (x - x1) + _F(ny / ln) * (y - y1))
        out = d if out is None else np.maximum(out, d)
    return out


def _curve(c: _Canvas, amp: float, wavelength: float, v0: float = 0.0, frame=None):
    """A meandering curve ``y = v0 + f(x)`` (sum of three sinusoids) in ``frame`` (default: u, v).

    Returns ``dist(u, v)``: the signed distance across the curve, usable at any points (e.g. at the
    cell centres of a :class:`_Disks` layer as well as at the pixels).
    """
    rng = c.rng
    terms = []
    for k, a in enumerate((1.0, 0.45, 0.2)):
        w = 2 * np.pi / (wavelength / (1 + 1.3 * k) * rng.uniform(0.8, 1.25))
        terms.append((_F(amp * a), _F(w), _F(rng.uniform(0, 2 * np.pi))))

    def dist(u, v):
        x, y = frame(u, v) if frame is not None else (u, v)
        f = np.full(x.shape, _F(v0))
        df = np.zeros(x.shape, _F)
        for a, w, ph in terms:
            arg = w * x + ph
            f += a * np.sin(arg)
            df += a * w * np.cos(arg)
        return (y - f) / np.sqrt(1 + df * df)

    return dist


def _paint(c: _Canvas, a: np.ndarray, col) -> None:
    col = np.asarray(col, _F)
    c.img += a[..., None] * (col - c.img)


def _darken(c: _Canvas, a: np.ndarray, f: float) -> None:
    c.img *= (1 - a * _F(1 - f))[..., None]


def _jit(rng: np.random.Generator, rgb, s: float = 0.06, b: float = 0.08) -> np.ndarray:
    """A colour near ``rgb``: common brightness jitter ``b`` and per-channel jitter ``s``."""
    out = np.asarray(rgb, np.float64) * np.exp(rng.normal(0, b)) * np.exp(rng.normal(0, s, 3))
    return np.clip(out, 0, 1).astype(_F)


def _mix(a, b, t: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, _F), np.asarray(b, _F)
    return a + (b - a) * np.clip(t, 0, 1)[..., None]


def _tex(c: _Canvas, base, amp: float, scale: float, octaves: int = 2) -> np.ndarray:
    """``base`` colour modulated in brightness by fractal noise."""
    return np.asarray(base, _F) * (1 + _F(amp) * _noise(c, scale, octaves))[..., None]


class _Table:
    """Random attributes for integer cells ``(i, j)`` covering the canvas (with a margin)."""

    def __init__(self, rng, nattr: int, i: np.ndarray, j: np.ndarray, margin: int = 3):
        self.i0, self.j0 = int(i.min()) - margin, int(j.min()) - margin
        ni, nj = int(i.max()) + margin - self.i0 + 1, int(j.max()) + margin - self.j0 + 1
        self.t = rng.random((nattr, ni, nj), dtype=_F)

    def __call__(self, i, j) -> np.ndarray:
        ii = np.clip(np.asarray(i, np.intp) - self.i0, 0, self.t.shape[1] - 1)
        jj = np.clip(np.asarray(j, np.intp) - self.j0, 0, self.t.shape[2] - 1)
        return self.t[:, ii, jj]


class _Disks:
    """Jittered-grid discs (trees, shrubs): one disc per cell, present with a given density."""

    def __init__(self, c: _Canvas, pitch: float, density, rmin: float, rmax: float):
        self.p, self.rmax = pitch, rmax
        gi, gj = np.floor(c.v / _F(pitch)), np.floor(c.u / _F(pitch))
        self.tab = _Table(c.rng, 5, gi, gj, margin=3 + int(rmax * 2 * c.shadow / pitch))
        t = self.tab.t
        jj, ii = np.meshgrid(np.arange(t.shape[2]) + self.tab.j0, np.arange(t.shape[1]) + self.tab.i0)
        self.cu = ((jj + t[0]) * pitch).astype(_F)
        self.cv = ((ii + t[1]) * pitch).astype(_F)
        self.r = (rmin + (rmax - rmin) * t[2]).astype(_F)
        dens = density(self.cu, self.cv) if callable(density) else density
        self.on = t[3] < dens
        self.attr = t[4]

    def eval(self, u: np.ndarray, v: np.ndarray):
        """(height in (−inf, 1], du, dv, radius, attribute) of the highest disc over each point."""
        i0 = np.floor(v / _F(self.p)).astype(np.intp) - self.tab.i0
        j0 = np.floor(u / _F(self.p)).astype(np.intp) - self.tab.j0
        ni, nj = self.on.shape
        best = np.full(u.shape, _F(-1e9))
        bdu, bdv = np.full(u.shape, _F(1e4)), np.zeros_like(u)  # far from any disc by default
        br, ba = np.ones_like(u), np.zeros_like(u)
        for di in (-1, 0, 1):
            ii = np.clip(i0 + di, 0, ni - 1)
            for dj in (-1, 0, 1):
                jj = np.clip(j0 + dj, 0, nj - 1)
                du, dv, r = u - self.cu[ii, jj], v - self.cv[ii, jj], self.r[ii, jj]
                h = np.where(self.on[ii, jj], 1 - (du * du + dv * dv) / (r * r), _F(-1e9))
                m = h > best
                best = np.where(m, h, best)
                bdu, bdv = np.where(m, du, bdu), np.where(m, dv, bdv)
                br, ba = np.where(m, r, br), np.where(m, self.attr[ii, jj], ba)
        return best, bdu, bdv, br, ba


def _trees(c: _Canvas, pitch: float, density, rmin: float, rmax: float, cols=None,
           rough: float = 0.35) -> np.ndarray:
    """Draw tree crowns (lit domes with ragged edges) and their shadows; returns crown coverage."""
    rng = c.rng
    if cols is None:
        cols = (_jit(rng, (0.14, 0.25, 0.10)), _jit(rng, (0.24, 0.34, 0.14)))
    disks = _Disks(c, pitch, density, rmin, rmax)
    rag = _F(rough) * _noise(c, max(rmin * 0.6, 0.8), 2)
    su, sv = c.shifted(1.6 * (rmin + rmax) / 2)
    _, dus, dvs, rs, _ = disks.eval(su, sv)
    sd_s = (np.sqrt(dus * dus + dvs * dvs) - rs) * (1 - rag * 0.3)
    h, du, dv, r, at = disks.eval(c.u, c.v)
    d = np.sqrt(du * du + dv * dv)
    cover = _alpha(d - r * (1 + rag * 0.25), c.px)
    _darken(c, _alpha(sd_s, c.px) * (1 - cover), 0.45)
    z = np.sqrt(np.clip(h, 0, 1))
    nu, nv = du / r, dv / r
    lam = np.clip(nu * c.light[0] + nv * c.light[1] + z * c.light[2], 0, 1)
    shade = _F(0.35) + _F(0.8) * lam + _F(0.12) * _noise(c, max(rmin * 0.35, 0.5), 1)
    col = _mix(cols[0], cols[1], at) * shade[..., None]
    _paint(c, cover, col)
    return cover


def _relief(c: _Canvas, height: np.ndarray) -> np.ndarray:
    """Lambert shading of a height field (scene units), relative to flat ground (1 = flat)."""
    gy, gx = np.gradient(height, c.px)  # d/d(row), d/d(col) in scene units
    lu, lv = c.light[0], c.light[1]
    ct, st = np.cos(c.theta), np.sin(c.theta)
    lx, ly = ct * lu - st * lv, st * lu + ct * lv  # the light in the image frame
    lam = (-gx * _F(lx) - gy * _F(ly) + c.light[2]) / np.sqrt(1 + gx * gx + gy * gy)
    return np.clip(lam, 0.05, 1) / _F(c.light[2])


def _shadowed(c: _Canvas, shape: Callable, height: float, strength: float = 0.5) -> np.ndarray:
    """Darken the shadow of ``shape(u, v) -> signed distance`` cast by an object of ``height``."""
    su, sv = c.shifted(height)
    own = _alpha(shape(c.u, c.v), c.px)
    _darken(c, _alpha(shape(su, sv), c.px) * (1 - own), strength)
    return own


# ------------------------------------------------------------------------------------------------
# ground textures
# ------------------------------------------------------------------------------------------------


def _grass(c: _Canvas, lush=(0.28, 0.40, 0.17), dry=(0.47, 0.49, 0.29), var: float = 0.45,
           patch: float = 22.0) -> None:
    rng = c.rng
    t = 0.5 + var * _noise(c, patch, 3) + rng.uniform(-0.25, 0.25)
    col = _mix(_jit(rng, lush), _jit(rng, dry), t)
    c.img[...] = col * (1 + _F(0.07) * _noise(c, 1.5, 2))[..., None]


def _soil(c: _Canvas, base=None, var: float = 0.12) -> None:
    rng = c.rng
    if base is None:
        base = [(0.62, 0.52, 0.40), (0.55, 0.45, 0.34), (0.70, 0.62, 0.50), (0.58, 0.43, 0.31)][
            rng.integers(4)]
    a, b = _jit(rng, base, s=0.03), _jit(rng, base, s=0.04, b=0.1)
    col = _mix(a, b, 0.5 + 0.5 * _noise(c, 18, 3))
    c.img[...] = col * (1 + _F(var) * _noise(c, 4, 3) + _F(0.05) * _noise(c, 0.8, 1))[..., None]


def _asphalt(c: _Canvas, lum: float | None = None) -> np.ndarray:
    rng = c.rng
    lum = rng.uniform(0.30, 0.45) if lum is None else lum
    base = _jit(rng, (lum, lum * 1.01, lum * 1.05), s=0.02, b=0.05)
    return _tex(c, base, 0.06, 6, 2) * (1 + _F(0.05) * _noise(c, 0.7, 1))[..., None]


def _concrete(c: _Canvas, lum: float | None = None) -> np.ndarray:
    rng = c.rng
    lum = rng.uniform(0.55, 0.72) if lum is None else lum
    base = _jit(rng, (lum * 1.02, lum, lum * 0.96), s=0.02, b=0.04)
    return _tex(c, base, 0.05, 12, 2) * (1 + _F(0.04) * _noise(c, 0.8, 1))[..., None]


def _water_col(c: _Canvas, murky: float | None = None) -> np.ndarray:
    rng = c.rng
    murky = rng.uniform(0, 1) if murky is None else murky
    deep = _mix((0.07, 0.18, 0.26), (0.16, 0.24, 0.20), np.asarray(murky, _F))
    shallow = _mix((0.14, 0.32, 0.36), (0.27, 0.36, 0.28), np.asarray(murky, _F))
    col = _mix(_jit(rng, deep), _jit(rng, shallow), 0.5 + 0.3 * _noise(c, 30, 3))
    wind = rng.uniform(0, np.pi)
    ru, rv = _rot(c.u, c.v, wind)
    rip = _noise(c, 4.0, 2, u=ru, v=rv, aniso=0.25)
    return col * (1 + _F(rng.uniform(0.03, 0.08)) * rip)[..., None]


_CAR_COLOURS = np.array([(0.86, 0.86, 0.86), (0.64, 0.65, 0.67), (0.12, 0.12, 0.13), (0.30, 0.30, 0.32),
                         (0.60, 0.12, 0.10), (0.15, 0.24, 0.50), (0.70, 0.66, 0.56), (0.90, 0.90, 0.88)], _F)


def _car(x: np.ndarray, y: np.ndarray, attr: np.ndarray, big: float = 0.0):
    """Car (or van/truck when ``big``) along x: signed distance, colour and windscreen factor."""
    ln = _F(2.2) + _F(big) * attr[1]
    sd = _box(x, y, ln, _F(0.9) + _F(0.3 * big), 0.4)
    col = _CAR_COLOURS[np.minimum((attr[0] * len(_CAR_COLOURS)).astype(np.intp), len(_CAR_COLOURS) - 1)]
    glass = (np.abs(x - ln * 0.35) < 0.35) | (np.abs(x + ln * 0.55) < 0.25)
    return sd, col * np.where(glass, _F(0.45), _F(1.0))[..., None]


# ------------------------------------------------------------------------------------------------
# class renderers
# ------------------------------------------------------------------------------------------------


def _r_water(c: _Canvas) -> None:
    rng = c.rng
    c.img[...] = _water_col(c)
    if rng.random() < 0.4:  # sun glint
        blob = np.clip(_noise(c, 30, 2) * 0.8 + rng.uniform(-0.8, 0.2), 0, 1)
        sp = np.clip(_noise(c, 1.2, 1) * 0.5 - 0.5, 0, 1)
        _paint(c, blob * np.clip(sp + 0.15 * blob, 0, 1) * 0.7, (0.80, 0.84, 0.82))
    if rng.random() < 0.15:  # a lone boat and its wake
        a = rng.uniform(0, 2 * np.pi)
        x, y = _rot(c.u - rng.uniform(-20, 20), c.v - rng.uniform(-20, 20), a)
        wake = np.clip(1 - np.abs(y) / (0.3 + np.maximum(-x, 0) * 0.25), 0, 1) * (x < 0) * np.exp(x / 25)
        _paint(c, wake * 0.5, (0.75, 0.80, 0.80))
        _paint(c, _alpha(_box(x, y, 3, 1.0, 0.9), c.px), (0.92, 0.92, 0.90))


def _r_forest(c: _Canvas) -> None:
    rng = c.rng
    _soil(c, base=(0.22, 0.24, 0.14))
    c.img *= _F(0.55)
    r = rng.uniform(2.2, 4.5)
    dens = rng.uniform(0.75, 1.0)
    clear = rng.uniform(-1.5, 0.2)
    cols = [(_jit(rng, (0.10, 0.20, 0.09)), _jit(rng, (0.20, 0.30, 0.13))),
            (_jit(rng, (0.08, 0.15, 0.09)), _jit(rng, (0.16, 0.24, 0.14))),
            (_jit(rng, (0.12, 0.22, 0.09)), _jit(rng, (0.32, 0.34, 0.15)))][rng.integers(3)]
    _trees(c, r * 1.25, lambda u, v: dens * (_noise(c, 35, 2, u=u, v=v) > clear), r * 0.75, r * 1.2,
           cols=cols)


_CROPS = [(0.33, 0.47, 0.20), (0.22, 0.34, 0.14), (0.70, 0.64, 0.40), (0.47, 0.37, 0.26),
          (0.60, 0.52, 0.38), (0.48, 0.56, 0.30), (0.38, 0.42, 0.20)]


def _r_agricultural(c: _Canvas) -> None:
    rng = c.rng
    u, v = c.u, c.v
    lo, hi = float(u.min()) - 5, float(u.max()) + 5
    edges = [lo - rng.uniform(0, 30)]
    while edges[-1] < hi:
        edges.append(edges[-1] + rng.uniform(14, 45))
    edges = np.asarray(edges, _F)
    col = np.clip(np.searchsorted(edges, u) - 1, 0, len(edges) - 2)
    ncol = len(edges) - 1
    rh = rng.uniform(12, 40, ncol).astype(_F)
    rph = rng.uniform(0, 40, ncol).astype(_F)
    vv = v + rph[col]
    row = np.floor(vv / rh[col])
    tab = _Table(rng, 5, col, row, margin=1)
    a = tab(col, row)
    pal = np.stack([_jit(rng, _CROPS[k], s=0.05, b=0.1) for k in range(len(_CROPS))])
    pick = rng.permutation(len(_CROPS))[: rng.integers(3, 6)]
    base = pal[pick[np.minimum((a[0] * len(pick)).astype(np.intp), len(pick) - 1)]]
    period = _F(1.2) + _F(2.0) * a[2]
    coord = np.where(a[1] < 0.5, u, vv)
    stripe = np.sin(coord * (2 * np.pi) / period) * a[3] * _F(0.16)
    bright = 1 + (a[4] - 0.5) * _F(0.25) + stripe + _F(0.06) * _noise(c, 8, 2)
    c.img[...] = base * bright[..., None]
    # field boundaries: tracks or hedges
    du = np.minimum(u - edges[col], edges[col + 1] - u)
    dv = np.abs(vv - (row + _F(0.5)) * rh[col]) - rh[col] / 2
    dist = np.minimum(du, np.abs(dv))
    if rng.random() < 0.6:
        _paint(c, _line(dist, rng.uniform(0.4, 1.2), c.px), _jit(rng, (0.62, 0.56, 0.45)))
    else:
        _paint(c, _line(dist, rng.uniform(0.5, 1.5), c.px) * 0.9, _jit(rng, (0.15, 0.23, 0.10)))


def _r_beach(c: _Canvas) -> None:
    rng = c.rng
    _soil(c, base=_jit(rng, (0.80, 0.74, 0.60), s=0.03), var=0.05)
    d = _curve(c, rng.uniform(1, 8), rng.uniform(50, 160), rng.uniform(-15, 15))(c.u, c.v)
    if rng.random() < 0.4:  # dune vegetation far from the sea
        veg = np.clip(-(d + rng.uniform(18, 30)) / 6 + 0.4 * _noise(c, 6, 2), 0, 1)
        _paint(c, veg, _tex(c, _jit(rng, (0.35, 0.42, 0.22)), 0.2, 3))
    _darken(c, np.clip(1 + d / 3, 0, 1), 0.8)  # wet sand
    t = np.clip(d / rng.uniform(15, 35), 0, 1)
    water = _mix(_jit(rng, (0.38, 0.62, 0.58)), _jit(rng, (0.10, 0.28, 0.38)), t)
    water *= (1 + _F(0.05) * _noise(c, 4, 2, aniso=0.3))[..., None]
    _paint(c, _alpha(-d, c.px), water)
    n = _noise(c, 5, 2)
    foam = _line(d - 0.8, rng.uniform(0.6, 1.5), c.px) * np.clip(0.8 + 0.4 * n, 0, 1)
    for k in range(rng.integers(1, 4)):
        off = rng.uniform(4, 8) * (k + 1)
        brk = np.clip(0.7 * _noise(c, 6, 2) + 0.1, 0, 1)
        foam = np.maximum(foam, _line(d - off, rng.uniform(0.4, 0.9), c.px) * brk * np.exp(-k * 0.5))
    _paint(c, foam * 0.85, (0.92, 0.94, 0.92))
    if rng.random() < 0.5:  # people, umbrellas, towels
        dots = _Disks(c, 4.0, rng.uniform(0.05, 0.3), 0.4, 0.9)
        h, _, _, _, at = dots.eval(c.u, c.v)
        col = _CAR_COLOURS[np.minimum((at * 8).astype(np.intp), 7)]
        _paint(c, np.clip(h * 3, 0, 1) * (d < -1.5) * (d > -14), col)


def _r_river(c: _Canvas) -> None:
    rng = c.rng
    _grass(c)
    if rng.random() < 0.5:
        _paint(c, np.clip(_noise(c, 25, 2) - 0.3, 0, 1), _tex(c, _jit(rng, (0.50, 0.44, 0.32)), 0.1, 4))
    wm = rng.uniform(4, 11)
    w = wm * (1 + 0.2 * _noise(c, 40, 1))
    dist = _curve(c, rng.uniform(4, 20), rng.uniform(60, 150), rng.uniform(-10, 10))
    d = dist(c.u, c.v)
    sd = np.abs(d) - w
    bank = rng.uniform(0.5, 2.5)
    _paint(c, _alpha(sd - bank, c.px), _tex(c, _jit(rng, (0.58, 0.52, 0.40)), 0.1, 3))
    _paint(c, _alpha(sd, c.px), _water_col(c, murky=rng.uniform(0.3, 1.0)))
    near = rng.uniform(0.3, 0.9)
    far = rng.uniform(0.0, 0.5)
    reach = rng.uniform(6, 14)  # width of the riparian tree belt

    def density(u, v):  # trees: a belt along the banks, sparser further away, none in the water
        e = np.abs(dist(u, v)) - wm * 1.2 - bank - 2.5
        return np.where(e < 0, 0.0, np.where(e < reach, near, far))

    _trees(c, 3.8, density, 1.8, 3.2)


def _r_freeway(c: _Canvas) -> None:
    rng = c.rng
    _grass(c, var=0.6)
    if rng.random() < 0.5:
        _paint(c, np.clip(_noise(c, 20, 2) - 0.2, 0, 1) * 0.8, _tex(c, _jit(rng, (0.55, 0.48, 0.36)), 0.1, 3))
    lanes = int(rng.integers(2, 5))
    lw = rng.uniform(3.4, 3.8)
    med = rng.uniform(0.8, 1.6) if rng.random() < 0.5 else rng.uniform(4, 12)
    sh = rng.uniform(1.5, 3.0)
    v0 = rng.uniform(-8, 8)
    half = med / 2 + lanes * lw + sh
    td = rng.uniform(0.1, 0.6)
    _trees(c, 4.5, lambda u, v: td * (np.abs(v - v0) > half + 4), 1.8, 3.4)
    frame = _Frame(c, 0.0, 0.0, v0)
    _draw_road(c, frame, lanes, lw, med, sh, rng.uniform(0.1, 0.6))
    if rng.random() < 0.3:  # a parallel frontage road
        side = rng.choice([-1, 1])
        _draw_road(c, _Frame(c, 0.0, 0.0, v0 + side * (half + rng.uniform(12, 22))), 1, 3.4, 0, 1.0,
                   rng.uniform(0, 0.3))


class _Frame:
    """A rigid frame inside the scene: ``x`` along the angle ``a``, ``y`` across, offset by (u0, v0)."""

    def __init__(self, c: _Canvas, a: float, u0: float, v0: float):
        self.a, self.u0, self.v0 = a, u0, v0
        self.c = c

    def __call__(self, u, v):
        return _rot(u - _F(self.u0), v - _F(self.v0), self.a)


def _draw_road(c: _Canvas, fr: _Frame, lanes: int, lw: float, median: float, shoulder: float,
               traffic: float, markings: bool = True) -> np.ndarray:
    """A straight two-way road along the frame's x axis: asphalt, median, lines, cars with shadows."""
    rng = c.rng
    x, y = fr(c.u, c.v)
    cw = lanes * lw
    ay = np.abs(y)
    half = median / 2 + cw + shoulder
    road = _alpha(ay - half, c.px)
    _paint(c, road, _asphalt(c))
    if median > 3:
        _paint(c, _alpha(ay - median / 2 + 0.6, c.px), _tex(c, _jit(rng, (0.36, 0.42, 0.22)), 0.1, 4))
    elif median > 0:
        _paint(c, _line(ay, median / 2 - 0.2, c.px), _jit(rng, (0.68, 0.67, 0.64)))
    off = ay - median / 2
    if markings:
        white = _jit(rng, (0.9, 0.9, 0.86), s=0.02, b=0.03)
        edge = _line(off - cw - 0.2, 0.12, c.px)
        if median > 0:
            edge = edge + _line(off - 0.25, 0.12, c.px)
        ph = rng.uniform(0, 12)
        dash = (np.mod(x + _F(ph), _F(12)) < 4.0).astype(_F)
        ln = sum((_line(off - k * lw, 0.1, c.px) for k in range(1, lanes)), np.zeros_like(x)) * dash
        if median == 0:
            ln = ln + _line(ay, 0.22, c.px)
        _paint(c, np.clip(edge + ln, 0, 1) * 0.9, white)
    pitch = rng.uniform(9, 20)
    ph = rng.uniform(0, pitch, 2 * lanes).astype(_F)
    tab = _Table(rng, 4, np.array([0, 2 * lanes]), np.floor(x / pitch), margin=3)
    big = 2.5 if rng.random() < 0.4 else 1.0

    def cars(uq, vq):
        xq, yq = fr(uq, vq)
        oq = np.abs(yq) - median / 2
        lq = np.floor(oq / lw)
        rq = np.clip(lq + (yq > 0) * lanes, 0, 2 * lanes - 1).astype(np.intp)
        xs = xq + ph[rq]
        cq = np.floor(xs / pitch)
        a = tab(rq, cq)
        lx = xs - (cq + 0.5) * pitch - (a[2] - 0.5) * (pitch - 7)
        ly = oq - (lq + 0.5) * lw - (a[3] - 0.5) * 0.5
        sd, col = _car(lx * np.where(yq > 0, 1, -1), ly, a, big=big * (a[2] > 0.8))
        ok = (a[1] < traffic) & (lq >= 0) & (lq < lanes)
        return np.where(ok, sd, _F(99)), col

    su, sv = c.shifted(1.5)
    _darken(c, _alpha(cars(su, sv)[0], c.px), 0.5)
    sd, col = cars(c.u, c.v)
    _paint(c, _alpha(sd, c.px), col)
    return road


def _r_runway(c: _Canvas) -> None:
    rng = c.rng
    _grass(c, dry=(0.55, 0.53, 0.35), var=0.4)
    v0 = rng.uniform(-6, 6)
    w = rng.uniform(15, 23)  # half width
    if rng.random() < 0.5:  # parallel taxiway
        tv = v0 + rng.choice([-1, 1]) * (w + rng.uniform(18, 30))
        _paint(c, _alpha(np.abs(c.v - tv) - rng.uniform(7, 10), c.px), _asphalt(c, rng.uniform(0.35, 0.5)))
        _paint(c, _line(c.v - tv, 0.25, c.px), (0.80, 0.68, 0.20))
    y = c.v - _F(v0)
    x = c.u
    _paint(c, _alpha(np.abs(y) - w, c.px), _concrete(c, rng.uniform(0.58, 0.74)))
    sl = rng.uniform(5, 7.5)
    joints = _line(np.mod(x, _F(sl)) - sl / 2, 0.08, c.px) + _line(np.mod(y, _F(sl)) - sl / 2, 0.08, c.px)
    _darken(c, np.clip(joints, 0, 1) * _alpha(np.abs(y) - w, c.px), 0.85)
    skid = np.clip(0.5 + _noise(c, 6, 2, aniso=4.0), 0, 1) * np.exp(-(y / (w * 0.35)) ** 2)
    _darken(c, skid * rng.uniform(0.1, 0.5), 0.55)
    white = _jit(rng, (0.92, 0.92, 0.9), s=0.02, b=0.02)
    ph = rng.uniform(0, 50)
    centre = _line(y, 0.45, c.px) * (np.mod(x + _F(ph), _F(50)) < 30)
    edge = _line(np.abs(y) - w + 1.2, 0.45, c.px)
    marks = centre + edge
    if rng.random() < 0.5:  # threshold piano keys
        xt = rng.uniform(-25, 25)
        keys = (np.abs(x - xt - 15) < 15) & (np.abs(np.mod(y, _F(3.6)) - 1.8) < 0.9) & (np.abs(y) > 2.5)
        marks = marks + keys * _alpha(np.abs(y) - w + 2.5, c.px)
    if rng.random() < 0.6:  # touchdown-zone bars
        xt = rng.uniform(-30, 30)
        bars = (np.abs(np.abs(y) - w * 0.45) < 1.2) & (np.mod(x - xt, _F(25)) < 12)
        marks = marks + bars.astype(_F)
    _paint(c, np.clip(marks, 0, 1), white)


def _r_intersection(c: _Canvas) -> None:
    rng = c.rng
    if rng.random() < 0.5:
        _grass(c)
    else:
        c.img[...] = _concrete(c, rng.uniform(0.45, 0.62))
    if rng.random() < 0.7:
        _trees(c, 6.0, rng.uniform(0.1, 0.5), 1.8, 3.5)
    u0, v0 = rng.uniform(-8, 8, 2)
    beta = np.pi / 2 + rng.uniform(-0.35, 0.35)
    roads = []
    for a in (0.0, beta):
        lanes = int(rng.integers(1, 4))
        lw = rng.uniform(3.3, 3.7)
        med = 0.0 if lanes == 1 or rng.random() < 0.5 else rng.uniform(0.8, 3.0)
        roads.append((a, lanes, lw, med))
    # sidewalks first, then both roads, then the crossing box and crosswalks
    for a, lanes, lw, med in roads:
        x, y = _Frame(c, a, u0, v0)(c.u, c.v)
        hw = med / 2 + lanes * lw + 0.8
        _paint(c, _alpha(np.abs(np.abs(y) - hw - 1.3) - 1.2, c.px), _concrete(c, rng.uniform(0.62, 0.75)))
    halfs = []
    for a, lanes, lw, med in roads:
        _draw_road(c, _Frame(c, a, u0, v0), lanes, lw, med, 0.8, rng.uniform(0.1, 0.5))
        halfs.append(med / 2 + lanes * lw + 0.8)
    frames = [_Frame(c, a, u0, v0)(c.u, c.v) for a, *_ in roads]
    inside = np.minimum(_alpha(np.abs(frames[0][1]) - halfs[0], c.px),
                        _alpha(np.abs(frames[1][1]) - halfs[1], c.px))
    _paint(c, inside, _asphalt(c))  # the crossing box, without lane lines
    white = _jit(rng, (0.9, 0.9, 0.86), s=0.02, b=0.03)
    for k in range(2):
        x, y = frames[k]
        other = halfs[1 - k] / max(np.sin(beta), 0.5)
        zebra = (np.abs(np.abs(x) - other - 2.5) < 1.6) & (np.abs(np.mod(y, _F(1.2)) - 0.6) < 0.3) & (
            np.abs(y) < halfs[k] - 0.5)
        stop = _line(np.abs(x) - other - 5, 0.25, c.px) * (np.abs(y) < halfs[k] - 0.5)
        _paint(c, np.clip(zebra * (rng.random() < 0.8) + stop, 0, 1) * 0.9, white)


# residential ------------------------------------------------------------------------------------

_ROOFS = np.array([(0.46, 0.43, 0.41), (0.56, 0.35, 0.27), (0.30, 0.30, 0.32), (0.64, 0.60, 0.54),
                   (0.42, 0.34, 0.28), (0.56, 0.56, 0.56), (0.38, 0.40, 0.44), (0.66, 0.44, 0.34)], _F)


def _residential(c: _Canvas, d: float) -> None:
    """Houses along a street grid; ``d`` in [0, 1] goes from dense to sparse (bigger lots, more trees)."""
    rng = c.rng
    d = float(np.clip(d, 0, 1))
    _grass(c, lush=(0.30, 0.42, 0.18), dry=(0.48, 0.48, 0.34), var=0.3)
    if d < 0.5:  # dense: yards are partly paved / worn
        _paint(c, np.clip(0.5 - d + 0.4 * _noise(c, 6, 2), 0, 1) * 0.6, _concrete(c, rng.uniform(0.45, 0.6)))
    sw = rng.uniform(6.0, 8.5)
    lot_w = (9.0 + 14.0 * d) * rng.uniform(0.9, 1.1)
    lot_d = (12.0 + 12.0 * d) * rng.uniform(0.9, 1.1)
    bh = 2 * lot_d + sw
    ph_v, ph_u = rng.uniform(0, bh), rng.uniform(0, 300)
    cross = rng.uniform(70, 160)
    ph_x = rng.uniform(0, cross)
    p_house = 0.98 - 0.3 * d
    roofs = _ROOFS * np.exp(rng.normal(0, 0.05, (len(_ROOFS), 3))).astype(_F)
    roof_pick = rng.permutation(len(_ROOFS))[: rng.integers(3, 7)]
    hh = rng.uniform(3.5, 5.0)  # eave height for shadows

    def lots(u, v):
        vv = v + _F(ph_v)
        bi = np.floor(vv / _F(bh))
        vb = vv - bi * _F(bh) - _F(sw)
        side = vb >= lot_d
        ly = vb - side * _F(lot_d) - _F(lot_d / 2)
        ly = np.where(side, -ly, ly)  # -lot_d/2 at the street, +lot_d/2 at the back
        uu = u + _F(ph_u) + side * _F(lot_w * 0.37)
        li = np.floor(uu / _F(lot_w))
        lx = uu - (li + _F(0.5)) * _F(lot_w)
        return bi * 2 + side, li, lx, ly, vb, side

    row, li, lx, ly, vb, side = lots(c.u, c.v)
    tab = _Table(rng, 10, row, li, margin=3)

    def house(u, v, colour=False):
        row, li, lx, ly, vb, side = lots(u, v)
        a = tab(row, li)
        hw = np.minimum(_F(3.2) + _F(1.8) * a[1], _F(lot_w / 2 - 0.8))
        hd = np.minimum(_F(3.0) + _F(1.6) * a[2], _F(lot_d / 2 - 1.0))
        setback = _F(1.5 + 4 * d) + a[3] * _F(1.0 + 3 * d)
        cy = -_F(lot_d / 2) + setback + hd
        cx = (a[4] - 0.5) * np.maximum(_F(lot_w / 2) - hw - 0.5, 0) * 2
        x, y = lx - cx, ly - cy
        sd = _box(x, y, hw, hd, 0.1)
        ell = a[5] < 0.35  # L-shaped
        sd2 = _box(x - hw * 0.45 * np.sign(a[6] - 0.5), y - hd * 0.9, hw * 0.5, hd * 0.6, 0.1)
        sd = np.where(ell, np.minimum(sd, sd2), sd)
        # no house in the street or where a cross street runs
        uc = (li + 0.5) * _F(lot_w) - _F(ph_u) - side * _F(lot_w * 0.37) + cx
        xc = np.abs(np.mod(uc + _F(ph_x), _F(cross)) - _F(cross / 2))
        ok = (a[0] < p_house) & (vb >= 0) & (xc < cross / 2 - sw / 2 - hw - 1.5)
        sd = np.where(ok, sd, _F(99))
        if not colour:
            return sd
        base = roofs[roof_pick[np.minimum((a[7] * len(roof_pick)).astype(np.intp), len(roof_pick) - 1)]]
        along_x = a[8] < 0.5
        ridge = np.where(along_x, y, x)
        flip = np.where(side, -1, 1)
        lit = np.where(along_x, _F(c.light[1]) * flip, _F(c.light[0]))
        f = 1 + _F(0.22) * np.sign(ridge) * np.sign(lit) * np.minimum(np.abs(lit) * 2, 1)
        f = np.where(np.abs(ridge) < 0.15, _F(1.1), f)
        return sd, base * (f * (1 + (a[9] - 0.5) * _F(0.15)))[..., None], x, y, hw, cy, hd, lx, ly, a

    # streets (along u) and cross streets (along v), with sidewalks
    xcr = np.abs(np.mod(c.u + _F(ph_x), _F(cross)) - _F(cross / 2)) - _F(cross / 2 - sw / 2)
    st_sd = np.minimum(np.maximum(-vb - sw, vb), -xcr)
    if rng.random() < 0.6:
        _paint(c, _alpha(st_sd - 1.4, c.px), _concrete(c, rng.uniform(0.6, 0.72)))
    _paint(c, _alpha(st_sd, c.px), _asphalt(c, rng.uniform(0.28, 0.42)))

    sd, col, x, y, hw, cy, hd, lx, ly, a = house(c.u, c.v, colour=True)
    # driveways and pools
    dx = (a[4] - 0.5) * np.maximum(_F(lot_w / 2) - hw - 0.5, 0) * 2 + hw * np.sign(a[6] - 0.5) * 0.5
    drive = (np.abs(lx - dx) < 1.3) & (ly < cy) & (sd < 99) & (a[6] > 0.3)
    _paint(c, drive * _F(0.9), _concrete(c, rng.uniform(0.55, 0.7)))
    pool = _box(lx + (a[4] - 0.5) * 3, ly - _F(lot_d / 2 - 3.5), 2.2, 1.4, 0.5)
    _paint(c, _alpha(np.where((a[9] < 0.35 * d) & (sd < 99), pool, _F(99)), c.px), (0.25, 0.62, 0.70))
    su, sv = c.shifted(hh)
    own = _alpha(sd, c.px)
    _darken(c, _alpha(house(su, sv), c.px) * (1 - own), 0.5)
    _paint(c, own, col)
    # yard trees: not on houses or streets
    def tree_density(u, v):
        ok = (house(u, v) > 1.5) & (lots(u, v)[4] > 1.0)
        return (0.08 + 0.55 * d) * ok

    _trees(c, 5.5, tree_density, 1.8, 3.6)


def _r_dense_residential(c):
    _residential(c, c.rng.uniform(0.0, 0.42))


def _r_medium_residential(c):
    _residential(c, c.rng.uniform(0.3, 0.72))


def _r_sparse_residential(c):
    _residential(c, c.rng.uniform(0.6, 1.0))


def _r_parking_lot(c: _Canvas) -> None:
    rng = c.rng
    c.img[...] = _asphalt(c, rng.uniform(0.28, 0.45))
    bay_w, bay_d, aisle = rng.uniform(2.5, 2.9), rng.uniform(4.8, 5.6), rng.uniform(6, 7.5)
    mod = 2 * bay_d + aisle
    ph_v, ph_u = rng.uniform(0, mod), rng.uniform(0, bay_w)
    occ = rng.uniform(0.3, 0.97)
    white = _jit(rng, (0.88, 0.88, 0.84), s=0.02, b=0.04)

    def geo(u, v):
        vv = v + _F(ph_v)
        mi = np.floor(vv / _F(mod))
        m = vv - mi * _F(mod)  # [0, bay_d) row A, [bay_d, 2 bay_d) row B, then aisle
        r = np.floor(m / _F(bay_d))
        ly = m - (r + 0.5) * _F(bay_d)
        uu = u + _F(ph_u)
        bi = np.floor(uu / _F(bay_w))
        lx = uu - (bi + 0.5) * _F(bay_w)
        return mi * 2 + r, bi, lx, ly, r < 2

    row, bi, lx, ly, inbay = geo(c.u, c.v)
    lines = _line(np.abs(lx) - bay_w / 2, 0.07, c.px) * inbay * (np.abs(ly) < bay_d / 2 - 0.3)
    _paint(c, np.clip(lines, 0, 1) * 0.85, white)
    tab = _Table(rng, 4, row, bi, margin=3)

    def cars(u, v):
        row, bi, lx, ly, inbay = geo(u, v)
        a = tab(row, bi)
        sd, col = _car(ly - (a[2] - 0.5) * 0.5, lx - (a[3] - 0.5) * 0.3, a)
        return np.where(inbay & (a[1] < occ), sd, _F(99)), col

    su, sv = c.shifted(1.5)
    _darken(c, _alpha(cars(su, sv)[0], c.px), 0.5)
    sd, col = cars(c.u, c.v)
    _paint(c, _alpha(sd, c.px), col)
    if rng.random() < 0.5:  # an edge of the lot: verge with trees, or a building
        e = c.ext * rng.uniform(0.25, 0.45)
        sdv = e - c.v
        if rng.random() < 0.5:
            _paint(c, _alpha(sdv, c.px), _tex(c, _jit(rng, (0.32, 0.42, 0.2)), 0.1, 3))
            _trees(c, 5, lambda u, v: 0.6 * (v > e + 2), 1.8, 3.2)
        else:
            _paint(c, _alpha(sdv, c.px), _concrete(c, rng.uniform(0.6, 0.8)))


def _r_bare_land(c: _Canvas) -> None:
    rng = c.rng
    _soil(c, var=0.1)
    gully = 1 - np.abs(_noise(c, 14, 3)) * 0.9
    _darken(c, np.clip(gully - 0.6, 0, 1) * rng.uniform(0.3, 0.9), 0.75)
    for _ in range(rng.integers(0, 4)):  # vehicle tracks
        fr = _Frame(c, rng.uniform(0, np.pi), rng.uniform(-20, 20), rng.uniform(-20, 20))
        d = _curve(c, rng.uniform(0, 10), rng.uniform(40, 120), frame=fr)(c.u, c.v)
        tr = _line(np.abs(d) - 0.9, 0.4, c.px)
        if rng.random() < 0.5:
            _darken(c, tr, 0.75)
        else:
            _paint(c, tr * 0.5, (0.78, 0.72, 0.62))
    if rng.random() < 0.6:  # sparse shrubs
        _trees(c, 5.0, rng.uniform(0.02, 0.15), 0.7, 1.6,
               cols=(_jit(rng, (0.22, 0.25, 0.14)), _jit(rng, (0.35, 0.34, 0.22))))


def _r_desert(c: _Canvas) -> None:
    rng = c.rng
    _soil(c, base=(0.80, 0.64, 0.45), var=0.04)
    lam = rng.uniform(10, 26)
    x, y = _rot(c.u, c.v, rng.uniform(0, 2 * np.pi))
    warp = _noise(c, 25, 2) * rng.uniform(2, 7) + _noise(c, 60, 1) * rng.uniform(0, 10)
    t = np.mod((x + warp) / _F(lam), 1)
    s = rng.uniform(0.65, 0.85)  # asymmetric dune profile: gentle windward side, steep lee face
    amp = 0.6 * (1 - s) * lam * rng.uniform(0.4, 1.0)
    prof = np.where(t < s, t / _F(s), (1 - t) / _F(1 - s))
    h = _F(amp) * prof * np.clip(1 + 0.35 * _noise(c, 35, 1), 0.3, 1.6)
    h += _F(0.03) * np.sin((x + warp) * _F(2 * np.pi / rng.uniform(0.8, 1.6)))  # wind ripples
    shade = 1 + (_relief(c, h) - 1) * _F(rng.uniform(0.5, 0.9))
    c.img *= shade[..., None]


def _r_meadow(c: _Canvas) -> None:
    rng = c.rng
    _grass(c, var=rng.uniform(0.2, 0.6), patch=rng.uniform(15, 40))
    if rng.random() < 0.3:  # mowing stripes
        x, _ = _rot(c.u, c.v, rng.uniform(0, np.pi))
        c.img *= (1 + _F(0.05) * np.sign(np.sin(x * _F(2 * np.pi / rng.uniform(6, 12)))))[..., None]
    if rng.random() < 0.3:  # flowers
        sp = np.clip(_noise(c, 0.9, 1) - 1.7, 0, 1) * np.clip(_noise(c, 20, 1), 0, 1)
        _paint(c, sp, _jit(rng, (0.85, 0.80, 0.45)))
    if rng.random() < 0.3:  # a dirt path
        d = _curve(c, rng.uniform(2, 12), rng.uniform(50, 120), rng.uniform(-25, 25))(c.u, c.v)
        _paint(c, _line(d, rng.uniform(0.5, 1.2), c.px) * 0.8, _jit(rng, (0.60, 0.54, 0.42)))
    if rng.random() < 0.6:
        _trees(c, 8.0, rng.uniform(0.01, 0.06), 1.5, 3.5)


def _r_chaparral(c: _Canvas) -> None:
    rng = c.rng
    _soil(c, base=(0.58, 0.52, 0.40), var=0.08)
    r = rng.uniform(0.9, 2.0)
    dens = rng.uniform(0.35, 0.75)
    _trees(c, r * 1.8, lambda u, v: dens * (_noise(c, 25, 2, u=u, v=v) > -0.6), r * 0.7, r * 1.3,
           cols=(_jit(rng, (0.20, 0.24, 0.14)), _jit(rng, (0.36, 0.36, 0.24))), rough=0.5)


def _r_storage_tanks(c: _Canvas) -> None:
    rng = c.rng
    if rng.random() < 0.5:
        c.img[...] = _concrete(c, rng.uniform(0.5, 0.68))
    else:
        _soil(c, base=(0.58, 0.54, 0.46), var=0.06)
    pitch = rng.uniform(18, 34)
    rad = pitch * rng.uniform(0.22, 0.4)
    ph = rng.uniform(0, pitch, 2)
    present = rng.uniform(0.6, 1.0)
    top = _jit(rng, [(0.88, 0.88, 0.86), (0.78, 0.78, 0.76), (0.70, 0.72, 0.66)][rng.integers(3)], s=0.02)
    uu, vv = c.u + _F(ph[0]), c.v + _F(ph[1])
    tab = _Table(rng, 3, np.floor(vv / pitch), np.floor(uu / pitch), margin=3)

    def geo(u, v):
        gu, gv = np.floor(u / _F(pitch)), np.floor(v / _F(pitch))
        a = tab(gv, gu)
        lx, ly = u - (gu + 0.5) * _F(pitch), v - (gv + 0.5) * _F(pitch)
        r = _F(rad) * (0.75 + 0.25 * a[1])
        return a, lx, ly, r

    a, lx, ly, r = geo(uu, vv)
    on = a[0] < present
    berm = np.abs(_box(lx, ly, pitch * 0.46, pitch * 0.46)) - 0.5
    _paint(c, _alpha(berm, c.px) * on * 0.8, _jit(rng, (0.50, 0.46, 0.38)))
    pipes = _line(np.mod(vv, _F(pitch)) - 0.8, 0.3, c.px)
    _paint(c, pipes * 0.7, _jit(rng, (0.55, 0.55, 0.52)))

    def tank(u, v):
        a, lx, ly, r = geo(u + _F(ph[0]), v + _F(ph[1]))
        return np.where(a[0] < present, np.sqrt(lx * lx + ly * ly) - r, _F(99))

    own = _shadowed(c, tank, rad * 0.8, 0.55)
    rr = np.sqrt(lx * lx + ly * ly) / r
    nu, nv = lx / r, ly / r
    shade = 1 + _F(0.12) * (nu * c.light[0] + nv * c.light[1]) * rr - _F(0.08) * (np.abs(rr - 0.85) < 0.08)
    shade = shade * (1 - _F(0.2) * (rr < 0.12))
    _paint(c, own, top * shade[..., None])


def _r_baseball_diamond(c: _Canvas) -> None:
    rng = c.rng
    _grass(c, var=0.3)
    if rng.random() < 0.6:
        _trees(c, 6.0, lambda u, v: 0.5 * (np.hypot(u, v) > 50), 2.0, 3.6)
    s = rng.uniform(0.75, 1.3)  # field scale (27.4 m base paths at 1.0)
    fr = _Frame(c, rng.uniform(0, 2 * np.pi), rng.uniform(-12, 12), rng.uniform(-12, 12))
    x, y = fr(c.u, c.v)
    x, y = (x + _F(rng.uniform(10, 25) * s)) / _F(s), (y + _F(rng.uniform(10, 25) * s)) / _F(s)
    # home plate at origin, first base along +x, third base along +y (foul lines along the axes)
    fair = (x > -1.5) & (y > -1.5)
    outfield = np.hypot(x, y) < 95
    stripes = np.sign(np.sin((x + y) * _F(2 * np.pi / 14))) * _F(0.04) + 1
    grass = _tex(c, _jit(rng, (0.30, 0.48, 0.20)), 0.05, 8) * stripes[..., None]
    _paint(c, _alpha(np.maximum(np.hypot(x, y) - 95, np.maximum(-x - 4, -y - 4)) * s, c.px), grass)
    dirt = _tex(c, _jit(rng, (0.66, 0.50, 0.36)), 0.06, 5)
    mx = my = 13.5
    sd_dirt = np.minimum(np.hypot(x - mx, y - my) - 29, np.hypot(x, y) - 4.5)
    sd_dirt = np.maximum(sd_dirt, np.maximum(-x - 3, -y - 3))
    _paint(c, _alpha(sd_dirt * s, c.px), dirt)
    track = np.maximum(np.abs(np.hypot(x, y) - 91.5) - 2.5, np.maximum(-x - 4, -y - 4))
    _paint(c, _alpha(track * s, c.px), dirt)
    a, b = (x + y) / np.sqrt(2), (x - y) / np.sqrt(2)
    infield = np.abs(a - 19.4) + np.abs(b) - 16.5
    _paint(c, _alpha(infield * s, c.px), grass)
    _paint(c, _alpha((np.hypot(x - mx, y - my) - 2.7) * s, c.px), dirt * _F(1.05))
    white = (0.92, 0.92, 0.9)
    for bx, by in ((27.4, 0), (27.4, 27.4), (0, 27.4), (0, 0)):
        _paint(c, _alpha((_box(x - bx, y - by, 0.8, 0.8)) * s, c.px), white)
    foul = (_line(y * s, 0.12, c.px) * (x > 0) + _line(x * s, 0.12, c.px) * (y > 0)) * outfield
    _paint(c, np.clip(foul, 0, 1) * fair, white)


def _r_tennis_court(c: _Canvas) -> None:
    rng = c.rng
    if rng.random() < 0.5:
        _grass(c)
    else:
        c.img[...] = _concrete(c, rng.uniform(0.45, 0.65))
    if rng.random() < 0.6:
        _trees(c, 6.0, rng.uniform(0.2, 0.6), 2.0, 3.6)
    z = rng.uniform(1.0, 1.35)
    n = int(rng.integers(1, 4))
    fr = _Frame(c, rng.uniform(0, 2 * np.pi), rng.uniform(-6, 6), rng.uniform(-6, 6))
    x, y = fr(c.u, c.v)
    x, y = x / _F(z), y / _F(z)
    pitch = 18.3
    y0 = y + _F((n - 1) * pitch / 2)
    k = np.clip(np.round(y0 / _F(pitch)), 0, n - 1)
    ly = y0 - k * _F(pitch)
    scheme = rng.integers(3)
    inner, outer = [((0.26, 0.48, 0.36), (0.20, 0.36, 0.28)), ((0.20, 0.36, 0.56), (0.28, 0.46, 0.34)),
                    ((0.68, 0.38, 0.26), (0.58, 0.32, 0.22))][scheme]
    area = _box(x, y, 18.3, n * pitch / 2)
    _darken(c, _alpha(area - 0.6, c.px) * (1 - _alpha(area, c.px)), 0.6)  # fence shadow line
    _paint(c, _alpha(area, c.px), _tex(c, _jit(rng, outer, s=0.03), 0.03, 6))
    _paint(c, _alpha(_box(x, ly, 11.9, 5.5) * z, c.px), _tex(c, _jit(rng, inner, s=0.03), 0.03, 6))
    px = c.px / z
    ln = (_line(np.abs(x) - 11.885, 0.15, px) * (np.abs(ly) < 5.6) + _line(np.abs(ly) - 5.485, 0.15, px) * (
        np.abs(x) < 11.95) + _line(np.abs(ly) - 4.115, 0.12, px) * (np.abs(x) < 11.9) + _line(
        np.abs(x) - 6.4, 0.12, px) * (np.abs(ly) < 4.1) + _line(ly, 0.12, px) * (np.abs(x) < 6.4))
    _paint(c, np.clip(ln, 0, 1) * 0.95, (0.93, 0.93, 0.92))
    _paint(c, _line(x, 0.1, px) * (np.abs(ly) < 6.4) * 0.8, (0.1, 0.1, 0.1))


def _r_harbor(c: _Canvas) -> None:
    rng = c.rng
    c.img[...] = _water_col(c, murky=rng.uniform(0.2, 0.9))
    vq = rng.uniform(-30, -8)
    _paint(c, _alpha(c.v - vq, c.px), _concrete(c, rng.uniform(0.5, 0.7)))
    if rng.random() < 0.5:
        _trees(c, 6, lambda u, v: 0.3 * (v < vq - 6), 1.8, 3.2)
    pp = rng.uniform(14, 24)
    pw = rng.uniform(0.8, 1.4)
    plen = rng.uniform(25, 60)
    ph = rng.uniform(0, pp)
    slot = rng.uniform(2.8, 4.0)
    occ = rng.uniform(0.5, 0.95)
    blen = min((pp - 2 * pw) / 2 - 1.5, rng.uniform(5, 10))
    pier_col = _jit(rng, (0.62, 0.58, 0.50))
    tab = _Table(rng, 4, np.array([-5, 5]), np.floor((c.u + _F(ph)) / _F(pp)), margin=4)
    tab2 = _Table(rng, 4, np.floor((c.v - vq) / _F(slot)), np.floor((c.u + _F(ph)) / _F(pp)) * 2, margin=4)

    def geo(u, v):
        uu = u + _F(ph)
        pi = np.floor(uu / _F(pp))
        lx = uu - (pi + 0.5) * _F(pp)
        a = tab(np.zeros_like(pi), pi)
        length = _F(plen) * (0.6 + 0.4 * a[0])
        return pi, lx, v - _F(vq), length

    def piers(u, v):
        pi, lx, vy, length = geo(u, v)
        return _box(lx, vy - length / 2, _F(pw), length / 2)

    def boats(u, v, colour=False):
        pi, lx, vy, length = geo(u, v)
        side = lx > 0
        bx = np.abs(lx) - _F(pw) - _F(blen / 2) - 0.4
        si = np.floor(vy / _F(slot))
        by = vy - (si + 0.5) * _F(slot)
        a = tab2(si, pi * 2 + side)
        bl = _F(blen / 2) * (0.6 + 0.4 * a[1])
        bw = np.minimum(_F(slot / 2 - 0.3), bl * 0.35)
        xb = bx + (_F(blen / 2) - bl)
        sd = np.sqrt((xb / bl) ** 2 + (by / bw) ** 2) * bw - bw
        ok = (a[0] < occ) & (vy > 1) & (vy < length)
        sd = np.where(ok, sd, _F(99))
        if not colour:
            return sd
        hull = np.where((a[2] < 0.8)[..., None], _F(0.9), _CAR_COLOURS[(a[3] * 7.99).astype(np.intp)])
        deck = (np.abs(xb + bl * 0.1) < bl * 0.35) & (np.abs(by) < bw * 0.55)
        return sd, hull * np.where(deck, _F(0.75), _F(1))[..., None]

    _shadowed(c, piers, 1.0, 0.6)
    _paint(c, _alpha(piers(c.u, c.v), c.px), pier_col)
    su, sv = c.shifted(1.5)
    _darken(c, _alpha(boats(su, sv), c.px), 0.55)
    sd, col = boats(c.u, c.v, colour=True)
    _paint(c, _alpha(sd, c.px), col)


def _plane(x: np.ndarray, y: np.ndarray, L: float) -> np.ndarray:
    """Signed distance of an airliner silhouette of length ``L`` (nose along +x, centred)."""
    ay = np.abs(y)
    fus = np.sqrt(np.maximum(np.abs(x) - L * 0.44, 0) ** 2 + ay ** 2) - L * 0.05
    fus = np.where(x > L * 0.44, np.sqrt((x - L * 0.44) ** 2 + ay ** 2) - L * 0.05, fus)
    span = L * 0.48
    wing = _poly(x, ay, [(L * 0.12, 0.0), (-L * 0.10, 0.0), (-L * 0.22, span), (-L * 0.14, span)])
    tail = _poly(x, ay, [(-L * 0.36, 0.0), (-L * 0.47, 0.0), (-L * 0.52, L * 0.17), (-L * 0.47, L * 0.17)])
    eng = _box(x - L * 0.02 + ay * 0.3, ay - span * 0.38, L * 0.05, L * 0.022, L * 0.02)
    return np.minimum(np.minimum(fus, wing), np.minimum(tail, eng))


def _r_airplane(c: _Canvas) -> None:
    rng = c.rng
    c.img[...] = _concrete(c, rng.uniform(0.52, 0.7))
    sl = rng.uniform(5, 8)
    joints = _line(np.mod(c.u, _F(sl)) - sl / 2, 0.07, c.px) + _line(np.mod(c.v, _F(sl)) - sl / 2, 0.07, c.px)
    _darken(c, np.clip(joints, 0, 1), 0.88)
    if rng.random() < 0.4:
        _paint(c, _alpha(_curve(c, 0.0, 100, rng.uniform(-30, -20))(c.u, c.v), c.px),
               _grass_col(c))
    for _ in range(rng.integers(1, 3)):  # yellow taxi lines
        fr = _Frame(c, rng.uniform(0, np.pi), 0, rng.uniform(-20, 20))
        d = _curve(c, rng.uniform(0, 15), rng.uniform(60, 150), frame=fr)(c.u, c.v)
        _paint(c, _line(d, 0.2, c.px) * 0.9, (0.82, 0.70, 0.22))
    for k in range(1 if rng.random() < 0.75 else 2):
        L = rng.uniform(28, 45)
        fr = _Frame(c, rng.uniform(0, 2 * np.pi), rng.uniform(-10, 10) + k * 35, rng.uniform(-10, 10))
        col = _jit(rng, [(0.92, 0.92, 0.92), (0.85, 0.86, 0.88), (0.80, 0.82, 0.86)][rng.integers(3)], s=0.02)

        def shape(u, v, fr=fr, L=L):
            return _plane(*fr(u, v), L)

        own = _shadowed(c, shape, 3.5, 0.45)
        x, y = fr(c.u, c.v)
        livery = _alpha(_box(x + L * 0.44, y, L * 0.07, L * 0.05), c.px) * (rng.random() < 0.7)
        cc = _mix(col, _CAR_COLOURS[rng.integers(4, 6)], livery)
        cc *= (1 - _F(0.08) * (np.abs(y) > L * 0.06))[..., None]  # wings a little darker
        _paint(c, own, cc)


def _grass_col(c: _Canvas) -> np.ndarray:
    return _tex(c, _jit(c.rng, (0.34, 0.42, 0.22)), 0.12, 8)


def _r_industrial(c: _Canvas) -> None:
    rng = c.rng
    c.img[...] = _concrete(c, rng.uniform(0.42, 0.6))
    cw, ch = rng.uniform(28, 50), rng.uniform(24, 44)
    ph = rng.uniform(0, 60, 2)
    tab = _Table(rng, 8, np.floor((c.v + _F(ph[1])) / _F(ch)), np.floor((c.u + _F(ph[0])) / _F(cw)), margin=3)
    roofs = np.array([(0.74, 0.74, 0.74), (0.84, 0.84, 0.82), (0.46, 0.52, 0.58), (0.52, 0.42, 0.34),
                      (0.36, 0.36, 0.38), (0.62, 0.64, 0.60)], _F)

    def geo(u, v):
        uu, vv = u + _F(ph[0]), v + _F(ph[1])
        i, j = np.floor(vv / _F(ch)), np.floor(uu / _F(cw))
        a = tab(i, j)
        hw = _F(cw / 2) * (0.55 + 0.35 * a[1])
        hh = _F(ch / 2) * (0.55 + 0.35 * a[2])
        lx = uu - (j + 0.5) * _F(cw) - (a[3] - 0.5) * (_F(cw / 2) - hw)
        ly = vv - (i + 0.5) * _F(ch) - (a[4] - 0.5) * (_F(ch / 2) - hh)
        return a, lx, ly, hw, hh

    def bldg(u, v):
        a, lx, ly, hw, hh = geo(u, v)
        return np.where(a[0] < 0.9, _box(lx, ly, hw, hh), _F(99))

    a, lx, ly, hw, hh = geo(c.u, c.v)
    # trucks / trailers parked in the yards (cells of 15 x 4 units, mostly empty)
    busy = rng.uniform(0.02, 0.12)
    tq = rng.uniform(0, np.pi / 2) * (rng.random() < 0.3)
    ttab = _Table(rng, 3, np.floor(c.v / 4), np.floor(c.u / 15), margin=4)

    def trucks(u, v):
        x, y = _rot(u, v, tq)
        i, j = np.floor(y / _F(4)), np.floor(x / _F(15))
        a = ttab(i, j)
        sd = _box(x - (j + 0.5) * 15 - (a[1] - 0.5) * 3, y - (i + 0.5) * 4, 6.5, 1.2, 0.2)
        return np.where((a[0] < busy) & (bldg(u, v) > 3), sd, _F(99))

    _paint(c, _shadowed(c, trucks, 2.5, 0.55), _jit(rng, (0.82, 0.82, 0.82)))
    own = _shadowed(c, bldg, rng.uniform(5, 10), 0.45)
    base = roofs[np.minimum((a[5] * len(roofs)).astype(np.intp), len(roofs) - 1)]
    det = _F(1) + _F(0.04) * _noise(c, 5, 1)
    sky = (np.abs(np.mod(lx, _F(6)) - 3) < 0.5) & (a[6] < 0.4) & (_box(lx, ly, hw - 2, hh - 2) < 0)
    hvac = _box(np.mod(lx, _F(9)) - 4.5, np.mod(ly, _F(9)) - 4.5, 1.0, 1.0)
    hv = _alpha(np.where((a[6] > 0.6) & (_box(lx, ly, hw - 2, hh - 2) < 0), hvac, _F(99)), c.px)
    col = base * (det * np.where(sky, _F(0.8), _F(1)) * (1 + _F(0.15) * hv))[..., None]
    _paint(c, own, col)


def _r_golf_course(c: _Canvas) -> None:
    rng = c.rng
    _grass(c, lush=(0.22, 0.36, 0.14), dry=(0.34, 0.42, 0.20), var=0.3)
    fr = _Frame(c, rng.uniform(0, np.pi), 0.0, rng.uniform(-12, 12))
    x, y = fr(c.u, c.v)
    dist = _curve(c, rng.uniform(2, 12), rng.uniform(80, 200), frame=fr)
    d = dist(c.u, c.v)
    w = rng.uniform(10, 18)
    fair = np.abs(d) - w
    stripes = 1 + _F(0.05) * np.sign(np.sin(x * _F(2 * np.pi / rng.uniform(8, 14))))
    fcol = _tex(c, _jit(rng, (0.38, 0.56, 0.24)), 0.04, 10) * stripes[..., None]
    _paint(c, _alpha(fair, c.px), fcol)
    gx = rng.uniform(-25, 25)
    green = np.hypot(x - gx, d) - rng.uniform(6, 10)
    _paint(c, _alpha(green, c.px), _jit(rng, (0.42, 0.64, 0.30)))
    for _ in range(rng.integers(1, 5)):  # bunkers
        bx, by = gx + rng.uniform(-20, 20), rng.choice([-1, 1]) * (w + rng.uniform(-3, 3))
        r = rng.uniform(2, 4.5)
        sd = np.hypot(x - bx, (d - by) * 1.5) - r * (1 + 0.25 * _noise(c, 3, 1))
        _paint(c, _alpha(sd, c.px), _tex(c, _jit(rng, (0.86, 0.80, 0.64)), 0.03, 4))
    if rng.random() < 0.35:  # pond
        sd = np.hypot(c.u - rng.uniform(-30, 30), c.v - rng.uniform(-30, 30)) - rng.uniform(6, 14) * (
            1 + 0.2 * _noise(c, 8, 1))
        sd = np.maximum(sd, -fair)
        _paint(c, _alpha(sd, c.px), _water_col(c))
    if rng.random() < 0.5:  # cart path
        _paint(c, _line(d + w + 3, 0.8, c.px) * 0.9, _concrete(c, 0.7))
    fd = float(rng.uniform(0.3, 0.8))
    _trees(c, 5.0, lambda u, v: fd * (np.abs(dist(u, v)) > w + 4), 2.0, 3.8)


_RENDERERS: dict[str, Callable[[_Canvas], None]] = {name: globals()[f"_r_{name}"] for name in SCENE_CLASSES}


# ------------------------------------------------------------------------------------------------
# image formation: illumination, colour, blur / resolution, noise
# ------------------------------------------------------------------------------------------------

_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_INV = np.linalg.inv(_YIQ)


def _gauss_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(2.5 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k = (k / k.sum()).astype(_F)
    p = np.pad(img, ((r, r), (0, 0), (0, 0)), mode="reflect")
    out = sum(k[i] * p[i:i + img.shape[0]] for i in range(2 * r + 1))
    p = np.pad(out, ((0, 0), (r, r), (0, 0)), mode="reflect")
    return sum(k[i] * p[:, i:i + img.shape[1]] for i in range(2 * r + 1))


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = img.shape[0]
    img = np.clip(img, 0, 1)
    # illumination: exposure, gamma, contrast, haze
    img = img * _F(np.exp(rng.normal(0, 0.12)))
    img = np.clip(img, 0, 1) ** _F(np.exp(rng.normal(0, 0.12)))
    # colour: hue rotation and saturation in YIQ, white balance
    h, s = rng.normal(0, 0.06), np.exp(rng.normal(0, 0.15))
    rot = np.array([[1, 0, 0], [0, s * np.cos(h), -s * np.sin(h)], [0, s * np.sin(h), s * np.cos(h)]])
    m = np.diag(np.exp(rng.normal(0, 0.035, 3))) @ _YIQ_INV @ rot @ _YIQ
    img = img @ m.T.astype(_F)
    mean = img.mean(axis=(0, 1), keepdims=True)
    img = mean + (img - mean) * _F(np.exp(rng.normal(0, 0.1)))
    if rng.random() < 0.3:
        a = rng.uniform(0.03, 0.2)
        img = img * _F(1 - a) + _F(a) * np.array([0.68, 0.72, 0.78], _F)
    # resolution and blur
    if rng.random() < 0.35 and n >= 24:
        from PIL import Image

        m2 = max(8, int(round(n / rng.uniform(1.3, 2.2))))
        chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., k]), "F")
                            .resize((m2, m2), Image.Resampling.BOX)
                            .resize((n, n), Image.Resampling.BILINEAR)) for k in range(3)]
        img = np.stack(chans, -1).astype(_F)
    sigma = rng.uniform(0.0, 0.7)
    if sigma > 0.25:
        img = _gauss_blur(img, sigma)
    # sensor noise
    img = img + rng.normal(0, rng.uniform(0.004, 0.025), img.shape).astype(_F)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def render_scene(class_name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One synthetic aerial image of ``class_name``: a ``(size, size, 3)`` uint8 RGB array."""
    if class_name not in _RENDERERS:
        raise DataError(f"synth: unknown scene class '{class_name}' (one of: {', '.join(SCENE_CLASSES)})")
    _check_size(size)
    c = _Canvas(int(size), rng)
    _RENDERERS[class_name](c)
    return _finish(c.img, rng)


# ------------------------------------------------------------------------------------------------
# dataset on disk
# ------------------------------------------------------------------------------------------------


def _check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataError(f"synth: {name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise DataError(f"synth: {name} must be {rng}, got {value}")
    return int(value)


def _check_size(size) -> int:
    return _check_int("size", size, MIN_SIZE, MAX_SIZE)


def _manifest(names: list[str], per_class: int, size: int, seed: int) -> dict:
    return {"generator": "rsdistill.data.synth", "version": GENERATOR_VERSION, "classes": len(names),
            "per_class": per_class, "size": size, "seed": seed, "class_names": names}


def _reusable(out: Path, manifest: dict) -> bool:
    """False if ``out`` is absent or an empty folder; True if it holds this very dataset; else an error."""
    if not (out.exists() or out.is_symlink()):
        return False
    if not out.is_dir():
        raise DataError(f"synth: output '{out}' exists and is not a folder")
    if not any(out.iterdir()):
        return False
    try:
        old = json.loads((out / "synth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if old != manifest:
        raise DataError(f"synth: output folder '{out}' already exists and was not generated with these "
                        f"parameters (delete it or choose another OUT)")
    for name in manifest["class_names"]:
        d = out / name
        if not d.is_dir() or len(list(d.glob(f"{name}_*.png"))) != manifest["per_class"]:
            raise DataError(f"synth: output folder '{out}' is incomplete ('{d}' lacks images); delete it and "
                            f"run again")
    return True


def generate_dataset(out: str | os.PathLike, classes: int = 12, per_class: int = 100, size: int = 64,
                     seed: int = 0, progress: bool = False) -> list[str]:
    """Write ``classes`` x ``per_class`` synthetic scenes to ``out/<class>/<class>_<i:04d>.png``.

    Returns the class names. The folder appears complete or not at all; an existing folder made with
    the same parameters is reused as is, any other existing (non-empty) folder is an error.
    """
    classes = _check_int("classes", classes, 2, len(SCENE_CLASSES))
    per_class = _check_int("per_class", per_class, 1)
    size = _check_size(size)
    seed = _check_int("seed", seed, 0)
    out = Path(out)
    names = list(SCENE_CLASSES[:classes])
    manifest = _manifest(names, per_class, size, seed)

    if _reusable(out, manifest):
        return names

    from PIL import Image
    from tqdm import tqdm

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        with tqdm(total=classes * per_class, desc="synth", unit="img", disable=not progress) as bar:
            for ci, name in enumerate(names):
                (tmp / name).mkdir()
                for i in range(per_class):
                    rng = np.random.default_rng(np.random.SeedSequence([seed, ci, i]))
                    arr = render_scene(name, size, rng)
                    Image.fromarray(arr).save(tmp / name / f"{name}_{i:04d}.png", format="PNG")
                    bar.update(1)
        (tmp / "synth.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out.is_dir():  # an empty existing folder: replace it
            out.rmdir()
        try:
            os.replace(tmp, out)
        except OSError:
            # another process finished the same folder first: fine if it is what we would have written
            if not _reusable(out, manifest):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return names
