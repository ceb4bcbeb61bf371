"""The settings every method shares, declared once, and the context their run-dependent defaults
are resolved from.

- :class:`MethodConfig`: the method's name and its CE weight (``ce_weight``);
- :class:`DistillationSettings`: a linear warm-up of the distillation term (``warmup_epochs``),
  whose default is a fraction of the run's epochs chosen per method;
- :class:`LogitStandardization`: the LS modifier (Sun et al. 2024) for the methods that take it.

Defaults that depend on the run (the warm-up on the epochs; per-pair weights on the models) are
``None`` in a method's config and resolved by ``Distiller.resolve_config`` *before* the method is
built, so ``config.yaml`` records the values actually used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field
from torch import Tensor

from ..section import Section
from .losses import standardize_logits


class MethodConfig(Section):
    """Base of every method's config."""

    name: str
    ce_weight: float = Field(1.0, ge=0, description="weight of the cross-entropy with the labels")


class DistillationSettings(MethodConfig):
    """Base of the configs of methods with a teacher."""

    # min(1, epoch / warmup_epochs) ramps the distillation term in; None: the method's default
    # (``default_warmup_fraction`` of the epochs, resolved into config.yaml); 0 disables it.
    warmup_epochs: int | None = Field(None, ge=0, description="epochs over which the distillation "
                                                              "term ramps in (0: none)")
    # Logit methods: 10 % of the epochs (20 of the article's 200, DKD's 20 of 240 on CIFAR-100):
    # measured on real RS scenes at 64 px, weight 4 x T^2 at lr 0.1 collapses a student without
    # it. Feature methods' papers have none.
    default_warmup_fraction: ClassVar[float] = 0.1


class LogitStandardization(Section):
    """The LS modifier: z-score both models' logits per sample, then distil with the base
    temperature ``ls_T`` and the weight ``ls_weight`` in place of the method's own."""

    logit_std: bool = Field(False, description="LS: standardise both models' logits per sample first")
    ls_T: float = Field(2.0, gt=0, description="temperature with logit_std (LS paper: 2)")
    ls_weight: float = Field(9.0, ge=0, description="distillation weight with logit_std (LS paper: 9)")

    def distill_temperature(self, T: float) -> float:
        """The temperature the method distils at: ``ls_T`` with LS, else its own ``T``."""
        return self.ls_T if self.logit_std else T


@dataclass(frozen=True)
class LSView:
    """The logits a logit method distils, and the temperature and weight it uses on them."""

    student: Tensor
    teacher: Tensor
    T: float
    weight: float


def ls_view(cfg: LogitStandardization, student_logits: Tensor, teacher_logits: Tensor, T: float,
            weight: float) -> LSView:
    """With ``logit_std``: both logits z-scored per sample, ``ls_T`` and ``ls_weight``; otherwise the
    logits (in float32) with the method's own ``T`` and ``weight``."""
    zs, zt = student_logits.float(), teacher_logits.float()
    if cfg.logit_std:
        return LSView(standardize_logits(zs), standardize_logits(zt), cfg.distill_temperature(T), cfg.ls_weight)
    return LSView(zs, zt, T, weight)


@dataclass(frozen=True)
class RunContext:
    """What a method's run-dependent defaults may depend on."""

    student: str
    teacher: str | None
    num_classes: int
    epochs: int
