"""ReviewKD: knowledge review with attention-based fusion and a hierarchical context loss
(Chen, Liu, Zhao & Jia, CVPR 2021).

The student's stage outputs (after their ReLU, as the official code) and its pooled vector (as a
1 x 1 map) are fused from deep to shallow by ABF blocks; level l's output is compared with the
teacher's pre-ReLU stage l (and the deepest level with the teacher's pooled vector):

    x_l    = BN(conv1x1(s_l))                                   (to ``mid`` channels)
    r_l    = x_l * a_0 + up(r_{l+1}) * a_1,  [a_0, a_1] = sigmoid(conv1x1([x_l, up(r_{l+1})]))
             (r_L = x_L at the deepest level, which has no deeper one to fuse)
    y_l    = BN(conv3x3(resize(r_l, teacher size)))             (to the teacher's channels)
    HCL(y, t) = [ MSE(y, t) + sum_{k in 4,2,1; k < h} 2^-j MSE(pool_k(y), pool_k(t)) ] / (1 + sum 2^-j)
             (j = 1, 2, 3 for the pooled levels actually used: weights halving with the resolution)
    loss   = ce_weight * CE + w(epoch) * weight * sum_l HCL(y_l, t_l)

Every ABF is built from the shapes a dummy forward at the run's real input size gives. ``weight``
None picks the official value for the pair (8 for ResNet-50 -> MobileNetV2 on ImageNet) or the
student: 0.6 for resnet20 (resnet56 -> resnet20), else by
its family: 5 for CIFAR-style students (resnet32x4 -> resnet8x4 and the WRN pairs of the official
scripts), 1 for ImageNet-style ones (ResNet-34 -> ResNet-18 on ImageNet, and so this project's RS
pair). ``student_preact`` None follows the family too: the official ImageNet ResNets hand over the
stage outputs before the last ReLU (mdistiller's ``STU_PREACT: True`` for ResNet-34 -> ResNet-18),
the CIFAR code after it. See docs/methods/reviewkd.md.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from ..models import Features, model_family
from .base import Distiller
from .registry import register
from .settings import DistillationSettings, RunContext


# Official kd-loss-weight: 5 for the CIFAR-100 resnet32x4 -> resnet8x4 and WRN pairs, 0.6 for
# resnet56 -> resnet20, 1 for the ImageNet ResNet-34 -> ResNet-18 pair.
FAMILY_WEIGHT = {"cifar": 5.0, "imagenet": 1.0}
STUDENT_WEIGHT = {"resnet20": 0.6}
# Pairs whose official weight differs from their student's: ResNet-50 -> MobileNetV2 on ImageNet
# (mdistiller configs/imagenet/r50_mv2/reviewkd.yaml: 8).
PAIR_WEIGHT = {("resnet50", "mobilenet_v2"): 8.0}
HCL_LEVELS = (4, 2, 1)


class ReviewKDConfig(DistillationSettings):
    name: str = "reviewkd"
    # None: 0.6 for resnet20, 5 for other CIFAR-style students, 1 for ImageNet-style ones (the
    # official values of resnet56->resnet20, resnet32x4->resnet8x4 and ResNet-34->ResNet-18).
    weight: float | None = Field(None, ge=0)
    # Width inside the ABFs; None: min(512, the student's embedding width), as the official code.
    mid_channels: int | None = Field(None, ge=1)
    # Fuse the student's pre-ReLU stage outputs instead of the post-ReLU ones (mdistiller's
    # STU_PREACT). None: true for ImageNet-style students (the official ImageNet code), false for
    # CIFAR-style ones (the official CIFAR code).
    student_preact: bool | None = None
    # The warm-up: official 20 of 240 epochs on CIFAR-100; here 10 % of the epochs by default.


class ABF(nn.Module):
    """Attention-based fusion block (the official ``ABF``)."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, fuse: bool):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 1, bias=False), nn.BatchNorm2d(mid_channels))
        self.conv2 = nn.Sequential(nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(out_channels))
        self.att_conv = nn.Sequential(nn.Conv2d(2 * mid_channels, 2, 1), nn.Sigmoid()) if fuse else None
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x: Tensor, residual: Tensor | None, out_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """-> (output compared with the teacher, residual passed to the next shallower level)."""
        x = self.conv1(x)
        if self.att_conv is not None:
            residual = F.interpolate(residual, size=x.shape[-2:], mode="nearest")
            z = self.att_conv(torch.cat([x, residual], dim=1))
            x = x * z[:, 0:1] + residual * z[:, 1:2]
        if tuple(x.shape[-2:]) != tuple(out_size):
            x = F.interpolate(x, size=out_size, mode="nearest")
        return self.conv2(x), x


