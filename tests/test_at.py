"""AT: golden attention losses, identities (zero for equal features, scale invariance), resolution
matching by pooling, the stage choice, and pairs whose stages differ in count and resolution."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F

from rsdistill.distillers.at import at_stage_loss, attention_map, paired_from_the_deep_end, select_stages
from rsdistill.distillers.losses import pool_to_common_size

from .conftest import build_distiller, fixed_batch

make = functools.partial(build_distiller, "at")


def test_attention_loss_golden_value():
    # Student: two channels over two positions -> A = [(1 + 9) / 2, (4 + 0) / 2] = [5, 2].
    s = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])
    # Teacher: A = [1, 1].
    t = torch.tensor([[[[1.0, -1.0]], [[1.0, 1.0]]]])
    assert attention_map(s).flatten().tolist() == [5.0, 2.0]
    q_s = (5 / math.sqrt(29), 2 / math.sqrt(29))
    q_t = (1 / math.sqrt(2), 1 / math.sqrt(2))
    expected = ((q_s[0] - q_t[0]) ** 2 + (q_s[1] - q_t[1]) ** 2) / 2
    assert at_stage_loss(s, t).item() == pytest.approx(expected, rel=1e-6)


def test_attention_loss_is_invariant_to_feature_scale_and_averages_over_the_batch():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(3, 8, 5, 5, generator=g), torch.randn(3, 16, 5, 5, generator=g)
    base = at_stage_loss(s, t)
    assert base > 0
    assert at_stage_loss(3.0 * s, t).item() == pytest.approx(base.item(), rel=1e-5)
    per_sample = torch.stack([at_stage_loss(s[i:i + 1], t[i:i + 1]) for i in range(3)])
    assert base.item() == pytest.approx(per_sample.mean().item(), rel=1e-6)


def test_pool_to_common_size_pools_the_larger_map_and_leaves_equal_sizes_alone():
    a, b = torch.randn(2, 3, 8, 6), torch.randn(2, 5, 4, 12)
    pa, pb = pool_to_common_size(a, b)
    assert pa.shape == (2, 3, 4, 6) and pb.shape == (2, 5, 4, 6)
    assert torch.allclose(pa, F.avg_pool2d(a, (2, 1)))
    assert torch.allclose(pb, F.avg_pool2d(b, (1, 2)))
    c = torch.randn(2, 3, 4, 4)
    same_a, same_b = pool_to_common_size(c, c)
    assert same_a is c and same_b is c


def test_a_student_map_at_twice_the_resolution_is_matched_by_pooling():
    g = torch.Generator().manual_seed(2)
    t = torch.randn(2, 6, 4, 4, generator=g)
    s = F.interpolate(t, scale_factor=2, mode="nearest")  # the teacher's map, each position 2 x 2
    assert at_stage_loss(s, t).item() == pytest.approx(0.0, abs=1e-12)
    assert at_stage_loss(t, s).item() == pytest.approx(0.0, abs=1e-12)
    assert at_stage_loss(s + 0.3 * torch.randn(s.shape, generator=g), t) > 1e-4


def test_feature_loss_is_zero_when_the_students_features_equal_the_teachers():
    d = make(teacher="resnet20", copy_teacher=True, min_map_side=1)
    d.eval()  # both networks' BNs on running statistics: identical features
    logits, losses = d.forward_train(fixed_batch(4))
    assert len(d.stages) == 3
    assert losses["at"].item() == 0.0
    d2 = make(teacher="resnet20", min_map_side=1)  # an independent student: the loss is not trivially zero
    d2.eval()
    assert d2.forward_train(fixed_batch(4))[1]["at"].item() > 0


def test_every_stage_is_distilled_at_the_papers_sizes_and_degenerate_maps_are_left_out():
    # torchvision ResNets: maps of side size / 4, / 8, / 16, / 32.
    tv = lambda size: [(1, 64, size // 4, size // 4), (1, 128, size // 8, size // 8),  # noqa: E731
                       (1, 256, size // 16, size // 16), (1, 512, size // 32, size // 32)]
    assert select_stages(tv(224), tv(224), 7) == [0, 1, 2, 3]  # 56, 28, 14, 7: the paper
    assert select_stages(tv(256), tv(256), 7) == [0, 1, 2, 3]
    assert select_stages(tv(64), tv(64), 7) == [0, 1]  # 16, 8 kept; 4 and 2 left out
    assert select_stages(tv(64), tv(64), 1) == [0, 1, 2, 3]
    assert select_stages(tv(16), tv(16), 7) == [0]  # none qualifies: the largest map
    cifar = [(1, 64, 32, 32), (1, 128, 16, 16), (1, 256, 8, 8)]
    assert select_stages(cifar, cifar, 7) == [0, 1, 2]  # CIFAR at 32 px: every stage
    assert make(size=32).stages == [0, 1, 2]
    assert make(size=16).stages == [0, 1]  # 16, 8 kept; 4 left out


def test_stages_are_paired_from_the_deep_end_and_resolutions_matched():
    assert paired_from_the_deep_end([1, 2, 3], ["a", "b", "c", "d"]) == ([1, 2, 3], ["b", "c", "d"])
    # A CIFAR student (3 stages at 32, 16, 8 px) against a torchvision teacher (4 stages at
    # 8, 4, 2, 1 px): pairs (32, 4), (16, 2), (8, 1) after alignment; pooled to 4, 2 and 1.
    d = make(student="resnet20", teacher="resnet18", size=32, min_map_side=1)
    d.train()
    assert d.stages == [0, 1, 2]
    logits, losses = d.forward_train(fixed_batch(4, 32))
    assert torch.isfinite(losses["at"]) and losses["at"] > 0
    losses["at"].backward()
    assert d.student.net.conv1.weight.grad.abs().sum() > 0


def test_runs_under_autocast():
    d = make()
    d.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, losses = d.forward_train(fixed_batch(4))
    assert losses["at"].dtype == torch.float32 and torch.isfinite(losses["at"])
    sum(losses.values()).backward()
