"""One renderer per scene class, registered with :func:`scene` in :data:`SCENES`.

A renderer draws the scene onto a fresh :class:`~.primitives.Canvas` (the image formation that
follows, illumination, colour, blur and noise, is common to all classes and lives in
:mod:`.writer`). The classes come in groups that are hard to tell apart on purpose (the three
residential densities share one house texture; freeway / runway / intersection; beach / bare_land /
desert; water / river / harbor; forest / meadow / golf_course / chaparral), so distillation methods
have confusable classes to show their value on.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .primitives import (
    CAR_COLOURS,
    F32,
    NO_SHAPE,
    Canvas,
    CellTable,
    Disks,
    Frame,
    asphalt,
    band,
    box_sd,
    car,
    cast_shadow,
    concrete,
    coverage,
    curve,
    darken,
    draw_trees,
    fill_grass,
    fill_soil,
    grass_colour,
    jitter,
    mix,
    noise,
    paint,
    polygon_sd,
    relief,
    rotate,
    textured,
    water_colour,
)

# The order is part of the contract: a ``classes=N`` dataset takes the first N, and image seeds
# use the class index.
SCENE_CLASSES: tuple[str, ...] = (
    # the default first 12
    "water", "forest", "agricultural", "beach", "river", "freeway", "runway",
    "dense_residential", "medium_residential", "sparse_residential", "parking_lot", "bare_land",
    # more (UC Merced-like)
    "meadow", "storage_tanks", "baseball_diamond", "tennis_court", "harbor", "airplane",
    "industrial", "golf_course", "intersection", "desert", "chaparral",
)

Renderer = Callable[[Canvas], None]
SCENES: dict[str, Renderer] = {}


def scene(name: str) -> Callable[[Renderer], Renderer]:
    """Register the decorated function as the renderer of scene class ``name``."""
    if name not in SCENE_CLASSES:
        raise ValueError(f"synth: scene '{name}' is not in SCENE_CLASSES")

    def register(fn: Renderer) -> Renderer:
        if name in SCENES:
            raise ValueError(f"synth: scene '{name}' registered twice")
        SCENES[name] = fn
        return fn

    return register


@scene("water")
def draw_water(c: Canvas) -> None:
    rng = c.rng
    c.img[...] = water_colour(c)
    if rng.random() < 0.4:  # sun glint
        blob = np.clip(noise(c, 30, 2) * 0.8 + rng.uniform(-0.8, 0.2), 0, 1)
        sp = np.clip(noise(c, 1.2, 1) * 0.5 - 0.5, 0, 1)
        paint(c, blob * np.clip(sp + 0.15 * blob, 0, 1) * 0.7, (0.80, 0.84, 0.82))
    if rng.random() < 0.15:  # a lone boat and its wake
        a = rng.uniform(0, 2 * np.pi)
        x, y = rotate(c.u - rng.uniform(-20, 20), c.v - rng.uniform(-20, 20), a)
        wake = np.clip(1 - np.abs(y) / (0.3 + np.maximum(-x, 0) * 0.25), 0, 1) * (x < 0) * np.exp(x / 25)
        paint(c, wake * 0.5, (0.75, 0.80, 0.80))
        paint(c, coverage(box_sd(x, y, 3, 1.0, 0.9), c.px), (0.92, 0.92, 0.90))


@scene("forest")
def draw_forest(c: Canvas) -> None:
    rng = c.rng
    fill_soil(c, base=(0.22, 0.24, 0.14))
    c.img *= F32(0.55)
    r = rng.uniform(2.2, 4.5)
    dens = rng.uniform(0.75, 1.0)
    clear = rng.uniform(-1.5, 0.2)
    cols = [(jitter(rng, (0.10, 0.20, 0.09)), jitter(rng, (0.20, 0.30, 0.13))),
            (jitter(rng, (0.08, 0.15, 0.09)), jitter(rng, (0.16, 0.24, 0.14))),
            (jitter(rng, (0.12, 0.22, 0.09)), jitter(rng, (0.32, 0.34, 0.15)))][rng.integers(3)]
    draw_trees(c, r * 1.25, lambda u, v: dens * (noise(c, 35, 2, u=u, v=v) > clear), r * 0.75, r * 1.2,
               cols=cols)


_CROPS = [(0.33, 0.47, 0.20), (0.22, 0.34, 0.14), (0.70, 0.64, 0.40), (0.47, 0.37, 0.26),
          (0.60, 0.52, 0.38), (0.48, 0.56, 0.30), (0.38, 0.42, 0.20)]


@scene("agricultural")
def draw_agricultural(c: Canvas) -> None:
    rng = c.rng
    u, v = c.u, c.v
    lo, hi = float(u.min()) - 5, float(u.max()) + 5
    edges = [lo - rng.uniform(0, 30)]
    while edges[-1] < hi:
        edges.append(edges[-1] + rng.uniform(14, 45))
    edges = np.asarray(edges, F32)
    col = np.clip(np.searchsorted(edges, u) - 1, 0, len(edges) - 2)
    ncol = len(edges) - 1
    rh = rng.uniform(12, 40, ncol).astype(F32)
    rph = rng.uniform(0, 40, ncol).astype(F32)
    vv = v + rph[col]
    row = np.floor(vv / rh[col])
    tab = CellTable(rng, 5, col, row, margin=1)
    a = tab(col, row)
    pal = np.stack([jitter(rng, _CROPS[k], s=0.05, b=0.1) for k in range(len(_CROPS))])
    pick = rng.permutation(len(_CROPS))[: rng.integers(3, 6)]
    base = pal[pick[np.minimum((a[0] * len(pick)).astype(np.intp), len(pick) - 1)]]
    period = F32(1.2) + F32(2.0) * a[2]
    coord = np.where(a[1] < 0.5, u, vv)
    stripe = np.sin(coord * (2 * np.pi) / period) * a[3] * F32(0.16)
    bright = 1 + (a[4] - 0.5) * F32(0.25) + stripe + F32(0.06) * noise(c, 8, 2)
    c.img[...] = base * bright[..., None]
    # field boundaries: tracks or hedges
    du = np.minimum(u - edges[col], edges[col + 1] - u)
    dv = np.abs(vv - (row + F32(0.5)) * rh[col]) - rh[col] / 2
    dist = np.minimum(du, np.abs(dv))
    if rng.random() < 0.6:
        paint(c, band(dist, rng.uniform(0.4, 1.2), c.px), jitter(rng, (0.62, 0.56, 0.45)))
    else:
        paint(c, band(dist, rng.uniform(0.5, 1.5), c.px) * 0.9, jitter(rng, (0.15, 0.23, 0.10)))


@scene("beach")
def draw_beach(c: Canvas) -> None:
    rng = c.rng
    fill_soil(c, base=jitter(rng, (0.80, 0.74, 0.60), s=0.03), var=0.05)
    d = curve(c, rng.uniform(1, 8), rng.uniform(50, 160), rng.uniform(-15, 15))(c.u, c.v)
    if rng.random() < 0.4:  # dune vegetation far from the sea
        veg = np.clip(-(d + rng.uniform(18, 30)) / 6 + 0.4 * noise(c, 6, 2), 0, 1)
        paint(c, veg, textured(c, jitter(rng, (0.35, 0.42, 0.22)), 0.2, 3))
    darken(c, np.clip(1 + d / 3, 0, 1), 0.8)  # wet sand
    t = np.clip(d / rng.uniform(15, 35), 0, 1)
    water = mix(jitter(rng, (0.38, 0.62, 0.58)), jitter(rng, (0.10, 0.28, 0.38)), t)
    water *= (1 + F32(0.05) * noise(c, 4, 2, aniso=0.3))[..., None]
    paint(c, coverage(-d, c.px), water)
    n = noise(c, 5, 2)
    foam = band(d - 0.8, rng.uniform(0.6, 1.5), c.px) * np.clip(0.8 + 0.4 * n, 0, 1)
    for k in range(rng.integers(1, 4)):
        off = rng.uniform(4, 8) * (k + 1)
        brk = np.clip(0.7 * noise(c, 6, 2) + 0.1, 0, 1)
        foam = np.maximum(foam, band(d - off, rng.uniform(0.4, 0.9), c.px) * brk * np.exp(-k * 0.5))
    paint(c, foam * 0.85, (0.92, 0.94, 0.92))
    if rng.random() < 0.5:  # people, umbrellas, towels
        dots = Disks(c, 4.0, rng.uniform(0.05, 0.3), 0.4, 0.9)
        h, _, _, _, at = dots.eval(c.u, c.v)
        col = CAR_COLOURS[np.minimum((at * 8).astype(np.intp), 7)]
        paint(c, np.clip(h * 3, 0, 1) * (d < -1.5) * (d > -14), col)


@scene("river")
def draw_river(c: Canvas) -> None:
    rng = c.rng
    fill_grass(c)
    if rng.random() < 0.5:
        paint(c, np.clip(noise(c, 25, 2) - 0.3, 0, 1), textured(c, jitter(rng, (0.50, 0.44, 0.32)), 0.1, 4))
    wm = rng.uniform(4, 11)
    w = wm * (1 + 0.2 * noise(c, 40, 1))
    dist = curve(c, rng.uniform(4, 20), rng.uniform(60, 150), rng.uniform(-10, 10))
    d = dist(c.u, c.v)
    sd = np.abs(d) - w
    bank = rng.uniform(0.5, 2.5)
    paint(c, coverage(sd - bank, c.px), textured(c, jitter(rng, (0.58, 0.52, 0.40)), 0.1, 3))
    paint(c, coverage(sd, c.px), water_colour(c, murky=rng.uniform(0.3, 1.0)))
    near = rng.uniform(0.3, 0.9)
    far = rng.uniform(0.0, 0.5)
    reach = rng.uniform(6, 14)  # width of the riparian tree belt

    def density(u, v):  # trees: a belt along the banks, sparser further away, none in the water
        e = np.abs(dist(u, v)) - wm * 1.2 - bank - 2.5
        return np.where(e < 0, 0.0, np.where(e < reach, near, far))

    draw_trees(c, 3.8, density, 1.8, 3.2)


@scene("freeway")
def draw_freeway(c: Canvas) -> None:
    rng = c.rng
    fill_grass(c, var=0.6)
    if rng.random() < 0.5:
        paint(c, np.clip(noise(c, 20, 2) - 0.2, 0, 1) * 0.8,
              textured(c, jitter(rng, (0.55, 0.48, 0.36)), 0.1, 3))
    lanes = int(rng.integers(2, 5))
    lw = rng.uniform(3.4, 3.8)
    med = rng.uniform(0.8, 1.6) if rng.random() < 0.5 else rng.uniform(4, 12)
    sh = rng.uniform(1.5, 3.0)
    v0 = rng.uniform(-8, 8)
    half = med / 2 + lanes * lw + sh
    td = rng.uniform(0.1, 0.6)
    draw_trees(c, 4.5, lambda u, v: td * (np.abs(v - v0) > half + 4), 1.8, 3.4)
    frame = Frame(c, 0.0, 0.0, v0)
    _draw_road(c, frame, lanes, lw, med, sh, rng.uniform(0.1, 0.6))
    if rng.random() < 0.3:  # a parallel frontage road
        side = rng.choice([-1, 1])
        _draw_road(c, Frame(c, 0.0, 0.0, v0 + side * (half + rng.uniform(12, 22))), 1, 3.4, 0, 1.0,
                   rng.uniform(0, 0.3))


def _draw_road(c: Canvas, fr: Frame, lanes: int, lw: float, median: float, shoulder: float,
               traffic: float, markings: bool = True) -> np.ndarray:
    """A straight two-way road along the frame's x axis: asphalt, median, lines, cars with shadows."""
    rng = c.rng
    x, y = fr(c.u, c.v)
    cw = lanes * lw
    ay = np.abs(y)
    half = median / 2 + cw + shoulder
    road = coverage(ay - half, c.px)
    paint(c, road, asphalt(c))
    if median > 3:
        paint(c, coverage(ay - median / 2 + 0.6, c.px), textured(c, jitter(rng, (0.36, 0.42, 0.22)), 0.1, 4))
    elif median > 0:
        paint(c, band(ay, median / 2 - 0.2, c.px), jitter(rng, (0.68, 0.67, 0.64)))
    off = ay - median / 2
    if markings:
        white = jitter(rng, (0.9, 0.9, 0.86), s=0.02, b=0.03)
        edge = band(off - cw - 0.2, 0.12, c.px)
        if median > 0:
            edge = edge + band(off - 0.25, 0.12, c.px)
        ph = rng.uniform(0, 12)
        dash = (np.mod(x + F32(ph), F32(12)) < 4.0).astype(F32)
        ln = sum((band(off - k * lw, 0.1, c.px) for k in range(1, lanes)), np.zeros_like(x)) * dash
        if median == 0:
            ln = ln + band(ay, 0.22, c.px)
        paint(c, np.clip(edge + ln, 0, 1) * 0.9, white)
    pitch = rng.uniform(9, 20)
    ph = rng.uniform(0, pitch, 2 * lanes).astype(F32)
    tab = CellTable(rng, 4, np.array([0, 2 * lanes]), np.floor(x / pitch), margin=3)
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
        sd, col = car(lx * np.where(yq > 0, 1, -1), ly, a, big=big * (a[2] > 0.8))
        ok = (a[1] < traffic) & (lq >= 0) & (lq < lanes)
        return np.where(ok, sd, F32(NO_SHAPE)), col

    su, sv = c.shifted(1.5)
    darken(c, coverage(cars(su, sv)[0], c.px), 0.5)
    sd, col = cars(c.u, c.v)
    paint(c, coverage(sd, c.px), col)
    return road


