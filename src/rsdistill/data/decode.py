"""Decoding images once into uint8 tensors at the training resolution (the decoded cache).

Epochs then augment tensors instead of re-decoding TIFF/JPEG files. With ``cache="disk"`` the
decoded tensor is also kept in a file keyed by the file list, file sizes/mtimes, the size and the
decoding options, so the next run on the same data skips decoding.

TIFFs beyond 8-bit RGB (16-bit, float, more than 3 bands) are read with tifffile: PIL would clip
16-bit values to 255 and turn float images black. They become 8-bit RGB through the documented
``data.tiff_stretch`` and ``data.bands`` options (:class:`DecodeOptions`); so do 16-bit grey PNGs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError, load_failure
from ..io import atomic_write
from .bad_images import UnreadableImages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeOptions:
    """How images become the model's uint8 bands (``data.tiff_stretch``, ``data.bands``): ``bands``
    None reads RGB; a tuple of band indices reads those bands in that order; ``"all"`` every band
    (resolved to a tuple by the data layer once it has seen an image, see :func:`band_count`)."""

    tiff_stretch: str = "per_image"
    bands: tuple[int, ...] | str | None = None

    @classmethod
    def of(cls, data_cfg) -> DecodeOptions:
        bands = data_cfg.bands
        return cls(data_cfg.tiff_stretch, bands if bands is None or isinstance(bands, str) else tuple(bands))

    @property
    def channels(self) -> int | None:
        """The number of bands a decoded image has (None for "all" before it is resolved)."""
        if self.bands is None:
            return 3
        return None if isinstance(self.bands, str) else len(self.bands)

    def key(self) -> str:
        bands = self.bands if isinstance(self.bands, str) else ",".join(map(str, self.bands or ())) or "-"
        return f"{self.tiff_stretch}|{bands}"


TIFF_SUFFIXES = (".tif", ".tiff")
# Percentiles of the per-image stretch: the darkest and brightest 2 % (sensor noise, specular
# glints, no-data borders) saturate instead of compressing the scene into a few grey levels.
STRETCH_PERCENTILES = (2.0, 98.0)


def decode_image(path: Path, size: int | None, options: DecodeOptions = DecodeOptions()) -> torch.Tensor:
    """One image as a C x size x size uint8 tensor (C = 3, RGB, without ``options.bands``; else
    the bands chosen), resized with antialiasing; with ``size`` None at its own resolution (for
    crops cut from the full image)."""
    path = Path(path)
    try:
        if options.bands is not None:
            arr = _resize_bands(_selected_bands(path, options), size)
            return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()
        arr = _read_tiff(path, options) if path.suffix.lower() in TIFF_SUFFIXES else None
        if arr is None:  # not a TIFF, or an 8-bit one of at most 3 bands: PIL reads it as before
            with Image.open(path) as im:
                if im.mode in DEEP_GREY_MODES:  # 16-bit or float grey PNG: convert("RGB") would clip at 255
                    arr = _deep_grey(np.asarray(im), path, options)
                else:
                    im = im.convert("RGB")
                    if size is not None and im.size != (size, size):
                        im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
                    arr = np.asarray(im, dtype=np.uint8)
        if size is not None and arr.shape[:2] != (size, size):
            im = Image.fromarray(arr, "RGB").resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image '{path}': {e}".splitlines()[0]) from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def band_count(path: Path) -> int:
    """How many bands ``data.bands`` can choose from in an image: a TIFF's own bands (alpha left
    out); 3 for any other image (grey counts as R, G, B)."""
    path = Path(path)
    try:
        raw = _tiff_array(path, header_only=True) if path.suffix.lower() in TIFF_SUFFIXES else None
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read image '{path}': {e}".splitlines()[0]) from None
    return 3 if raw is None else int(raw)


def _selected_bands(path: Path, options: DecodeOptions) -> np.ndarray:
    """H x W x len(bands) uint8: the image's bands (a TIFF's own, else R, G, B), chosen, then
    stretched per band where they are deeper than 8 bits."""
    data = _tiff_array(path) if path.suffix.lower() in TIFF_SUFFIXES else None
    if data is None:
        with Image.open(path) as im:
            if im.mode in DEEP_GREY_MODES:
                data = np.repeat(_deep_grey(np.asarray(im), path, options)[..., :1], 3, axis=-1)
            else:
                data = np.asarray(im.convert("RGB"), dtype=np.uint8)
    elif data.shape[-1] == 1:  # grey: its band is R, G and B
        data = np.repeat(data, 3, axis=-1)
    n = data.shape[-1]
    bands = list(range(n)) if isinstance(options.bands, str) else list(options.bands)
    if max(bands) >= n:
        raise DataError(f"image '{path}' has {n} bands; data.bands={bands} asks for band {max(bands)} "
                        "(band indices start at 0)")
    data = data[..., bands]
    if data.dtype != np.uint8:
        if options.tiff_stretch == "none":
            raise DataError(f"image '{path}' holds {data.dtype} values and data.tiff_stretch=none takes "
                            "8-bit images only: use data.tiff_stretch=per_image")
        data = stretch_per_image(data)
    return np.ascontiguousarray(data)


def _resize_bands(data: np.ndarray, size: int | None) -> np.ndarray:
    """H x W x C uint8 resized to size x size, each band as PIL resizes an RGB image (bilinear,
    antialiased); 3 bands go through PIL's RGB path, the others one band at a time."""
    if size is None or data.shape[:2] == (size, size):
        return data
    if data.shape[-1] == 3:
        im = Image.fromarray(data, "RGB").resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
        return np.asarray(im, dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(data[..., c]), "L")
                                .resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None))
                     for c in range(data.shape[-1])], axis=-1)


