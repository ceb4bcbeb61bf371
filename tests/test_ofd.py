"""OFD: golden margins and partial L2, the stage weights, a zero loss for equal features through
identity connectors, the teacher's BN on batch statistics (no gradient, no side effects), and the
weight's resolution from the paper's values."""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
from torch import nn

from rsdistill.distillers.ofd import bn_margin, partial_l2

from .conftest import build_distiller, fixed_batch

make = functools.partial(build_distiller, "ofd")


def Phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_margins_are_the_expectation_of_the_negative_part_of_the_bn_output():
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 1.0, -1.0, 0.0, 1.0]))
        bn.bias.copy_(torch.tensor([0.0, 0.0, -1.0, 0.0, -0.5, 5.0]))
    m = bn_margin(bn)
    half_normal = -math.sqrt(2 / math.pi)  # E[x | x < 0] for x ~ N(0, 1)
    pdf1 = math.exp(-0.5) / math.sqrt(2 * math.pi)
    expected = [
        half_normal,
        2 * half_normal,
        -1 - pdf1 / Phi(1.0),   # N(-1, 1)
        half_normal,            # |gamma|
        -0.5,                   # gamma = 0: the constant output beta (< 0)
        -3.0,                   # Phi(-5) < 0.001: -3 |gamma|
    ]
    assert m.tolist() == pytest.approx(expected, rel=1e-6)
    assert m.tolist()[0] == pytest.approx(-0.7978845608, rel=1e-7)  # float32 margins
    # Monte Carlo check of one channel: the mean of the negative samples of N(-1, 1).
    x = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 1
    assert x[x < 0].mean().item() == pytest.approx(expected[2], abs=2e-3)


def test_partial_l2_golden_value():
    # margin -1; (teacher, student) -> contribution
    pairs = [
        (-2.0, -3.0),  # t' = -1, s below it: 0
        (-2.0, 0.5),   # t' = -1, s above: (0.5 + 1)^2 = 2.25
        (-0.5, -0.7),  # t' = t = -0.5 <= 0, s below: 0
        (-0.5, -0.2),  # s above: 0.3^2 = 0.09
        (1.0, 3.0),    # t > 0: always, 4
        (1.0, 0.0),    # 1
    ]
    t = torch.tensor([p[0] for p in pairs]).view(1, 1, 1, 6)
    s = torch.tensor([p[1] for p in pairs]).view(1, 1, 1, 6)
    assert partial_l2(s, t, torch.tensor(-1.0).view(1, 1, 1, 1)).item() == pytest.approx(7.34, rel=1e-6)


def test_partial_l2_equals_mdistillers_three_term_form():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(3, 5, 4, 4, generator=g), torch.randn(3, 5, 4, 4, generator=g)
    m = -torch.rand(1, 5, 1, 1, generator=g)
    ref = ((s - m) ** 2 * ((s > m) & (t <= m)) + (s - t) ** 2 * ((s > t) & (t > m) & (t <= 0))
           + (s - t) ** 2 * (t > 0)).flatten(1).sum(1)
    assert torch.allclose(partial_l2(s, t, m), ref)


def test_feature_loss_is_zero_for_equal_features_through_identity_connectors():
    d = make(teacher="resnet20", copy_teacher=True)
    d.connectors = nn.ModuleList(nn.Identity() for _ in range(d.num_stages))
    d.eval()  # both networks' BNs on running statistics: identical pre-ReLU features
    _, losses = d.forward_train(fixed_batch(4))
    assert losses["ofd"].item() == 0.0
    d.train()  # the student on batch statistics, the teacher too (teacher_bn_train): still equal
    _, losses = d.forward_train(fixed_batch(4))
    assert losses["ofd"].item() == pytest.approx(0.0, abs=1e-10)


