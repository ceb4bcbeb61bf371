"""The one evaluation pass: top-1/top-5, loss, per-class accuracy and the confusion matrix of a
model on a loader. The trainer's per-epoch evaluation, ``rsdistill eval`` and the analysis and
prediction commands all use it, so every reported number is computed the same way."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .batch import move
from .metrics import AccuracyMeter


@torch.inference_mode()  # nothing computed here is ever differentiated
def evaluate(model: Callable[[Tensor], Tensor], loader: Iterable[dict[str, Any]], num_classes: int,
             device: torch.device, *, channels_last: bool = False,
             autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> AccuracyMeter:
    """``model``: images in [0, 1] -> logits. A module is put in eval mode for the pass and
    restored afterwards (its BatchNorm statistics are not touched)."""
    was_training = getattr(model, "training", None)
    if was_training is not None:
        model.eval()  # type: ignore[attr-defined]
    meter = AccuracyMeter(num_classes)
    try:
        for batch in loader:
            batch = move(batch, device, channels_last)
            with autocast():
                logits = model(batch["image"])
            loss = F.cross_entropy(logits.float(), batch["label"], reduction="sum")
            meter.update(logits, batch["label"], float(loss))
    finally:
        if was_training is not None:
            model.train(was_training)  # type: ignore[attr-defined]
    return meter
