"""ReviewKD (docs/methods/reviewkd.md): the hierarchical context loss against a hand-written
pyramid, ABF outputs shaped like the teacher's levels (also across model families), the targets
being the teacher's pre-ReLU stages, the default weight by student family, and the warm-up."""

from __future__ import annotations

import functools

import pytest
import torch

import rsdistill.distillers.reviewkd as reviewkd_module
from rsdistill.distillers.reviewkd import hcl_loss

from .conftest import build_distiller, fixed_batch

C = 4
make = functools.partial(build_distiller, "reviewkd")


def block_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Average over k x k equal blocks, written out (not adaptive pooling)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, k, h // k, k, w // k).mean(dim=(3, 5))


def test_hcl_is_the_halving_pyramid_of_mses_normalised_by_its_weights():
    g = torch.Generator().manual_seed(0)
    a8, b8 = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    a4, b4 = torch.randn(2, 5, 4, 4, generator=g), torch.randn(2, 5, 4, 4, generator=g)
    a1, b1 = torch.randn(2, 7, 1, 1, generator=g), torch.randn(2, 7, 1, 1, generator=g)

    def mse(x, y):
        return ((x - y) ** 2).mean().item()

    # 8x8: full + 4x4 (1/2) + 2x2 (1/4) + 1x1 (1/8), divided by 1.875
    level8 = (mse(a8, b8) + mse(block_mean(a8, 4), block_mean(b8, 4)) / 2
              + mse(block_mean(a8, 2), block_mean(b8, 2)) / 4 + mse(block_mean(a8, 1), block_mean(b8, 1)) / 8) / 1.875
    # 4x4: the 4x4 pooling is skipped (not smaller than the map): full + 2x2 (1/2) + 1x1 (1/4), / 1.75
    level4 = (mse(a4, b4) + mse(block_mean(a4, 2), block_mean(b4, 2)) / 2
              + mse(block_mean(a4, 1), block_mean(b4, 1)) / 4) / 1.75
    level1 = mse(a1, b1)  # the pooled vector: the plain MSE
    assert hcl_loss([a8], [b8]).item() == pytest.approx(level8, rel=1e-5)
    assert hcl_loss([a4], [b4]).item() == pytest.approx(level4, rel=1e-5)
    assert hcl_loss([a1], [b1]).item() == pytest.approx(level1, rel=1e-5)
    assert hcl_loss([a8, a4, a1], [b8, b4, b1]).item() == pytest.approx(level8 + level4 + level1, rel=1e-5)
    assert hcl_loss([a8, a4], [a8.clone(), a4.clone()]).item() == 0.0


@pytest.mark.parametrize(("student", "teacher", "size"), [
    ("resnet20", "resnet8x4", 32),   # CIFAR pair, different widths
    ("resnet18", "resnet8x4", 32),   # 4-stage student, 3-stage teacher, 4x smaller maps
])
def test_abf_outputs_have_the_shapes_of_the_teachers_levels(student, teacher, size):
    d = make(student=student, teacher=teacher, size=size)
    d.train()
    b = fixed_batch(2, size)
    s = d.student(b["image"]).features
    t = d.teacher(b["image"]).features
    n = d.num_levels
    assert n == min(len(s.stages), len(t.stages)) + 1 == len(d.abfs)
    outs = d.fuse(d.student_levels(s)[-n:])
    targets = d.teacher_levels(t)[-n:]
    assert [o.shape for o in outs] == [t_.shape for t_ in targets]
    # deepest first: the pooled level has nothing deeper to fuse with, every other level fuses
    assert d.abfs[0].att_conv is None and all(a.att_conv is not None for a in d.abfs[1:])


def test_the_targets_are_the_teachers_pre_relu_stages_and_pooled_vector(monkeypatch):
    d = make()
    d.train()
    b = fixed_batch(4)
    seen = {}

    def spy(student_levels, teacher_levels, *args):
        seen["s"], seen["t"] = student_levels, teacher_levels
        return hcl_loss(student_levels, teacher_levels, *args)

    monkeypatch.setattr(reviewkd_module, "hcl_loss", spy)
    d.forward_train(b)
    t = d.teacher(b["image"]).features
    assert len(seen["t"]) == len(t.preact) + 1
    for got, want in zip(seen["t"], t.preact):
        assert torch.equal(got, want)
    assert torch.equal(seen["t"][-1], t.pooled[:, :, None, None])
    assert any((x < 0).any() for x in seen["t"][:-1])  # pre-ReLU: negative values are kept


def test_student_features_default_to_pre_relu_for_imagenet_students_and_post_relu_for_cifar_ones():
    assert make(student="resnet18", teacher="resnet34").cfg.student_preact is True
    assert make(student="resnet8x4", teacher="resnet32x4").cfg.student_preact is False
    assert make(student="resnet18", teacher="resnet34", student_preact=False).cfg.student_preact is False


def test_student_inputs_are_post_relu_unless_preact_is_asked_for():
    b = fixed_batch(4)
    for preact in (False, True):
        d = make(student_preact=preact)
        d.train()
        s = d.student(b["image"]).features
        levels = d.student_levels(s)
        for got, want in zip(levels, s.preact if preact else s.stages):
            assert torch.equal(got, want)


def test_default_weight_is_the_official_one_for_the_student():
    assert make(student="resnet8x4", teacher="resnet32x4").cfg.weight == 5.0
    assert make(student="wrn_16_2", teacher="wrn_40_2").cfg.weight == 5.0
    assert make(student="resnet20", teacher="resnet56").cfg.weight == 0.6
    assert make(student="resnet18", teacher="resnet34").cfg.weight == 1.0
    assert make(student="resnet18", teacher="resnet34", weight=2.5).cfg.weight == 2.5


def test_the_review_loss_is_ramped_in_by_the_warmup():
    d = make(warmup_epochs=4, weight=3.0)
    d.train()
    b = fixed_batch(4)
    values = {}
    for epoch in (1, 2, 4, 9):
        d.set_epoch(epoch)
        _, losses = d.forward_train(b)
        values[epoch] = losses["review"].item()
    assert values[1] == pytest.approx(values[4] / 4, rel=1e-5)
    assert values[2] == pytest.approx(values[4] / 2, rel=1e-5)
    assert values[9] == pytest.approx(values[4], rel=1e-5)
    d_plain = make(warmup_epochs=0, weight=1.0)
    d_plain.train()
    _, plain = d_plain.forward_train(b)
    assert values[4] == pytest.approx(3.0 * plain["review"].item(), rel=1e-5)


def test_abfs_are_sized_from_the_real_input_size():
    small = make(student="resnet18", teacher="resnet34", size=32)
    large = make(student="resnet18", teacher="resnet34", size=64)
    assert small.out_sizes == [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    assert large.out_sizes == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert [a.conv2[0].out_channels for a in reversed(large.abfs)] == [64, 128, 256, 512, 512]
    assert large.abfs[0].conv1[0].out_channels == 512  # mid = min(512, student width)


def test_a_batch_of_one_image_trains_with_ce_only():
    d = make()
    d.train()
    logits, losses = d.forward_train(fixed_batch(1))
    assert logits.shape == (1, C) and losses["review"].item() == 0.0 and torch.isfinite(losses["ce"])
