"""Training batches augmented on the training device (``data.gpu_augment``).

The decoded uint8 images are gathered a batch at a time (one ``index_select``), copied to the device
(from pinned memory, without blocking, on CUDA), and cropped, flipped and rotated there with
batched tensor operations: no per-image Python and no CPU transform. The views have the same
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
import torch.nn.functional as F
from torch import Tensor

from .view_bank import ViewBank


def to_unit_float(x: Tensor) -> Tensor:
    """uint8 -> float32 in [0, 1], as ``ViewBank.view`` converts (a division by 255)."""
    return x.to(torch.float32).div_(255.0)


def crop_flip_rotate(x: Tensor, size: int, pad: int, top: Tensor, left: Tensor, hflip: Tensor | None = None,
                     vflip: Tensor | None = None, rot: Tensor | None = None, padding_mode: str = "reflect") -> Tensor:
    """A batch of views: ``x`` (B x C x H x W float) padded (by reflection, or with zeros for
    ``padding_mode="zeros"``), cropped to ``size`` at the
    per-sample offsets (``top``, ``left``), then flipped left-right where ``hflip``, up-down where
    ``vflip``, and rotated by ``rot`` x 90 degrees. Per-sample choices are applied with
    ``torch.where`` rather than by grouping the batch: no host synchronisation on the device."""
    if pad:
        x = F.pad(x, (pad,) * 4, mode="constant" if padding_mode == "zeros" else "reflect")
    b, c, h, w = x.shape
    if (h, w) != (size, size):
        dev = x.device
        steps = torch.arange(size, device=dev)
        rows = (top.to(dev, torch.long)[:, None] + steps)[:, None, :, None]
        cols = (left.to(dev, torch.long)[:, None] + steps)[:, None, None, :]
        x = x[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
              rows, cols]
    if hflip is not None:
        x = torch.where(hflip.to(x.device)[:, None, None, None], x.flip(-1), x)
    if vflip is not None:
        x = torch.where(vflip.to(x.device)[:, None, None, None], x.flip(-2), x)
    if rot is not None:
        rot = rot.to(x.device)[:, None, None, None]
        out = x
        for r in (1, 2, 3):
            out = torch.where(rot == r, torch.rot90(x, r, dims=(-2, -1)), out)
        x = out
    return x


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
        return crop_flip_rotate(to_unit_float(x), self.size, self.pad, **self.draw(len(x)),
                                padding_mode=self.padding_mode)


class BankViews:
    """The bank's view ``views[i]`` of each image ``i`` of the batch (exactly ``ViewBank.view``)."""

    def __init__(self, bank: ViewBank, views: Tensor):
        self.bank, self.views = bank, views

    def __call__(self, x: Tensor, index: Tensor) -> Tensor:
        bank, k = self.bank, self.views[index]
        offsets = bank.offsets[index, k].long()
        return crop_flip_rotate(to_unit_float(x), bank.size, bank.pad, offsets[:, 0], offsets[:, 1],
                                hflip=bank.hflip[index, k], rot=bank.rot[index, k].long(),
                                padding_mode=bank.padding_mode)


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