@scene("runway")
def draw_runway(c: Canvas) -> None:
    rng = c.rng
    fill_grass(c, dry=(0.55, 0.53, 0.35), var=0.4)
    v0 = rng.uniform(-6, 6)
    w = rng.uniform(15, 23)  # half width
    if rng.random() < 0.5:  # parallel taxiway
        tv = v0 + rng.choice([-1, 1]) * (w + rng.uniform(18, 30))
        paint(c, coverage(np.abs(c.v - tv) - rng.uniform(7, 10), c.px), asphalt(c, rng.uniform(0.35, 0.5)))
        paint(c, band(c.v - tv, 0.25, c.px), (0.80, 0.68, 0.20))
    y = c.v - F32(v0)
    x = c.u
    paint(c, coverage(np.abs(y) - w, c.px), concrete(c, rng.uniform(0.58, 0.74)))
    sl = rng.uniform(5, 7.5)
    joints = band(np.mod(x, F32(sl)) - sl / 2, 0.08, c.px) + band(np.mod(y, F32(sl)) - sl / 2, 0.08, c.px)
    darken(c, np.clip(joints, 0, 1) * coverage(np.abs(y) - w, c.px), 0.85)
    skid = np.clip(0.5 + noise(c, 6, 2, aniso=4.0), 0, 1) * np.exp(-(y / (w * 0.35)) ** 2)
    darken(c, skid * rng.uniform(0.1, 0.5), 0.55)
    white = jitter(rng, (0.92, 0.92, 0.9), s=0.02, b=0.02)
    ph = rng.uniform(0, 50)
    centre = band(y, 0.45, c.px) * (np.mod(x + F32(ph), F32(50)) < 30)
    edge = band(np.abs(y) - w + 1.2, 0.45, c.px)
    marks = centre + edge
    if rng.random() < 0.5:  # threshold piano keys
        xt = rng.uniform(-25, 25)
        keys = (np.abs(x - xt - 15) < 15) & (np.abs(np.mod(y, F32(3.6)) - 1.8) < 0.9) & (np.abs(y) > 2.5)
        marks = marks + keys * coverage(np.abs(y) - w + 2.5, c.px)
    if rng.random() < 0.6:  # touchdown-zone bars
        xt = rng.uniform(-30, 30)
        bars = (np.abs(np.abs(y) - w * 0.45) < 1.2) & (np.mod(x - xt, F32(25)) < 12)
        marks = marks + bars.astype(F32)
    paint(c, np.clip(marks, 0, 1), white)


