"""OFD (Heo et al. 2019, "A Comprehensive Overhaul of Feature Distillation").

At every stage j (paired from the deep end), the student's pre-ReLU feature passes a connector
r_j (1x1 conv + BN) to the teacher's width; the teacher's pre-ReLU feature t_j is clipped from
below by a per-channel margin m_j, and the partial L2 distance ignores positions where both are
"off" (student below the clipped teacher, which is not positive):

    m_c   = E[x | x < 0] for x ~ N(beta_c, gamma_c^2)   (gamma, beta of the teacher's BN before
          = beta_c - |gamma_c| phi(beta_c / |gamma_c|) / Phi(-beta_c / |gamma_c|)      the ReLU)
            (-3 |gamma_c| when Phi(-beta_c / |gamma_c|) <= 0.001)
    t'    = max(t, m)
    d_p   = sum over C x H x W of (r(s) - t')^2 [r(s) > t' or t' > 0]
    L_OFD = sum_j d_p(j) / 2^(n - j)       (j = 1..n shallow to deep: the deepest weighs 1)
    L     = ce_weight CE + w(epoch) feat_weight' mean_over_batch(L_OFD)

as in the authors' code (clovaai/overhaul-distillation). The authors keep the teacher in train
mode: its BNs normalise with batch statistics, which is the distribution the margins assume
(``teacher_bn_train``, default on). feat_weight' is the paper's weight for the teacher's family
(1e-3 CIFAR, 1e-4 ImageNet), rescaled by the input area relative to the paper's (32 or 224 px)
with ``area_scaled``: the distance is a sum over positions. See docs/methods/ofd.md.
"""

from __future__ import annotations

from typing import ClassVar

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..models import ModelAdapter, Output, model_family
from .base import Distiller
from .losses import pool_to_common_size
from .registry import register
from .settings import DistillationSettings, RunContext

log = logging.getLogger(__name__)

# The paper's weights and input sizes per architecture family (CIFAR-100 / ImageNet code).
PAPER_WEIGHT = {"cifar": 1e-3, "imagenet": 1e-4}
PAPER_SIZE = {"cifar": 32, "imagenet": 224}


class OFDConfig(DistillationSettings):
    name: str = "ofd"
    # None: the paper's weight for the teacher's family: 1e-3 (CIFAR-100 code, loss / batch / 1000)
    # or 1e-4 (ImageNet code, loss / batch / 10000).
    feat_weight: float | None = Field(None, ge=0, description="weight of the distillation term")
    # Scale the weight by (paper size / input size)^2: the distance sums over positions, so at
    # 256 px a CIFAR-style pair would otherwise weigh it 64x more than the paper did at 32 px.
    area_scaled: bool = Field(True, description="keep the paper's weight per position at other input sizes")
    teacher_bn_train: bool = Field(True, description="teacher BNs use batch statistics (the authors' code)")
    # No warm-up unless set: the paper has none.
    default_warmup_fraction: ClassVar[float] = 0.0


def bn_margin(bn: nn.BatchNorm2d) -> Tensor:
    """Per-channel margin E[x | x < 0], x ~ N(beta, gamma^2), from the BN's affine parameters.

    Computed in float64; -3|gamma| where the negative mass Phi(-beta/|gamma|) is <= 0.001 (as in
    the authors' code); a channel with gamma = 0 (constant output beta) gets min(beta, 0), the
    limit of the formula."""
    s = bn.weight.detach().double().abs()
    m = bn.bias.detach().double()
    safe_s = torch.where(s > 0, s, torch.ones_like(s))
    z = m / safe_s
    cdf = torch.special.ndtr(-z)
    pdf = torch.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    margin = torch.where(cdf > 0.001, m - safe_s * pdf / cdf.clamp_min(1e-300), -3 * s)
    margin = torch.where(s > 0, margin, m.clamp(max=0.0))
    return margin.float()


def partial_l2(source: Tensor, target: Tensor, margin: Tensor) -> Tensor:
    """sum over C x H x W of (s - t')^2 [s > t' or t' > 0], t' = max(t, margin), per sample: N."""
    target = torch.maximum(target, margin)
    mask = (source > target) | (target > 0)
    return ((source - target).pow(2) * mask).flatten(1).sum(1)