# PIL's modes of grey images deeper than 8 bits (16-bit PNGs open as I;16 or I, float ones as F).
DEEP_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _deep_grey(data: np.ndarray, path: Path, options: DecodeOptions) -> np.ndarray:
    """A deeper-than-8-bit grey image through the same stretch as TIFFs (data.tiff_stretch)."""
    if options.tiff_stretch == "none":
        raise DataError(f"image '{path}' holds {data.dtype} values and data.tiff_stretch=none takes "
                        "8-bit images only: use data.tiff_stretch=per_image")
    return np.ascontiguousarray(np.repeat(stretch_per_image(data[..., None]), 3, axis=-1))


def _tiff_array(path: Path, header_only: bool = False):
    """A TIFF's pixels as H x W x bands (alpha left out), or None where PIL reads it faithfully
    (8-bit, at most 3 bands besides alpha: palette, YCbCr and JPEG/LZW compression need no extra
    codec there). ``header_only``: the band count instead of the pixels (None likewise)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page, series = tif.pages[0], tif.series[0]
            alpha = (page.photometric == tifffile.PHOTOMETRIC.RGB and page.samplesperpixel == 4
                     and page.extrasamples and int(page.extrasamples[0]) in (1, 2))
            bands = _band_count(series.shape, series.axes) - int(bool(alpha))
            if series.dtype in (np.uint8, np.bool_) and bands <= 3:
                return None
            if header_only:
                return bands
            data = series.asarray()
    except tifffile.TiffFileError:
        return None  # not really a TIFF (a renamed JPEG or PNG): PIL decides
    except ValueError as e:  # e.g. "<COMPRESSION.LZW: 5> requires the 'imagecodecs' package"
        raise DataError(f"cannot read image '{path}': {e}".splitlines()[0]) from None
    if np.iscomplexobj(data):  # radar (SLC) images: which real picture to take is the user's choice
        raise DataError(f"image '{path}' holds complex values ({data.dtype}); rsdistill reads real-valued "
                        "images only: convert it first (e.g. to amplitude)")
    data = _bands_last(data, series.axes, path)
    return data[..., :3] if alpha else data


def _read_tiff(path: Path, options: DecodeOptions) -> np.ndarray | None:
    """A TIFF as H x W x 3 uint8 (without ``data.bands``), or None where PIL reads it."""
    data = _tiff_array(path)
    if data is None:
        return None
    n = data.shape[-1]
    if n > 3:
        raise DataError(f"image '{path}' has {n} bands: choose the bands the model reads with data.bands "
                        "(e.g. --set 'data.bands=[2,1,0]' or data.bands=all)")
    if n == 2:
        raise DataError(f"image '{path}' has 2 bands; only 1 (grey), 3 (RGB) or more with data.bands are read")
    if data.dtype != np.uint8:
        if options.tiff_stretch == "none":
            raise DataError(f"image '{path}' holds {data.dtype} values and data.tiff_stretch=none takes "
                            "8-bit images only: use data.tiff_stretch=per_image")
        data = stretch_per_image(data)
    if data.shape[-1] == 1:  # grey: the same band on R, G and B
        data = np.repeat(data, 3, axis=-1)
    return np.ascontiguousarray(data)


def _band_count(shape: tuple[int, ...], axes: str) -> int:
    extra = [n for n, a in zip(shape, axes) if a not in "YX"]
    return int(np.prod(extra)) if extra else 1


def _bands_last(data: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """H x W x bands from the series' axes ('YX', 'YXS', 'SYX', or a band per page: 'QYX', ...)."""
    keep = [i for i, (n, a) in enumerate(zip(data.shape, axes)) if a in "YX" or n > 1]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if axes == "YX":
        return data[..., None]
    if len(axes) != 3 or "Y" not in axes or "X" not in axes:
        raise DataError(f"image '{path}' has a TIFF layout rsdistill does not read (axes {axes}, "
                        f"shape {data.shape}): one image of bands is expected")
    band_axis = next(i for i, a in enumerate(axes) if a not in "YX")
    return np.moveaxis(data, band_axis, -1)


