"""Drawing primitives of the synthetic scenes: the canvas, noise, shapes, ground textures, trees, cars.

Everything is drawn top-down in *scene units* (about one metre) on a randomly rotated, scaled
coordinate frame ``(u, v)``; every primitive is a vectorised function of those coordinates
(value-noise textures, signed distance fields of boxes, polygons, bands and curves, jittered grids of
objects with their shadows), so rotation is exact and no pixel loop is needed.

Shapes are signed distance fields (negative inside); :func:`coverage` and :func:`band` turn them into
anti-aliased per-pixel coverage, which :func:`paint` and :func:`darken` apply to the canvas image.
All randomness comes from the canvas generator, in call order: reordering calls changes the images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

F32 = np.float32

MEAN_EXTENT = 72.0  # scene units an image spans on average...
EXTENT_SCALE = (0.8, 1.25)  # ...times a log-uniform factor in this range
SHADOW_LENGTH = (0.35, 1.0)  # shadow length per unit of object height (sun elevation)
VALUE_NOISE_STD = 0.19  # std of one octave of value noise; normalises noise() to unit std
NO_SHAPE = 99.0  # signed distance standing for "no object here" (far outside at any pixel size)
_NO_DISC = -1e9  # height of an empty cell in Disks.eval
_FAR = 1e4  # offset to the nearest disc where there is none
TREE_GREENS = ((0.14, 0.25, 0.10), (0.24, 0.34, 0.14))  # default crown colours (shade, lit)
TREE_SHADOW = 0.45  # brightness left under a tree shadow


# ------------------------------------------------------------------------------------------------
# canvas and noise
# ------------------------------------------------------------------------------------------------


class Canvas:
    """A randomly rotated / scaled scene frame: ``u, v`` (scene units) for every pixel and the image."""

    def __init__(self, size: int, rng: np.random.Generator):
        self.rng = rng
        self.n = size
        self.ext = MEAN_EXTENT * float(np.exp(rng.uniform(np.log(EXTENT_SCALE[0]), np.log(EXTENT_SCALE[1]))))
        self.px = self.ext / size  # scene units per pixel
        th = self.theta = rng.uniform(0.0, 2 * np.pi)
        g = (((np.arange(size) + 0.5) - size / 2) * self.px).astype(F32)
        x, y = g[None, :], g[:, None]
        ct, st = F32(np.cos(th)), F32(np.sin(th))
        self.u = ct * x + st * y
        self.v = -st * x + ct * y
        sa = rng.uniform(0.0, 2 * np.pi)
        self.sun = (float(np.cos(sa)), float(np.sin(sa)))  # direction shadows are cast, scene frame
        self.shadow = rng.uniform(*SHADOW_LENGTH)
        elev = np.arctan(1.0 / self.shadow)
        self.light = np.array([-self.sun[0] * np.cos(elev), -self.sun[1] * np.cos(elev), np.sin(elev)], F32)
        self.img = np.zeros((size, size, 3), F32)

    def shifted(self, height: float) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates of the point whose shadow (for an object of ``height``) falls on each pixel."""
        k = height * self.shadow
        return self.u - F32(self.sun[0] * k), self.v - F32(self.sun[1] * k)


