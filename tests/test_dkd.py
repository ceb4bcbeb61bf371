"""DKD (Zhao et al. 2022): the decomposition identity, golden values, the weighting, the 2-class guard."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rsdistill.config import build_config
from rsdistill.distillers.dkd import DKD
from rsdistill.distillers.settings import RunContext
from rsdistill.distillers.losses import decoupled_kl_per_sample, softened_kl_per_sample, target_logit
from rsdistill.errors import ConfigError

from .conftest import TINY, build_distiller, fixed_batch, run_cli

C = 6
make = functools.partial(build_distiller, classes=C)
batch = functools.partial(fixed_batch, classes=C, seed=1, random_labels=True)


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_kd_is_tckd_plus_teacher_non_target_mass_times_nckd_on_random_logits(T):
    g = torch.Generator().manual_seed(0)
    zs, zt = 3 * torch.randn(64, 10, generator=g), 3 * torch.randn(64, 10, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    tckd, nckd = decoupled_kl_per_sample(zs, zt, y, T)
    p_gt = target_logit(F.softmax(zt / T, dim=1), y)
    kd = softened_kl_per_sample(zs, zt, T)
    assert torch.allclose(tckd + (1 - p_gt) * nckd, kd, atol=1e-5, rtol=1e-5)
    assert (tckd >= 0).all() and (nckd >= 0).all()


def numpy_dkd(zs, zt, y, T):
    """TCKD and NCKD per sample, written out from the definitions (independent of the code)."""
    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    tckd, nckd = [], []
    for s, t, k in zip(zs / T, zt / T, y):
        ps, pt = softmax(s), softmax(t)
        bs, bt = np.array([ps[k], 1 - ps[k]]), np.array([pt[k], 1 - pt[k]])
        tckd.append((bt * np.log(bt / bs)).sum() * T * T)
        qs, qt = softmax(np.delete(s, k)), softmax(np.delete(t, k))
        nckd.append((qt * np.log(qt / qs)).sum() * T * T)
    return np.array(tckd), np.array(nckd)


def test_tckd_and_nckd_match_values_computed_from_the_definitions():
    zs = np.array([[1.0, 2.0, 0.5, -1.0], [0.0, -1.0, 3.0, 2.0], [4.0, 0.0, 0.0, 1.0]])
    zt = np.array([[2.0, 0.0, 1.0, 0.5], [1.0, 1.0, 1.0, 0.0], [-1.0, 3.0, 0.5, 0.0]])
    y = np.array([0, 2, 1])
    for T in (1.0, 4.0):
        tckd, nckd = decoupled_kl_per_sample(torch.tensor(zs), torch.tensor(zt), torch.tensor(y), T)
        want_t, want_n = numpy_dkd(zs, zt, y, T)
        np.testing.assert_allclose(tckd.numpy(), want_t, rtol=1e-6)
        np.testing.assert_allclose(nckd.numpy(), want_n, rtol=1e-6)


def test_nckd_ignores_the_target_logit_and_tckd_sees_only_the_binary_split():
    g = torch.Generator().manual_seed(3)
    zs, zt = torch.randn(4, C, generator=g, requires_grad=True), torch.randn(4, C, generator=g)
    y = torch.tensor([0, 1, 2, 3])
    _, nckd = decoupled_kl_per_sample(zs, zt, y, 4.0)
    (grad,) = torch.autograd.grad(nckd.sum(), zs)
    assert torch.all(target_logit(grad, y) == 0)  # the target is removed before the softmax
    # permuting the student's non-target logits keeps p_gt, hence TCKD
    zs2 = zs.detach().clone()
    zs2[:, 4], zs2[:, 5] = zs.detach()[:, 5], zs.detach()[:, 4]
    t1, _ = decoupled_kl_per_sample(zs.detach(), zt, y, 4.0)
    t2, _ = decoupled_kl_per_sample(zs2, zt, y, 4.0)
    assert torch.allclose(t1, t2, atol=1e-6)


def test_losses_are_alpha_tckd_and_beta_nckd_ramped_by_the_warmup():
    b = batch()
    d = make("dkd", alpha=0.5, beta=3.0, T=2.0, warmup_epochs=20)
    with torch.no_grad():
        zs, zt = d.student(b["image"]).logits, d.teacher(b["image"]).logits
    tckd, nckd = decoupled_kl_per_sample(zs, zt, b["label"], 2.0)
    for epoch, w in ((1, 1 / 20), (10, 0.5), (40, 1.0)):
        d.set_epoch(epoch)
        _, losses = d.forward_train(b)
        assert set(losses) == {"ce", "tckd", "nckd"}
        assert losses["tckd"].item() == pytest.approx(w * 0.5 * tckd.mean().item(), rel=1e-5)
        assert losses["nckd"].item() == pytest.approx(w * 3.0 * nckd.mean().item(), rel=1e-5)
        assert losses["ce"].item() == pytest.approx(F.cross_entropy(zs, b["label"]).item(), rel=1e-5)


def test_with_alpha_1_and_beta_equal_to_the_non_target_mass_it_would_be_kd():
    """Decoupling check on a single sample: beta = 1 - p_t[gt] recovers the KD value."""
    zs, zt, y = torch.tensor([[0.3, 1.2, -0.5, 2.0]]), torch.tensor([[2.0, 0.1, 0.4, -1.0]]), torch.tensor([0])
    tckd, nckd = decoupled_kl_per_sample(zs, zt, y, 4.0)
    beta = 1 - F.softmax(zt / 4.0, 1)[0, 0]
    assert (tckd + beta * nckd).item() == pytest.approx(softened_kl_per_sample(zs, zt, 4.0).item(), rel=1e-6)


def test_defaults_are_the_cifar_values_with_the_articles_t_and_ce():
    cfg = build_config({"method": {"name": "dkd"}}).method
    assert (cfg.ce_weight, cfg.alpha, cfg.T, cfg.logit_std) == (1.0, 1.0, 4.0, False)
    resolved = DKD.resolve_config(cfg, RunContext("resnet18", "resnet34", 30, epochs=200))
    assert (resolved.beta, resolved.warmup_epochs) == (8.0, 20)


@pytest.mark.parametrize(("teacher", "student", "classes", "beta"), [
    ("resnet56", "resnet20", 100, 2.0), ("wrn_40_2", "wrn_16_2", 100, 6.0),
    ("resnet32x4", "resnet8x4", 100, 8.0), ("resnet34", "resnet18", 1000, 0.5)])
def test_beta_defaults_to_the_papers_value_for_the_pair(teacher, student, classes, beta):
    cfg = build_config({"method": {"name": "dkd"}}).method
    assert DKD.resolve_config(cfg, RunContext(student, teacher, classes, epochs=240)).beta == beta
    explicit = build_config({"method": {"name": "dkd", "beta": 3.0}}).method
    assert DKD.resolve_config(explicit, RunContext(student, teacher, classes, epochs=240)).beta == 3.0


@pytest.mark.parametrize("method", ["dkd", "dkd+ls", "sdd+dkd"])
def test_two_classes_is_a_one_line_error_when_the_method_is_built(method):
    with pytest.raises(ConfigError, match="at least 3 classes") as e:
        make(method, classes=2)
    assert "\n" not in str(e.value)
    make(method, classes=3)  # three classes are fine


def test_two_class_dataset_fails_cleanly_from_the_cli(capsys, tmp_path):
    from rsdistill.synth import generate_dataset

    data = tmp_path / "two"
    generate_dataset(data, classes=2, per_class=6, size=16, seed=0)
    teacher = tmp_path / "teacher"
    code, _, err = run_cli(capsys, "-q", "train", "--data", data, "--model", "resnet20", "--out", teacher,
                           "--set", *TINY)
    assert code == 0, err
    code, _, err = run_cli(capsys, "distill", "--data", data, "--teacher", teacher, "--student", "resnet20",
                           "--method", "dkd", "--out", tmp_path / "dkd", "--set", *TINY)
    assert code != 0
    assert "at least 3 classes" in err and "Traceback" not in err
