"""AT (Zagoruyko & Komodakis 2017, "Paying More Attention to Attention"): attention transfer.

For every stage pair (student stage s_j, teacher stage t_j, after the stage's ReLU):

    A(f)  = mean_c f_c^p                       (N x H x W, p = 2: the channel mean of squares)
    Q(f)  = A(f) flattened, L2-normalised per sample
    L_AT  = sum_j mean( (Q(s_j) - Q(t_j))^2 )  (mean over the batch and the H x W positions)
    L     = ce_weight CE + w(epoch) at_weight L_AT

When a student and a teacher stage differ in resolution, the larger attention map A is
average-pooled to the smaller size before the normalisation (pooling A keeps its meaning: the mean
of f^p over channels and the pooled window). Networks with different stage counts are paired from
the deep end; stage pairs whose map is under ``min_map_side`` (7) on a side are left out (never
the case in the paper's settings). Defaults (CE 1, weight 1000, p 2) are those of
RepDistiller/mdistiller on CIFAR-100 and ImageNet (ResNet34 -> ResNet18); see docs/methods/at.md.
"""

from __future__ import annotations

from typing import ClassVar

import logging

import torch
from pydantic import Field
from torch import Tensor

from .base import Distiller
from .losses import pool_to_common_size
from .registry import register
from .settings import DistillationSettings

log = logging.getLogger(__name__)


class ATConfig(DistillationSettings):
    name: str = "at"
    # 1000 on CIFAR-100 and on ImageNet R34 -> R18 (mdistiller, RepDistiller); the original code
    # writes beta / 2 with beta = 1000, i.e. 500 on this loss.
    at_weight: float = Field(1000.0, ge=0, description="weight of the summed attention losses")
    p: float = Field(2.0, gt=0, description="exponent of the attention map mean_c f^p")
    # Stages whose (common) attention map is smaller than this on a side are left out: the paper
    # never distils maps under 7 x 7 (ImageNet 56..7, CIFAR 32..8), so every stage is kept in its
    # settings and at RS sizes (>= 224 px for torchvision ResNets, >= 32 px for CIFAR ones); a 1 x 1
    # map normalises to 1 and carries nothing, and the gradient of a normalised map grows as
    # 1 / sqrt(H W). 1 keeps every stage. If no stage qualifies, the largest map is used.
    min_map_side: int = Field(7, ge=1, description="smallest attention map side distilled")
    # No warm-up unless set: the paper has none.
    default_warmup_fraction: ClassVar[float] = 0.0


def attention_map(f: Tensor, p: float = 2.0) -> Tensor:
    """A(f) = mean over channels of f^p: N x C x H x W -> N x H x W (in float32)."""
    return f.float().pow(p).mean(1)


def normalized_attention(a: Tensor) -> Tensor:
    """Flatten an N x H x W attention map and L2-normalise it per sample: N x HW."""
    return torch.nn.functional.normalize(a.flatten(1), dim=1)


def at_stage_loss(f_s: Tensor, f_t: Tensor, p: float = 2.0) -> Tensor:
    """mean((Q(s) - Q(t))^2) for one stage pair, resolutions matched by pooling the larger map."""
    a_s, a_t = pool_to_common_size(attention_map(f_s, p).unsqueeze(1), attention_map(f_t, p).unsqueeze(1))
    return (normalized_attention(a_s.squeeze(1)) - normalized_attention(a_t.squeeze(1))).pow(2).mean()


def paired_from_the_deep_end(a: list, b: list) -> tuple[list, list]:
    n = min(len(a), len(b))
    return a[len(a) - n:], b[len(b) - n:]


def select_stages(s_shapes: list, t_shapes: list, min_side: int) -> list[int]:
    """Indices (into the deep-end pairing) of the stage pairs whose common map is at least
    ``min_side`` on both sides; the pair with the largest map when none is."""
    s_shapes, t_shapes = paired_from_the_deep_end(s_shapes, t_shapes)
    sides = [(min(s[-2], t[-2]), min(s[-1], t[-1])) for s, t in zip(s_shapes, t_shapes)]
    keep = [j for j, (h, w) in enumerate(sides) if h >= min_side and w >= min_side]
    return keep or [max(range(len(sides)), key=lambda j: sides[j][0] * sides[j][1])]


@register("at")
class AT(Distiller[ATConfig]):
    summary = "AT: attention maps of every stage of at least 7 x 7 (Zagoruyko & Komodakis 2017)"

    def __init__(self, student, teacher, cfg: ATConfig, info):
        super().__init__(student, teacher, cfg, info)
        s_out, t_out = self.probe()
        s_shapes = [f.shape for f in s_out.features.stages]
        t_shapes = [f.shape for f in t_out.features.stages]
        self.stages = select_stages(s_shapes, t_shapes, cfg.min_map_side)
        n = min(len(s_shapes), len(t_shapes))
        if len(self.stages) < n:
            log.info("at: distilling %d of %d stage pairs at %d px (maps under %d x %d left out)",
                     len(self.stages), n, info.image_size, cfg.min_map_side, cfg.min_map_side)

    def stage_losses(self, s_stages: list[Tensor], t_stages: list[Tensor]) -> list[Tensor]:
        """The attention loss of each distilled stage pair (deep ends aligned), unweighted."""
        s_stages, t_stages = paired_from_the_deep_end(s_stages, t_stages)
        return [at_stage_loss(s_stages[j], t_stages[j], self.cfg.p) for j in self.stages]

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        image, label = batch["image"], batch["label"]
        t_stages = self.teacher_forward(image).features.stages
        out = self.student(image)
        losses = self.stage_losses(out.features.stages, t_stages)
        for j, loss in zip(self.stages, losses):
            self.log_mean(f"at/stage{j + 1}", loss)
        return out.logits, {
            "ce": self.ce_loss(out.logits, label),
            "at": self.warmup() * self.cfg.at_weight * sum(losses),
        }
