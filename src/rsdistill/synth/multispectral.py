"""Multispectral synthetic scenes (``rsdistill synth --bands N``): R, G, B plus N - 3 extra bands
that carry information about the class, as real near- and short-wave infrared bands do (water is
dark in NIR, vegetation bright, ...), so that a model reading them can do better than RGB alone.

Band k >= 3 of an image of class c mixes the scene's brightness with a pattern of the material the
class is made of in that band: a grating whose spatial frequency and orientation belong to
(c, k), with a random phase per image, and the band's reflectance of the class (c, k) as its
level. The grating survives the per-image stretch that deep images go through when they are
read (``data.tiff_stretch: per_image`` maps each band's own range onto 0..255); the level does
not, as with real products. Images are written as N-band 16-bit TIFFs, one band per plane (as GDAL
writes them), with values 0..10000 (Sentinel-2's reflectance scale).
"""

from __future__ import annotations

import numpy as np

from .primitives import F32

# Salt of the per-(class, band) spectral signature draws: independent of the image draws.
SIGNATURE_SALT = 0x5EC7
REFLECTANCE_SCALE = 10000


def signature(class_index: int, band: int) -> tuple[float, float, float]:
    """(cycles per pixel at 32 px, orientation in radians, reflectance) of class ``class_index``
    in extra band ``band`` (0 for the first band after R, G, B)."""
    g = np.random.default_rng(np.random.SeedSequence([SIGNATURE_SALT, class_index, band]))
    return float(g.uniform(0.05, 0.3)), float(g.uniform(0.0, np.pi)), float(g.uniform(0.2, 0.9))


def extra_bands(rgb: np.ndarray, class_index: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` extra bands (H x W x count, float32 in [0, 1]) for the RGB image ``rgb`` (uint8)."""
    n = rgb.shape[0]
    brightness = rgb.astype(F32).mean(axis=-1) / F32(255.0)
    y, x = np.mgrid[0:n, 0:n].astype(F32) * F32(32.0 / n)  # the pattern scales with the image
    out = np.empty((n, n, count), F32)
    for k in range(count):
        freq, angle, level = signature(class_index, k)
        phase, mix = rng.uniform(0, 2 * np.pi), rng.uniform(0.35, 0.6)
        grating = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)) + phase)
        band = level * ((1 - mix) * brightness + mix * grating)
        out[..., k] = band + rng.normal(0, 0.02, band.shape)
    return np.clip(out, 0.0, 1.0)


def multispectral_image(rgb: np.ndarray, class_index: int, bands: int, rng: np.random.Generator) -> np.ndarray:
    """``bands`` x H x W uint16: R, G, B of ``rgb`` then ``bands - 3`` extra bands."""
    stack = np.concatenate([rgb.astype(F32) / F32(255.0), extra_bands(rgb, class_index, bands - 3, rng)], axis=-1)
    return np.rint(np.moveaxis(stack, -1, 0) * REFLECTANCE_SCALE).astype(np.uint16)
