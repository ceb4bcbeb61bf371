"""Cross-entropy training without a teacher: the teacher itself, or a student trained alone."""

from __future__ import annotations

from pydantic import field_validator
from torch import Tensor

from .base import Distiller
from .registry import register
from .settings import MethodConfig


class CEConfig(MethodConfig):
    name: str = "ce"

    @field_validator("ce_weight")
    @classmethod
    def _positive(cls, w: float) -> float:
        if w <= 0:
            raise ValueError("must be > 0: without a teacher the CE is the only loss")
        return w


@register("ce")
class CrossEntropy(Distiller[CEConfig]):
    requires_teacher = False
    summary = "plain cross-entropy (no teacher): what `rsdistill train` uses"

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.student.logits(batch["image"])
        return logits, {"ce": self.ce_loss(logits, batch["label"])}
