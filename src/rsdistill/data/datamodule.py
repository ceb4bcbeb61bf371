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
from torch.utils.data import DataLoader, Dataset, Subset

from .config import DataConfig
from ..errors import ConfigError, DataError
from .bad_images import decode_parts
from .bands import resolve_bands
from .decode import DecodedCache, DecodeOptions, band_count, decode_all, decode_image
from .device_augment import BankViews as DeviceBankViews
from .device_augment import DeviceBatches, RandomViews
from .folders import FolderIndex
from .info import DataInfo
from .presets import scan_dataset
from .sampling import SINGLE, EpochSampler, Shard, eval_indices, rank_seed
from .splits import Split, load_split, published_split, stratified_split
from .transforms import channel_stats, crop_padding_px, eval_transform, strong_transform, train_transform
from .view_bank import ViewBank

log = logging.getLogger(__name__)

KNOWN_NEEDS = frozenset({"two_views", "indices"})


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/rsdistill (~/.cache/rsdistill): never inside a (possibly read-only) dataset."""
    import os

    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rsdistill"


def cache_directory(cfg: DataConfig) -> Path | None:
    """Where cache files (decoded images, teacher outputs) are kept: data.cache_dir, or the default,
    with data.cache: disk; None otherwise (computed for the run and not kept)."""
    if cfg.cache != "disk":
        return None
    return Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()


class LazyImages:
    """Decode on access, for datasets that do not fit in memory (``cache: off``, or a set larger
    than ``data.cache_max_gb``); ``size`` None keeps each image's own resolution (the crops of
    ``augment: imagenet`` are cut from the full image)."""

    def __init__(self, root: Path, paths: list[str], size: int | None, options: DecodeOptions = DecodeOptions()):
        self.root, self.paths, self.size, self.options = root, paths, size, options

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tensor:
        return decode_image(self.root / self.paths[i], self.size, self.options)


# Channel statistics of a streamed training set come from about this many of its images.
STATS_SAMPLE = 500


def memory_limit_bytes(cache_max_gb: float | None) -> int:
    """What the decoded cache may hold: ``data.cache_max_gb``, else half of the machine's memory."""
    if cache_max_gb is not None:
        return int(cache_max_gb * 1e9)
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): a conservative 8 GB
        return 8 * 10**9


