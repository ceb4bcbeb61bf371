"""KD (Hinton et al. 2015): CE + w(epoch) * weight * T^2 * KL(p_t || p_s).

Defaults are the article's RS settings (T 4, CE 1, KD 4). ``warmup_epochs`` ramps the KD term in
linearly (10 % of the epochs by default, as for ISDM): at lr 0.1 with weight 4 and T 4 the term is
64x a KL and, measured on real RS scenes at 64 px, collapses a student without the ramp.

``logit_std`` is the LS modifier (Sun et al. 2024, docs/methods/ls.md): both models' logits are
z-scored per sample before the softened KL, which then uses the base temperature ``ls_T`` and the
weight ``ls_weight`` instead of ``T`` and ``kd_weight``. ``kd+ls`` is the shorthand.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from .base import Distiller
from .losses import softened_kl, standardize_logits
from .registry import MethodConfig, register, register_alias


class KDConfig(MethodConfig):
    name: str = "kd"
    ce_weight: float = Field(1.0, ge=0)
    T: float = Field(4.0, gt=0)
    kd_weight: float = Field(4.0, ge=0)
    # None: 10 % of the epochs (resolved into config.yaml); 0 disables the ramp.
    warmup_epochs: int | None = Field(None, ge=0)
    # LS: z-score both models' logits per sample; then ls_T and ls_weight replace T and kd_weight
    # (LS paper, CIFAR-100: base temperature 2, weight 9).
    logit_std: bool = False
    ls_T: float = Field(2.0, gt=0)
    ls_weight: float = Field(9.0, ge=0)


register_alias("kd+ls", "kd", logit_std=True)


@register("kd")
class KD(Distiller):
    Config = KDConfig
    summary = "Hinton KD: softened KL to the teacher (Hinton et al. 2015)"

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        image, label = batch["image"], batch["label"]
        logits = self.student(image).logits
        teacher_logits = self.teacher_forward(image).logits
        cfg = self.cfg
        if cfg.logit_std:
            kd = cfg.ls_weight * softened_kl(standardize_logits(logits.float()),
                                             standardize_logits(teacher_logits.float()), cfg.ls_T)
        else:
            kd = cfg.kd_weight * softened_kl(logits, teacher_logits, cfg.T)
        return logits, {
            "ce": self.ce_loss(logits, label),
            "kd": self.warmup() * kd,
        }