def _value_noise(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Value noise in [0, 1] at lattice coordinates ``x, y`` (smoothstep-bilinear over random lattice)."""
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    xmin, ymin = int(x0.min()), int(y0.min())
    lat = rng.random((int(y0.max()) - ymin + 2, int(x0.max()) - xmin + 2), dtype=F32)
    ix, iy = (x0 - xmin).astype(np.intp), (y0 - ymin).astype(np.intp)
    sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    a, b = lat[iy, ix], lat[iy, ix + 1]
    c, d = lat[iy + 1, ix], lat[iy + 1, ix + 1]
    top = a + (b - a) * sx
    return top + (c + (d - c) * sx - top) * sy


def noise(c: Canvas, scale: float, octaves: int = 1, u=None, v=None, aniso: float = 1.0) -> np.ndarray:
    """Zero-mean, roughly unit-std fractal value noise with feature size ``scale`` (scene units)."""
    u = c.u if u is None else u
    v = c.v if v is None else v
    off = c.rng.uniform(-1000, 1000, 2).astype(F32)
    tot = np.zeros(u.shape, F32)
    amp, amps = 1.0, []
    for k in range(octaves):
        f = 2.0**k / scale
        tot += F32(amp) * _value_noise(c.rng, (u + off[0]) * F32(f), (v + off[1]) * F32(f * aniso))
        amps.append(amp)
        amp *= 0.5
    s = sum(amps)
    return (tot / F32(s) - F32(0.5)) / F32(VALUE_NOISE_STD * np.sqrt(sum(a * a for a in amps)) / s)


# ------------------------------------------------------------------------------------------------
# shapes: signed distances and their coverage
# ------------------------------------------------------------------------------------------------


def coverage(sd: np.ndarray, px: float) -> np.ndarray:
    """Anti-aliased coverage of the shape with signed distance ``sd`` (negative inside)."""
    return np.clip(F32(0.5) - sd / F32(px), 0, 1)


def band(d: np.ndarray, half: float, px: float) -> np.ndarray:
    """Exact pixel coverage of a band ``|d| < half`` (works for bands thinner than a pixel)."""
    h = F32(px / 2)
    return np.clip(np.minimum(F32(half), d + h) - np.maximum(F32(-half), d - h), 0, None) / F32(px)


def box_sd(x: np.ndarray, y: np.ndarray, hw, hh, r: float = 0.0) -> np.ndarray:
    """Signed distance to an axis-aligned (optionally rounded) box of half sizes ``hw, hh``."""
    qx, qy = np.abs(x) - hw + r, np.abs(y) - hh + r
    out = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    return out + np.minimum(np.maximum(qx, qy), 0) - F32(r)


def rotate(x: np.ndarray, y: np.ndarray, a: float) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` in a frame rotated by ``a`` radians."""
    ca, sa = F32(np.cos(a)), F32(np.sin(a))
    return ca * x + sa * y, -sa * x + ca * y


def polygon_sd(x: np.ndarray, y: np.ndarray, pts) -> np.ndarray:
    """Signed distance (exact inside, approximate outside) to a convex polygon (either orientation)."""
    area = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]))
    if area < 0:
        pts = pts[::-1]
    out = None
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
        nx, ny = y2 - y1, x1 - x2  # outward normal of a counter-clockwise edge
        ln = np.hypot(nx, ny)
        d = (F32(nx / ln) * (x - x1) + F32(ny / ln) * (y - y1))
        out = d if out is None else np.maximum(out, d)
    return out


class Frame:
    """A rigid frame inside the scene: ``x`` along the angle ``a``, ``y`` across, offset by (u0, v0)."""

    def __init__(self, c: Canvas, a: float, u0: float, v0: float):
        self.a, self.u0, self.v0 = a, u0, v0
        self.c = c

    def __call__(self, u, v):
        return rotate(u - F32(self.u0), v - F32(self.v0), self.a)


def curve(c: Canvas, amp: float, wavelength: float, v0: float = 0.0, frame=None):
    """A meandering curve ``y = v0 + f(x)`` (sum of three sinusoids) in ``frame`` (default: u, v).

    Returns ``dist(u, v)``: the signed distance across the curve, usable at any points (e.g. at the
    cell centres of a :class:`Disks` layer as well as at the pixels).
    """
    rng = c.rng
    terms = []
    for k, a in enumerate((1.0, 0.45, 0.2)):
        w = 2 * np.pi / (wavelength / (1 + 1.3 * k) * rng.uniform(0.8, 1.25))
        terms.append((F32(amp * a), F32(w), F32(rng.uniform(0, 2 * np.pi))))

    def dist(u, v):
        x, y = frame(u, v) if frame is not None else (u, v)
        f = np.full(x.shape, F32(v0))
        df = np.zeros(x.shape, F32)
        for a, w, ph in terms:
            arg = w * x + ph
            f += a * np.sin(arg)
            df += a * w * np.cos(arg)
        return (y - f) / np.sqrt(1 + df * df)

    return dist