def test_stage_weights_halve_toward_the_shallow_end():
    d = make(feat_weight=1.0, area_scaled=False)
    d.stage_distances = lambda s, t: [torch.tensor(1.0), torch.tensor(10.0), torch.tensor(100.0)]
    _, losses = d.forward_train(fixed_batch(4))
    assert losses["ofd"].item() == pytest.approx(1 / 4 + 10 / 2 + 100, rel=1e-6)


def test_margins_connectors_and_stages_are_built_for_the_pair():
    # A 3-stage CIFAR student against a 4-stage torchvision teacher: the deep ends are paired.
    d = make(student="resnet20", teacher="resnet18", size=32)
    assert d.num_stages == 3
    assert [c[0].out_channels for c in d.connectors] == [128, 256, 512]
    assert [c[0].in_channels for c in d.connectors] == [16, 32, 64]
    for margin, bn in zip(d.margins(), d.teacher.bn_before_relu()[-3:]):
        assert torch.equal(margin.flatten(), bn_margin(bn))
        assert (margin < 0).all()
    # Buffers that follow the distiller's device, rebuilt from the teacher and not checkpointed.
    assert {f"margin{j}" for j in range(3)} <= dict(d.named_buffers()).keys()
    assert not any(k.startswith("margin") for k in d.state_dict())
    d.train()
    _, losses = d.forward_train(fixed_batch(4, 32))  # resolutions differ: pooled to the smaller
    assert torch.isfinite(losses["ofd"]) and losses["ofd"] > 0


def test_the_teacher_normalises_with_batch_statistics_without_gradient_or_side_effects():
    d = make()
    teacher = d.teacher
    b = fixed_batch(4)
    reference_train = copy.deepcopy(teacher).train()
    reference_eval = copy.deepcopy(teacher).eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    d.train()
    assert not teacher.training
    feats = d.teacher_forward(b["image"]).features.preact
    with torch.no_grad():
        expected = reference_train(b["image"]).features.preact
        in_eval = reference_eval(b["image"]).features.preact
    for f, e, v in zip(feats, expected, in_eval):
        assert torch.allclose(f, e, atol=1e-5)
        assert not torch.allclose(f, v, atol=1e-3)
    _, losses = d.forward_train(b)
    sum(losses.values()).backward()
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # running stats too
    assert not teacher.training
    assert all(not m.training and m.track_running_stats
               for m in teacher.modules() if isinstance(m, nn.BatchNorm2d))
    # In eval mode, or with the option off, the teacher runs on its running statistics.
    d.eval()
    assert torch.allclose(d.teacher_forward(b["image"]).features.preact[-1], in_eval[-1], atol=1e-5)
    off = make(teacher_bn_train=False)
    off.train()
    assert torch.allclose(off.teacher_forward(b["image"]).features.preact[-1], in_eval[-1], atol=1e-5)


@pytest.mark.parametrize(("teacher", "size", "over", "weight"), [
    ("resnet8x4", 32, {}, 1e-3),                                 # the paper's CIFAR value at 32 px
    ("resnet8x4", 64, {}, 1e-3 / 4),                             # same weight per position at 64 px
    ("resnet8x4", 64, {"area_scaled": False}, 1e-3),
    ("resnet18", 224, {}, 1e-4),                                 # the paper's ImageNet value
    ("resnet18", 32, {}, 1e-4 * 49),
    ("resnet8x4", 64, {"feat_weight": 0.01}, 0.01 / 4),
])
def test_the_weight_is_the_papers_for_the_teachers_family_per_position(teacher, size, over, weight):
    # A resnet20 student keeps the probe cheap; the weight depends on the teacher only.
    d = make(student="resnet20", teacher=teacher, size=size, **over)
    assert d.feat_weight == pytest.approx(weight, rel=1e-9)


def test_runs_under_autocast():
    d = make()
    d.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, losses = d.forward_train(fixed_batch(4))
    assert losses["ofd"].dtype == torch.float32 and torch.isfinite(losses["ofd"])
    sum(losses.values()).backward()
