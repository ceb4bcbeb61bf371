"""SDD (Wei et al. 2024): M = [1] is KD (DKD for sdd+dkd), the regions are the classifier on
adaptively pooled cells of the last map (1 + 4 + 16 for [1, 2, 4]) for torchvision and CIFAR models
at any input size, and regions whose teacher correctness disagrees with the global one weigh 2."""

from __future__ import annotations

import functools

import pytest
import torch

from rsdistill.config import build_config
from rsdistill.distillers.losses import softened_kl_per_sample
from rsdistill.distillers.sdd import region_logits, region_mismatch
from rsdistill.errors import ConfigError
from rsdistill.models import build_model

from .conftest import build_distiller, fixed_batch

C = 5
make = functools.partial(build_distiller, classes=C)
batch = functools.partial(fixed_batch, classes=C, seed=1, random_labels=True)


def same_weights(a, b):
    b.student.load_state_dict(a.student.state_dict())
    b.teacher.load_state_dict(a.teacher.state_dict())


def test_sdd_with_the_global_scale_only_is_kd():
    b = batch()
    sdd = make("sdd", scales=[1], T=3.0, kd_weight=2.5, ce_weight=0.7)
    kd = make("kd", T=3.0, kd_weight=2.5, ce_weight=0.7)
    same_weights(sdd, kd)
    _, ls = sdd.forward_train(b)
    _, lk = kd.forward_train(b)
    assert ls["sdd"].item() == pytest.approx(lk["kd"].item(), abs=1e-6)
    assert ls["ce"].item() == pytest.approx(lk["ce"].item(), abs=1e-6)


def test_sdd_dkd_with_the_global_scale_only_is_dkd():
    b = batch()
    sdd = make("sdd+dkd", scales=[1], T=2.0, alpha=0.5, beta=3.0)
    dkd = make("dkd", T=2.0, alpha=0.5, beta=3.0)
    same_weights(sdd, dkd)
    _, ls = sdd.forward_train(b)
    _, ld = dkd.forward_train(b)
    assert ls["sdd"].item() == pytest.approx(ld["tckd"].item() + ld["nckd"].item(), abs=1e-6)


@pytest.mark.parametrize(("arch", "sizes"), [("resnet18", (32, 64, 96)), ("resnet20", (8, 16, 24)),
                                             ("wrn_16_2", (16,)), ("mobilenet_v2", (32,))])
def test_region_count_and_values_for_torchvision_and_cifar_models_at_any_size(arch, sizes):
    torch.manual_seed(0)
    model = build_model(arch, C).eval()
    for size in sizes:
        with torch.no_grad():
            out = model(torch.rand(2, 3, size, size))
            fmap = out.features.last_map
            regions = region_logits(fmap, model.classifier, [1, 2, 4])
            assert regions.shape == (2, 1 + 4 + 16, C)
            assert region_logits(fmap, model.classifier, [1, 2]).shape == (2, 5, C)
            # the scale-1 region is the model's global prediction
            assert torch.allclose(regions[:, 0], out.logits, atol=1e-5)
            # a scale larger than the map still works: each region is a (repeated) map cell
            h, w = fmap.shape[-2:]
            if h == w == 1:
                assert torch.allclose(regions, out.logits[:, None].expand_as(regions), atol=1e-5)


def test_regions_are_the_classifier_on_the_mean_of_each_cell_row_major():
    fmap = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    head = torch.nn.Linear(3, C)
    regions = region_logits(fmap, head, [1, 2])
    assert torch.allclose(regions[:, 0], head(fmap.mean(dim=(2, 3))), atol=1e-4)
    cells = [fmap[:, :, :2, :2], fmap[:, :, :2, 2:], fmap[:, :, 2:, :2], fmap[:, :, 2:, 2:]]
    for r, cell in enumerate(cells, start=1):
        assert torch.allclose(regions[:, r], head(cell.mean(dim=(2, 3))), atol=1e-4)
    glob = torch.randn(2, C)
    assert torch.equal(region_logits(fmap, head, [1, 2], glob)[:, 0], glob)


def test_regions_whose_teacher_correctness_differs_from_the_global_one_weigh_two():
    labels = torch.tensor([0, 1])
    teacher_global = torch.tensor([[5.0, 0, 0], [5.0, 0, 0]])  # sample 0 right, sample 1 wrong
    regions = torch.tensor([
        [[5.0, 0, 0], [0, 5.0, 0], [5.0, 0, 0]],   # right / wrong / right
        [[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]],   # wrong / right / wrong
    ])
    mismatch = region_mismatch(regions, teacher_global, labels)
    assert mismatch.tolist() == [[False, True, False], [False, True, False]]

    d = make("sdd", mismatch_weight=2.0)
    zs = torch.randn(2, 3, 3)
    per_region = d.region_loss(zs, regions, labels)
    expected = softened_kl_per_sample(zs.reshape(6, 3), regions.reshape(6, 3), 4.0).view(2, 3) * 4.0
    assert torch.allclose(per_region, expected, atol=1e-6)


def test_the_loss_is_the_weighted_mean_over_samples_and_regions():
    b = batch()
    d = make("sdd", mismatch_weight=3.0)
    with torch.no_grad():
        s, t = d.student(b["image"]), d.teacher(b["image"])
        zs = region_logits(s.features.last_map, d.student.classifier, [1, 2, 4], s.logits)
        zt = region_logits(t.features.last_map, d.teacher.classifier, [1, 2, 4], t.logits)
    w = 1 + 2.0 * region_mismatch(zt, t.logits, b["label"]).float()
    kl = softened_kl_per_sample(zs.reshape(-1, C), zt.reshape(-1, C), 4.0).view(8, 21)
    _, losses = d.forward_train(b)
    assert losses["sdd"].item() == pytest.approx((4.0 * w * kl).mean().item(), rel=1e-5)


@pytest.mark.parametrize(("teacher", "student", "size"), [("resnet34", "resnet18", 32), ("resnet34", "resnet18", 64),
                                                          ("resnet8x4", "resnet20", 24)])
@pytest.mark.parametrize("method", ["sdd", "sdd+dkd"])
def test_trains_on_both_model_families_and_reaches_the_students_classifier(teacher, student, size, method):
    d = make(method, student=student, teacher=teacher, size=size)
    d.train()
    _, losses = d.forward_train(batch(4, size))
    assert torch.isfinite(losses["sdd"]) and losses["sdd"] > 0
    losses["sdd"].backward()
    assert d.student.classifier.weight.grad.abs().sum() > 0


def test_scales_are_validated_and_overridable():
    assert build_config({"method": {"name": "sdd", "scales": [1, 2]}}).method.scales == [1, 2]
    assert build_config({"method": {"name": "sdd+dkd"}}).method.base == "dkd"
    for bad in ([], [1, 1], [0, 2]):
        with pytest.raises(ConfigError, match="method.scales"):
            build_config({"method": {"name": "sdd", "scales": bad}})
