"""A fixed bank of K augmented views per training image, drawn once from the run's seed.

A view is a crop box (an offset into the reflection-padded image, as ``RandomCrop`` draws it) and
an orientation. With ``rs_aug`` the orientations cycle through the dihedral group D4 (4 rotations x
optional horizontal flip): aerial scenes have no canonical orientation, so K = 8 covers every
orientation of an image exactly once. With only ``hflip`` they alternate flipped / not flipped.

Each epoch then shows one view per image, drawn from (seed, epoch). Because the views are fixed, a
teacher's outputs on all of them can be computed once (``engine.teacher_cache``) instead of at
every step; the student sees exactly the images the cached outputs belong to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# Mixed into the seed so the bank's draws never coincide with the epochs' shuffling draws.
BANK_SEED_SALT = 0x5EED_BA4C
# Bump when the meaning of a view changes: keys of cached teacher outputs include it.
VIEW_BANK_VERSION = 1


@dataclass(frozen=True)
class ViewBank:
    size: int  # output side in px
    pad: int  # reflection padding before the crop
    offsets: Tensor  # N x K x 2 (top, left) in [0, 2 pad], int16
    hflip: Tensor  # N x K, bool: flip left-right (after the crop)
    rot: Tensor  # N x K, int8: then rotate by rot x 90 degrees
    padding_mode: str = "reflect"  # or "zeros" (data.padding_mode)

    @property
    def num_images(self) -> int:
        return self.offsets.shape[0]

    @property
    def views(self) -> int:
        return self.offsets.shape[1]

    @classmethod
    def draw(cls, num_images: int, views: int, size: int, pad: int, hflip: bool, rs_aug: bool,
             seed: int, padding_mode: str = "reflect") -> ViewBank:
        g = torch.Generator().manual_seed((seed ^ BANK_SEED_SALT) % 2**63)
        offsets = torch.randint(0, 2 * pad + 1, (num_images, views, 2), generator=g, dtype=torch.int16)
        k = torch.arange(views).expand(num_images, views)
        if rs_aug:  # D4: rotations 0-3, then the same rotations of the mirrored image
            flip, rot = (k // 4) % 2 == 1, k % 4
        elif hflip:
            flip, rot = k % 2 == 1, torch.zeros_like(k)
        else:
            flip, rot = torch.zeros_like(k, dtype=torch.bool), torch.zeros_like(k)
        return cls(size, pad, offsets, flip.clone(), rot.to(torch.int8).clone(), padding_mode)

    def view(self, image: Tensor, i: int, k: int) -> Tensor:
        """View ``k`` of training image ``i`` (a 3 x H x W uint8 tensor) as float in [0, 1]."""
        x = image.to(torch.float32).div_(255.0)
        if self.pad:
            mode = "reflect" if self.padding_mode == "reflect" else "constant"
            x = F.pad(x[None], (self.pad,) * 4, mode=mode)[0]
        top, left = (int(v) for v in self.offsets[i, k])
        x = x[:, top : top + self.size, left : left + self.size]
        if self.hflip[i, k]:
            x = x.flip(-1)
        r = int(self.rot[i, k])
        return torch.rot90(x, r, dims=(-2, -1)) if r else x

    def epoch_views(self, epoch_seed: int) -> Tensor:
        """The view each image shows in one epoch (N, long), drawn from the epoch's seed."""
        g = torch.Generator().manual_seed((epoch_seed ^ BANK_SEED_SALT) % 2**63)
        return torch.randint(0, self.views, (self.num_images,), generator=g)

    def fingerprint(self) -> str:
        """Identifies the bank's content (every view of every image)."""
        # Reflection padding keeps the key it had before padding modes existed.
        mode = "" if self.padding_mode == "reflect" else f"|{self.padding_mode}"
        h = hashlib.sha256(f"v{VIEW_BANK_VERSION}|{self.size}|{self.pad}{mode}".encode())
        for t in (self.offsets, self.hflip, self.rot):
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()[:24]
