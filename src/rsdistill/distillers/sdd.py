"""SDD, scale decoupled distillation (Wei et al., CVPR 2024).

The last feature map of each model is average-pooled at several scales M (default [1, 2, 4]: 1 + 4 +
16 = 21 regions) and the model's own classifier is applied to every region, giving region logits
that share the global logits' class space. A logit distillation loss (KD, or DKD for ``sdd+dkd``)
is taken per region and per sample; a region whose teacher prediction is right while the global one
is wrong, or the reverse, gets ``mismatch_weight`` (2), every other region 1; the loss is the mean
over samples and regions:

    L = ce_weight * CE + w(epoch) * mean_{i, r} w_ir * loss(z_s[i, r], z_t[i, r])
    loss = kd_weight * T^2 KL(p_t || p_s)          (base kd)
         = alpha * TCKD + beta * NCKD              (base dkd)

The scale-1 region is the global prediction itself (the model's logits), so ``scales=[1]`` is KD
(or DKD). Pooling is adaptive, so any input size and any map size works, also a map smaller than a
scale (its cells are then repeated). docs/methods/sdd.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor, nn

from .base import Distiller
from .dkd import check_non_target_classes
from .losses import decoupled_kl_per_sample, softened_kl_per_sample
from .registry import register, register_alias
from .settings import DistillationSettings


class SDDConfig(DistillationSettings):
    # ce_weight: released CIFAR-100 SD-KD 0.1, SD-DKD 1. The released code ramps SD-DKD over 20
    # epochs and SD-KD not at all; the default here is the logit methods' 10 % of the epochs.
    name: str = "sdd"
    base: Literal["kd", "dkd"] = Field("kd", description="the logit loss taken per region")
    T: float = Field(4.0, gt=0, description="temperature (CIFAR-100: 4; ImageNet SD-DKD: 1)")
    kd_weight: float = Field(4.0, ge=0, description="KD weight, base kd (released CIFAR-100: 0.9)")
    alpha: float = Field(1.0, ge=0, description="TCKD weight, base dkd (DKD's CIFAR-100 value: 1)")
    beta: float = Field(8.0, ge=0, description="NCKD weight, base dkd (DKD's CIFAR-100 value: 8; ImageNet 0.5)")
    # Pooling scales M: [1, 2, 4] in the paper for teacher and student of different families,
    # [1, 2] for the same family.
    scales: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [1, 2, 4])
    mismatch_weight: float = Field(2.0, ge=0, description="weight of regions whose teacher correctness "
                                                          "differs from the global prediction's")

    @field_validator("scales")
    @classmethod
    def _distinct_scales(cls, scales: list[int]) -> list[int]:
        if not scales or len(set(scales)) != len(scales):
            raise ValueError(f"must be a non-empty list of distinct pooling sizes (got {scales})")
        return scales


register_alias("sdd+dkd", "sdd", base="dkd")


def region_logits(feature_map: Tensor, classifier: nn.Module, scales: list[int],
                  global_logits: Tensor | None = None) -> Tensor:
    """N x R x K: the classifier applied to every cell of the map average-pooled to s x s, for each
    scale s in order (R = sum s^2). ``global_logits`` stands in for the scale-1 region (the model's
    own prediction: the same values for a linear head, and with the head's dropout in training)."""
    parts = []
    for s in scales:
        if s == 1 and global_logits is not None:
            parts.append(global_logits[:, None, :])
            continue
        pooled = F.adaptive_avg_pool2d(feature_map, s).flatten(2).transpose(1, 2)  # N x s*s x D
        parts.append(classifier(pooled))
    return torch.cat(parts, dim=1)


def region_mismatch(teacher_regions: Tensor, teacher_logits: Tensor, labels: Tensor) -> Tensor:
    """N x R, True where a region's teacher correctness differs from the global prediction's
    (global right and region wrong, or global wrong and region right)."""
    global_right = teacher_logits.argmax(dim=1) == labels
    region_right = teacher_regions.argmax(dim=2) == labels[:, None]
    return region_right != global_right[:, None]


@register("sdd")
class SDD(Distiller[SDDConfig]):
    summary = "SDD: KD (or DKD) on multi-scale pooled regions of the last map (Wei et al. 2024)"

    def __init__(self, student, teacher, cfg: SDDConfig, info):
        if cfg.base == "dkd":
            check_non_target_classes(f"{self.method_name} with base dkd", info.num_classes)
        super().__init__(student, teacher, cfg, info)
        # Both classifiers are applied to regions of the last map: a model whose classifier does
        # not read it (some timm heads) stops here, before the run writes anything.
        _ = (student.classifier, teacher.classifier)

    def region_loss(self, zs: Tensor, zt: Tensor, labels: Tensor) -> Tensor:
        """Per (sample, region) loss of the base method; inputs N x R x K."""
        cfg = self.cfg
        n, r, k = zs.shape
        zs, zt, y = zs.reshape(n * r, k), zt.reshape(n * r, k), labels.repeat_interleave(r)
        if cfg.base == "dkd":
            tckd, nckd = decoupled_kl_per_sample(zs, zt, y, cfg.T)
            loss = cfg.alpha * tckd + cfg.beta * nckd
        else:
            loss = cfg.kd_weight * softened_kl_per_sample(zs, zt, cfg.T)
        return loss.view(n, r)

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.cfg
        image, labels = batch["image"], batch["label"]
        t_out = self.teacher_forward(image)
        s_out = self.student(image)
        with torch.no_grad():
            zt = region_logits(t_out.features.last_map, self.teacher.classifier, cfg.scales,
                               t_out.logits).float()
        zs = region_logits(s_out.features.last_map, self.student.classifier, cfg.scales,
                           s_out.logits).float()
        mismatch = region_mismatch(zt, t_out.logits, labels)
        weights = torch.where(mismatch, cfg.mismatch_weight, 1.0)
        loss = (weights * self.region_loss(zs, zt, labels)).mean()
        self.log_mean("mismatch_regions", mismatch)
        return s_out.logits, {
            "ce": self.ce_loss(s_out.logits, labels),
            "sdd": self.warmup() * loss,
        }
