"""CIFAR-100 from the standard python files (``--data cifar100:DIR``).

DIR holds ``train``, ``test`` and ``meta`` (the ``cifar-100-python`` folder of the official
archive), or is the folder above it, where torchvision's downloader puts it (``--download``).
Each data file is a pickled dict: ``data`` (N x 3072 uint8, the 1024 red, then green, then blue
values of a 32 x 32 image, row by row) and ``fine_labels``; ``meta`` holds ``fine_label_names``.
The pickles are read with an unpickler that builds only dicts, lists, strings, numbers and numpy
arrays: a tampered file cannot run code.

The files are the decoded images: they are held in memory as uint8 tensors (150 MB for the 60 000
images) and never go through the decoded cache. A sample's path is ``<part>/<class>/<row>``
(``train/apple/00012``: row 12 of ``train``), so split manifests and fingerprints work as for
image folders.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DataError
from .folders import FolderIndex

log = logging.getLogger(__name__)

FILES = ("train", "test", "meta")
ARCHIVE_FOLDER = "cifar-100-python"
SIDE = 32
# What the official files (pickled by Python 2 and numpy) refer to, under numpy 1 and 2 names.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load '{module}.{name}' (not part of a CIFAR file)")
        return super().find_class(module, name)


def read_pickle(path: Path) -> dict[str, Any]:
    """A CIFAR python file as a dict with str keys (the files have bytes or str keys)."""
    try:
        with open(path, "rb") as f:
            raw = _ArrayUnpickler(f, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DataError(f"cannot read CIFAR file '{path}': {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise DataError(f"CIFAR file '{path}' does not hold a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in raw.items()}


def _text(v: Any) -> str:
    return v.decode("latin1") if isinstance(v, bytes) else str(v)


def locate(root: str | Path) -> Path:
    """The folder holding ``train``, ``test`` and ``meta``: ``root`` or ``root/cifar-100-python``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"CIFAR-100: data folder '{root}' does not exist")
    for candidate in (root, root / ARCHIVE_FOLDER):
        if all((candidate / f).is_file() for f in FILES):
            return candidate
    missing = [f for f in FILES if not (root / f).is_file()]
    raise DataError(f"CIFAR-100: '{root}' lacks {', '.join(missing)} (the python version's files, also looked in "
                    f"'{root / ARCHIVE_FOLDER}'); --download fetches them with torchvision")


def _images(data: Any, labels: Any, path: Path, num_classes: int) -> tuple[Tensor, list[int]]:
    arr = np.asarray(data)
    if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != 3 * SIDE * SIDE:
        raise DataError(f"CIFAR file '{path}': 'data' is {arr.dtype} {arr.shape}, expected N x 3072 uint8")
    labels = [int(y) for y in labels]
    if len(labels) != len(arr):
        raise DataError(f"CIFAR file '{path}': {len(labels)} labels for {len(arr)} images")
    bad = [y for y in labels if not 0 <= y < num_classes]
    if bad:
        raise DataError(f"CIFAR file '{path}': label {bad[0]} is not one of the {num_classes} classes of 'meta'")
    return torch.from_numpy(arr.reshape(-1, 3, SIDE, SIDE).copy()), labels


@dataclass
class CifarArrays:
    """The decoded images of both parts; ``load`` gathers them by path (an ``ImageStore``)."""

    files: list[Path]
    images: dict[str, Tensor] = field(default_factory=dict)  # part -> N x 3 x 32 x 32 uint8

    def load(self, paths: list[str], size: int) -> Tensor:
        if not paths:
            return torch.empty((0, 3, size, size), dtype=torch.uint8)
        out = torch.empty((len(paths), 3, SIDE, SIDE), dtype=torch.uint8)
        for part, images in self.images.items():
            picks = [(i, int(p.rsplit("/", 1)[1])) for i, p in enumerate(paths) if p.startswith(part + "/")]
            if picks:
                rows, idx = zip(*picks)
                out[list(rows)] = images[list(idx)]
        return out if size == SIDE else resize_uint8(out, size)


def resize_uint8(images: Tensor, size: int, chunk: int = 4096) -> Tensor:
    """N x 3 x h x w uint8 -> N x 3 x size x size uint8 (bilinear, antialiased when shrinking)."""
    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8)
    for s in range(0, len(images), chunk):
        x = F.interpolate(images[s : s + chunk].float(), size=(size, size), mode="bilinear",
                          align_corners=False, antialias=True)
        out[s : s + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def scan_cifar100(root: str | Path) -> FolderIndex:
    folder = locate(root)
    meta = read_pickle(folder / "meta")
    names = meta.get("fine_label_names")
    if not isinstance(names, list) or len(names) < 2:
        raise DataError(f"CIFAR file '{folder / 'meta'}' has no 'fine_label_names' list")
    classes = [_text(n) for n in names]
    if len(set(classes)) != len(classes) or any("/" in c or not c for c in classes):
        raise DataError(f"CIFAR file '{folder / 'meta'}': class names must be distinct and non-empty")
    store = CifarArrays([folder / f for f in FILES])
    parts: dict[str, list[str]] = {}
    paths, labels = [], []
    for part in ("train", "test"):
        file = folder / part
        d = read_pickle(file)
        if "data" not in d or "fine_labels" not in d:
            raise DataError(f"CIFAR file '{file}' lacks 'data' or 'fine_labels' (is it CIFAR-10's?)")
        images, part_labels = _images(d["data"], d["fine_labels"], file, len(classes))
        store.images[part] = images
        part_paths = [f"{part}/{classes[y]}/{i:05d}" for i, y in enumerate(part_labels)]
        parts[part] = part_paths
        paths += part_paths
        labels += part_labels
    if len(classes) != 100:
        log.warning("CIFAR-100: 'meta' names %d classes, not 100", len(classes))
    return FolderIndex(folder, classes, paths, labels, parts=parts, class_depth=1, store=store)


def download_cifar100(root: str | Path) -> Path:
    """Fetch the python version with torchvision's downloader (checksummed) into ``root``; the
    files end up in ``root/cifar-100-python``. Only ever called for ``--download``."""
    from torchvision.datasets import CIFAR100

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        CIFAR100(str(root), train=True, download=True)
    except Exception as e:  # noqa: BLE001 - no network, a full disk, a bad checksum: one line
        raise DataError(f"--download: CIFAR-100 could not be fetched into '{root}': {str(e).splitlines()[0]}") from None
    return locate(root)