# ------------------------------------------------------------------------------------------------
# colour and painting
# ------------------------------------------------------------------------------------------------


def paint(c: Canvas, a: np.ndarray, col) -> None:
    """Blend colour (or colour image) ``col`` over the canvas with coverage ``a``."""
    col = np.asarray(col, F32)
    c.img += a[..., None] * (col - c.img)


def darken(c: Canvas, a: np.ndarray, f: float) -> None:
    """Scale the canvas brightness towards ``f`` with coverage ``a`` (shadows, wet or worn ground)."""
    c.img *= (1 - a * F32(1 - f))[..., None]


def jitter(rng: np.random.Generator, rgb, s: float = 0.06, b: float = 0.08) -> np.ndarray:
    """A colour near ``rgb``: common brightness jitter ``b`` and per-channel jitter ``s``."""
    out = np.asarray(rgb, np.float64) * np.exp(rng.normal(0, b)) * np.exp(rng.normal(0, s, 3))
    return np.clip(out, 0, 1).astype(F32)


def mix(a, b, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend from colour ``a`` (t = 0) to ``b`` (t = 1)."""
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    return a + (b - a) * np.clip(t, 0, 1)[..., None]


def textured(c: Canvas, base, amp: float, scale: float, octaves: int = 2) -> np.ndarray:
    """``base`` colour modulated in brightness by fractal noise."""
    return np.asarray(base, F32) * (1 + F32(amp) * noise(c, scale, octaves))[..., None]


# ------------------------------------------------------------------------------------------------
# random object grids
# ------------------------------------------------------------------------------------------------


class CellTable:
    """Random attributes for integer cells ``(i, j)`` covering the canvas (with a margin)."""

    def __init__(self, rng, nattr: int, i: np.ndarray, j: np.ndarray, margin: int = 3):
        self.i0, self.j0 = int(i.min()) - margin, int(j.min()) - margin
        ni, nj = int(i.max()) + margin - self.i0 + 1, int(j.max()) + margin - self.j0 + 1
        self.t = rng.random((nattr, ni, nj), dtype=F32)

    def __call__(self, i, j) -> np.ndarray:
        ii = np.clip(np.asarray(i, np.intp) - self.i0, 0, self.t.shape[1] - 1)
        jj = np.clip(np.asarray(j, np.intp) - self.j0, 0, self.t.shape[2] - 1)
        return self.t[:, ii, jj]


class Disks:
    """Jittered-grid discs (trees, shrubs): one disc per cell, present with a given density."""

    def __init__(self, c: Canvas, pitch: float, density, rmin: float, rmax: float):
        self.p, self.rmax = pitch, rmax
        gi, gj = np.floor(c.v / F32(pitch)), np.floor(c.u / F32(pitch))
        self.tab = CellTable(c.rng, 5, gi, gj, margin=3 + int(rmax * 2 * c.shadow / pitch))
        t = self.tab.t
        jj, ii = np.meshgrid(np.arange(t.shape[2]) + self.tab.j0, np.arange(t.shape[1]) + self.tab.i0)
        self.cu = ((jj + t[0]) * pitch).astype(F32)
        self.cv = ((ii + t[1]) * pitch).astype(F32)
        self.r = (rmin + (rmax - rmin) * t[2]).astype(F32)
        dens = density(self.cu, self.cv) if callable(density) else density
        self.on = t[3] < dens
        self.attr = t[4]

    def eval(self, u: np.ndarray, v: np.ndarray):
        """(height in (−inf, 1], du, dv, radius, attribute) of the highest disc over each point."""
        i0 = np.floor(v / F32(self.p)).astype(np.intp) - self.tab.i0
        j0 = np.floor(u / F32(self.p)).astype(np.intp) - self.tab.j0
        ni, nj = self.on.shape
        best = np.full(u.shape, F32(_NO_DISC))
        bdu, bdv = np.full(u.shape, F32(_FAR)), np.zeros_like(u)
        br, ba = np.ones_like(u), np.zeros_like(u)
        for di in (-1, 0, 1):
            ii = np.clip(i0 + di, 0, ni - 1)
            for dj in (-1, 0, 1):
                jj = np.clip(j0 + dj, 0, nj - 1)
                du, dv, r = u - self.cu[ii, jj], v - self.cv[ii, jj], self.r[ii, jj]
                h = np.where(self.on[ii, jj], 1 - (du * du + dv * dv) / (r * r), F32(_NO_DISC))
                m = h > best
                best = np.where(m, h, best)
                bdu, bdv = np.where(m, du, bdu), np.where(m, dv, bdv)
                br, ba = np.where(m, r, br), np.where(m, self.attr[ii, jj], ba)
        return best, bdu, bdv, br, ba


def draw_trees(c: Canvas, pitch: float, density, rmin: float, rmax: float, cols=None,
               rough: float = 0.35) -> np.ndarray:
    """Draw tree crowns (lit domes with ragged edges) and their shadows; returns crown coverage."""
    rng = c.rng
    if cols is None:
        cols = (jitter(rng, TREE_GREENS[0]), jitter(rng, TREE_GREENS[1]))
    disks = Disks(c, pitch, density, rmin, rmax)
    rag = F32(rough) * noise(c, max(rmin * 0.6, 0.8), 2)
    su, sv = c.shifted(1.6 * (rmin + rmax) / 2)
    _, dus, dvs, rs, _ = disks.eval(su, sv)
    sd_s = (np.sqrt(dus * dus + dvs * dvs) - rs) * (1 - rag * 0.3)
    h, du, dv, r, at = disks.eval(c.u, c.v)
    d = np.sqrt(du * du + dv * dv)
    cover = coverage(d - r * (1 + rag * 0.25), c.px)
    darken(c, coverage(sd_s, c.px) * (1 - cover), TREE_SHADOW)
    z = np.sqrt(np.clip(h, 0, 1))
    nu, nv = du / r, dv / r
    lam = np.clip(nu * c.light[0] + nv * c.light[1] + z * c.light[2], 0, 1)
    shade = F32(0.35) + F32(0.8) * lam + F32(0.12) * noise(c, max(rmin * 0.35, 0.5), 1)
    col = mix(cols[0], cols[1], at) * shade[..., None]
    paint(c, cover, col)
    return cover


# ------------------------------------------------------------------------------------------------
# lighting
# ------------------------------------------------------------------------------------------------


def relief(c: Canvas, height: np.ndarray) -> np.ndarray:
    """Lambert shading of a height field (scene units), relative to flat ground (1 = flat)."""
    gy, gx = np.gradient(height, c.px)  # d/d(row), d/d(col) in scene units
    lu, lv = c.light[0], c.light[1]
    ct, st = np.cos(c.theta), np.sin(c.theta)
    lx, ly = ct * lu - st * lv, st * lu + ct * lv  # the light in the image frame
    lam = (-gx * F32(lx) - gy * F32(ly) + c.light[2]) / np.sqrt(1 + gx * gx + gy * gy)
    return np.clip(lam, 0.05, 1) / F32(c.light[2])


def cast_shadow(c: Canvas, shape: Callable, height: float, strength: float = 0.5) -> np.ndarray:
    """Darken the shadow of ``shape(u, v) -> signed distance`` cast by an object of ``height``.

    Returns the shape's own coverage, for the caller to paint the object over its shadow.
    """
    su, sv = c.shifted(height)
    own = coverage(shape(c.u, c.v), c.px)
    darken(c, coverage(shape(su, sv), c.px) * (1 - own), strength)
    return own


# ------------------------------------------------------------------------------------------------
# ground textures: fill_* overwrite the canvas, the others return a colour image to paint
# ------------------------------------------------------------------------------------------------

SOILS = ((0.62, 0.52, 0.40), (0.55, 0.45, 0.34), (0.70, 0.62, 0.50), (0.58, 0.43, 0.31))


def fill_grass(c: Canvas, lush=(0.28, 0.40, 0.17), dry=(0.47, 0.49, 0.29), var: float = 0.45,
               patch: float = 22.0) -> None:
    """Grass over the whole canvas: patches (size ``patch``) between a lush and a dry colour."""
    rng = c.rng
    t = 0.5 + var * noise(c, patch, 3) + rng.uniform(-0.25, 0.25)
    col = mix(jitter(rng, lush), jitter(rng, dry), t)
    c.img[...] = col * (1 + F32(0.07) * noise(c, 1.5, 2))[..., None]


def fill_soil(c: Canvas, base=None, var: float = 0.12) -> None:
    """Bare soil over the whole canvas (a random one of :data:`SOILS` unless ``base`` is given)."""
    rng = c.rng
    if base is None:
        base = SOILS[rng.integers(len(SOILS))]
    a, b = jitter(rng, base, s=0.03), jitter(rng, base, s=0.04, b=0.1)
    col = mix(a, b, 0.5 + 0.5 * noise(c, 18, 3))
    c.img[...] = col * (1 + F32(var) * noise(c, 4, 3) + F32(0.05) * noise(c, 0.8, 1))[..., None]


def asphalt(c: Canvas, lum: float | None = None) -> np.ndarray:
    rng = c.rng
    lum = rng.uniform(0.30, 0.45) if lum is None else lum
    base = jitter(rng, (lum, lum * 1.01, lum * 1.05), s=0.02, b=0.05)
    return textured(c, base, 0.06, 6, 2) * (1 + F32(0.05) * noise(c, 0.7, 1))[..., None]


def concrete(c: Canvas, lum: float | None = None) -> np.ndarray:
    rng = c.rng
    lum = rng.uniform(0.55, 0.72) if lum is None else lum
    base = jitter(rng, (lum * 1.02, lum, lum * 0.96), s=0.02, b=0.04)
    return textured(c, base, 0.05, 12, 2) * (1 + F32(0.04) * noise(c, 0.8, 1))[..., None]


def water_colour(c: Canvas, murky: float | None = None) -> np.ndarray:
    """Open water: deep / shallow patches (clear blue to murky green by ``murky``) and wind ripples."""
    rng = c.rng
    murky = rng.uniform(0, 1) if murky is None else murky
    deep = mix((0.07, 0.18, 0.26), (0.16, 0.24, 0.20), np.asarray(murky, F32))
    shallow = mix((0.14, 0.32, 0.36), (0.27, 0.36, 0.28), np.asarray(murky, F32))
    col = mix(jitter(rng, deep), jitter(rng, shallow), 0.5 + 0.3 * noise(c, 30, 3))
    wind = rng.uniform(0, np.pi)
    ru, rv = rotate(c.u, c.v, wind)
    rip = noise(c, 4.0, 2, u=ru, v=rv, aniso=0.25)
    return col * (1 + F32(rng.uniform(0.03, 0.08)) * rip)[..., None]


def grass_colour(c: Canvas) -> np.ndarray:
    return textured(c, jitter(c.rng, (0.34, 0.42, 0.22)), 0.12, 8)


# ------------------------------------------------------------------------------------------------
# vehicles
# ------------------------------------------------------------------------------------------------

CAR_COLOURS = np.array([(0.86, 0.86, 0.86), (0.64, 0.65, 0.67), (0.12, 0.12, 0.13), (0.30, 0.30, 0.32),
                        (0.60, 0.12, 0.10), (0.15, 0.24, 0.50), (0.70, 0.66, 0.56), (0.90, 0.90, 0.88)], F32)


def car(x: np.ndarray, y: np.ndarray, attr: np.ndarray, big: float = 0.0):
    """Car (or van/truck when ``big``) along x: signed distance, colour and windscreen factor."""
    ln = F32(2.2) + F32(big) * attr[1]
    sd = box_sd(x, y, ln, F32(0.9) + F32(0.3 * big), 0.4)
    col = CAR_COLOURS[np.minimum((attr[0] * len(CAR_COLOURS)).astype(np.intp), len(CAR_COLOURS) - 1)]
    glass = (np.abs(x - ln * 0.35) < 0.35) | (np.abs(x + ln * 0.55) < 0.25)
    return sd, col * np.where(glass, F32(0.45), F32(1.0))[..., None]
