"""Accuracy, per-class accuracy and the confusion matrix."""

from __future__ import annotations

import torch
from torch import Tensor


def topk_correct(logits: Tensor, labels: Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """Number of samples whose label is among the k highest logits, for each k (k capped at C)."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hit = top.eq(labels[:, None])
    return [int(hit[:, : min(k, kmax)].any(dim=1).sum()) for k in ks]


class AccuracyMeter:
    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.n = 0
        self.top1 = 0
        self.top5 = 0
        self.loss_sum = 0.0
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, logits: Tensor, labels: Tensor, loss_sum: float = 0.0) -> None:
        logits, labels = logits.detach().float().cpu(), labels.detach().cpu()
        c1, c5 = topk_correct(logits, labels)
        self.top1 += c1
        self.top5 += c5
        self.n += len(labels)
        self.loss_sum += loss_sum
        idx = labels * self.num_classes + logits.argmax(1)
        self.confusion += torch.bincount(idx, minlength=self.num_classes**2).view_as(self.confusion)

    def summary(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {"top1": 100.0 * self.top1 / n, "top5": 100.0 * self.top5 / n, "loss": self.loss_sum / n}

    def per_class_accuracy(self) -> list[float]:
        support = self.confusion.sum(1).clamp_min(1)
        return (100.0 * self.confusion.diag() / support).tolist()
