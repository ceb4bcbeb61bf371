"""CAT-KD (docs/methods/cat.md): pooled CAMs equal the classifier applied at every position and
then pooled, the loss against hand-computed values, zero when the student's features equal the
teacher's, the optional normalisation, and the default beta per pair."""

from __future__ import annotations

import functools

import pytest
import torch

from rsdistill.distillers.cat import cat_loss, default_beta, pooled_cams
from rsdistill.models import build_model

from .conftest import build_distiller, fixed_batch

C = 4
make = functools.partial(build_distiller, "cat")


def test_pooled_cams_are_the_classifier_at_every_position_then_average_pooled():
    g = torch.Generator().manual_seed(0)
    fmap, weight = torch.randn(3, 6, 8, 8, generator=g), torch.randn(5, 6, generator=g)
    # CAM_c(h, w) = sum_d W[c, d] F_d(h, w), written as a loop over classes, then 2x2 block means
    cam = torch.stack([(weight[c][None, :, None, None] * fmap).sum(1) for c in range(5)], dim=1)
    expected = cam.reshape(3, 5, 2, 4, 2, 4).mean(dim=(3, 5))
    assert torch.allclose(pooled_cams(fmap, weight, 2), expected, atol=1e-5)


def test_cams_come_from_the_models_own_classifier_without_surgery():
    model = build_model("resnet8x4", C).eval()
    x = fixed_batch(4)["image"]
    with torch.no_grad():
        out = model(x)
        cam = pooled_cams(out.features.last_map, out.features.classifier_weight, 1)[:, :, 0, 0]
    # the CAM averaged over all positions is the logit without the bias
    assert torch.allclose(cam + model.classifier.bias, out.logits, atol=1e-5)


def test_loss_on_hand_computed_maps():
    s = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    t = torch.zeros(1, 1, 2, 2)
    assert cat_loss(s, t, normalize=False).item() == pytest.approx(30 / 4)
    t2 = torch.tensor([0.0, 0.0, 0.0, 2.0]).view(1, 1, 2, 2)  # normalised: (0, 0, 0, 1)
    n = 30 ** 0.5
    expected = ((1 / n) ** 2 + (2 / n) ** 2 + (3 / n) ** 2 + (4 / n - 1) ** 2) / 4
    assert cat_loss(s, t2, normalize=True).item() == pytest.approx(expected, rel=1e-6)


def test_normalisation_makes_the_loss_blind_to_the_scale_of_each_map():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 3, 2, 2, generator=g), torch.randn(2, 3, 2, 2, generator=g)
    scale = torch.rand(2, 3, 1, 1, generator=g) * 10 + 0.1
    assert cat_loss(s * scale, t, True).item() == pytest.approx(cat_loss(s, t, True).item(), rel=1e-5)
    assert cat_loss(s * scale, t, False).item() != pytest.approx(cat_loss(s, t, False).item(), rel=1e-3)


@pytest.mark.parametrize("normalize", [False, True])
def test_feature_loss_is_zero_when_the_student_equals_the_teacher(normalize):
    d = make(student="resnet8x4", teacher="resnet8x4", normalize=normalize, beta=15.0)
    d.student.load_state_dict(d.teacher.state_dict())
    d.train()
    d.student.eval()  # the same BN statistics as the (frozen, eval-mode) teacher: identical features
    _, losses = d.forward_train(fixed_batch(4))
    assert losses["cat"].item() == 0.0
    torch.manual_seed(1)
    for p in d.student.parameters():  # and it is not zero for a different student
        p.data.add_(0.05 * torch.randn_like(p))
    _, losses = d.forward_train(fixed_batch(4))
    assert losses["cat"].item() > 0


def test_the_student_classifier_and_backbone_receive_the_cat_gradient():
    d = make(beta=1.0)
    d.train()
    _, losses = d.forward_train(fixed_batch(4))
    losses["cat"].backward()
    assert d.student.classifier.weight.grad.abs().sum() > 0
    assert d.student.net.conv1.weight.grad.abs().sum() > 0
    assert d.student.classifier.bias.grad is None or d.student.classifier.bias.grad.abs().sum() == 0
    assert all(p.grad is None for p in d.teacher.parameters())
    assert d.extra_modules() == {}


def test_default_beta_is_the_papers_value_for_the_pair_scaled_for_cifar_students():
    assert default_beta("resnet34", "resnet18", 45) == 0.5  # ImageNet pair: the RS default
    assert default_beta("resnet34", "resnet18", 21) == 0.5
    assert default_beta("resnet32x4", "resnet8x4", 100) == 15.0  # CIFAR-100 as in the paper
    assert default_beta("resnet32x4", "resnet8x4", 45) == pytest.approx(6.75)
    assert default_beta("resnet32x4", "resnet8x4", 200) == 15.0  # never scaled up
    assert default_beta("resnet56", "resnet20", 100) == 0.7
    assert default_beta("wrn_40_2", "wrn_16_2", 100) == 12.0
    assert default_beta("resnet8x4", "resnet20", 100) == 0.7  # the student's official pair
    assert default_beta("resnet50", "mobilenet_v2", 45) == 0.5  # ImageNet-style family default
    assert make(student="resnet20", teacher="resnet8x4", classes=5).cfg.beta == pytest.approx(0.7 * 5 / 100)
    assert make(student="resnet20", teacher="resnet8x4", beta=2.0).cfg.beta == 2.0
