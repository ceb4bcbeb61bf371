"""FitNet: the hint stage, the regressor's shape rules at the run's input size, the golden hint
loss, and a zero loss for equal features through an identity regressor."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from rsdistill.distillers.fitnet import HintRegressor, Resample, middle_stage
from rsdistill.errors import ConfigError

from .conftest import build_distiller, fixed_batch

make = functools.partial(build_distiller, "fitnet")


def test_the_hint_is_the_middle_stage_of_three_and_four_stage_networks():
    assert middle_stage(3) == 1  # CIFAR ResNets: stage 2 of 3
    assert middle_stage(4) == 1  # torchvision ResNets: layer2 (after half of ResNet-18's blocks)
    assert middle_stage(5) == 2
    d = make()
    assert (d.s_stage, d.t_stage) == (1, 1)
    # resnet20's stage 2 has 32 channels, resnet8x4's has 128: a 1x1 conv at equal resolution.
    assert isinstance(d.regressor.conv, nn.Conv2d) and d.regressor.conv.kernel_size == (1, 1)
    assert (d.regressor.conv.in_channels, d.regressor.conv.out_channels) == (32, 128)
    assert make(hint_stage=3).s_stage == 2
    with pytest.raises(ConfigError, match="hint_stage"):
        make(hint_stage=4)


@pytest.mark.parametrize(("s_hw", "t_hw", "kind"), [
    ((8, 8), (8, 8), nn.Conv2d),            # 1x1
    ((16, 16), (8, 8), nn.Conv2d),          # 3x3 stride 2
    ((8, 8), (16, 16), nn.ConvTranspose2d), # 4x4 stride 2, transposed
    ((32, 32), (8, 8), nn.Sequential),      # other ratios: pooled, then 1x1
    ((5, 5), (16, 16), nn.Sequential),      # ... or upsampled
])
def test_the_regressor_maps_the_student_stage_to_the_teacher_stage_shape(s_hw, t_hw, kind):
    reg = HintRegressor((6, *s_hw), (10, *t_hw))
    assert type(reg.conv) is kind
    if kind is nn.Sequential:
        assert isinstance(reg.conv[0], Resample)
    out = reg(torch.randn(2, 6, *s_hw))
    assert out.shape == (2, 10, *t_hw)
    assert (out >= 0).all()  # BN + ReLU
    assert (HintRegressor((6, *s_hw), (10, *t_hw), relu=False)(torch.randn(2, 6, *s_hw)) < 0).any()


def test_the_regressor_is_built_for_the_real_input_size():
    # CIFAR student (stage 2 at size / 2) against a torchvision teacher (layer2 at size / 8):
    # at 64 px the maps are 32 x 32 and 8 x 8, so the regressor pools by 4.
    d = make(student="resnet20", teacher="resnet18", size=64)
    d.train()
    assert isinstance(d.regressor.conv[0], Resample) and d.regressor.conv[0].size == (8, 8)
    logits, losses = d.forward_train(fixed_batch(4, 64))
    assert torch.isfinite(losses["hint"])
    losses["hint"].backward()
    assert d.regressor.bn.weight.grad is not None


def test_hint_loss_golden_value_and_zero_for_equal_features_through_an_identity_regressor():
    d = make(teacher="resnet20", copy_teacher=True, hint_weight=100.0)
    d.regressor = nn.Identity()
    t = torch.rand(2, 32, 8, 8)
    assert d.hint_loss(t, t).item() == 0.0
    assert d.hint_loss(t + 0.5, t).item() == pytest.approx(0.25, rel=1e-6)  # mean of 0.5^2
    d.eval()  # both networks' BNs on running statistics: identical stage outputs
    _, losses = d.forward_train(fixed_batch(4))
    assert losses["hint"].item() == 0.0
    assert losses["ce"] > 0


def test_weights_and_warm_up_scale_the_hint_term():
    b = fixed_batch(4)
    d = make(hint_weight=100.0, warmup_epochs=4)
    d.eval()
    d.set_epoch(1)
    quarter = d.forward_train(b)[1]["hint"].item()
    d.set_epoch(4)
    full = d.forward_train(b)[1]["hint"].item()
    assert full > 0 and quarter == pytest.approx(full / 4, rel=1e-5)
    d.cfg.hint_weight = 50.0
    assert d.forward_train(b)[1]["hint"].item() == pytest.approx(full / 2, rel=1e-5)


def test_runs_under_autocast():
    d = make()
    d.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, losses = d.forward_train(fixed_batch(4))
    assert losses["hint"].dtype == torch.float32 and torch.isfinite(losses["hint"])
    sum(losses.values()).backward()
