"""Seeds and determinism."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffling and augmentation: re-derived, never carried over, so a
    resumed run draws exactly what an uninterrupted one would have."""
    return (seed * 1_000_003 + epoch * 7_919) % 2**31


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = device.type == "cuda"


def resolve_device(name: str, field: str = "train.device") -> torch.device:
    """``name`` as a device this machine has; anything else is a one-line error naming ``field``
    (checked before a run folder is created, so an unavailable device leaves nothing behind)."""
    import re

    from ..errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", str(name)):
        raise ConfigError(f"{field}: '{name}' is not a device (auto, cpu, cuda, cuda:N, mps)")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{field}: '{name}' requested but CUDA is not available")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{field}: '{name}' requested but this machine has {count} CUDA device(s) "
                              f"(cuda:0 to cuda:{count - 1})")
    if device.type == "mps" and not (torch.backends.mps.is_available()):
        raise ConfigError(f"{field}: 'mps' requested but Apple's MPS is not available on this machine")
    return device