@scene("intersection")
def draw_intersection(c: Canvas) -> None:
    rng = c.rng
    if rng.random() < 0.5:
        fill_grass(c)
    else:
        c.img[...] = concrete(c, rng.uniform(0.45, 0.62))
    if rng.random() < 0.7:
        draw_trees(c, 6.0, rng.uniform(0.1, 0.5), 1.8, 3.5)
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
        x, y = Frame(c, a, u0, v0)(c.u, c.v)
        hw = med / 2 + lanes * lw + 0.8
        paint(c, coverage(np.abs(np.abs(y) - hw - 1.3) - 1.2, c.px), concrete(c, rng.uniform(0.62, 0.75)))
    halfs = []
    for a, lanes, lw, med in roads:
        _draw_road(c, Frame(c, a, u0, v0), lanes, lw, med, 0.8, rng.uniform(0.1, 0.5))
        halfs.append(med / 2 + lanes * lw + 0.8)
    frames = [Frame(c, a, u0, v0)(c.u, c.v) for a, *_ in roads]
    inside = np.minimum(coverage(np.abs(frames[0][1]) - halfs[0], c.px),
                        coverage(np.abs(frames[1][1]) - halfs[1], c.px))
    paint(c, inside, asphalt(c))  # the crossing box, without lane lines
    white = jitter(rng, (0.9, 0.9, 0.86), s=0.02, b=0.03)
    for k in range(2):
        x, y = frames[k]
        other = halfs[1 - k] / max(np.sin(beta), 0.5)
        zebra = (np.abs(np.abs(x) - other - 2.5) < 1.6) & (np.abs(np.mod(y, F32(1.2)) - 0.6) < 0.3) & (
            np.abs(y) < halfs[k] - 0.5)
        stop = band(np.abs(x) - other - 5, 0.25, c.px) * (np.abs(y) < halfs[k] - 0.5)
        paint(c, np.clip(zebra * (rng.random() < 0.8) + stop, 0, 1) * 0.9, white)


# residential ------------------------------------------------------------------------------------

_ROOFS = np.array([(0.46, 0.43, 0.41), (0.56, 0.35, 0.27), (0.30, 0.30, 0.32), (0.64, 0.60, 0.54),
                   (0.42, 0.34, 0.28), (0.56, 0.56, 0.56), (0.38, 0.40, 0.44), (0.66, 0.44, 0.34)], F32)


