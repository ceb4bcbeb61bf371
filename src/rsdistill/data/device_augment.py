"""Training batches augmented on the training device (``data.gpu_augment``).

The decoded uint8 images are gathered a batch at a time (one ``index_select``), copied to the device
(from pinned memory, without blocking, on CUDA), cropped, flipped and rotated there by one batched
gather, still in uint8, and only then converted to float: no per-image Python and no CPU transform. The views have the same
distribution as the per-image CPU path (``transforms.train_transform``: a crop of the
padded image at an offset uniform in [0, 2 pad] on each axis, a horizontal flip with
probability 1/2, and with ``rs_aug`` a vertical flip with probability 1/2 and a rotation by a
uniform multiple of 90 degrees, in that order); with a view bank they are exactly the bank's views
(``ViewBank.view``). The parameters are drawn on the device from a generator seeded by the epoch
(and the process), so the run stays reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from .view_bank import ViewBank


def to_unit_float(x: Tensor) -> Tensor:
    """uint8 -> float32 in [0, 1], as ``ViewBank.view`` converts (a division by 255)."""
    return x.to(torch.float32).div_(255.0)


def _reflect(r: Tensor, n: int) -> Tensor:
    """Index ``r`` (in -n+1 .. 2n-2) of a line of ``n`` pixels reflected at its ends without
    repeating the edge, as ``F.pad(mode="reflect")`` pads."""
    r = r.abs()
    return torch.where(r >= n, 2 * (n - 1) - r, r)


def crop_flip_rotate(x: Tensor, size: int, pad: int, top: Tensor, left: Tensor, hflip: Tensor | None = None,
                     vflip: Tensor | None = None, rot: Tensor | None = None, padding_mode: str = "reflect") -> Tensor:
    """A batch of views of ``x`` (B x C x H x W, any dtype): each image padded by ``pad`` (by
    reflection, or with zeros for ``padding_mode="zeros"``), cropped to ``size`` at its offset
    (``top``, ``left``) into the padded image, then flipped left-right where ``hflip``, up-down
    where ``vflip``, and rotated by ``rot`` x 90 degrees (``torch.rot90`` on the last two dims).

    Every step only moves pixels, so the whole view is one gather from the unpadded image: each
    output pixel's source row and column are worked out per sample (the rotation, then the flips,
    then the crop offset and the reflection, backwards from the output), and the pixels are read in
    the input's dtype. Decoded uint8 images are thus augmented before their conversion to float, at
    a quarter of the memory traffic, with no padded copy and no host synchronisation."""
    b, c, h, w = x.shape
    dev = x.device
    i = torch.arange(size, device=dev).view(1, size, 1).expand(b, size, size)
    j = torch.arange(size, device=dev).view(1, 1, size).expand(b, size, size)
    m = size - 1
    p, q = i, j  # where output pixel (i, j) lies in the flipped crop
    if rot is not None:
        # torch.rot90 by k reads pixel (i, j) from (j, m - i), (m - i, m - j), (m - j, i)
        k = rot.to(dev).view(b, 1, 1)
        p = torch.where(k == 1, j, torch.where(k == 2, m - i, torch.where(k == 3, m - j, i)))
        q = torch.where(k == 1, m - i, torch.where(k == 2, m - j, torch.where(k == 3, i, j)))
    if vflip is not None:
        p = torch.where(vflip.to(dev).view(b, 1, 1), m - p, p)
    if hflip is not None:
        q = torch.where(hflip.to(dev).view(b, 1, 1), m - q, q)
    rows = top.to(dev, torch.long).view(b, 1, 1) + p - pad
    cols = left.to(dev, torch.long).view(b, 1, 1) + q - pad
    inside = None
    if padding_mode == "zeros":
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    else:
        rows, cols = _reflect(rows, h), _reflect(cols, w)
    source = (rows * w + cols).view(b, 1, size * size).expand(b, c, size * size)
    out = x.reshape(b, c, h * w).gather(2, source).view(b, c, size, size)
    if inside is not None:
        out = torch.where(inside.view(b, 1, size, size), out, torch.zeros((), dtype=out.dtype, device=dev))
    return out


class RandomViews:
    """Fresh augmentation per batch, drawn on the device (see the module's docstring)."""

    def __init__(self, size: int, pad: int, hflip: bool, rs_aug: bool, device: torch.device, seed: int,
                 padding_mode: str = "reflect"):
        self.size, self.pad, self.hflip, self.rs_aug = size, pad, hflip, rs_aug
        self.padding_mode = padding_mode
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def draw(self, n: int) -> dict[str, Tensor | None]:
        g, dev = self.generator, self.device
        top, left = torch.randint(0, 2 * self.pad + 1, (2, n), generator=g, device=dev)
        def coin() -> Tensor:
            return torch.randint(0, 2, (n,), generator=g, device=dev).bool()

        hflip = coin() if self.hflip else None
        vflip = coin() if self.rs_aug else None
        rot = torch.randint(0, 4, (n,), generator=g, device=dev) if self.rs_aug else None
        return {"top": top, "left": left, "hflip": hflip, "vflip": vflip, "rot": rot}

    def __call__(self, x: Tensor, index: Tensor) -> Tensor:
        return to_unit_float(crop_flip_rotate(x, self.size, self.pad, **self.draw(len(x)),
                                              padding_mode=self.padding_mode))


class BankViews:
    """The bank's view ``views[i]`` of each image ``i`` of the batch (exactly ``ViewBank.view``)."""

    def __init__(self, bank: ViewBank, views: Tensor):
        self.bank, self.views = bank, views

    def __call__(self, x: Tensor, index: Tensor) -> Tensor:
        bank, k = self.bank, self.views[index]
        offsets = bank.offsets[index, k].long()
        return to_unit_float(crop_flip_rotate(x, bank.size, bank.pad, offsets[:, 0], offsets[:, 1],
                                              hflip=bank.hflip[index, k], rot=bank.rot[index, k].long(),
                                              padding_mode=bank.padding_mode))


class DeviceBatches:
    """An epoch of training batches (``image`` augmented on ``device``; ``label``, ``index`` and,
    with a bank, ``view`` on the CPU as a loader gives them), in the order of ``indices``."""

    def __init__(self, images: Tensor, labels: Tensor, indices: Tensor, batch_size: int, device: torch.device,
                 augment: RandomViews | BankViews):
        self.images, self.labels, self.indices = images, labels, indices
        self.batch_size, self.device, self.augment = batch_size, torch.device(device), augment

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        pin = self.device.type == "cuda"
        for index in self.indices.split(self.batch_size):
            x = self.images.index_select(0, index)
            if pin:  # a pinned buffer lets the copy run asynchronously
                x = x.pin_memory()
            x = x.to(self.device, non_blocking=True)
            batch = {"image": self.augment(x, index), "label": self.labels[index], "index": index}
            if isinstance(self.augment, BankViews):
                batch["view"] = self.augment.views[index]
            yield batch