def build_connector(s_channels: int, t_channels: int) -> nn.Sequential:
    """1x1 conv (no bias) + BN, initialised as in the authors' code."""
    conv = nn.Conv2d(s_channels, t_channels, kernel_size=1, bias=False)
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / t_channels))
    bn = nn.BatchNorm2d(t_channels)
    nn.init.ones_(bn.weight)
    nn.init.zeros_(bn.bias)
    return nn.Sequential(conv, bn)


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Within the block, the model's BN layers normalise with batch statistics and leave their
    running statistics untouched; everything else (dropout) keeps its mode. Restored on exit."""
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in bns]
    try:
        for m in bns:
            m.train()
            m.track_running_stats = False  # F.batch_norm then gets no running buffers to update
        yield
    finally:
        for m, (training, track) in zip(bns, saved):
            m.train(training)
            m.track_running_stats = track


@register("ofd")
class OFD(Distiller[OFDConfig]):
    summary = "OFD: pre-ReLU features, margin ReLU, partial L2 (Heo et al. 2019)"

    def __init__(self, student: ModelAdapter, teacher: ModelAdapter, cfg: OFDConfig, info):
        family = model_family(teacher.arch)
        super().__init__(student, teacher, cfg, info)
        s_out, t_out = self.probe()
        bns = teacher.bn_before_relu()
        n = min(len(s_out.features.preact), len(t_out.features.preact))
        s_ch = [f.shape[1] for f in s_out.features.preact[-n:]]
        t_ch = [f.shape[1] for f in t_out.features.preact[-n:]]
        self.num_stages = n
        self.connectors = nn.ModuleList(build_connector(s, t) for s, t in zip(s_ch, t_ch))
        for j, bn in enumerate(bns[-n:]):
            # Buffers: they follow the distiller to its device; rebuilt from the teacher, not saved.
            self.register_buffer(f"margin{j}", bn_margin(bn).view(1, -1, 1, 1), persistent=False)
        weight = self.cfg.feat_weight
        if cfg.area_scaled:
            weight *= (PAPER_SIZE[family] / info.image_size) ** 2
        self.feat_weight = weight
        log.info("ofd: distillation weight %.3g (%s teacher at %d px)", weight, family, info.image_size)

    @classmethod
    def resolve_config(cls, cfg: OFDConfig, ctx: RunContext) -> OFDConfig:
        cfg = super().resolve_config(cfg, ctx)
        if cfg.feat_weight is None:
            cfg = cfg.model_copy(update={"feat_weight": PAPER_WEIGHT[model_family(ctx.teacher or "")]})
        return cfg

    @classmethod
    def extra_parameter_count(cls, cfg: OFDConfig, num_classes: int) -> int | None:
        return None  # the connectors' sizes depend on the pair's stage widths

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"connectors": self.connectors}

    def margins(self) -> list[Tensor]:
        return [getattr(self, f"margin{j}") for j in range(self.num_stages)]

    def teacher_forward(self, image: Tensor) -> Output:
        if not (self.cfg.teacher_bn_train and self.training):
            return super().teacher_forward(image)
        with torch.no_grad(), batch_statistics(self.teacher):
            return self.teacher(image)

    def stage_distances(self, s_pre: list[Tensor], t_pre: list[Tensor]) -> list[Tensor]:
        """Per stage (shallow to deep), the batch mean of the partial L2 distance, unweighted."""
        n = self.num_stages
        out = []
        for conn, s, t, m in zip(self.connectors, s_pre[-n:], t_pre[-n:], self.margins()):
            s, t = pool_to_common_size(conn(s).float(), t.float())
            out.append(partial_l2(s, t, m).mean())
        return out

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        image, label = batch["image"], batch["label"]
        t_pre = self.teacher_forward(image).features.preact
        out = self.student(image)
        dists = self.stage_distances(out.features.preact, t_pre)
        n = len(dists)
        total = sum(d / 2 ** (n - 1 - j) for j, d in enumerate(dists))
        for j, d in enumerate(dists):
            self.log_mean(f"ofd/stage{j + 1}", d)
        return out.logits, {
            "ce": self.ce_loss(out.logits, label),
            "ofd": self.warmup() * self.feat_weight * total,
        }
