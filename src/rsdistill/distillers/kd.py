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
from .losses import softened_kl
from .registry import register, register_alias
from .settings import DistillationSettings, LogitStandardization, ls_view


class KDConfig(LogitStandardization, DistillationSettings):
    name: str = "kd"
    T: float = Field(4.0, gt=0, description="temperature")
    kd_weight: float = Field(4.0, ge=0, description="weight of the softened KL")


register_alias("kd+ls", "kd", logit_std=True)


@register("kd")
class KD(Distiller[KDConfig]):
    teacher_outputs = frozenset({"logits"})
    summary = "Hinton KD: softened KL to the teacher (Hinton et al. 2015)"

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        image, label = batch["image"], batch["label"]
        teacher_logits = self.teacher_logits(batch)
        logits = self.student.logits(image)
        v = ls_view(self.cfg, logits, teacher_logits, self.cfg.T, self.cfg.kd_weight)
        kd = v.weight * softened_kl(v.student, v.teacher, v.T)
        return logits, {
            "ce": self.ce_loss(logits, label),
            "kd": self.warmup() * kd,
        }
