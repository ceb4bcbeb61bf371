"""RKD (Park et al. 2019, "Relational Knowledge Distillation"): distance and angle relations of
the pooled embeddings (the N x D vectors fed to the classifiers).

    psi_D(i, j)    = ||e_i - e_j|| / mu,   mu = mean over pairs i != j of ||e_i - e_j||
    psi_A(i, j, k) = < (e_j - e_i) / ||e_j - e_i||, (e_k - e_i) / ||e_k - e_i|| >   (0 if j or k = i)
    L_D = mean_{i,j} smoothL1(psi_D^s, psi_D^t),   L_A = mean_{i,j,k} smoothL1(psi_A^s, psi_A^t)
    L   = ce_weight CE + w(epoch) (distance_weight L_D + angle_weight L_A)

as in the authors' code and mdistiller (smooth-L1 with beta 1; the diagonal and j = i or k = i
entries count as zeros in the means). The angle term has N^3 entries: it is computed for blocks
of anchors i, each block rebuilt during the backward pass (activation checkpointing) when there is
more than one, so no N x N x D difference tensor and no N x N x N angle tensor is ever held: no
tensor larger than ``angle_block_elements`` is created, and autograd keeps only the embeddings
between the passes. See docs/methods/rkd.md.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .base import Distiller
from .registry import register
from .settings import DistillationSettings

# 2^24 floats (64 MiB in float32) per block: batches up to 128 with 1024-d embeddings fit in one.
ANGLE_BLOCK_ELEMENTS = 1 << 24


class RKDConfig(DistillationSettings):
    name: str = "rkd"
    # The paper's weights (lambda_D = 25, lambda_A = 50), used unchanged on CIFAR-100 by
    # RepDistiller and mdistiller; those benchmarks have no RKD ImageNet setting.
    distance_weight: float = Field(25.0, ge=0, description="weight of the distance term")
    angle_weight: float = Field(50.0, ge=0, description="weight of the angle term")
    squared: bool = Field(False, description="squared distances in psi_D (the paper: plain distances)")
    eps: float = Field(1e-12, gt=0, description="floor of the squared distances")
    angle_block_elements: int = Field(ANGLE_BLOCK_ELEMENTS, ge=1,
                                      description="memory bound of one block of the angle term, in floats")
    # No warm-up unless set: the paper has none.
    default_warmup_fraction: ClassVar[float] = 0.0


def pairwise_distances(e: Tensor, squared: bool = False, eps: float = 1e-12) -> Tensor:
    """N x N Euclidean distances (squared ones with ``squared``), zero diagonal.

    The embeddings are centred first (distances do not change; the Gram-matrix form loses less
    precision), and the squared distances are floored at ``eps`` as in the reference code."""
    e = e - e.mean(0, keepdim=True)
    sq = e.pow(2).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp(min=eps)
    d = d2 if squared else d2.sqrt()
    off = ~torch.eye(len(e), dtype=torch.bool, device=e.device)
    return d * off


def normalized_distances(e: Tensor, squared: bool = False, eps: float = 1e-12) -> Tensor:
    d = pairwise_distances(e, squared, eps)
    n = len(e)
    return d / (d.sum() / (n * (n - 1)))


def rkd_distance_loss(s: Tensor, t: Tensor, squared: bool = False, eps: float = 1e-12) -> Tensor:
    with torch.no_grad():
        t_d = normalized_distances(t, squared, eps)
    return F.smooth_l1_loss(normalized_distances(s, squared, eps), t_d)


def angles(e: Tensor, start: int, stop: int) -> Tensor:
    """psi_A for the anchors i in [start, stop): (stop - start) x N x N."""
    u = F.normalize(e.unsqueeze(0) - e[start:stop].unsqueeze(1), p=2, dim=2)  # u[a, j] ~ e_j - e_i
    return torch.bmm(u, u.transpose(1, 2))


def _angle_block_loss(s: Tensor, t: Tensor, start: int, stop: int) -> Tensor:
    with torch.no_grad():
        t_a = angles(t, start, stop)
    return F.smooth_l1_loss(angles(s, start, stop), t_a, reduction="sum")


def rkd_angle_loss(s: Tensor, t: Tensor, block_elements: int = ANGLE_BLOCK_ELEMENTS) -> Tensor:
    """mean_{i,j,k} smoothL1(psi_A^s, psi_A^t), computed over blocks of anchors of about
    ``block_elements`` floats each (recomputed in the backward pass when there are several)."""
    n = len(s)
    per_anchor = n * max(s.shape[1], t.shape[1], n)
    rows = max(1, block_elements // per_anchor)
    if rows >= n:
        return _angle_block_loss(s, t, 0, n) / n**3
    use_ckpt = torch.is_grad_enabled() and s.requires_grad
    total = s.new_zeros(())
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        if use_ckpt:
            part = checkpoint(_angle_block_loss, s, t, start, stop, use_reentrant=False)
        else:
            part = _angle_block_loss(s, t, start, stop)
        total = total + part
    return total / n**3


@register("rkd")
class RKD(Distiller[RKDConfig]):
    summary = "RKD: distance and angle relations of the embeddings (Park et al. 2019)"

    def relation_losses(self, s: Tensor, t: Tensor) -> dict[str, Tensor]:
        cfg = self.cfg
        if len(s) < 2:  # no pair: no relation to transfer
            zero = s.sum() * 0.0
            return {"distance": zero, "angle": zero}
        # Float32 outside autocast: angles are differences of nearby unit vectors.
        with torch.autocast(s.device.type, enabled=False):
            s, t = s.float(), t.float()
            return {
                "distance": rkd_distance_loss(s, t, cfg.squared, cfg.eps),
                "angle": rkd_angle_loss(s, t, cfg.angle_block_elements),
            }

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        image, label = batch["image"], batch["label"]
        t_emb = self.teacher_forward(image).features.pooled
        out = self.student(image)
        rel = self.relation_losses(out.features.pooled, t_emb)
        w = self.warmup()
        return out.logits, {
            "ce": self.ce_loss(out.logits, label),
            "distance": w * self.cfg.distance_weight * rel["distance"],
            "angle": w * self.cfg.angle_weight * rel["angle"],
        }