def _residential(c: Canvas, d: float) -> None:
    """Houses along a street grid; ``d`` in [0, 1] goes from dense to sparse (bigger lots, more trees)."""
    rng = c.rng
    d = float(np.clip(d, 0, 1))
    fill_grass(c, lush=(0.30, 0.42, 0.18), dry=(0.48, 0.48, 0.34), var=0.3)
    if d < 0.5:  # dense: yards are partly paved / worn
        paint(c, np.clip(0.5 - d + 0.4 * noise(c, 6, 2), 0, 1) * 0.6, concrete(c, rng.uniform(0.45, 0.6)))
    sw = rng.uniform(6.0, 8.5)
    lot_w = (9.0 + 14.0 * d) * rng.uniform(0.9, 1.1)
    lot_d = (12.0 + 12.0 * d) * rng.uniform(0.9, 1.1)
    bh = 2 * lot_d + sw
    ph_v, ph_u = rng.uniform(0, bh), rng.uniform(0, 300)
    cross = rng.uniform(70, 160)
    ph_x = rng.uniform(0, cross)
    p_house = 0.98 - 0.3 * d
    roofs = _ROOFS * np.exp(rng.normal(0, 0.05, (len(_ROOFS), 3))).astype(F32)
    roof_pick = rng.permutation(len(_ROOFS))[: rng.integers(3, 7)]
    hh = rng.uniform(3.5, 5.0)  # eave height for shadows

    def lots(u, v):
        vv = v + F32(ph_v)
        bi = np.floor(vv / F32(bh))
        vb = vv - bi * F32(bh) - F32(sw)
        side = vb >= lot_d
        ly = vb - side * F32(lot_d) - F32(lot_d / 2)
        ly = np.where(side, -ly, ly)  # -lot_d/2 at the street, +lot_d/2 at the back
        uu = u + F32(ph_u) + side * F32(lot_w * 0.37)
        li = np.floor(uu / F32(lot_w))
        lx = uu - (li + F32(0.5)) * F32(lot_w)
        return bi * 2 + side, li, lx, ly, vb, side

    row, li, lx, ly, vb, side = lots(c.u, c.v)
    tab = CellTable(rng, 10, row, li, margin=3)

    def house(u, v, colour=False):
        row, li, lx, ly, vb, side = lots(u, v)
        a = tab(row, li)
        hw = np.minimum(F32(3.2) + F32(1.8) * a[1], F32(lot_w / 2 - 0.8))
        hd = np.minimum(F32(3.0) + F32(1.6) * a[2], F32(lot_d / 2 - 1.0))
        setback = F32(1.5 + 4 * d) + a[3] * F32(1.0 + 3 * d)
        cy = -F32(lot_d / 2) + setback + hd
        cx = (a[4] - 0.5) * np.maximum(F32(lot_w / 2) - hw - 0.5, 0) * 2
        x, y = lx - cx, ly - cy
        sd = box_sd(x, y, hw, hd, 0.1)
        ell = a[5] < 0.35  # L-shaped
        sd2 = box_sd(x - hw * 0.45 * np.sign(a[6] - 0.5), y - hd * 0.9, hw * 0.5, hd * 0.6, 0.1)
        sd = np.where(ell, np.minimum(sd, sd2), sd)
        # no house in the street or where a cross street runs
        uc = (li + 0.5) * F32(lot_w) - F32(ph_u) - side * F32(lot_w * 0.37) + cx
        xc = np.abs(np.mod(uc + F32(ph_x), F32(cross)) - F32(cross / 2))
        ok = (a[0] < p_house) & (vb >= 0) & (xc < cross / 2 - sw / 2 - hw - 1.5)
        sd = np.where(ok, sd, F32(NO_SHAPE))
        if not colour:
            return sd
        base = roofs[roof_pick[np.minimum((a[7] * len(roof_pick)).astype(np.intp), len(roof_pick) - 1)]]
        along_x = a[8] < 0.5
        ridge = np.where(along_x, y, x)
        flip = np.where(side, -1, 1)
        lit = np.where(along_x, F32(c.light[1]) * flip, F32(c.light[0]))
        f = 1 + F32(0.22) * np.sign(ridge) * np.sign(lit) * np.minimum(np.abs(lit) * 2, 1)
        f = np.where(np.abs(ridge) < 0.15, F32(1.1), f)
        return sd, base * (f * (1 + (a[9] - 0.5) * F32(0.15)))[..., None], x, y, hw, cy, hd, lx, ly, a

    # streets (along u) and cross streets (along v), with sidewalks
    xcr = np.abs(np.mod(c.u + F32(ph_x), F32(cross)) - F32(cross / 2)) - F32(cross / 2 - sw / 2)
    st_sd = np.minimum(np.maximum(-vb - sw, vb), -xcr)
    if rng.random() < 0.6:
        paint(c, coverage(st_sd - 1.4, c.px), concrete(c, rng.uniform(0.6, 0.72)))
    paint(c, coverage(st_sd, c.px), asphalt(c, rng.uniform(0.28, 0.42)))

    sd, col, x, y, hw, cy, hd, lx, ly, a = house(c.u, c.v, colour=True)
    # driveways and pools
    dx = (a[4] - 0.5) * np.maximum(F32(lot_w / 2) - hw - 0.5, 0) * 2 + hw * np.sign(a[6] - 0.5) * 0.5
    drive = (np.abs(lx - dx) < 1.3) & (ly < cy) & (sd < NO_SHAPE) & (a[6] > 0.3)
    paint(c, drive * F32(0.9), concrete(c, rng.uniform(0.55, 0.7)))
    pool = box_sd(lx + (a[4] - 0.5) * 3, ly - F32(lot_d / 2 - 3.5), 2.2, 1.4, 0.5)
    pools = np.where((a[9] < 0.35 * d) & (sd < NO_SHAPE), pool, F32(NO_SHAPE))
    paint(c, coverage(pools, c.px), (0.25, 0.62, 0.70))
    su, sv = c.shifted(hh)
    own = coverage(sd, c.px)
    darken(c, coverage(house(su, sv), c.px) * (1 - own), 0.5)
    paint(c, own, col)
    # yard trees: not on houses or streets
    def tree_density(u, v):
        ok = (house(u, v) > 1.5) & (lots(u, v)[4] > 1.0)
        return (0.08 + 0.55 * d) * ok

    draw_trees(c, 5.5, tree_density, 1.8, 3.6)


@scene("dense_residential")
def draw_dense_residential(c: Canvas) -> None:
    _residential(c, c.rng.uniform(0.0, 0.42))


@scene("medium_residential")
def draw_medium_residential(c: Canvas) -> None:
    _residential(c, c.rng.uniform(0.3, 0.72))


@scene("sparse_residential")
def draw_sparse_residential(c: Canvas) -> None:
    _residential(c, c.rng.uniform(0.6, 1.0))


