"""Moving a loader's batch (a dict of tensors and plain values) to the training device."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def move(batch: dict[str, Any], device: torch.device, channels_last: bool = False) -> dict[str, Any]:
    """Tensors go to ``device`` (non-blocking: the loader pins memory on CUDA); image batches take
    the channels-last layout when asked."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, Tensor):
            v = v.to(device, non_blocking=True)
            if channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out
