"""Shared maths of the logit-based methods. Every method uses these; none re-derives them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def kl_divergence(p_target: Tensor, log_q: Tensor) -> Tensor:
    """Per-sample KL(p || q) = sum_c p_c (log p_c - log q_c), with 0 log 0 = 0. Shape: N."""
    return torch.where(p_target > 0, p_target * (p_target.clamp_min(1e-30).log() - log_q), 0.0).sum(-1)


def softened_kl_per_sample(student_logits: Tensor, teacher_logits: Tensor, T: float) -> Tensor:
    """T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) per sample (Hinton et al. 2015)."""
    p_t = F.softmax(teacher_logits / T, dim=-1)
    log_p_s = F.log_softmax(student_logits / T, dim=-1)
    return kl_divergence(p_t, log_p_s) * (T * T)


def softened_kl(student_logits: Tensor, teacher_logits: Tensor, T: float) -> Tensor:
    """The batch mean of :func:`softened_kl_per_sample` (the KD loss term)."""
    return softened_kl_per_sample(student_logits, teacher_logits, T).mean()


def target_mask(logits: Tensor, labels: Tensor) -> Tensor:
    """Boolean N x C mask, True at each sample's ground-truth class."""
    return F.one_hot(labels, logits.shape[-1]).bool()


def non_target_mask(logits: Tensor, labels: Tensor) -> Tensor:
    return ~target_mask(logits, labels)


def target_logit(logits: Tensor, labels: Tensor) -> Tensor:
    return logits.gather(1, labels[:, None]).squeeze(1)


def max_non_target_logit(logits: Tensor, labels: Tensor) -> Tensor:
    return logits.masked_fill(target_mask(logits, labels), float("-inf")).max(dim=1).values


def standardize_logits(logits: Tensor, eps: float = 1e-7) -> Tensor:
    """Z-score each sample's logits (logit standardisation, Sun et al. 2024)."""
    mean = logits.mean(dim=-1, keepdim=True)
    std = logits.std(dim=-1, keepdim=True)
    return (logits - mean) / (std + eps)


def warmup_factor(epoch: int, warmup_epochs: int | None) -> float:
    """min(1, epoch / warmup) for the 1-based epoch being trained; 1 when warm-up is off."""
    if not warmup_epochs:
        return 1.0
    return min(1.0, epoch / warmup_epochs)