def check_bands_fit(bands: tuple[int, ...] | None, index: FolderIndex) -> None:
    """One line, before anything is decoded, where the bands asked for do not fit the images (the
    first image's band count; an image that differs is named when it is decoded)."""
    if index.store is not None or not index.paths:
        return
    first = index.root / index.paths[0]
    n = band_count(first)
    if bands is None and n > 3:
        raise DataError(f"the images have {n} bands (e.g. '{first}'): choose the bands the model reads with "
                        "data.bands (e.g. --set data.bands=all or 'data.bands=[3,2,1]')")
    if bands is not None and max(bands) >= n:
        raise DataError(f"data.bands={list(bands)} asks for band {max(bands)}, but the images have {n} bands "
                        f"(e.g. '{first}'; band indices start at 0)")


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
                 index: FolderIndex | None = None, parts: tuple[str, ...] = ("train", "val", "test"),
                 bands: tuple[int, ...] | None | str = "data.bands"):
        """Scan, split and decode. Every part in ``parts`` is decoded here, so a corrupt image
        stops the run before anything is written; evaluation asks only for the part it needs.
        ``bands``: the bands to decode (``data.bands`` resolved, by default; a distillation run
        whose teacher reads other bands decodes both models' bands, see ``data.bands``)."""
        unknown = set(needs) - KNOWN_NEEDS
        if unknown:
            raise ConfigError(f"a method needs {sorted(unknown)}, which the data layer cannot provide")
        if not cfg.root:
            raise ConfigError("data.root: no dataset folder given (use --data DIR)")
        self.cfg, self.seed, self.needs, self.progress = cfg, seed, frozenset(needs), progress
        self._bank: ViewBank | None = None
        self._warned_device_augment = False
        self.device = device
        self.index: FolderIndex = index or scan_dataset(cfg.preset, cfg.root)
        if bands == "data.bands":
            bands = resolve_bands(cfg.bands, self.index)
        elif bands is not None and self.index.store is not None:
            raise ConfigError("data.bands: this dataset's images are RGB arrays; its models read R, G, B")
        self.bands: tuple[int, ...] | None = bands  # type: ignore[assignment]
        check_bands_fit(self.bands, self.index)
        self.options = DecodeOptions(cfg.tiff_stretch, self.bands)
        self.channels = self.options.channels or 3
        if "two_views" in self.needs and self.channels != 3:
            raise ConfigError(f"a method with a second, RandAugment view (mlld) needs 3-band (RGB) images; "
                              f"data.bands gives {self.channels}")
        if split is None and cfg.split_file:
            split = load_split(cfg.split_file, self.index)
        elif split is not None:
            from .splits import check_split_matches

            check_split_matches(split, self.index, Path(split_source or "<given split>"))
        if split is None:
            published = self.index.parts is not None and (cfg.published_split or self.index.class_depth)
            split = (published_split(self.index, cfg.val_ratio, seed) if published
                     else stratified_split(self.index, cfg.train_ratio, cfg.val_ratio, seed))
        self.split = split
        self._stream = self._decoded_set_too_large(sum(len(getattr(self.split, p)) for p in parts))
        # Every part is decoded before a bad image stops the run, so the error names all of them;
        # data.skip_bad_images drops them from the split instead (listed in ``skipped``).
        self.split, self._images_of, self.skipped = decode_parts(self.split, parts, self._images,
                                                                 cfg.skip_bad_images)
        self._labels = {
            part: torch.tensor([self.split.label_of(p) for p in getattr(self.split, part)], dtype=torch.long)
            for part in ("train", "val", "test")
        }
        self.info = DataInfo(list(self.split.classes), cfg.image_size, self._labels["train"],
                             list(self.split.train), self.channels)
        # Without the training images (evaluation of a stored model) the model's own statistics apply.
        self.mean, self.std = [0.5] * self.channels, [0.25] * self.channels
        if "train" not in parts or not self.split.train:
            return
        train_images = self._images_of["train"]
        if isinstance(train_images, LazyImages):
            # Every k-th image, decoded at the training size (full-resolution ones differ in size).
            paths = train_images.paths[:: max(1, len(train_images) // STATS_SAMPLE)]
            sample = torch.stack([decode_image(self.index.root / p, cfg.image_size, self.options) for p in paths])
            self.mean, self.std = channel_stats(sample)
        else:
            self.mean, self.std = channel_stats(train_images)

    def _decoded_set_too_large(self, count: int) -> bool:
        """A decoded cache of ``count`` images would exceed the memory limit: stream instead."""
        c = self.cfg
        if self.index.store is not None or c.cache == "off" or c.augment == "imagenet":
            return False
        need = count * self.channels * c.image_size * c.image_size
        limit = memory_limit_bytes(c.cache_max_gb)
        if need <= limit:
            return False
        log.warning("the decoded images would take %.1f GB, over the decoded cache's limit of %.1f GB "
                    "(data.cache_max_gb): decoding them from the files at every access instead (loader "
                    "processes: data.workers)", need / 1e9, limit / 1e9)
        return True

    def _images(self, paths: list[str]):
        if not paths:
            return torch.empty((0, self.channels, self.cfg.image_size, self.cfg.image_size), dtype=torch.uint8)
        root = self.index.root
        if self.index.store is not None:  # CIFAR-100: the files are the decoded images
            return self.index.store.load(paths, self.cfg.image_size)
        if self.cfg.augment == "imagenet":  # crops are cut from the full-resolution image
            return LazyImages(root, paths, None, self.options)
        if self.cfg.cache == "off" or self._stream:
            if self.cfg.skip_bad_images:  # read on access: which ones to leave out is found now
                decode_all(root, paths, self.cfg.image_size, progress=self.progress,
                           options=self.options, keep=False)
            return LazyImages(root, paths, self.cfg.image_size, self.options)
        try:
            cache = DecodedCache(cache_directory(self.cfg), self.progress, self.options)
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

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool = False, seed: int | None = None,
                sampler: EpochSampler | None = None) -> DataLoader:
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        workers = self._workers()
        return DataLoader(
            dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, generator=generator,
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
                                       crop_padding_px(c), c.hflip, c.rs_aug, self.seed, c.padding_mode)
        return self._bank

    def train_loader(self, batch_size: int, epoch_seed: int, shard: Shard = SINGLE) -> DataLoader | DeviceBatches:
        """Shuffled and augmented; ``epoch_seed`` fixes the order, the augmentation (or the view of
        the bank each image shows) and the workers' draws. ``shard``: this process's part of the
        epoch (``sampling``); the order and the bank's views are the same in every process, the
        augmentation draws are the process's own. With ``data.gpu_augment`` the batches' images
        come augmented on the device (``device_augment``)."""
        images, labels = self._images_of["train"], self._labels["train"]
        sampler = EpochSampler(len(labels), epoch_seed, shard)
        own_seed = rank_seed(epoch_seed, shard.rank)
        bank = self.view_bank
        if self.augments_on_device():
            augment = (DeviceBankViews(bank, bank.epoch_views(epoch_seed)) if bank is not None else
                       RandomViews(self.cfg.image_size, crop_padding_px(self.cfg), self.cfg.hflip, self.cfg.rs_aug,
                                   torch.device(self.device), own_seed, self.cfg.padding_mode))
            return DeviceBatches(images, labels, sampler.indices, batch_size, torch.device(self.device), augment)
        strong = strong_transform(self.cfg) if "two_views" in self.needs else None
        if bank is not None:
            dataset: Dataset = BankDataset(images, labels, bank, bank.epoch_views(epoch_seed), strong)
        else:
            dataset = SceneDataset(images, labels, train_transform(self.cfg), strong)
        return self._loader(dataset, batch_size, seed=own_seed, sampler=sampler)

    def augments_on_device(self) -> bool:
        """``data.gpu_augment``, where the data allows it (it needs the decoded images in memory,
        and a second, RandAugment view is drawn per image on the CPU): else a warning, once."""
        if not self.cfg.gpu_augment:
            return False
        why = None
        if isinstance(self._images_of["train"], LazyImages):
            why = ("the training images are read from the files at every access (data.cache=off, "
                   "augment=imagenet, or more than data.cache_max_gb)")
        elif "two_views" in self.needs:
            why = "the method's second, strongly augmented view is drawn per image on the CPU"
        if why and not self._warned_device_augment:
            log.warning("data.gpu_augment: %s; augmenting on the CPU", why)
            self._warned_device_augment = True
        return why is None

    def bank_views_loader(self, batch_size: int, shard: Shard = SINGLE) -> DataLoader:
        """Every view of every training image, in (image, view) order, unshuffled: what a teacher's
        outputs are cached from. ``shard``: only this process's items ``rank, rank + world, ...``
        (item ``i * K + k`` is view k of image i)."""
        bank = self.view_bank
        if bank is None:
            raise ValueError("data.view_bank is 0: there is no bank of views")
        dataset: Dataset = BankViews(self._images_of["train"], bank)
        if shard.world > 1:
            dataset = Subset(dataset, eval_indices(len(dataset), shard).tolist())
        return self._loader(dataset, batch_size)

    def eval_loader(self, part: str, batch_size: int, shard: Shard = SINGLE) -> DataLoader:
        """``part``: "train" (unaugmented training images), "val" or "test". ``shard``: only this
        process's images ``rank, rank + world, ...`` (every image once over the processes)."""
        images, labels = self._images_of[part], self._labels[part]
        dataset: Dataset = SceneDataset(images, labels, eval_transform(self.cfg))
        if shard.world > 1:
            dataset = Subset(dataset, eval_indices(len(dataset), shard).tolist())
        return self._loader(dataset, batch_size)

    def streamed_train_key(self) -> str | None:
        """For training images read from the files at every access: a key of their decoding (the
        files' names, sizes and times, the size and options), so that what depends on them can be
        keyed without decoding them all; None when they are held decoded."""
        if not isinstance(self._images_of["train"], LazyImages):
            return None
        from .decode import cache_key

        return "files:" + cache_key(self.index.root, list(self.split.train), self.cfg.image_size,
                                    self.options)

    def train_images_tensor(self) -> Tensor:
        """The decoded training images as one uint8 tensor (decoding them when not cached)."""
        images = self._images_of["train"]
        if isinstance(images, LazyImages):
            return torch.stack([images[i] for i in range(len(images))]) if len(images) else torch.empty(0)
        return images

    def labels(self, part: str) -> Tensor:
        return self._labels[part]
