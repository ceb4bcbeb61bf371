"""ImageNet-1k in its standard layout (``--data imagenet:DIR``): ``DIR/train/<class>/*`` and
``DIR/val/<class>/*``, the validation images already sorted into the same class folders
(docs/cifar_imagenet.md says how). ``val/`` is the test split (what Table 9 and the literature
report); ``data.val_ratio`` carves a validation split from ``train/``.

Paths are ``train/<class>/<file>`` and ``val/<class>/<file>``, relative to DIR. The images are
read from the files at every access (see ``data.augment: imagenet`` and the decoded cache's size
limit): 1.28 M images do not fit in memory decoded.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import DataError
from .folders import IMAGE_EXTENSIONS, FolderIndex, scan_folder

log = logging.getLogger(__name__)

SORTING_HINT = "sort the validation images into class folders first (docs/cifar_imagenet.md)"
NUM_CLASSES = 1000


def scan_imagenet(root: str | Path) -> FolderIndex:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"ImageNet: data folder '{root}' does not exist")
    for part in ("train", "val"):
        if not (root / part).is_dir():
            raise DataError(f"ImageNet: '{root / part}' is missing: imagenet:DIR expects DIR/train/<class>/ "
                            "and DIR/val/<class>/")
    loose = [p.name for p in (root / "val").iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if loose:
        raise DataError(f"ImageNet: '{root / 'val'}' holds {len(loose)} images directly (e.g. '{loose[0]}'), "
                        f"not in class folders: {SORTING_HINT}")
    train, val = scan_folder(root / "train"), scan_folder(root / "val")
    if val.classes != train.classes:
        only_train = sorted(set(train.classes) - set(val.classes))
        only_val = sorted(set(val.classes) - set(train.classes))
        which = (f"'{only_train[0]}' is in train/ only" if only_train else f"'{only_val[0]}' is in val/ only")
        raise DataError(f"ImageNet: train/ has {len(train.classes)} class folders and val/ {len(val.classes)} "
                        f"({which}): {SORTING_HINT}")
    if len(train.classes) != NUM_CLASSES:
        log.warning("ImageNet: %d class folders, not the %d of ImageNet-1k (a subset?)", len(train.classes),
                    NUM_CLASSES)
    parts = {"train": [f"train/{p}" for p in train.paths], "test": [f"val/{p}" for p in val.paths]}
    return FolderIndex(root, train.classes, parts["train"] + parts["test"], train.labels + val.labels,
                       parts=parts, class_depth=1)