@scene("parking_lot")
def draw_parking_lot(c: Canvas) -> None:
    rng = c.rng
    c.img[...] = asphalt(c, rng.uniform(0.28, 0.45))
    bay_w, bay_d, aisle = rng.uniform(2.5, 2.9), rng.uniform(4.8, 5.6), rng.uniform(6, 7.5)
    mod = 2 * bay_d + aisle
    ph_v, ph_u = rng.uniform(0, mod), rng.uniform(0, bay_w)
    occ = rng.uniform(0.3, 0.97)
    white = jitter(rng, (0.88, 0.88, 0.84), s=0.02, b=0.04)

    def geo(u, v):
        vv = v + F32(ph_v)
        mi = np.floor(vv / F32(mod))
        m = vv - mi * F32(mod)  # [0, bay_d) row A, [bay_d, 2 bay_d) row B, then aisle
        r = np.floor(m / F32(bay_d))
        ly = m - (r + 0.5) * F32(bay_d)
        uu = u + F32(ph_u)
        bi = np.floor(uu / F32(bay_w))
        lx = uu - (bi + 0.5) * F32(bay_w)
        return mi * 2 + r, bi, lx, ly, r < 2

    row, bi, lx, ly, inbay = geo(c.u, c.v)
    lines = band(np.abs(lx) - bay_w / 2, 0.07, c.px) * inbay * (np.abs(ly) < bay_d / 2 - 0.3)
    paint(c, np.clip(lines, 0, 1) * 0.85, white)
    tab = CellTable(rng, 4, row, bi, margin=3)

    def cars(u, v):
        row, bi, lx, ly, inbay = geo(u, v)
        a = tab(row, bi)
        sd, col = car(ly - (a[2] - 0.5) * 0.5, lx - (a[3] - 0.5) * 0.3, a)
        return np.where(inbay & (a[1] < occ), sd, F32(NO_SHAPE)), col

    su, sv = c.shifted(1.5)
    darken(c, coverage(cars(su, sv)[0], c.px), 0.5)
    sd, col = cars(c.u, c.v)
    paint(c, coverage(sd, c.px), col)
    if rng.random() < 0.5:  # an edge of the lot: verge with trees, or a building
        e = c.ext * rng.uniform(0.25, 0.45)
        sdv = e - c.v
        if rng.random() < 0.5:
            paint(c, coverage(sdv, c.px), textured(c, jitter(rng, (0.32, 0.42, 0.2)), 0.1, 3))
            draw_trees(c, 5, lambda u, v: 0.6 * (v > e + 2), 1.8, 3.2)
        else:
            paint(c, coverage(sdv, c.px), concrete(c, rng.uniform(0.6, 0.8)))


@scene("bare_land")
def draw_bare_land(c: Canvas) -> None:
    rng = c.rng
    fill_soil(c, var=0.1)
    gully = 1 - np.abs(noise(c, 14, 3)) * 0.9
    darken(c, np.clip(gully - 0.6, 0, 1) * rng.uniform(0.3, 0.9), 0.75)
    for _ in range(rng.integers(0, 4)):  # vehicle tracks
        fr = Frame(c, rng.uniform(0, np.pi), rng.uniform(-20, 20), rng.uniform(-20, 20))
        d = curve(c, rng.uniform(0, 10), rng.uniform(40, 120), frame=fr)(c.u, c.v)
        tr = band(np.abs(d) - 0.9, 0.4, c.px)
        if rng.random() < 0.5:
            darken(c, tr, 0.75)
        else:
            paint(c, tr * 0.5, (0.78, 0.72, 0.62))
    if rng.random() < 0.6:  # sparse shrubs
        draw_trees(c, 5.0, rng.uniform(0.02, 0.15), 0.7, 1.6,
                   cols=(jitter(rng, (0.22, 0.25, 0.14)), jitter(rng, (0.35, 0.34, 0.22))))


@scene("desert")
def draw_desert(c: Canvas) -> None:
    rng = c.rng
    fill_soil(c, base=(0.80, 0.64, 0.45), var=0.04)
    lam = rng.uniform(10, 26)
    x, y = rotate(c.u, c.v, rng.uniform(0, 2 * np.pi))
    warp = noise(c, 25, 2) * rng.uniform(2, 7) + noise(c, 60, 1) * rng.uniform(0, 10)
    t = np.mod((x + warp) / F32(lam), 1)
    s = rng.uniform(0.65, 0.85)  # asymmetric dune profile: gentle windward side, steep lee face
    amp = 0.6 * (1 - s) * lam * rng.uniform(0.4, 1.0)
    prof = np.where(t < s, t / F32(s), (1 - t) / F32(1 - s))
    h = F32(amp) * prof * np.clip(1 + 0.35 * noise(c, 35, 1), 0.3, 1.6)
    h += F32(0.03) * np.sin((x + warp) * F32(2 * np.pi / rng.uniform(0.8, 1.6)))  # wind ripples
    shade = 1 + (relief(c, h) - 1) * F32(rng.uniform(0.5, 0.9))
    c.img *= shade[..., None]


@scene("meadow")
def draw_meadow(c: Canvas) -> None:
    rng = c.rng
    fill_grass(c, var=rng.uniform(0.2, 0.6), patch=rng.uniform(15, 40))
    if rng.random() < 0.3:  # mowing stripes
        x, _ = rotate(c.u, c.v, rng.uniform(0, np.pi))
        c.img *= (1 + F32(0.05) * np.sign(np.sin(x * F32(2 * np.pi / rng.uniform(6, 12)))))[..., None]
    if rng.random() < 0.3:  # flowers
        sp = np.clip(noise(c, 0.9, 1) - 1.7, 0, 1) * np.clip(noise(c, 20, 1), 0, 1)
        paint(c, sp, jitter(rng, (0.85, 0.80, 0.45)))
    if rng.random() < 0.3:  # a dirt path
        d = curve(c, rng.uniform(2, 12), rng.uniform(50, 120), rng.uniform(-25, 25))(c.u, c.v)
        paint(c, band(d, rng.uniform(0.5, 1.2), c.px) * 0.8, jitter(rng, (0.60, 0.54, 0.42)))
    if rng.random() < 0.6:
        draw_trees(c, 8.0, rng.uniform(0.01, 0.06), 1.5, 3.5)


@scene("chaparral")
def draw_chaparral(c: Canvas) -> None:
    rng = c.rng
    fill_soil(c, base=(0.58, 0.52, 0.40), var=0.08)
    r = rng.uniform(0.9, 2.0)
    dens = rng.uniform(0.35, 0.75)
    draw_trees(c, r * 1.8, lambda u, v: dens * (noise(c, 25, 2, u=u, v=v) > -0.6), r * 0.7, r * 1.3,
               cols=(jitter(rng, (0.20, 0.24, 0.14)), jitter(rng, (0.36, 0.36, 0.24))), rough=0.5)


