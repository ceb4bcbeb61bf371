"""KD (Hinton et al. 2015): CE + w(epoch) * weight * T^2 * KL(p_t || p_s).

Defaults are the article's RS settings (T 4, CE 1, KD 4). ``warmup_epochs`` ramps the KD term in
linearly (10 % of the epochs by default, as for ISDM): at lr 0.1 with weight 4 and T 4 the term is
64x a KL and, measured on real RS scenes at 64 px, collapses a student without the ramp.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from .base import Distiller
from .losses import softened_kl
from .registry import MethodConfig, register


class KDConfig(MethodConfig):
    name: str = "kd"
    ce_weight: float = Field(1.0, ge=0)
    T: float = Field(4.0, gt=0)
    kd_weight: float = Field(4.0, ge=0)
    # None: 10 % of the epochs (resolved into config.yaml); 0 disables the ramp.
    warmup_epochs: int | None = Field(None, ge=0)


@register("kd")
class KD(Distiller):
    Config = KDConfig
    summary = "Hinton KD: softened KL to the teacher (Hinton et al. 2015)"

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        image, label = batch["image"], batch["label"]
        logits = self.student(image).logits
        teacher_logits = self.teacher_forward(image).logits
        kd = softened_kl(logits, teacher_logits, self.cfg.T)
        return logits, {
            "ce": self.ce_loss(logits, label),
            "kd": self.warmup() * self.cfg.kd_weight * kd,
        }
