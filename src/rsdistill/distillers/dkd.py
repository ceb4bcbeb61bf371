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
from .losses import decoupled_kl_per_sample, standardize_logits
from .registry import MethodConfig, register, register_alias


class DKDConfig(MethodConfig):
    name: str = "dkd"
    ce_weight: float = Field(1.0, ge=0, description="CE weight (CIFAR-100 and ImageNet: 1)")
    alpha: float = Field(1.0, ge=0, description="TCKD weight (CIFAR-100 and ImageNet: 1)")
    beta: float = Field(8.0, ge=0, description="NCKD weight (CIFAR-100: 8, resnet56/110->resnet20/32: 2, "
                                                "wrn_40_2->wrn_16_2: 6; ImageNet: 0.5)")
    T: float = Field(4.0, gt=0, description="temperature (CIFAR-100: 4; ImageNet: 1)")
    # min(1, epoch / warmup) ramps the DKD term in (CIFAR-100: 20 of 240 epochs; ImageNet: 1 of 100).
    # None: 10 % of the epochs (20 of the article's 200), resolved into config.yaml; 0 disables it.
    warmup_epochs: int | None = Field(None, ge=0)
    # LS: z-score both models' logits per sample; T -> ls_T and the DKD term times ls_weight.
    logit_std: bool = False
    ls_T: float = Field(2.0, gt=0, description="temperature with logit_std (LS paper: 2)")
    ls_weight: float = Field(9.0, ge=0, description="multiplies alpha and beta with logit_std (LS paper: 9)")


register_alias("dkd+ls", "dkd", logit_std=True)


def check_non_target_classes(method: str, num_classes: int) -> None:
    """DKD needs a non-target distribution of at least 2 classes."""
    if num_classes < 3:
        raise ConfigError(
            f"method '{method}': DKD needs at least 3 classes (this dataset has {num_classes}: the "
            "non-target distribution has a single class, so NCKD is always 0); use kd instead"
        )


@register("dkd")
class DKD(Distiller):
    Config = DKDConfig
    summary = "DKD: target-class + non-target-class KD, decoupled (Zhao et al. 2022)"

    def __init__(self, student, teacher, cfg: DKDConfig, info):
        check_non_target_classes(self.method_name, info.num_classes)
        super().__init__(student, teacher, cfg, info)

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.cfg
        image, labels = batch["image"], batch["label"]
        logits = self.student(image).logits
        zs, zt = logits.float(), self.teacher_forward(image).logits.float()
        T, scale = cfg.T, 1.0
        if cfg.logit_std:
            zs, zt = standardize_logits(zs), standardize_logits(zt)
            T, scale = cfg.ls_T, cfg.ls_weight
        tckd, nckd = decoupled_kl_per_sample(zs, zt, labels, T)
        w = self.warmup() * scale
        self.log_mean("tckd", tckd)
        self.log_mean("nckd", nckd)
        return logits, {
            "ce": self.ce_loss(logits, labels),
            "tckd": w * cfg.alpha * tckd.mean(),
            "nckd": w * cfg.beta * nckd.mean(),
        }
