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


def decoupled_kl_per_sample(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor,
                            T: float) -> tuple[Tensor, Tensor]:
    """DKD's split of the softened KL (Zhao et al. 2022), per sample, each scaled by T^2.

    TCKD = KL(b_t || b_s) on the binary distributions b = [p_gt, 1 - p_gt] of softmax(z / T);
    NCKD = KL(p^_t || p^_s) over the non-target classes, the target removed before the softmax.
    KD = TCKD + (1 - p_t[gt]) * NCKD exactly (same T). Needs at least 2 classes (with 2, NCKD = 0).
    Used by ``dkd`` and by ``sdd`` on DKD."""
    n, c = student_logits.shape
    mask = target_mask(student_logits, labels)

    def binary_log(logits: Tensor) -> Tensor:
        log_p = F.log_softmax(logits / T, dim=-1)
        log_rest = log_p.masked_fill(mask, float("-inf")).logsumexp(dim=-1)  # log(1 - p_gt), stable
        return torch.stack([log_p[mask], log_rest], dim=-1)

    log_b_s, log_b_t = binary_log(student_logits), binary_log(teacher_logits)
    tckd = kl_divergence(log_b_t.exp(), log_b_s)
    zs_nt = student_logits[~mask].view(n, c - 1) / T
    zt_nt = teacher_logits[~mask].view(n, c - 1) / T
    nckd = kl_divergence(F.softmax(zt_nt, dim=-1), F.log_softmax(zs_nt, dim=-1))
    return tckd * (T * T), nckd * (T * T)


def standardize_logits(logits: Tensor, eps: float = 1e-7) -> Tensor:
    """Z-score each sample's logits (logit standardisation, Sun et al. 2024)."""
    mean = logits.mean(dim=-1, keepdim=True)
    std = logits.std(dim=-1, keepdim=True)
    return (logits - mean) / (std + eps)


def warmup_factor(epoch: int, warmup_epochs: int) -> float:
    """min(1, epoch / warmup) for the 1-based epoch being trained; 1 when warm-up is off."""
    if not warmup_epochs:
        return 1.0
    return min(1.0, epoch / warmup_epochs)


def pool_to_common_size(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Average-pool whichever of two N x C x H x W maps is larger (per spatial dimension) down to
    the smaller one's size, so that feature methods compare maps of different resolutions (a
    student and a teacher whose stages differ in stride). Maps of equal size pass unchanged."""
    size = (min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1]))
    if tuple(a.shape[-2:]) != size:
        a = F.adaptive_avg_pool2d(a, size)
    if tuple(b.shape[-2:]) != size:
        b = F.adaptive_avg_pool2d(b, size)
    return a, b
