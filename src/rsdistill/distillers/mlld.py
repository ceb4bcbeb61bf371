"""MLLD, multi-level logit distillation (Jin, Wang and Lin, CVPR 2023).

Every image comes in two views, a weak one (crop + flip, ``image``) and a strong one (RandAugment +
cutout, ``image_strong``), and the predictions of both models are "augmented" with several
temperatures T_k in {T, *extra_T} (T 4 and 3, 5, 2, 6 on CIFAR-100). With P = softmax(z / T_k)
(N x C) for a view and a temperature, three levels are aligned:

    instance:  T_k^2 * mean_i  m_i KL(P_t[i] || P_s[i])
    batch:     (1/N) sum_{i,j} m_i m_j ((P_t P_t^T)_{ij} - (P_s P_s^T)_{ij})^2      (sample correlation)
    class:     (1/C) sum_{a,b} k_a k_b ((P_t^T P_t)_{ab} - (P_s^T P_s)_{ab})^2      (class correlation)

The masks come from the teacher's weak-view prediction at T = 1: m_i keeps the samples whose
confidence max_c p_t[i, c] is at or below the batch median (the released code's ``le``), k_a the
classes whose summed probability sum_i p_t[i, a] is at or below the median over classes. As in the
released code the weak view's three levels and the strong view's batch level are masked, the
strong view's instance and class levels are not. Each level sums over views and temperatures:

    L = ce_weight * (CE_weak + CE_strong) + w(epoch) * weight * (instance + batch + class)

``as_released`` reproduces the released code instead: each mask enters as the constant mean(m)
(the per-sample loss is reduced before the mask multiplies it), the strong view's batch and class
terms are computed but left out of the loss, and two of the strong view's five instance terms
(T = 2 and 6) are computed on the weak view's logits. ``logit_std`` is the LS modifier
(``mlld+ls``): logits z-scored per sample (for every level; only the instance level with
``as_released``, like the LS code), T -> ``ls_T``, weight -> ``ls_weight``. docs/methods/mlld.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from .base import Distiller
from .losses import softened_kl_per_sample
from .registry import register, register_alias
from .settings import DistillationSettings, LogitStandardization, ls_view

PositiveFloat = Annotated[float, Field(gt=0)]


class MLLDConfig(LogitStandardization, DistillationSettings):
    # ce_weight applies to each view (released CIFAR-100: 0.1); with logit_std, ls_T replaces T
    # (not extra_T) and ls_weight replaces weight. The paper has no warm-up.
    name: str = "mlld"
    # 0.5, not the article's KD weight 4: the instance level alone sums 2 views x 5 temperatures of
    # T_k^2 KL (sum T_k^2 = 90, the weak view half masked), so 0.5 gives about the article's KD
    # multiplier of the KL (4 x 4^2 = 64); 4 is 8x that and diverges (docs/methods/mlld.md).
    weight: float = Field(0.5, ge=0, description="weight of every alignment term (released CIFAR-100: 0.9)")
    T: float = Field(4.0, gt=0, description="the configured temperature (CIFAR-100: 4)")
    # In the released code's order: with as_released the strong view's terms at the last two
    # (2 and 6) are computed on the weak view.
    extra_T: list[PositiveFloat] = Field(default_factory=lambda: [3.0, 5.0, 2.0, 6.0],
                                         description="the other temperatures of the prediction augmentation")
    confidence_mask: Literal["below_median", "above_median", "none"] = Field(
        "below_median", description="which samples/classes the teacher-confidence masks keep")
    as_released: bool = Field(False, description="reproduce the released code's quirks")


register_alias("mlld+ls", "mlld", logit_std=True)


# ---------------------------------------------------------------------- the three levels
def instance_level(student_logits: Tensor, teacher_logits: Tensor, T: float,
                   sample_mask: Tensor | None = None) -> Tensor:
    """T^2 mean_i m_i KL(p_t[i] || p_s[i]) (the mean over all N samples)."""
    kl = softened_kl_per_sample(student_logits, teacher_logits, T)
    return (kl * sample_mask).mean() if sample_mask is not None else kl.mean()


def _masked_squared_difference(a: Tensor, b: Tensor, mask: Tensor | None) -> Tensor:
    d = (a - b).pow(2)
    if mask is not None:
        d = d * (mask[:, None] * mask[None, :])
    return d.sum()


def batch_level(student_logits: Tensor, teacher_logits: Tensor, T: float,
                sample_mask: Tensor | None = None) -> Tensor:
    """(1/N) ||P_t P_t^T - P_s P_s^T||^2 over the pairs of kept samples (N x N Gram matrices)."""
    p_s, p_t = F.softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1)
    return _masked_squared_difference(p_t @ p_t.T, p_s @ p_s.T, sample_mask) / p_s.shape[0]


def class_level(student_logits: Tensor, teacher_logits: Tensor, T: float,
                class_mask: Tensor | None = None) -> Tensor:
    """(1/C) ||P_t^T P_t - P_s^T P_s||^2 over the pairs of kept classes (C x C matrices)."""
    p_s, p_t = F.softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1)
    return _masked_squared_difference(p_t.T @ p_t, p_s.T @ p_s, class_mask) / p_s.shape[1]


def median_mask(values: Tensor, mode: str) -> Tensor | None:
    """Float mask of the entries at or below (or at or above) the median (linear interpolation, as
    numpy's 50th percentile); None for ``mode == "none"``."""
    if mode == "none":
        return None
    threshold = torch.quantile(values, 0.5)
    keep = values <= threshold if mode == "below_median" else values >= threshold
    return keep.to(values.dtype)


def confidence_masks(teacher_weak_logits: Tensor, mode: str) -> tuple[Tensor | None, Tensor | None]:
    """Sample mask from the teacher's confidence max_c p_t[i, c], class mask from its summed class
    probability sum_i p_t[i, c]; p_t = softmax(z_t) at T = 1 on the weak view."""
    p_t = F.softmax(teacher_weak_logits.detach(), dim=1)
    return median_mask(p_t.max(dim=1).values, mode), median_mask(p_t.sum(dim=0), mode)


@register("mlld")
class MLLD(Distiller[MLLDConfig]):
    # Logits only, but of a strong view drawn live at every step: a cache of the bank's views
    # cannot stand in for the teacher (see engine.teacher_cache.uses_teacher_cache).
    teacher_outputs = frozenset({"logits"})
    needs = frozenset({"two_views"})
    summary = "MLLD: instance/batch/class-level logit alignment over temperatures and two views (Jin et al. 2023)"

    def temperatures(self) -> list[float]:
        """The base temperature (``ls_T`` with LS, else ``T``), then ``extra_T``."""
        cfg = self.cfg
        return [cfg.distill_temperature(cfg.T), *cfg.extra_T]

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.cfg
        labels = batch["label"]
        weak, strong = batch["image"], batch["image_strong"]
        n = weak.shape[0]
        # The student sees each view as its own batch (its BN statistics, as in the released code);
        # the frozen teacher takes both at once.
        zt_all = self.teacher_forward(torch.cat([weak, strong])).logits.float()
        logits_w, logits_s = self.student.logits(weak), self.student.logits(strong)
        logits_all = torch.cat([logits_w, logits_s])
        sample_mask, class_mask = confidence_masks(zt_all[:n], cfg.confidence_mask)

        zs_all = logits_all.float()
        v = ls_view(cfg, zs_all, zt_all, cfg.T, cfg.weight)
        zs_std, zt_std = v.student, v.teacher
        # Instance level on the (possibly) standardised logits; the correlation levels too, except
        # with as_released (the LS code standardises the KL only).
        zs_corr, zt_corr = (zs_all, zt_all) if cfg.as_released else (zs_std, zt_std)
        w_, s_ = slice(0, n), slice(n, 2 * n)  # the weak and the strong view

        temperatures = self.temperatures()
        ins = batch_t = class_t = zs_all.new_zeros(())
        for k, T in enumerate(temperatures):
            if cfg.as_released:
                m_ins = sample_mask.mean() if sample_mask is not None else 1.0
                m_cls = class_mask.mean() if class_mask is not None else 1.0
                ins = ins + m_ins * instance_level(zs_std[w_], zt_std[w_], T)
                # the released strong sum computes its last two terms (T = 2, 6) on the weak view
                strong_view = w_ if k >= len(temperatures) - 2 else s_
                ins = ins + instance_level(zs_std[strong_view], zt_std[strong_view], T)
                batch_t = batch_t + m_ins * batch_level(zs_corr[w_], zt_corr[w_], T)
                class_t = class_t + m_cls * class_level(zs_corr[w_], zt_corr[w_], T)
            else:
                ins = ins + instance_level(zs_std[w_], zt_std[w_], T, sample_mask)
                ins = ins + instance_level(zs_std[s_], zt_std[s_], T)
                batch_t = batch_t + batch_level(zs_corr[w_], zt_corr[w_], T, sample_mask)
                batch_t = batch_t + batch_level(zs_corr[s_], zt_corr[s_], T, sample_mask)
                class_t = class_t + class_level(zs_corr[w_], zt_corr[w_], T, class_mask)
                class_t = class_t + class_level(zs_corr[s_], zt_corr[s_], T)

        if sample_mask is not None:
            self.log_mean("kept_samples", sample_mask)
        w = self.warmup() * v.weight
        return logits_w, {
            "ce": self.ce_loss(logits_w, labels) + self.ce_loss(logits_s, labels),
            "instance": w * ins,
            "batch": w * batch_t,
            "class": w * class_t,
        }
