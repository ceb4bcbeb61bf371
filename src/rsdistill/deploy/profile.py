"""Size and speed of a model as deployed (logits only, no training-time modules)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..models import LogitsOnly, ModelAdapter, count_parameters


@dataclass(frozen=True)
class Profile:
    params: int
    ms_per_image: float
    batch: int
    image_size: int
    device: str


@torch.no_grad()
def profile(model: ModelAdapter, image_size: int, batch: int = 32, repeats: int = 5,
            device: str | torch.device = "cpu") -> Profile:
    """Median wall time of a forward pass over ``repeats`` runs after one warm-up run."""
    net = LogitsOnly(model).to(device).eval()
    x = torch.rand(batch, 3, image_size, image_size, device=device)
    net(x)
    times = []
    for _ in range(repeats):
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        net(x)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    return Profile(count_parameters(model), 1000.0 * times[len(times) // 2] / batch, batch, image_size, str(device))
