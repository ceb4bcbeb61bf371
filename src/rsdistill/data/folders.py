"""Reading a folder dataset: a root with one sub-folder per class (torchvision ImageFolder layout)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from torch import Tensor
from torchvision.datasets.folder import find_classes, has_file_allowed_extension

from ..errors import DataError

IMAGE_EXTENSIONS = (".tif", ".tiff", ".jpg", ".jpeg", ".png", ".bmp")


class ImageStore(Protocol):
    """Where the pixels are when they are not one image file per path (CIFAR-100's arrays)."""

    files: list[Path]  # the files holding the images (the dataset's fingerprint sums their sizes)

    def load(self, paths: list[str], size: int) -> Tensor:
        """N x 3 x size x size uint8, in the order of ``paths``."""


@dataclass(frozen=True)
class FolderIndex:
    """Every image of a dataset folder: paths relative to ``root`` (POSIX), sorted, with labels.

    Datasets published with their own train/test split (CIFAR-100, ImageNet) list the paths of
    each part in ``parts`` ("train", "test"); their paths start with the part, so the class is
    path component ``class_depth`` (1) instead of the first. ``store`` holds the pixels of a
    dataset that is not one image file per path."""

    root: Path
    classes: list[str]
    paths: list[str]
    labels: list[int]
    parts: dict[str, list[str]] | None = None
    class_depth: int = 0
    store: ImageStore | None = None
    # The bands a model reads without data.bands ("all", indices; None: R, G, B), e.g. EuroSAT's 13.
    default_bands: tuple[int, ...] | str | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(self.classes, 0)
        for y in self.labels:
            out[self.classes[y]] += 1
        return out


def _image_files(folder: Path, root: Path) -> list[str]:
    """The image files under ``folder`` (any depth), relative to ``root``. A folder that cannot be
    read is an error naming it: skipping it (as ``rglob`` does) would report missing images."""

    def fail(e: OSError) -> None:
        raise DataError(f"cannot read folder '{e.filename or folder}': {e.strerror or e}")

    found = []
    for dirpath, _, filenames in os.walk(folder, onerror=fail, followlinks=True):
        for name in filenames:
            path = Path(dirpath) / name
            if not name.startswith(".") and has_file_allowed_extension(name, IMAGE_EXTENSIONS) and path.is_file():
                found.append(path.relative_to(root).as_posix())
    return found


def scan_folder(root: str | Path) -> FolderIndex:
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder '{root}' does not exist")
    if not root.is_dir():
        raise DataError(f"data folder '{root}' is not a directory")
    try:
        classes, _ = find_classes(str(root))
    except FileNotFoundError:
        raise DataError(f"data folder '{root}' has no class sub-folders") from None
    except OSError as e:  # e.g. no read permission: say so, not "no class folders"
        raise DataError(f"cannot read data folder '{root}': {e.strerror or e}") from None
    classes = [c for c in classes if not c.startswith(".")]
    if len(classes) < 2:
        raise DataError(f"data folder '{root}' has {len(classes)} class folder(s); at least 2 are needed")
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(_image_files(root / name, root))
        if not found:
            raise DataError(
                f"class folder '{root / name}' has no images ({', '.join(IMAGE_EXTENSIONS)})"
            )
        paths += found
        labels += [label] * len(found)
    return FolderIndex(root, classes, paths, labels)
