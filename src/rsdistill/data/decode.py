"""Decoding images once into uint8 tensors at the training resolution (the decoded cache).

Epochs then augment tensors instead of re-decoding TIFF/JPEG files. With ``cache="disk"`` the
decoded tensor is also kept in a file keyed by the file list, file sizes/mtimes and the size, so
the next run on the same data skips decoding.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from ..io import atomic_write

log = logging.getLogger(__name__)


def decode_image(path: Path, size: int) -> torch.Tensor:
    """One image as a 3 x size x size uint8 tensor (RGB, resized with antialiasing)."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image '{path}': {e}".splitlines()[0]) from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def decode_all(root: Path, relpaths: list[str], size: int, threads: int | None = None,
               progress: bool = False) -> torch.Tensor:
    """N x 3 x size x size uint8; PIL releases the GIL while decoding, so threads help."""
    out = torch.empty((len(relpaths), 3, size, size), dtype=torch.uint8)
    threads = threads or min(8, os.cpu_count() or 1)

    def work(i: int) -> None:
        out[i] = decode_image(root / relpaths[i], size)

    with ThreadPoolExecutor(threads) as pool:
        it = pool.map(work, range(len(relpaths)))
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(relpaths), desc=f"decoding {size}px", unit="img", leave=False)
        for _ in it:
            pass
    return out


def cache_key(root: Path, relpaths: list[str], size: int) -> str:
    h = hashlib.sha256(f"v1|{root.resolve()}|{size}".encode())
    for p in relpaths:
        st = (root / p).stat()
        h.update(f"|{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


class DecodedCache:
    """Decoded images of one file list; kept in memory, optionally persisted under ``directory``."""

    def __init__(self, directory: str | Path | None = None, progress: bool = False):
        self.directory = Path(directory) if directory else None
        self.progress = progress

    def load(self, root: Path, relpaths: list[str], size: int) -> torch.Tensor:
        if self.directory is None:
            return decode_all(root, relpaths, size, progress=self.progress)
        file = self.directory / f"decoded-{size}px-{cache_key(root, relpaths, size)}.pt"
        if file.is_file():
            try:
                images = torch.load(file, map_location="cpu", weights_only=True)
                if images.shape == (len(relpaths), 3, size, size) and images.dtype == torch.uint8:
                    log.info("decoded cache hit: %s", file)
                    return images
            except Exception as e:  # noqa: BLE001 - a damaged cache is rebuilt, not fatal
                log.warning("decoded cache '%s' unreadable (%s); decoding again", file, e)
        images = decode_all(root, relpaths, size, progress=self.progress)
        atomic_write(file, lambda f: torch.save(images, f))
        log.info("decoded cache written: %s", file)
        return images
