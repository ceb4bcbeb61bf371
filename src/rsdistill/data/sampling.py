"""The order in which an epoch shows the training images, and its share per process.

An epoch's order is a permutation drawn from the epoch's seed alone, so every process of a
distributed run (torchrun) draws the same one and takes a disjoint part of it: process ``r`` of
``W`` takes positions ``r, r + W, r + 2W, ...`` of the permutation cut to a multiple of ``W``
(DistributedSampler's rule without its padding: at most ``W - 1`` images, different ones each
epoch, sit an epoch out, and no image is shown twice). One process takes the whole permutation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Sampler

# Mixed into a process's seed so that its draws differ from the other processes'.
RANK_SEED_STRIDE = 104_729


@dataclass(frozen=True)
class Shard:
    """Process ``rank`` of ``world`` (0 of 1: a single process)."""

    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} is not in 0..{self.world - 1}")


SINGLE = Shard()


def epoch_order(n: int, seed: int) -> Tensor:
    """The epoch's permutation of ``n`` images: exactly the order of ``DataLoader(shuffle=True,
    generator=torch.Generator().manual_seed(seed))``, which drew it before runs could be sharded
    (the loader first draws its workers' base seed from the generator), so runs started earlier
    resume to the same numbers."""
    g = torch.Generator().manual_seed(seed)
    torch.empty((), dtype=torch.int64).random_(generator=g)
    return torch.randperm(n, generator=g)


def shard_length(n: int, shard: Shard) -> int:
    """How many training images one process sees per epoch."""
    return n if shard.world == 1 else n // shard.world


def shard_of_order(order: Tensor, shard: Shard) -> Tensor:
    if shard.world == 1:
        return order
    usable = len(order) - len(order) % shard.world
    return order[shard.rank:usable:shard.world]


def eval_indices(n: int, shard: Shard) -> Tensor:
    """A process's part of an evaluation split: every image exactly once over the processes (the
    sums of the parts are the single-process figures)."""
    return torch.arange(shard.rank, n, shard.world)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of a process's own draws (augmentation, loader workers); process 0 keeps ``seed``,
    so a single process draws what it drew before runs could be sharded."""
    return seed if rank == 0 else (seed + RANK_SEED_STRIDE * rank) % 2**31


class EpochSampler(Sampler[int]):
    """A process's share of the epoch's permutation (see the module's docstring)."""

    def __init__(self, n: int, seed: int, shard: Shard = SINGLE):
        self.indices = shard_of_order(epoch_order(n, seed), shard)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices.tolist())

    def __len__(self) -> int:
        return len(self.indices)
