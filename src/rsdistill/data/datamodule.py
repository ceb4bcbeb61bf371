"""The data layer's product: loaders for the train/val/test splits and the class names.

A distillation method declares what its batches need (``needs``): "two_views" adds a strongly
augmented view ``image_strong``; every batch carries ``image``, ``label`` and ``index`` (the
sample's position in the training split, which memory-bank methods use). Nothing else about a
method is known here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..config import DataConfig
from ..errors import ConfigError, DataError
from .decode import DecodedCache, DecodeOptions, decode_image
from .folders import FolderIndex
from .info import DataInfo
from .presets import scan_dataset
from .splits import Split, load_split, stratified_split
from .transforms import channel_stats, crop_padding_px, eval_transform, strong_transform, train_transform
from .view_bank import ViewBank

log = logging.getLogger(__name__)

KNOWN_NEEDS = frozenset({"two_views", "indices"})


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/rsdistill (~/.cache/rsdistill): never inside a (possibly read-only) dataset."""
    import os

    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rsdistill"


class LazyImages:
    """Decode on access, for datasets that do not fit in memory (``cache: off``)."""

    def __init__(self, root: Path, paths: list[str], size: int, options: DecodeOptions = DecodeOptions()):
        self.root, self.paths, self.size, self.options = root, paths, size, options

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tensor:
        return decode_image(self.root / self.paths[i], self.size, self.options)


class SceneDataset(Dataset):
    def __init__(self, images, labels: Tensor, transform, strong=None):
        self.images, self.labels, self.transform, self.strong = images, labels, transform, strong

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Tensor | int]:
        img = self.images[i]
        item = {"image": self.transform(img), "label": int(self.labels[i]), "index": i}
        if self.strong is not None:
            item["image_strong"] = self.strong(img)
        return item


class BankViews(Dataset):
    """All N x K views of the bank, item ``i * K + k`` being view k of image i."""

    def __init__(self, images, bank: ViewBank):
        self.images, self.bank = images, bank

    def __len__(self) -> int:
        return self.bank.num_images * self.bank.views

    def __getitem__(self, j: int) -> dict[str, Tensor | int]:
        i, k = divmod(j, self.bank.views)
        return {"image": self.bank.view(self.images[i], i, k), "index": i, "view": k}


class BankDataset(Dataset):
    """Training images as one view of the bank each (``views[i]``, this epoch's draw); the batch
    carries the view's number so cached teacher outputs can be looked up by (index, view)."""

    def __init__(self, images, labels: Tensor, bank: ViewBank, views: Tensor, strong=None):
        self.images, self.labels, self.bank, self.views, self.strong = images, labels, bank, views, strong

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Tensor | int]:
        img, k = self.images[i], int(self.views[i])
        item = {"image": self.bank.view(img, i, k), "label": int(self.labels[i]), "index": i, "view": k}
        if self.strong is not None:
            item["image_strong"] = self.strong(img)
        return item