def hcl_loss(student: list[Tensor], teacher: list[Tensor], levels: tuple[int, ...] = HCL_LEVELS) -> Tensor:
    """Hierarchical context loss (the official ``hcl``), summed over the feature levels."""
    total = student[0].new_zeros(())
    for fs, ft in zip(student, teacher, strict=True):
        h = min(fs.shape[-2:])
        loss = F.mse_loss(fs, ft)
        weight, norm = 1.0, 1.0
        for k in levels:
            if k >= h:
                continue
            weight /= 2.0
            loss = loss + weight * F.mse_loss(F.adaptive_avg_pool2d(fs, k), F.adaptive_avg_pool2d(ft, k))
            norm += weight
        total = total + loss / norm
    return total


def default_weight(student_arch: str, teacher_arch: str | None = None) -> float:
    if (teacher_arch or "", student_arch) in PAIR_WEIGHT:
        return PAIR_WEIGHT[(teacher_arch or "", student_arch)]
    return STUDENT_WEIGHT.get(student_arch, FAMILY_WEIGHT.get(model_family(student_arch), 1.0))


def default_student_preact(student_arch: str) -> bool:
    return model_family(student_arch) != "cifar"


@register("reviewkd")
class ReviewKD(Distiller[ReviewKDConfig]):
    summary = "ReviewKD: ABF fusion deep-to-shallow + hierarchical context loss (Chen et al. 2021)"

    @classmethod
    def resolve_config(cls, cfg: ReviewKDConfig, ctx: RunContext) -> ReviewKDConfig:
        cfg = super().resolve_config(cfg, ctx)
        if cfg.weight is None:
            cfg = cfg.model_copy(update={"weight": default_weight(ctx.student, ctx.teacher)})
        if cfg.student_preact is None:
            cfg = cfg.model_copy(update={"student_preact": default_student_preact(ctx.student)})
        return cfg

    def __init__(self, student, teacher, cfg: ReviewKDConfig, info):
        super().__init__(student, teacher, cfg, info)
        s_out, t_out = self.probe()
        s_levels = self.student_levels(s_out.features)
        t_levels = self.teacher_levels(t_out.features)
        # A 4-stage and a 3-stage network: pair the deepest stages, drop the shallowest extra one.
        n = min(len(s_levels), len(t_levels))
        self.num_levels = n
        s_levels, t_levels = s_levels[-n:], t_levels[-n:]
        in_channels = [f.shape[1] for f in s_levels]
        out_channels = [f.shape[1] for f in t_levels]
        self.out_sizes = [tuple(f.shape[-2:]) for f in t_levels]
        mid = cfg.mid_channels or min(512, in_channels[-1])
        # Deepest first, as the fusion runs; the deepest (the pooled vector) has nothing to fuse.
        self.abfs = nn.ModuleList(
            ABF(in_channels[i], mid, out_channels[i], fuse=i < n - 1) for i in reversed(range(n))
        )

    @classmethod
    def extra_parameter_count(cls, cfg: ReviewKDConfig, num_classes: int) -> int | None:
        return None  # depends on both models' stage widths

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"abfs": self.abfs}

    # ------------------------------------------------------------------ the parts
    def student_levels(self, f: Features) -> list[Tensor]:
        """Stage outputs (post-ReLU unless ``student_preact``) + the pooled vector as N x D x 1 x 1."""
        stages = f.preact if self.cfg.student_preact else f.stages
        return [*stages, f.pooled[:, :, None, None]]

    @staticmethod
    def teacher_levels(f: Features) -> list[Tensor]:
        """The teacher's pre-ReLU stage outputs + its pooled vector as N x D x 1 x 1."""
        return [*f.preact, f.pooled[:, :, None, None]]

    def fuse(self, levels: list[Tensor]) -> list[Tensor]:
        """ABF outputs, shallow to deep, one per level (the student's, already cut to the pairing)."""
        outputs: list[Tensor] = []
        residual = None
        for abf, x, size in zip(self.abfs, reversed(levels), reversed(self.out_sizes)):
            out, residual = abf(x, residual, size)
            outputs.insert(0, out)
        return outputs

    # ------------------------------------------------------------------ training
    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        image, label = batch["image"], batch["label"]
        n = self.num_levels
        # The pooled level's BatchNorm cannot normalise a batch of one 1x1 map (a last, partial
        # batch of one image): that batch trains with CE only.
        ce_only = image.shape[0] < 2 and self.training
        t_out = None if ce_only else self.teacher_forward(image)
        s_out = self.student(image)
        if t_out is None:
            review = s_out.logits.new_zeros(())
        else:
            t_levels = self.teacher_levels(t_out.features)[-n:]
            results = self.fuse(self.student_levels(s_out.features)[-n:])
            review = hcl_loss(results, t_levels)
        weight = self.warmup() * self.cfg.weight
        logits = s_out.logits
        return logits, {"ce": self.ce_loss(logits, label), "review": weight * review}