@scene("storage_tanks")
def draw_storage_tanks(c: Canvas) -> None:
    rng = c.rng
    if rng.random() < 0.5:
        c.img[...] = concrete(c, rng.uniform(0.5, 0.68))
    else:
        fill_soil(c, base=(0.58, 0.54, 0.46), var=0.06)
    pitch = rng.uniform(18, 34)
    rad = pitch * rng.uniform(0.22, 0.4)
    ph = rng.uniform(0, pitch, 2)
    present = rng.uniform(0.6, 1.0)
    top = jitter(rng, [(0.88, 0.88, 0.86), (0.78, 0.78, 0.76), (0.70, 0.72, 0.66)][rng.integers(3)], s=0.02)
    uu, vv = c.u + F32(ph[0]), c.v + F32(ph[1])
    tab = CellTable(rng, 3, np.floor(vv / pitch), np.floor(uu / pitch), margin=3)

    def geo(u, v):
        gu, gv = np.floor(u / F32(pitch)), np.floor(v / F32(pitch))
        a = tab(gv, gu)
        lx, ly = u - (gu + 0.5) * F32(pitch), v - (gv + 0.5) * F32(pitch)
        r = F32(rad) * (0.75 + 0.25 * a[1])
        return a, lx, ly, r

    a, lx, ly, r = geo(uu, vv)
    on = a[0] < present
    berm = np.abs(box_sd(lx, ly, pitch * 0.46, pitch * 0.46)) - 0.5
    paint(c, coverage(berm, c.px) * on * 0.8, jitter(rng, (0.50, 0.46, 0.38)))
    pipes = band(np.mod(vv, F32(pitch)) - 0.8, 0.3, c.px)
    paint(c, pipes * 0.7, jitter(rng, (0.55, 0.55, 0.52)))

    def tank(u, v):
        a, lx, ly, r = geo(u + F32(ph[0]), v + F32(ph[1]))
        return np.where(a[0] < present, np.sqrt(lx * lx + ly * ly) - r, F32(NO_SHAPE))

    own = cast_shadow(c, tank, rad * 0.8, 0.55)
    rr = np.sqrt(lx * lx + ly * ly) / r
    nu, nv = lx / r, ly / r
    shade = 1 + F32(0.12) * (nu * c.light[0] + nv * c.light[1]) * rr - F32(0.08) * (np.abs(rr - 0.85) < 0.08)
    shade = shade * (1 - F32(0.2) * (rr < 0.12))
    paint(c, own, top * shade[..., None])


@scene("baseball_diamond")
def draw_baseball_diamond(c: Canvas) -> None:
    rng = c.rng
    fill_grass(c, var=0.3)
    if rng.random() < 0.6:
        draw_trees(c, 6.0, lambda u, v: 0.5 * (np.hypot(u, v) > 50), 2.0, 3.6)
    s = rng.uniform(0.75, 1.3)  # field scale (27.4 m base paths at 1.0)
    fr = Frame(c, rng.uniform(0, 2 * np.pi), rng.uniform(-12, 12), rng.uniform(-12, 12))
    x, y = fr(c.u, c.v)
    x, y = (x + F32(rng.uniform(10, 25) * s)) / F32(s), (y + F32(rng.uniform(10, 25) * s)) / F32(s)
    # home plate at origin, first base along +x, third base along +y (foul lines along the axes)
    fair = (x > -1.5) & (y > -1.5)
    outfield = np.hypot(x, y) < 95
    stripes = np.sign(np.sin((x + y) * F32(2 * np.pi / 14))) * F32(0.04) + 1
    grass = textured(c, jitter(rng, (0.30, 0.48, 0.20)), 0.05, 8) * stripes[..., None]
    paint(c, coverage(np.maximum(np.hypot(x, y) - 95, np.maximum(-x - 4, -y - 4)) * s, c.px), grass)
    dirt = textured(c, jitter(rng, (0.66, 0.50, 0.36)), 0.06, 5)
    mx = my = 13.5
    sd_dirt = np.minimum(np.hypot(x - mx, y - my) - 29, np.hypot(x, y) - 4.5)
    sd_dirt = np.maximum(sd_dirt, np.maximum(-x - 3, -y - 3))
    paint(c, coverage(sd_dirt * s, c.px), dirt)
    track = np.maximum(np.abs(np.hypot(x, y) - 91.5) - 2.5, np.maximum(-x - 4, -y - 4))
    paint(c, coverage(track * s, c.px), dirt)
    a, b = (x + y) / np.sqrt(2), (x - y) / np.sqrt(2)
    infield = np.abs(a - 19.4) + np.abs(b) - 16.5
    paint(c, coverage(infield * s, c.px), grass)
    paint(c, coverage((np.hypot(x - mx, y - my) - 2.7) * s, c.px), dirt * F32(1.05))
    white = (0.92, 0.92, 0.9)
    for bx, by in ((27.4, 0), (27.4, 27.4), (0, 27.4), (0, 0)):
        paint(c, coverage((box_sd(x - bx, y - by, 0.8, 0.8)) * s, c.px), white)
    foul = (band(y * s, 0.12, c.px) * (x > 0) + band(x * s, 0.12, c.px) * (y > 0)) * outfield
    paint(c, np.clip(foul, 0, 1) * fair, white)


@scene("tennis_court")
def draw_tennis_court(c: Canvas) -> None:
    rng = c.rng
    if rng.random() < 0.5:
        fill_grass(c)
    else:
        c.img[...] = concrete(c, rng.uniform(0.45, 0.65))
    if rng.random() < 0.6:
        draw_trees(c, 6.0, rng.uniform(0.2, 0.6), 2.0, 3.6)
    z = rng.uniform(1.0, 1.35)
    n = int(rng.integers(1, 4))
    fr = Frame(c, rng.uniform(0, 2 * np.pi), rng.uniform(-6, 6), rng.uniform(-6, 6))
    x, y = fr(c.u, c.v)
    x, y = x / F32(z), y / F32(z)
    pitch = 18.3
    y0 = y + F32((n - 1) * pitch / 2)
    k = np.clip(np.round(y0 / F32(pitch)), 0, n - 1)
    ly = y0 - k * F32(pitch)
    scheme = rng.integers(3)
    inner, outer = [((0.26, 0.48, 0.36), (0.20, 0.36, 0.28)), ((0.20, 0.36, 0.56), (0.28, 0.46, 0.34)),
                    ((0.68, 0.38, 0.26), (0.58, 0.32, 0.22))][scheme]
    area = box_sd(x, y, 18.3, n * pitch / 2)
    darken(c, coverage(area - 0.6, c.px) * (1 - coverage(area, c.px)), 0.6)  # fence shadow line
    paint(c, coverage(area, c.px), textured(c, jitter(rng, outer, s=0.03), 0.03, 6))
    paint(c, coverage(box_sd(x, ly, 11.9, 5.5) * z, c.px), textured(c, jitter(rng, inner, s=0.03), 0.03, 6))
    px = c.px / z
    ln = (band(np.abs(x) - 11.885, 0.15, px) * (np.abs(ly) < 5.6) + band(np.abs(ly) - 5.485, 0.15, px) * (
        np.abs(x) < 11.95) + band(np.abs(ly) - 4.115, 0.12, px) * (np.abs(x) < 11.9) + band(
        np.abs(x) - 6.4, 0.12, px) * (np.abs(ly) < 4.1) + band(ly, 0.12, px) * (np.abs(x) < 6.4))
    paint(c, np.clip(ln, 0, 1) * 0.95, (0.93, 0.93, 0.92))
    paint(c, band(x, 0.1, px) * (np.abs(ly) < 6.4) * 0.8, (0.1, 0.1, 0.1))


