"""Cross-entropy training without a teacher: the teacher itself, or a student trained alone."""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from .base import Distiller
from .registry import MethodConfig, register


class CEConfig(MethodConfig):
    name: str = "ce"
    ce_weight: float = Field(1.0, gt=0)


@register("ce")
class CrossEntropy(Distiller):
    Config = CEConfig
    requires_teacher = False
    summary = "plain cross-entropy (no teacher): what `rsdistill train` uses"

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.student(batch["image"]).logits
        return logits, {"ce": self.ce_loss(logits, batch["label"])}
