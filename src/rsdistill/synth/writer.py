"""Image formation (illumination, colour, blur / resolution, noise) and the dataset on disk.

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

import numpy as np

from ..errors import DataError
from .primitives import F32, Canvas, coverage, noise
from .scenes import SCENE_CLASSES, SCENES, Renderer

GENERATOR_VERSION = 1
# The manifest's name for this generator: the module path before the split into a package, kept so
# that folders written before still match their manifest and are reused.
GENERATOR_ID = "rsdistill.data.synth"

MIN_SIZE, MAX_SIZE = 16, 1024
MIN_CLASSES = 2
MAX_BANDS = 64
# Share of a mixed scene given to its second land use: the labelled one always keeps the most.
MIXED_SHARE = (0.2, 0.45)

HAZE = (0.68, 0.72, 0.78)  # colour atmospheric haze blends towards
_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_INV = np.linalg.inv(_YIQ)


# ------------------------------------------------------------------------------------------------
# image formation
# ------------------------------------------------------------------------------------------------


def gauss_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an ``(h, w, c)`` image, reflecting at the borders."""
    r = max(1, int(np.ceil(2.5 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k = (k / k.sum()).astype(F32)
    p = np.pad(img, ((r, r), (0, 0), (0, 0)), mode="reflect")
    out = sum(k[i] * p[i:i + img.shape[0]] for i in range(2 * r + 1))
    p = np.pad(out, ((0, 0), (r, r), (0, 0)), mode="reflect")
    return sum(k[i] * p[:, i:i + img.shape[1]] for i in range(2 * r + 1))


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The drawn scene as a camera sees it: random illumination, colour, resolution, blur, noise."""
    n = img.shape[0]
    img = np.clip(img, 0, 1)
    # illumination: exposure, gamma, contrast, haze
    img = img * F32(np.exp(rng.normal(0, 0.12)))
    img = np.clip(img, 0, 1) ** F32(np.exp(rng.normal(0, 0.12)))
    # colour: hue rotation and saturation in YIQ, white balance
    h, s = rng.normal(0, 0.06), np.exp(rng.normal(0, 0.15))
    rot = np.array([[1, 0, 0], [0, s * np.cos(h), -s * np.sin(h)], [0, s * np.sin(h), s * np.cos(h)]])
    m = np.diag(np.exp(rng.normal(0, 0.035, 3))) @ _YIQ_INV @ rot @ _YIQ
    img = img @ m.T.astype(F32)
    mean = img.mean(axis=(0, 1), keepdims=True)
    img = mean + (img - mean) * F32(np.exp(rng.normal(0, 0.1)))
    if rng.random() < 0.3:
        a = rng.uniform(0.03, 0.2)
        img = img * F32(1 - a) + F32(a) * np.array(HAZE, F32)
    # resolution and blur
    if rng.random() < 0.35 and n >= 24:
        from PIL import Image

        m2 = max(8, int(round(n / rng.uniform(1.3, 2.2))))
        chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., k]), "F")
                            .resize((m2, m2), Image.Resampling.BOX)
                            .resize((n, n), Image.Resampling.BILINEAR)) for k in range(3)]
        img = np.stack(chans, -1).astype(F32)
    sigma = rng.uniform(0.0, 0.7)
    if sigma > 0.25:
        img = gauss_blur(img, sigma)
    # sensor noise
    img = img + rng.normal(0, rng.uniform(0.004, 0.025), img.shape).astype(F32)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def render_scene(class_name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One synthetic aerial image of ``class_name``: a ``(size, size, 3)`` uint8 RGB array."""
    draw = _renderer(class_name)
    _check_size(size)
    c = Canvas(int(size), rng)
    draw(c)
    return _finish(c.img, rng)


def _renderer(class_name: str) -> Renderer:
    if class_name not in SCENES:
        raise DataError(f"synth: unknown scene class '{class_name}' (one of: {', '.join(SCENE_CLASSES)})")
    return SCENES[class_name]


def boundary_mask(c: Canvas, share: float) -> np.ndarray:
    """Coverage (0-1) of a region behind a wavy boundary across ``c`` that takes ``share`` of the
    image: a field boundary, a shoreline, the edge of a town."""
    a = c.rng.uniform(0.0, 2 * np.pi)
    field = c.u * F32(np.cos(a)) + c.v * F32(np.sin(a)) + F32(c.rng.uniform(2, 8)) * noise(c, 30, 2)
    return coverage(field - F32(np.quantile(field, share)), c.px)


def render_mixed_scene(class_name: str, other: str, share: float, size: int, rng: np.random.Generator,
                       other_rng: np.random.Generator) -> np.ndarray:
    """A scene of ``class_name`` of which ``other`` covers ``share`` (mixed land use, as in real scene
    sets: the label names the main one). One camera sees both: illumination, colour, blur and noise
    are applied once, after the two are joined."""
    draw_main, draw_other = _renderer(class_name), _renderer(other)
    _check_size(size)
    main, second = Canvas(int(size), rng), Canvas(int(size), other_rng)
    draw_main(main)
    draw_other(second)
    m = boundary_mask(second, share)[..., None]
    return _finish(main.img * (1 - m) + second.img * m, rng)


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


def _check_probability(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= value <= 1:
        raise DataError(f"synth: {name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def _check_size(size) -> int:
    return _check_int("size", size, MIN_SIZE, MAX_SIZE)


def _manifest(names: list[str], per_class: int, size: int, seed: int, bands: int = 3, mix: float = 0.0) -> dict:
    manifest = {"generator": GENERATOR_ID, "version": GENERATOR_VERSION, "classes": len(names),
                "per_class": per_class, "size": size, "seed": seed, "class_names": names}
    if mix:  # unmixed folders keep the manifest they always had
        manifest["mix"] = mix
    if bands != 3:  # RGB folders keep the manifest they always had
        manifest |= {"bands": bands, "band_names": ["R", "G", "B"] + [f"X{k}" for k in range(3, bands)]}
    return manifest


def _suffix(manifest: dict) -> str:
    return ".tif" if manifest.get("bands", 3) != 3 else ".png"


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
        if not d.is_dir() or len(list(d.glob(f"{name}_*{_suffix(manifest)}"))) != manifest["per_class"]:
            raise DataError(f"synth: output folder '{out}' is incomplete ('{d}' lacks images); delete it and "
                            f"run again")
    return True


def _write_multispectral(path: Path, rgb: np.ndarray, class_index: int, bands: int,
                         rng: np.random.Generator) -> None:
    import tifffile

    from .multispectral import multispectral_image

    tifffile.imwrite(path, multispectral_image(rgb, class_index, bands, rng), photometric="minisblack",
                     planarconfig="separate")


def generate_dataset(out: str | os.PathLike, classes: int = 12, per_class: int = 100, size: int = 64,
                     seed: int = 0, progress: bool = False, bands: int = 3, mix: float = 0.0) -> list[str]:
    """Write ``classes`` x ``per_class`` synthetic scenes to ``out/<class>/<class>_<i:04d>.png``
    (``bands`` > 3: N-band 16-bit ``.tif`` scenes, R, G, B then bands that carry class information,
    see :mod:`.multispectral`; their R, G, B are the PNG scenes' pixels).

    ``mix``: the probability that a scene is mixed, a region of another class (drawn uniformly among
    the others) covering 20-45 % of it behind a wavy boundary; the label is the main class. With
    ``mix=0`` every image is the one an unmixed dataset has; with ``mix>0`` the unmixed images still are.

    Returns the class names. The folder appears complete or not at all; an existing folder made with
    the same parameters is reused as is, any other existing (non-empty) folder is an error.
    """
    classes = _check_int("classes", classes, MIN_CLASSES, len(SCENE_CLASSES))
    per_class = _check_int("per_class", per_class, 1)
    size = _check_size(size)
    seed = _check_int("seed", seed, 0)
    bands = _check_int("bands", bands, 3, MAX_BANDS)
    mix = _check_probability("mix", mix)
    out = Path(out)
    names = list(SCENE_CLASSES[:classes])
    manifest = _manifest(names, per_class, size, seed, bands, mix)

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
                    # its own stream, so that mixing leaves the unmixed images as they were
                    mix_rng = np.random.default_rng(np.random.SeedSequence([seed, ci, i, 2]))
                    if mix and mix_rng.random() < mix:
                        other = names[(ci + 1 + int(mix_rng.integers(classes - 1))) % classes]
                        arr = render_mixed_scene(name, other, float(mix_rng.uniform(*MIXED_SHARE)), size, rng,
                                                 mix_rng)
                    else:
                        arr = render_scene(name, size, rng)
                    if bands == 3:
                        Image.fromarray(arr).save(tmp / name / f"{name}_{i:04d}.png", format="PNG")
                    else:
                        _write_multispectral(tmp / name / f"{name}_{i:04d}.tif", arr, ci, bands,
                                             np.random.default_rng(np.random.SeedSequence([seed, ci, i, 1])))
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