class DataModule:
    def __init__(self, cfg: DataConfig, seed: int = 0, needs: frozenset[str] = frozenset(),
                 split: Split | None = None, split_source: str | Path | None = None,
                 progress: bool = False, device: str = "cpu",
                 index: FolderIndex | None = None, parts: tuple[str, ...] = ("train", "val", "test")):
        """Scan, split and decode. Every part in ``parts`` is decoded here, so a corrupt image
        stops the run before anything is written; evaluation asks only for the part it needs."""
        unknown = set(needs) - KNOWN_NEEDS
        if unknown:
            raise ConfigError(f"a method needs {sorted(unknown)}, which the data layer cannot provide")
        if not cfg.root:
            raise ConfigError("data.root: no dataset folder given (use --data DIR)")
        self.cfg, self.seed, self.needs, self.progress = cfg, seed, frozenset(needs), progress
        self._bank: ViewBank | None = None
        self.device = device
        self.index: FolderIndex = index or scan_dataset(cfg.preset, cfg.root)
        if split is None and cfg.split_file:
            split = load_split(cfg.split_file, self.index)
        elif split is not None:
            from .splits import check_split_matches

            check_split_matches(split, self.index, Path(split_source or "<given split>"))
        self.split = split or stratified_split(self.index, cfg.train_ratio, cfg.val_ratio, seed)
        self._labels = {
            part: torch.tensor([self.split.label_of(p) for p in getattr(self.split, part)], dtype=torch.long)
            for part in ("train", "val", "test")
        }
        self._images_of = {part: self._images(getattr(self.split, part)) for part in parts}
        self.info = DataInfo(list(self.split.classes), cfg.image_size, self._labels["train"],
                             list(self.split.train))
        # Without the training images (evaluation of a stored model) the model's own statistics apply.
        self.mean, self.std = [0.5] * 3, [0.25] * 3
        if "train" not in parts or not self.split.train:
            return
        train_images = self._images_of["train"]
        if isinstance(train_images, LazyImages):
            sample = torch.stack([train_images[i] for i in range(0, len(train_images), max(1, len(train_images) // 500))])
            self.mean, self.std = channel_stats(sample)
        else:
            self.mean, self.std = channel_stats(train_images)

    def _images(self, paths: list[str]):
        if not paths:
            return torch.empty((0, 3, self.cfg.image_size, self.cfg.image_size), dtype=torch.uint8)
        root = self.index.root
        if self.cfg.cache == "off":
            return LazyImages(root, paths, self.cfg.image_size, DecodeOptions.of(self.cfg))
        directory = None
        if self.cfg.cache == "disk":
            directory = self.cfg.cache_dir or default_cache_dir()
        try:
            cache = DecodedCache(directory, self.progress, DecodeOptions.of(self.cfg))
            return cache.load(root, paths, self.cfg.image_size)
        except PermissionError as e:
            raise DataError(f"data.cache_dir: cannot write the decoded cache ({e})") from None

    @property
    def class_names(self) -> list[str]:
        return self.info.class_names

    @property
    def has_val(self) -> bool:
        return len(self.split.val) > 0

    def _workers(self) -> int:
        if self.cfg.workers >= 0:
            return self.cfg.workers
        return 4 if self.device.startswith("cuda") else 0

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool, seed: int | None = None) -> DataLoader:
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        workers = self._workers()
        return DataLoader(
            dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
            num_workers=workers, pin_memory=self.device.startswith("cuda"),
            drop_last=False, persistent_workers=False,
        )

    @property
    def view_bank(self) -> ViewBank | None:
        """The fixed bank of ``data.view_bank`` views per training image (None when off)."""
        if not self.cfg.view_bank:
            return None
        if self._bank is None:
            c = self.cfg
            self._bank = ViewBank.draw(len(self._labels["train"]), c.view_bank, c.image_size,
                                       crop_padding_px(c), c.hflip, c.rs_aug, self.seed)
        return self._bank

    def train_loader(self, batch_size: int, epoch_seed: int) -> DataLoader:
        """Shuffled and augmented; ``epoch_seed`` fixes the order, the augmentation (or the view of
        the bank each image shows) and the workers' draws."""
        images, labels = self._images_of["train"], self._labels["train"]
        strong = strong_transform(self.cfg) if "two_views" in self.needs else None
        bank = self.view_bank
        if bank is not None:
            dataset: Dataset = BankDataset(images, labels, bank, bank.epoch_views(epoch_seed), strong)
        else:
            dataset = SceneDataset(images, labels, train_transform(self.cfg), strong)
        return self._loader(dataset, batch_size, shuffle=True, seed=epoch_seed)

    def bank_views_loader(self, batch_size: int) -> DataLoader:
        """Every view of every training image, in (image, view) order, unshuffled: what a teacher's
        outputs are cached from."""
        bank = self.view_bank
        if bank is None:
            raise ValueError("data.view_bank is 0: there is no bank of views")
        return self._loader(BankViews(self._images_of["train"], bank), batch_size, shuffle=False)

    def eval_loader(self, part: str, batch_size: int) -> DataLoader:
        """``part``: "train" (unaugmented training images), "val" or "test"."""
        images, labels = self._images_of[part], self._labels[part]
        return self._loader(SceneDataset(images, labels, eval_transform()), batch_size, shuffle=False)

    def train_images_tensor(self) -> Tensor:
        """The decoded training images as one uint8 tensor (decoding them when not cached)."""
        images = self._images_of["train"]
        if isinstance(images, LazyImages):
            return torch.stack([images[i] for i in range(len(images))]) if len(images) else torch.empty(0)
        return images

    def labels(self, part: str) -> Tensor:
        return self._labels[part]
