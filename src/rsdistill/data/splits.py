"""Stratified train/val/test splits, deterministic for a seed on any machine, saved as split.json."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .folders import FolderIndex

SPLIT_VERSION = 1


@dataclass(frozen=True)
class Split:
    classes: list[str]
    train: list[str]
    val: list[str]
    test: list[str]
    seed: int | None = None
    train_ratio: float | None = None
    val_ratio: float | None = None
    # The path component naming the class: 0 for class folders, 1 for the "train/<class>/..."
    # paths of datasets with a published split (CIFAR-100, ImageNet).
    class_depth: int = 0

    @cached_property
    def _class_ids(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def label_of(self, path: str) -> int:
        return self._class_ids[path.split("/")[self.class_depth]]

    def to_json(self) -> dict:
        extra = {"class_depth": self.class_depth} if self.class_depth else {}
        return {
            "version": SPLIT_VERSION,
            "seed": self.seed,
            "train_ratio": self.train_ratio,
            "val_ratio": self.val_ratio,
            **extra,
            "classes": self.classes,
            "counts": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "train": self.train,
            "val": self.val,
            "test": self.test,
        }


def _shuffled(paths: list[str], seed: int, name: str) -> list[str]:
    """One class's paths, sorted, then permuted by a generator seeded by (seed, class name): the
    same files and seed give the same order everywhere, whatever order they were listed in. The
    runs' split.json files depend on this draw: it must not change."""
    ordered = sorted(paths)  # once per class: O(n log n) for the whole split
    order = np.random.default_rng([seed, zlib.crc32(name.encode())]).permutation(len(ordered))
    return [ordered[i] for i in order]


def stratified_split(index: FolderIndex, train_ratio: float, val_ratio: float, seed: int) -> Split:
    """Per class: sort the paths, shuffle them with a generator seeded by (seed, class name),
    and cut train / val / test. The same files and seed give the same split everywhere."""
    train, val, test = [], [], []
    by_class: dict[int, list[str]] = {}
    for path, label in zip(index.paths, index.labels):
        by_class.setdefault(label, []).append(path)
    for label, paths in sorted(by_class.items()):
        name = index.classes[label]
        n = len(paths)
        n_val = round(n * val_ratio)
        n_train = min(round(n * train_ratio), n - n_val - 1)
        if n_train < 1 or n - n_train - n_val < 1 or (val_ratio > 0 and n_val < 1):
            raise DataError(
                f"class '{name}' has {n} image(s): too few for a train/"
                f"{'val/' if val_ratio > 0 else ''}test split at ratio {train_ratio}"
            )
        shuffled = _shuffled(paths, seed, name)
        train += shuffled[:n_train]
        val += shuffled[n_train : n_train + n_val]
        test += shuffled[n_train + n_val :]
    return Split(list(index.classes), sorted(train), sorted(val), sorted(test), seed, train_ratio, val_ratio)


def published_split(index: FolderIndex, val_ratio: float, seed: int) -> Split:
    """The dataset's own split (CIFAR-100's train/test files, ImageNet's train/ and val/, the
    latter as the test split, which is what the literature reports; torchgeo's train/val/test
    split files, the validation part included). With ``val_ratio`` > 0 a
    validation split is carved from the training part, per class, seeded as
    :func:`stratified_split` draws."""
    assert index.parts is not None
    train, val = list(index.parts["train"]), list(index.parts.get("val", []))
    if val and val_ratio > 0:
        raise ConfigError(f"data.val_ratio={val_ratio}: this dataset has a published validation split; set "
                          "data.val_ratio=0 to use it, or data.published_split=false for a ratio split")
    if val_ratio > 0:
        by_class: dict[str, list[str]] = {}
        for p in train:
            by_class.setdefault(p.split("/")[index.class_depth], []).append(p)
        train = []
        for name, paths in sorted(by_class.items()):
            n_val = round(len(paths) * val_ratio)
            if n_val < 1 or n_val >= len(paths):
                raise DataError(f"class '{name}' has {len(paths)} training image(s): too few for a "
                                f"validation split at ratio {val_ratio}")
            shuffled = _shuffled(paths, seed, name)
            val += shuffled[:n_val]
            train += shuffled[n_val:]
    return Split(list(index.classes), sorted(train), sorted(val), sorted(index.parts["test"]), seed,
                 None, val_ratio, class_depth=index.class_depth)


def save_split(split: Split, path: Path) -> None:
    from ..io import atomic_write_text

    atomic_write_text(path, json.dumps(split.to_json(), indent=1))


def load_split(path: str | Path, index: FolderIndex | None = None) -> Split:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split file '{path}' does not exist")
    try:
        raw = json.loads(path.read_text())
        split = Split(
            classes=list(raw["classes"]), train=list(raw["train"]), val=list(raw.get("val", [])),
            test=list(raw["test"]), seed=raw.get("seed"), train_ratio=raw.get("train_ratio"),
            val_ratio=raw.get("val_ratio"), class_depth=int(raw.get("class_depth", 0)),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"split file '{path}' is not a valid split manifest ({e})") from None
    if not split.train or not split.test:
        raise DataError(f"split file '{path}' has an empty train or test list")
    if index is not None:
        check_split_matches(split, index, path)
    return split


def check_split_matches(split: Split, index: FolderIndex, path: Path) -> None:
    if split.class_depth != index.class_depth:
        raise DataError(f"split file '{path}' was made for another dataset layout than '{index.root}' "
                        f"(class folders {'inside the parts' if split.class_depth else 'at the top'})")
    if split.classes != index.classes:
        raise DataError(
            f"split file '{path}' lists classes {split.classes[:4]}... but '{index.root}' has "
            f"{index.classes[:4]}..."
        )
    known = set(index.paths)
    for part in (split.train, split.val, split.test):
        for p in part:
            if p not in known:
                raise DataError(f"split file '{path}' names '{p}', which is not an image under '{index.root}'")
    overlap = set(split.train) & set(split.test)
    if overlap:
        raise DataError(f"split file '{path}': '{sorted(overlap)[0]}' is in both train and test")
