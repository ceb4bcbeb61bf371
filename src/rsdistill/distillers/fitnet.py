"""FitNet (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets"): a hint from a middle stage.

A convolutional regressor r (conv + BN + ReLU) maps the student's middle stage (after its ReLU) to
the shape of the teacher's middle stage:

    L = ce_weight CE + w(epoch) hint_weight mean( (r(s_k) - t_k)^2 )

trained in one stage, as RepDistiller/mdistiller do (the paper pre-trains the hint first, then runs
KD). The regressor is built from the shapes of a dummy forward at the run's input size: 1x1 conv at
equal resolution, 3x3 stride-2 conv when the student's map is twice the teacher's, 4x4 stride-2
transposed conv when it is half (the RepDistiller/mdistiller rules); any other ratio is resampled
(average pooling down, bilinear up) before a 1x1 conv. See docs/methods/fitnet.md.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from ..errors import ConfigError
from .base import Distiller
from .registry import register
from .settings import DistillationSettings


class FitNetConfig(DistillationSettings):
    name: str = "fitnet"
    # 100 on CIFAR-100 (RepDistiller, mdistiller); the standard benchmarks have no FitNet
    # ImageNet setting. The hint loss is a mean over elements: independent of the input size.
    hint_weight: float = Field(100.0, ge=0, description="weight of the hint MSE")
    # 1-based stage index used on both networks; None: the middle stage, (n + 1) // 2 of n stages
    # (stage 2 of 3 for CIFAR ResNets, stage 2 = layer2 of 4 for torchvision ResNets: mdistiller's
    # hint_layer = 2 on both).
    hint_stage: int | None = Field(None, ge=1, description="stage of the hint (None: the middle one)")
    regressor_relu: bool = Field(True, description="ReLU after the regressor's BN (as in mdistiller)")
    # No warm-up unless set: the paper has none.
    default_warmup_fraction: ClassVar[float] = 0.0


def middle_stage(num_stages: int) -> int:
    """0-based index of the middle stage: 1 of 3 and 1 of 4 (after half of ResNet-18's blocks)."""
    return (num_stages + 1) // 2 - 1


class Resample(nn.Module):
    def __init__(self, size: tuple[int, int]):
        super().__init__()
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] >= self.size[0] and x.shape[-1] >= self.size[1]:
            return F.adaptive_avg_pool2d(x, self.size)
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)


class HintRegressor(nn.Module):
    """Student map (C_s x H_s x W_s) -> teacher map shape (C_t x H_t x W_t): conv + BN (+ ReLU)."""

    def __init__(self, s_shape: tuple[int, int, int], t_shape: tuple[int, int, int], relu: bool = True):
        super().__init__()
        (cs, hs, ws), (ct, ht, wt) = s_shape, t_shape
        if (hs, ws) == (ht, wt):
            self.conv = nn.Conv2d(cs, ct, kernel_size=1)
        elif (hs, ws) == (2 * ht, 2 * wt):
            self.conv = nn.Conv2d(cs, ct, kernel_size=3, stride=2, padding=1)
        elif (2 * hs, 2 * ws) == (ht, wt):
            self.conv = nn.ConvTranspose2d(cs, ct, kernel_size=4, stride=2, padding=1)
        else:
            self.conv = nn.Sequential(Resample((ht, wt)), nn.Conv2d(cs, ct, kernel_size=1))
        self.bn = nn.BatchNorm2d(ct)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


@register("fitnet")
class FitNet(Distiller[FitNetConfig]):
    summary = "FitNet: middle-stage hint through a conv regressor (Romero et al. 2015)"

    def __init__(self, student, teacher, cfg: FitNetConfig, info):
        super().__init__(student, teacher, cfg, info)
        s_out, t_out = self.probe()
        n_s, n_t = len(s_out.features.stages), len(t_out.features.stages)
        if cfg.hint_stage is not None and cfg.hint_stage > min(n_s, n_t):
            raise ConfigError(f"method.hint_stage: {cfg.hint_stage} is past the last stage "
                              f"(student {n_s}, teacher {n_t} stages)")
        self.s_stage = cfg.hint_stage - 1 if cfg.hint_stage else middle_stage(n_s)
        self.t_stage = cfg.hint_stage - 1 if cfg.hint_stage else middle_stage(n_t)
        s_shape = tuple(s_out.features.stages[self.s_stage].shape[1:])
        t_shape = tuple(t_out.features.stages[self.t_stage].shape[1:])
        self.regressor = HintRegressor(s_shape, t_shape, cfg.regressor_relu)

    @classmethod
    def extra_parameter_count(cls, cfg: FitNetConfig, num_classes: int) -> int | None:
        return None  # the regressor's size depends on the pair's stage widths

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"regressor": self.regressor}

    def hint_loss(self, s_map: Tensor, t_map: Tensor) -> Tensor:
        return F.mse_loss(self.regressor(s_map).float(), t_map.float())

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        image, label = batch["image"], batch["label"]
        t_map = self.teacher_forward(image).features.stages[self.t_stage]
        out = self.student(image)
        hint = self.hint_loss(out.features.stages[self.s_stage], t_map)
        return out.logits, {
            "ce": self.ce_loss(out.logits, label),
            "hint": self.warmup() * self.cfg.hint_weight * hint,
        }