@scene("harbor")
def draw_harbor(c: Canvas) -> None:
    rng = c.rng
    c.img[...] = water_colour(c, murky=rng.uniform(0.2, 0.9))
    vq = rng.uniform(-30, -8)
    paint(c, coverage(c.v - vq, c.px), concrete(c, rng.uniform(0.5, 0.7)))
    if rng.random() < 0.5:
        draw_trees(c, 6, lambda u, v: 0.3 * (v < vq - 6), 1.8, 3.2)
    pp = rng.uniform(14, 24)
    pw = rng.uniform(0.8, 1.4)
    plen = rng.uniform(25, 60)
    ph = rng.uniform(0, pp)
    slot = rng.uniform(2.8, 4.0)
    occ = rng.uniform(0.5, 0.95)
    blen = min((pp - 2 * pw) / 2 - 1.5, rng.uniform(5, 10))
    pier_col = jitter(rng, (0.62, 0.58, 0.50))
    tab = CellTable(rng, 4, np.array([-5, 5]), np.floor((c.u + F32(ph)) / F32(pp)), margin=4)
    tab2 = CellTable(rng, 4, np.floor((c.v - vq) / F32(slot)), np.floor((c.u + F32(ph)) / F32(pp)) * 2,
                     margin=4)

    def geo(u, v):
        uu = u + F32(ph)
        pi = np.floor(uu / F32(pp))
        lx = uu - (pi + 0.5) * F32(pp)
        a = tab(np.zeros_like(pi), pi)
        length = F32(plen) * (0.6 + 0.4 * a[0])
        return pi, lx, v - F32(vq), length

    def piers(u, v):
        pi, lx, vy, length = geo(u, v)
        return box_sd(lx, vy - length / 2, F32(pw), length / 2)

    def boats(u, v, colour=False):
        pi, lx, vy, length = geo(u, v)
        side = lx > 0
        bx = np.abs(lx) - F32(pw) - F32(blen / 2) - 0.4
        si = np.floor(vy / F32(slot))
        by = vy - (si + 0.5) * F32(slot)
        a = tab2(si, pi * 2 + side)
        bl = F32(blen / 2) * (0.6 + 0.4 * a[1])
        bw = np.minimum(F32(slot / 2 - 0.3), bl * 0.35)
        xb = bx + (F32(blen / 2) - bl)
        sd = np.sqrt((xb / bl) ** 2 + (by / bw) ** 2) * bw - bw
        ok = (a[0] < occ) & (vy > 1) & (vy < length)
        sd = np.where(ok, sd, F32(NO_SHAPE))
        if not colour:
            return sd
        hull = np.where((a[2] < 0.8)[..., None], F32(0.9), CAR_COLOURS[(a[3] * 7.99).astype(np.intp)])
        deck = (np.abs(xb + bl * 0.1) < bl * 0.35) & (np.abs(by) < bw * 0.55)
        return sd, hull * np.where(deck, F32(0.75), F32(1))[..., None]

    cast_shadow(c, piers, 1.0, 0.6)
    paint(c, coverage(piers(c.u, c.v), c.px), pier_col)
    su, sv = c.shifted(1.5)
    darken(c, coverage(boats(su, sv), c.px), 0.55)
    sd, col = boats(c.u, c.v, colour=True)
    paint(c, coverage(sd, c.px), col)


def _plane(x: np.ndarray, y: np.ndarray, L: float) -> np.ndarray:
    """Signed distance of an airliner silhouette of length ``L`` (nose along +x, centred)."""
    ay = np.abs(y)
    fus = np.sqrt(np.maximum(np.abs(x) - L * 0.44, 0) ** 2 + ay ** 2) - L * 0.05
    fus = np.where(x > L * 0.44, np.sqrt((x - L * 0.44) ** 2 + ay ** 2) - L * 0.05, fus)
    span = L * 0.48
    wing = polygon_sd(x, ay, [(L * 0.12, 0.0), (-L * 0.10, 0.0), (-L * 0.22, span), (-L * 0.14, span)])
    tail = polygon_sd(x, ay, [(-L * 0.36, 0.0), (-L * 0.47, 0.0), (-L * 0.52, L * 0.17),
                              (-L * 0.47, L * 0.17)])
    eng = box_sd(x - L * 0.02 + ay * 0.3, ay - span * 0.38, L * 0.05, L * 0.022, L * 0.02)
    return np.minimum(np.minimum(fus, wing), np.minimum(tail, eng))


@scene("airplane")
def draw_airplane(c: Canvas) -> None:
    rng = c.rng
    c.img[...] = concrete(c, rng.uniform(0.52, 0.7))
    sl = rng.uniform(5, 8)
    joints = band(np.mod(c.u, F32(sl)) - sl / 2, 0.07, c.px) + band(np.mod(c.v, F32(sl)) - sl / 2, 0.07, c.px)
    darken(c, np.clip(joints, 0, 1), 0.88)
    if rng.random() < 0.4:
        paint(c, coverage(curve(c, 0.0, 100, rng.uniform(-30, -20))(c.u, c.v), c.px), grass_colour(c))
    for _ in range(rng.integers(1, 3)):  # yellow taxi lines
        fr = Frame(c, rng.uniform(0, np.pi), 0, rng.uniform(-20, 20))
        d = curve(c, rng.uniform(0, 15), rng.uniform(60, 150), frame=fr)(c.u, c.v)
        paint(c, band(d, 0.2, c.px) * 0.9, (0.82, 0.70, 0.22))
    for k in range(1 if rng.random() < 0.75 else 2):
        L = rng.uniform(28, 45)
        fr = Frame(c, rng.uniform(0, 2 * np.pi), rng.uniform(-10, 10) + k * 35, rng.uniform(-10, 10))
        col = jitter(rng, [(0.92, 0.92, 0.92), (0.85, 0.86, 0.88), (0.80, 0.82, 0.86)][rng.integers(3)],
                     s=0.02)

        def shape(u, v, fr=fr, L=L):
            return _plane(*fr(u, v), L)

        own = cast_shadow(c, shape, 3.5, 0.45)
        x, y = fr(c.u, c.v)
        livery = coverage(box_sd(x + L * 0.44, y, L * 0.07, L * 0.05), c.px) * (rng.random() < 0.7)
        cc = mix(col, CAR_COLOURS[rng.integers(4, 6)], livery)
        cc *= (1 - F32(0.08) * (np.abs(y) > L * 0.06))[..., None]  # wings a little darker
        paint(c, own, cc)