def stretch_per_image(data: np.ndarray) -> np.ndarray:
    """H x W x C of any number type -> uint8: each band's 2nd..98th percentile to 0..255 (linear,
    clipped). Non-finite values (no-data) are left out of the percentiles and become 0; a constant
    band becomes 0."""
    x = data.astype(np.float64)
    finite = np.isfinite(x)
    out = np.zeros(x.shape, dtype=np.uint8)
    for c in range(x.shape[-1]):
        band, ok = x[..., c], finite[..., c]
        if not ok.any():
            continue
        lo, hi = np.percentile(band[ok], STRETCH_PERCENTILES)
        if hi <= lo:
            continue
        scaled = np.clip((band - lo) / (hi - lo), 0.0, 1.0) * 255.0
        out[..., c] = np.where(ok, np.rint(scaled), 0).astype(np.uint8)
    return out


def decode_all(root: Path, relpaths: list[str], size: int, threads: int | None = None,
               progress: bool = False, options: DecodeOptions = DecodeOptions(), keep: bool = True) -> torch.Tensor:
    """N x C x size x size uint8 (C: ``options.channels``); PIL releases the GIL while decoding,
    so threads help.

    A bad image does not stop the others: all of them are raised together at the end as
    :class:`UnreadableImages` (with the decoded tensor, their rows black). ``keep=False`` only
    checks that every image decodes (for images read on access, ``data.cache=off``)."""
    channels = options.channels
    if channels is None:
        raise ValueError("decode_all: data.bands='all' must be resolved to band indices first")
    out = torch.empty((len(relpaths) if keep else 0, channels, size, size), dtype=torch.uint8)
    failures: dict[int, str] = {}
    threads = threads or min(8, os.cpu_count() or 1)

    def work(i: int) -> None:
        try:
            image = decode_image(root / relpaths[i], size, options)
        except DataError as e:
            failures[i] = str(e)
            image = torch.zeros((channels, size, size), dtype=torch.uint8)
        if keep:
            out[i] = image

    with ThreadPoolExecutor(threads) as pool:
        it = pool.map(work, range(len(relpaths)))
        if progress:
            from tqdm import tqdm

            # disable=None: no bar (and no \r lines) when the output is not a terminal
            it = tqdm(it, total=len(relpaths), desc=f"decoding {size}px", unit="img", leave=False, disable=None)
        for _ in it:
            pass
    if failures:
        raise UnreadableImages([(relpaths[i], failures[i]) for i in sorted(failures)], len(relpaths),
                               out if keep else None)
    return out


def cache_key(root: Path, relpaths: list[str], size: int, options: DecodeOptions = DecodeOptions()) -> str:
    # The options are part of the key: images decoded with another stretch or bands differ. The
    # version changes with the decoding itself (v3: 16-bit grey PNGs stretched, not clipped; v4:
    # data.bands also chooses among the R, G, B of 8-bit images, and any number of bands).
    h = hashlib.sha256(f"v4|{root.resolve()}|{size}|{options.key()}".encode())
    for p in relpaths:
        st = (root / p).stat()
        h.update(f"|{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


class DecodedCache:
    """Decoded images of one file list; kept in memory, optionally persisted under ``directory``."""

    def __init__(self, directory: str | Path | None = None, progress: bool = False,
                 options: DecodeOptions = DecodeOptions()):
        self.directory = Path(directory) if directory else None
        self.progress, self.options = progress, options

    def load(self, root: Path, relpaths: list[str], size: int) -> torch.Tensor:
        if self.directory is None:
            return decode_all(root, relpaths, size, progress=self.progress, options=self.options)
        file = self.directory / f"decoded-{size}px-{cache_key(root, relpaths, size, self.options)}.pt"
        if file.is_file():
            try:
                images = torch.load(file, map_location="cpu", weights_only=True)
                if images.shape == (len(relpaths), self.options.channels, size, size) and images.dtype == torch.uint8:
                    log.info("decoded cache hit: %s", file)
                    return images
            except Exception as e:  # noqa: BLE001 - a damaged cache is rebuilt, not fatal
                log.warning("decoded cache '%s' unreadable (%s); decoding again", file, load_failure(e))
        images = decode_all(root, relpaths, size, progress=self.progress, options=self.options)
        atomic_write(file, lambda f: torch.save(images, f))
        log.info("decoded cache written: %s", file)
        return images
