"""DKD, decoupled knowledge distillation (Zhao et al., CVPR 2022).

The softened KL splits exactly into a target-class part and a non-target part,
KD = TCKD + (1 - p_t[gt]) * NCKD; DKD drops the coupling factor and weights the two freely:

    L = ce_weight * CE + w(epoch) * (alpha * TCKD + beta * NCKD)

TCKD is the binary KL on [p_gt, 1 - p_gt]; NCKD the KL over the non-target classes with the target
removed before the softmax (``losses.decoupled_kl_per_sample``). With 2 classes there is no
non-target distribution (NCKD is 0 for every sample): building the method then is an error.

Defaults are the paper's CIFAR-100 values, which coincide with the article's RS T 4 / CE 1 (DKD has
no single distillation weight); docs/methods/dkd.md lists the ImageNet values. ``logit_std`` is the
LS modifier (``dkd+ls``): logits z-scored per sample, T -> ``ls_T``, and the DKD term times
``ls_weight``.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from ..errors import ConfigError
from .base import Distiller
from .losses import decoupled_kl_per_sample
from .registry import register, register_alias
from .settings import DistillationSettings, LogitStandardization, RunContext, ls_view


class DKDConfig(LogitStandardization, DistillationSettings):
    name: str = "dkd"
    alpha: float = Field(1.0, ge=0, description="TCKD weight (CIFAR-100 and ImageNet: 1)")
    # None: the paper's value for the pair (resolve_config): CIFAR-100 8, resnet56/110 -> resnet20/32
    # 2, wrn_40_2 -> wrn_16_2 6; ImageNet (1000 classes) 0.5, resnet50 -> mobilenet_v2 2.
    beta: float | None = Field(None, ge=0, description="NCKD weight (None: the paper's value for the pair)")
    T: float = Field(4.0, gt=0, description="temperature (CIFAR-100: 4; ImageNet: 1)")


register_alias("dkd+ls", "dkd", logit_std=True)


# The paper's NCKD weights for its CIFAR-100 pairs that differ from the default 8.
PAPER_BETA_BY_PAIR = {("resnet56", "resnet20"): 2.0, ("resnet110", "resnet20"): 2.0,
                      ("resnet110", "resnet32"): 2.0, ("wrn_40_2", "wrn_16_2"): 6.0}
# ImageNet (configs/imagenet/*/dkd.yaml of the authors' mdistiller): 0.5 for ResNet-34 ->
# ResNet-18, 2 for ResNet-50 -> MobileNetV2.
IMAGENET_BETA_BY_PAIR = {("resnet50", "mobilenet_v2"): 2.0}


def paper_beta(teacher: str | None, student: str, num_classes: int) -> float:
    """DKD's beta for a pair: at 1000 classes or more its ImageNet value for the pair (0.5 unless
    listed), else its CIFAR-100 per-pair value where the paper lists one, else its CIFAR-100
    default (8)."""
    if num_classes >= 1000:
        return IMAGENET_BETA_BY_PAIR.get((teacher or "", student), 0.5)
    return PAPER_BETA_BY_PAIR.get((teacher or "", student), 8.0)


def check_non_target_classes(method: str, num_classes: int) -> None:
    """DKD needs a non-target distribution of at least 2 classes."""
    if num_classes < 3:
        raise ConfigError(
            f"method '{method}': DKD needs at least 3 classes (this dataset has {num_classes}: the "
            "non-target distribution has a single class, so NCKD is always 0); use kd instead"
        )


@register("dkd")
class DKD(Distiller[DKDConfig]):
    teacher_outputs = frozenset({"logits"})
    summary = "DKD: target-class + non-target-class KD, decoupled (Zhao et al. 2022)"

    @classmethod
    def resolve_config(cls, cfg: DKDConfig, ctx: RunContext) -> DKDConfig:
        cfg = super().resolve_config(cfg, ctx)
        if cfg.beta is None:
            cfg = cfg.model_copy(update={"beta": paper_beta(ctx.teacher, ctx.student, ctx.num_classes)})
        return cfg

    def __init__(self, student, teacher, cfg: DKDConfig, info):
        check_non_target_classes(self.method_name, info.num_classes)
        super().__init__(student, teacher, cfg, info)

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.cfg
        image, labels = batch["image"], batch["label"]
        teacher_logits = self.teacher_logits(batch)
        logits = self.student.logits(image)
        # With LS the whole DKD term is multiplied by ls_weight (DKD has no single weight).
        v = ls_view(cfg, logits, teacher_logits, cfg.T, 1.0)
        tckd, nckd = decoupled_kl_per_sample(v.student, v.teacher, labels, v.T)
        w = self.warmup() * v.weight
        self.log_mean("tckd", tckd)
        self.log_mean("nckd", nckd)
        return logits, {
            "ce": self.ce_loss(logits, labels),
            "tckd": w * cfg.alpha * tckd.mean(),
            "nckd": w * cfg.beta * nckd.mean(),
        }
