"""Augmentation on decoded uint8 tensors (torchvision transforms v2); outputs float images in [0, 1].

Normalisation is not done here: each model normalises with the statistics it was trained with
(see ``models.adapter``), so teacher and student may differ and an exported model is self-contained.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.transforms import v2

from .config import DataConfig


class RandomRot90(nn.Module):
    """Rotate by a random multiple of 90 degrees: aerial scenes have no canonical orientation."""

    def forward(self, img: Tensor) -> Tensor:
        k = int(torch.randint(4, (1,)))
        return torch.rot90(img, k, dims=(-2, -1)) if k else img


def crop_padding_px(cfg: DataConfig) -> int:
    """The reflection padding of the random crop, in pixels."""
    return round(cfg.crop_padding * cfg.image_size)


# ImageNet evaluation: resize the shorter side to 256/224 of the crop, then a centre crop.
IMAGENET_RESIZE_RATIO = 256 / 224


def imagenet_resize_side(size: int) -> int:
    return round(size * IMAGENET_RESIZE_RATIO)


def _geometric(cfg: DataConfig) -> list[nn.Module]:
    ops: list[nn.Module] = []
    pad = crop_padding_px(cfg)
    if cfg.augment == "imagenet":
        # From the full-resolution image: 8-100 % of its area, aspect ratio 3/4-4/3 (the defaults).
        ops.append(v2.RandomResizedCrop(cfg.image_size, antialias=True))
    elif pad:
        mode = "reflect" if cfg.padding_mode == "reflect" else "constant"
        ops.append(v2.RandomCrop(cfg.image_size, padding=pad, padding_mode=mode, fill=0))
    if cfg.hflip:
        ops.append(v2.RandomHorizontalFlip())
    if cfg.rs_aug:
        ops += [v2.RandomVerticalFlip(), RandomRot90()]
    return ops


def train_transform(cfg: DataConfig) -> v2.Compose:
    return v2.Compose([*_geometric(cfg), v2.ToDtype(torch.float32, scale=True)])


def strong_transform(cfg: DataConfig) -> v2.Compose:
    """The "strong view" of two-view methods (MLLD): crop/flip, RandAugment, then cutout."""
    return v2.Compose([
        *_geometric(cfg),
        v2.RandAugment(),
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomErasing(p=1.0, scale=(0.0625, 0.0625), ratio=(1.0, 1.0), value=0.0),
    ])


def eval_transform(cfg: DataConfig | None = None) -> v2.Compose:
    """Decoded images are already at the evaluation size; with ``augment: imagenet`` the full
    image is resized (shorter side 256/224 of the crop) and centre-cropped."""
    if cfg is not None and cfg.augment == "imagenet":
        return v2.Compose([v2.Resize(imagenet_resize_side(cfg.image_size), antialias=True),
                           v2.CenterCrop(cfg.image_size), v2.ToDtype(torch.float32, scale=True)])
    return v2.Compose([v2.ToDtype(torch.float32, scale=True)])


def channel_stats(images: Tensor, chunk: int = 512) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (in [0, 1] units) of a N x C x H x W uint8 tensor."""
    channels = images.shape[1] if images.ndim == 4 else 3
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    count = 0
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].to(torch.float64) / 255.0
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
        count += x.numel() // channels
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt().clamp_min(1e-3)
    return mean.tolist(), std.tolist()
