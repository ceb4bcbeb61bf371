"""The LS modifier (logit standardisation, Sun et al. 2024) on kd, dkd, mlld and isdm: off it changes
nothing, on it is the softened KL of z-scored logits at the base temperature, invariant to shifting
or positively scaling either model's logits; the shorthands resolve and are listed."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from rsdistill.config import build_config, parse_set

from .conftest import TINY, build_distiller, fixed_batch, run_cli

C = 6
make = functools.partial(build_distiller, classes=C)
batch = functools.partial(fixed_batch, classes=C, seed=1, random_labels=True)


def numpy_kd(zs, zt, T, standardize):
    def z(x):
        return (x - x.mean(-1, keepdims=True)) / x.std(-1, ddof=1, keepdims=True) if standardize else x

    def softmax(x):
        e = np.exp(x / T - (x / T).max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(z(zt)), softmax(z(zs))
    return float((p * np.log(p / q)).sum(-1).mean() * T * T)


def model_logits(d, b):
    with torch.no_grad():
        return d.student(b["image"]).logits.double().numpy(), d.teacher(b["image"]).logits.double().numpy()


def affine_classifier(model, scale: float, shift: float) -> None:
    """logits -> scale * logits + shift, by rewriting the classifier."""
    fc = model.classifier
    with torch.no_grad():
        fc.weight.mul_(scale)
        fc.bias.mul_(scale).add_(shift)


def test_standardisation_off_is_plain_kd_whatever_the_ls_settings():
    b = batch()
    d = make("kd", T=3.0, kd_weight=2.0, ls_T=7.0, ls_weight=100.0)
    zs, zt = model_logits(d, b)
    _, losses = d.forward_train(b)
    assert losses["kd"].item() == pytest.approx(2.0 * numpy_kd(zs, zt, 3.0, False), rel=1e-5)


@pytest.mark.parametrize("method", ["kd", "dkd", "mlld", "isdm"])
def test_the_ls_fields_do_nothing_while_standardisation_is_off(method):
    b = batch(strong=True)
    plain = make(method)
    other = make(method, ls_T=7.0, ls_weight=100.0)
    torch.manual_seed(0)
    _, a = plain.forward_train(b)
    torch.manual_seed(0)
    _, c = other.forward_train(b)
    assert {k: v.item() for k, v in a.items()} == {k: v.item() for k, v in c.items()}


def test_kd_ls_is_the_kl_of_z_scored_logits_at_the_base_temperature_times_its_weight():
    b = batch()
    d = make("kd+ls")
    assert (d.cfg.logit_std, d.cfg.ls_T, d.cfg.ls_weight) == (True, 2.0, 9.0)
    zs, zt = model_logits(d, b)
    _, losses = d.forward_train(b)
    assert losses["kd"].item() == pytest.approx(9.0 * numpy_kd(zs, zt, 2.0, True), rel=1e-5)


def numpy_dkd(zs, zt, y, T):
    """TCKD and NCKD (T^2-scaled, batch means) of z-scored logits, written out independently."""
    def z(x):
        return (x - x.mean(-1, keepdims=True)) / x.std(-1, ddof=1, keepdims=True)

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    zs, zt = z(zs) / T, z(zt) / T
    rows = np.arange(len(y))
    ps, pt = softmax(zs), softmax(zt)
    bs = np.stack([ps[rows, y], 1 - ps[rows, y]], 1)
    bt = np.stack([pt[rows, y], 1 - pt[rows, y]], 1)
    tckd = (bt * np.log(bt / bs)).sum(1).mean() * T * T
    keep = np.ones_like(zs, dtype=bool)
    keep[rows, y] = False
    ns = softmax(zs[keep].reshape(len(y), -1))
    nt = softmax(zt[keep].reshape(len(y), -1))
    nckd = (nt * np.log(nt / ns)).sum(1).mean() * T * T
    return tckd, nckd


def test_dkd_ls_is_dkd_of_z_scored_logits_at_the_base_temperature_times_its_weight():
    b = batch()
    d = make("dkd+ls", ls_T=3.0, ls_weight=5.0)
    zs, zt = model_logits(d, b)
    _, losses = d.forward_train(b)
    tckd, nckd = numpy_dkd(zs, zt, b["label"].numpy(), 3.0)
    assert losses["tckd"].item() == pytest.approx(5.0 * d.cfg.alpha * tckd, rel=1e-4)
    assert losses["nckd"].item() == pytest.approx(5.0 * d.cfg.beta * nckd, rel=1e-4)


def test_mlld_ls_weighs_every_level_by_the_ls_weight_instead_of_the_mlld_weight():
    b = batch(strong=True)
    ref = distill_terms(make("mlld+ls", ls_weight=9.0), b)
    assert distill_terms(make("mlld+ls", ls_weight=9.0, weight=100.0), b) == ref
    third = distill_terms(make("mlld+ls", ls_weight=3.0), b)
    assert third == pytest.approx({k: v / 3 for k, v in ref.items()}, rel=1e-5)
    assert all(v > 0 for v in ref.values())


def distill_terms(d, b):
    torch.manual_seed(0)
    _, losses = d.forward_train(b)
    return {k: v.item() for k, v in losses.items() if k not in ("ce", "er")}


@pytest.mark.parametrize("method", ["kd", "dkd", "isdm"])
@pytest.mark.parametrize("which", ["student", "teacher"])
def test_with_ls_the_loss_ignores_shifts_and_positive_scales_of_either_models_logits(method, which):
    b = batch()
    for logit_std in (True, False):
        ref = distill_terms(make(method, logit_std=logit_std), b)
        d = make(method, logit_std=logit_std)
        affine_classifier(getattr(d, which), 3.0, 5.0)
        moved = distill_terms(d, b)
        if logit_std:
            assert moved == pytest.approx(ref, rel=1e-4, abs=1e-6)
        else:  # without LS the same change moves the loss
            assert any(abs(moved[k] - ref[k]) > 1e-3 * max(1.0, abs(ref[k])) for k in ref)


def test_mlld_ls_ignores_shifts_and_scales_of_the_students_logits_at_every_level():
    b = batch(strong=True)
    ref = distill_terms(make("mlld+ls"), b)
    d = make("mlld+ls")
    affine_classifier(d.student, 0.25, -4.0)
    assert distill_terms(d, b) == pytest.approx(ref, rel=1e-4, abs=1e-6)


def test_isdm_with_ls_but_without_is_and_dm_is_kd_ls():
    b = batch()
    isdm = make("isdm", scaling=False, margin="none", logit_std=True, ls_T=2.5, ls_weight=7.0)
    kd = make("kd+ls", ls_T=2.5, ls_weight=7.0)
    kd.student.load_state_dict(isdm.student.state_dict())
    kd.teacher.load_state_dict(isdm.teacher.state_dict())
    _, li = isdm.forward_train(b)
    _, lk = kd.forward_train(b)
    assert li["align"].item() == pytest.approx(lk["kd"].item(), abs=1e-6)


def test_isdm_ls_applies_is_and_dm_to_the_standardised_logits():
    """Scaler input, margins and alignment all see z-scored logits: the margins equal those that
    plain ISDM computes from standardised teacher logits, at the base temperature."""
    from rsdistill.distillers.losses import standardize_logits

    b = batch()
    d = make("isdm", logit_std=True, margin_source="gap")
    with torch.no_grad():
        zt = d.teacher(b["image"]).logits
    z = standardize_logits(zt)
    assert d.temperature == 2.0
    parts = d.soft_targets(z, b["label"])
    assert torch.allclose(parts["p_t"], torch.softmax(z / 2.0, 1), atol=1e-6)
    m = d.margins(z, b["label"], parts)
    gap = d.difficulty(z, b["label"], parts["p_t"])
    assert torch.allclose(gap, d.difficulty(standardize_logits(3 * zt + 1), b["label"], parts["p_t"]), atol=1e-4)
    assert m.abs().max() < d.cfg.m
    # the coupled margin (the default) is IS's shift at the base temperature: -kappa T a
    coupled = make("isdm", logit_std=True)
    parts = {**coupled.soft_targets(z, b["label"]), "a": torch.linspace(-1, 1, 8)}
    assert torch.allclose(coupled.margins(z, b["label"], parts), -0.5 * 2.0 * torch.linspace(-1, 1, 8))  # kappa 0.5


@pytest.mark.parametrize(("alias", "base"), [("kd+ls", "kd"), ("dkd+ls", "dkd"), ("mlld+ls", "mlld")])
def test_shorthands_resolve_to_the_method_with_standardisation_and_take_overrides(alias, base):
    cfg = build_config(parse_set([f"method.name={alias}", "method.ls_T=3"])).method
    assert (cfg.name, cfg.logit_std, cfg.ls_T) == (base, True, 3.0)
    assert build_config({"method": {"name": base}}).method.logit_std is False


def test_methods_lists_the_shorthands(capsys):
    code, out, _ = run_cli(capsys, "methods")
    assert code == 0
    shorthands = out[out.index("shorthands:"):]
    for alias in ("kd+ls = kd", "dkd+ls = dkd", "mlld+ls = mlld", "sdd+dkd = sdd"):
        assert alias in shorthands
    for name in ("dkd", "mlld", "sdd"):
        assert any(line.startswith(name + " ") for line in out.splitlines())


def test_distill_cli_runs_a_shorthand_end_to_end(capsys, scenes, teacher_run, tmp_path):
    out = tmp_path / "kdls"
    code, _, err = run_cli(capsys, "distill", "--data", scenes, "--teacher", teacher_run, "--student",
                           "resnet20", "--method", "kd+ls", "--out", out, "--set", *TINY, "method.ls_T=3")
    assert code == 0, err
    import yaml

    method = yaml.safe_load((out / "config.yaml").read_text())["method"]
    assert (method["name"], method["logit_std"], method["ls_T"]) == ("kd", True, 3.0)
