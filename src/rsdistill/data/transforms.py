"""Augmentation on decoded uint8 tensors (torchvision transforms v2); outputs float images in [0, 1].

Normalisation is not done here: each model normalises with the statistics it was trained with
(see ``models.adapter``), so teacher and student may differ and an exported model is self-contained.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.transforms import v2

from ..config import DataConfig


class RandomRot90(nn.Module):
    """Rotate by a random multiple of 90 degrees: aerial scenes have no canonical orientation."""

    def forward(self, img: Tensor) -> Tensor:
        k = int(torch.randint(4, (1,)))
        return torch.rot90(img, k, dims=(-2, -1)) if k else img


def crop_padding_px(cfg: DataConfig) -> int:
    """The reflection padding of the random crop, in pixels."""
    return round(cfg.crop_padding * cfg.image_size)


def _geometric(cfg: DataConfig) -> list[nn.Module]:
    ops: list[nn.Module] = []
    pad = crop_padding_px(cfg)
    if pad:
        ops.append(v2.RandomCrop(cfg.image_size, padding=pad, padding_mode="reflect"))
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


def eval_transform() -> v2.Compose:
    return v2.Compose([v2.ToDtype(torch.float32, scale=True)])


def channel_stats(images: Tensor, chunk: int = 512) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (in [0, 1] units) of a N x 3 x H x W uint8 tensor."""
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    count = 0
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].to(torch.float64) / 255.0
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
        count += x.numel() // 3
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt().clamp_min(1e-3)
    return mean.tolist(), std.tolist()