@scene("industrial")
def draw_industrial(c: Canvas) -> None:
    rng = c.rng
    c.img[...] = concrete(c, rng.uniform(0.42, 0.6))
    cw, ch = rng.uniform(28, 50), rng.uniform(24, 44)
    ph = rng.uniform(0, 60, 2)
    tab = CellTable(rng, 8, np.floor((c.v + F32(ph[1])) / F32(ch)), np.floor((c.u + F32(ph[0])) / F32(cw)),
                    margin=3)
    roofs = np.array([(0.74, 0.74, 0.74), (0.84, 0.84, 0.82), (0.46, 0.52, 0.58), (0.52, 0.42, 0.34),
                      (0.36, 0.36, 0.38), (0.62, 0.64, 0.60)], F32)

    def geo(u, v):
        uu, vv = u + F32(ph[0]), v + F32(ph[1])
        i, j = np.floor(vv / F32(ch)), np.floor(uu / F32(cw))
        a = tab(i, j)
        hw = F32(cw / 2) * (0.55 + 0.35 * a[1])
        hh = F32(ch / 2) * (0.55 + 0.35 * a[2])
        lx = uu - (j + 0.5) * F32(cw) - (a[3] - 0.5) * (F32(cw / 2) - hw)
        ly = vv - (i + 0.5) * F32(ch) - (a[4] - 0.5) * (F32(ch / 2) - hh)
        return a, lx, ly, hw, hh

    def bldg(u, v):
        a, lx, ly, hw, hh = geo(u, v)
        return np.where(a[0] < 0.9, box_sd(lx, ly, hw, hh), F32(NO_SHAPE))

    a, lx, ly, hw, hh = geo(c.u, c.v)
    # trucks / trailers parked in the yards (cells of 15 x 4 units, mostly empty)
    busy = rng.uniform(0.02, 0.12)
    tq = rng.uniform(0, np.pi / 2) * (rng.random() < 0.3)
    ttab = CellTable(rng, 3, np.floor(c.v / 4), np.floor(c.u / 15), margin=4)

    def trucks(u, v):
        x, y = rotate(u, v, tq)
        i, j = np.floor(y / F32(4)), np.floor(x / F32(15))
        a = ttab(i, j)
        sd = box_sd(x - (j + 0.5) * 15 - (a[1] - 0.5) * 3, y - (i + 0.5) * 4, 6.5, 1.2, 0.2)
        return np.where((a[0] < busy) & (bldg(u, v) > 3), sd, F32(NO_SHAPE))

    paint(c, cast_shadow(c, trucks, 2.5, 0.55), jitter(rng, (0.82, 0.82, 0.82)))
    own = cast_shadow(c, bldg, rng.uniform(5, 10), 0.45)
    base = roofs[np.minimum((a[5] * len(roofs)).astype(np.intp), len(roofs) - 1)]
    det = F32(1) + F32(0.04) * noise(c, 5, 1)
    sky = (np.abs(np.mod(lx, F32(6)) - 3) < 0.5) & (a[6] < 0.4) & (box_sd(lx, ly, hw - 2, hh - 2) < 0)
    hvac = box_sd(np.mod(lx, F32(9)) - 4.5, np.mod(ly, F32(9)) - 4.5, 1.0, 1.0)
    hv = coverage(np.where((a[6] > 0.6) & (box_sd(lx, ly, hw - 2, hh - 2) < 0), hvac, F32(NO_SHAPE)), c.px)
    col = base * (det * np.where(sky, F32(0.8), F32(1)) * (1 + F32(0.15) * hv))[..., None]
    paint(c, own, col)


@scene("golf_course")
def draw_golf_course(c: Canvas) -> None:
    rng = c.rng
    fill_grass(c, lush=(0.22, 0.36, 0.14), dry=(0.34, 0.42, 0.20), var=0.3)
    fr = Frame(c, rng.uniform(0, np.pi), 0.0, rng.uniform(-12, 12))
    x, y = fr(c.u, c.v)
    dist = curve(c, rng.uniform(2, 12), rng.uniform(80, 200), frame=fr)
    d = dist(c.u, c.v)
    w = rng.uniform(10, 18)
    fair = np.abs(d) - w
    stripes = 1 + F32(0.05) * np.sign(np.sin(x * F32(2 * np.pi / rng.uniform(8, 14))))
    fcol = textured(c, jitter(rng, (0.38, 0.56, 0.24)), 0.04, 10) * stripes[..., None]
    paint(c, coverage(fair, c.px), fcol)
    gx = rng.uniform(-25, 25)
    green = np.hypot(x - gx, d) - rng.uniform(6, 10)
    paint(c, coverage(green, c.px), jitter(rng, (0.42, 0.64, 0.30)))
    for _ in range(rng.integers(1, 5)):  # bunkers
        bx, by = gx + rng.uniform(-20, 20), rng.choice([-1, 1]) * (w + rng.uniform(-3, 3))
        r = rng.uniform(2, 4.5)
        sd = np.hypot(x - bx, (d - by) * 1.5) - r * (1 + 0.25 * noise(c, 3, 1))
        paint(c, coverage(sd, c.px), textured(c, jitter(rng, (0.86, 0.80, 0.64)), 0.03, 4))
    if rng.random() < 0.35:  # pond
        sd = np.hypot(c.u - rng.uniform(-30, 30), c.v - rng.uniform(-30, 30)) - rng.uniform(6, 14) * (
            1 + 0.2 * noise(c, 8, 1))
        sd = np.maximum(sd, -fair)
        paint(c, coverage(sd, c.px), water_colour(c))
    if rng.random() < 0.5:  # cart path
        paint(c, band(d + w + 3, 0.8, c.px) * 0.9, concrete(c, 0.7))
    fd = float(rng.uniform(0.3, 0.8))
    draw_trees(c, 5.0, lambda u, v: fd * (np.abs(dist(u, v)) > w + 4), 2.0, 3.8)


_missing = [n for n in SCENE_CLASSES if n not in SCENES]
if _missing:
    raise ImportError(f"synth: no renderer for scene classes {_missing}")
# in place, so that scene() keeps filling the same dict; iteration then follows SCENE_CLASSES
SCENES.update({n: SCENES.pop(n) for n in SCENE_CLASSES})
