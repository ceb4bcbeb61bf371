"""MLLD (Jin et al. 2023): the three alignment levels (golden values, zero for equal logits), the
median confidence masks, the released-code variant, and the two views: the data layer gives
``image_strong`` to MLLD through the real DataModule and trainer, and to no other method."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch

from rsdistill.config import build_config
from rsdistill.data.datamodule import DataModule
from rsdistill.distillers import registry
from rsdistill.distillers.losses import softened_kl_per_sample
from rsdistill.distillers.mlld import batch_level, class_level, confidence_masks, instance_level, median_mask
from rsdistill.engine.trainer import Trainer
from rsdistill.models import build_model

from .conftest import build_distiller, fixed_batch

C = 5
LEVELS = ("instance", "batch", "class")
make = functools.partial(build_distiller, "mlld", classes=C)
batch = functools.partial(fixed_batch, classes=C, seed=1, strong=True, random_labels=True)


def softmax(z, T):
    e = np.exp(z / T - (z / T).max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_levels_match_values_computed_from_their_definitions():
    g = np.random.default_rng(0)
    zs, zt = g.normal(size=(6, 4)) * 2, g.normal(size=(6, 4)) * 2
    mask = np.array([1.0, 0, 1, 1, 0, 1])
    T = 3.0
    ps, pt = softmax(zs, T), softmax(zt, T)
    kl = (pt * np.log(pt / ps)).sum(1) * T * T
    gram = (pt @ pt.T - ps @ ps.T) ** 2
    cls = (pt.T @ pt - ps.T @ ps) ** 2
    s, t, m = torch.tensor(zs), torch.tensor(zt), torch.tensor(mask)
    assert instance_level(s, t, T).item() == pytest.approx(kl.mean(), rel=1e-6)
    assert instance_level(s, t, T, m).item() == pytest.approx((kl * mask).mean(), rel=1e-6)
    assert batch_level(s, t, T).item() == pytest.approx(gram.sum() / 6, rel=1e-6)
    assert batch_level(s, t, T, m).item() == pytest.approx((gram * np.outer(mask, mask)).sum() / 6, rel=1e-6)
    cmask = np.array([0.0, 1, 1, 0])
    assert class_level(s, t, T).item() == pytest.approx(cls.sum() / 4, rel=1e-6)
    assert class_level(s, t, T, torch.tensor(cmask)).item() == pytest.approx(
        (cls * np.outer(cmask, cmask)).sum() / 4, rel=1e-6)


def test_each_level_is_zero_for_equal_logits_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    z = 3 * torch.randn(8, C, generator=g, dtype=torch.float64)
    other = 3 * torch.randn(8, C, generator=g, dtype=torch.float64)
    m, k = confidence_masks(z, "below_median")
    for T in (2.0, 4.0, 6.0):
        for fn, mask in ((instance_level, m), (batch_level, m), (class_level, k)):
            assert fn(z, z, T).item() == pytest.approx(0.0, abs=1e-12)
            assert fn(z, z, T, mask).item() == pytest.approx(0.0, abs=1e-12)
            assert fn(other, z, T).item() > 1e-6


@pytest.mark.parametrize("over", [{}, {"as_released": True}, {"logit_std": True}, {"confidence_mask": "none"}])
def test_every_term_is_zero_when_the_student_is_the_teacher(over):
    d = make(student="resnet8x4", **over)
    d.student.load_state_dict(d.teacher.state_dict())
    d.eval()  # the student's BN uses the same running statistics as the teacher's
    _, losses = d.forward_train(batch())
    for level in LEVELS:  # float32 rounding only (a different student gives > 1e-2)
        assert losses[level].item() == pytest.approx(0.0, abs=1e-4), level
    assert losses["ce"].item() > 0
    d.student.classifier.bias.data += torch.linspace(-1, 1, C)
    _, moved = d.forward_train(batch())
    assert all(moved[level].item() > 1e-4 for level in LEVELS)


def test_median_masks_keep_the_low_confidence_half_as_the_released_code():
    values = torch.tensor([0.9, 0.2, 0.5, 0.7, 0.1, 0.4])  # median 0.45 (numpy's 50th percentile)
    assert median_mask(values, "below_median").tolist() == [0, 1, 0, 0, 1, 1]
    assert median_mask(values, "above_median").tolist() == [1, 0, 1, 1, 0, 0]
    assert median_mask(values, "none") is None
    odd = torch.tensor([3.0, 1.0, 2.0])
    assert median_mask(odd, "below_median").tolist() == [0, 1, 1]
    assert float(torch.quantile(values, 0.5)) == pytest.approx(np.percentile(values.numpy(), 50))

    z = torch.tensor([[4.0, 0, 0], [0.1, 0, 0], [0, 3.0, 0], [0, 0, 0.2]])
    sample, cls = confidence_masks(z, "below_median")
    p = torch.softmax(z, 1)
    conf = p.max(1).values  # 0.96, 0.37, 0.91, 0.38: the two least confident samples are kept
    assert sample.tolist() == [0, 1, 0, 1]
    assert torch.equal(sample.bool(), conf <= torch.quantile(conf, 0.5))
    assert torch.equal(cls.bool(), p.sum(0) <= torch.quantile(p.sum(0), 0.5))


def test_terms_sum_over_views_and_temperatures_with_the_masks_on_the_weak_view():
    b = batch()
    d = make(T=4.0, extra_T=[3.0, 5.0], weight=1.0)
    assert d.temperatures() == [4.0, 3.0, 5.0]
    with torch.no_grad():
        sw, ss = d.student(b["image"]).logits, d.student(b["image_strong"]).logits
        tw, ts = d.teacher(b["image"]).logits, d.teacher(b["image_strong"]).logits
    m, k = confidence_masks(tw, "below_median")
    ins = sum(instance_level(sw, tw, T, m) + instance_level(ss, ts, T) for T in (4.0, 3.0, 5.0))
    bat = sum(batch_level(sw, tw, T, m) + batch_level(ss, ts, T, m) for T in (4.0, 3.0, 5.0))
    cls = sum(class_level(sw, tw, T, k) + class_level(ss, ts, T) for T in (4.0, 3.0, 5.0))
    logits, losses = d.forward_train(b)
    assert torch.allclose(logits, sw, atol=1e-5)  # the weak view's logits are the training prediction
    assert losses["instance"].item() == pytest.approx(ins.item(), rel=1e-5)
    assert losses["batch"].item() == pytest.approx(bat.item(), rel=1e-5)
    assert losses["class"].item() == pytest.approx(cls.item(), rel=1e-5)
    ce = torch.nn.functional.cross_entropy
    assert losses["ce"].item() == pytest.approx((ce(sw, b["label"]) + ce(ss, b["label"])).item(), rel=1e-5)


def test_as_released_reduces_the_masks_to_constants_and_drops_the_strong_correlations():
    b = batch()
    d = make(T=4.0, extra_T=[3.0, 5.0, 2.0, 6.0], weight=1.0, as_released=True)
    with torch.no_grad():
        sw, ss = d.student(b["image"]).logits, d.student(b["image_strong"]).logits
        tw, ts = d.teacher(b["image"]).logits, d.teacher(b["image_strong"]).logits
    m, k = confidence_masks(tw, "below_median")
    temps = [4.0, 3.0, 5.0, 2.0, 6.0]
    ins = sum(m.mean() * softened_kl_per_sample(sw, tw, T).mean() for T in temps)
    ins += sum(softened_kl_per_sample(ss, ts, T).mean() for T in temps[:3])
    ins += sum(softened_kl_per_sample(sw, tw, T).mean() for T in temps[3:])  # the released copy-paste
    bat = sum(m.mean() * batch_level(sw, tw, T) for T in temps)
    cls = sum(k.mean() * class_level(sw, tw, T) for T in temps)
    _, losses = d.forward_train(b)
    assert losses["instance"].item() == pytest.approx(ins.item(), rel=1e-5)
    assert losses["batch"].item() == pytest.approx(bat.item(), rel=1e-5)
    assert losses["class"].item() == pytest.approx(cls.item(), rel=1e-5)

    # the strong view no longer reaches the correlation levels; in the paper's form it does
    noisy = dict(b, image_strong=torch.rand_like(b["image_strong"]))
    for as_released in (True, False):
        d = make(as_released=as_released)
        _, a = d.forward_train(b)
        _, c = d.forward_train(noisy)
        same = all(a[k].item() == pytest.approx(c[k].item(), rel=1e-6) for k in ("batch", "class"))
        assert same == as_released


def test_defaults_and_temperatures_with_ls():
    cfg = build_config({"method": {"name": "mlld"}}).method
    assert (cfg.ce_weight, cfg.weight, cfg.T, cfg.extra_T) == (1.0, 0.5, 4.0, [3.0, 5.0, 2.0, 6.0])
    assert (cfg.confidence_mask, cfg.as_released, cfg.logit_std) == ("below_median", False, False)
    assert make().temperatures() == [4.0, 3.0, 5.0, 2.0, 6.0]
    assert build_distiller("mlld+ls", classes=C).temperatures() == [2.0, 3.0, 5.0, 2.0, 6.0]
    from rsdistill.errors import ConfigError

    with pytest.raises(ConfigError, match="method.extra_T"):
        build_config({"method": {"name": "mlld", "extra_T": [2.0, -1.0]}})


# ---------------------------------------------------------------------- two views from the data layer
def tiny_run_config(scenes, method: str):
    return build_config({"data": {"root": str(scenes), "image_size": 16},
                         "method": {"name": method, "warmup_epochs": 0},
                         "train": {"epochs": 1, "batch_size": 16, "progress": False}}).resolve()


def test_the_two_view_batch_reaches_mlld_through_the_datamodule_and_the_trainer(scenes, tmp_path):
    seen: dict[str, list[set[str]]] = {}
    for method in ("mlld", "kd"):
        cfg = tiny_run_config(scenes, method)
        cls = registry.get(method)
        data = DataModule(cfg.data, cfg.seed, needs=cls.needs)
        torch.manual_seed(0)
        d = cls(build_model("resnet20", data.info.num_classes), build_model("resnet8x4", data.info.num_classes),
                cfg.method, data.info)
        trainer = Trainer(cfg, d, data, tmp_path / method, torch.device("cpu"))
        seen[method] = []
        original = d.forward_train

        def spy(b, original=original, record=seen[method]):
            record.append(set(b))
            if "image_strong" in b:
                assert b["image_strong"].shape == b["image"].shape
                assert b["image_strong"].dtype == torch.float32
                assert not torch.equal(b["image_strong"], b["image"])  # a different, stronger view
            return original(b)

        d.forward_train = spy
        out = trainer.train_epoch(1)
        assert np.isfinite(out["train/loss"])
    assert seen["mlld"] and all("image_strong" in keys for keys in seen["mlld"])
    assert seen["kd"] and all("image_strong" not in keys for keys in seen["kd"])


def test_only_mlld_asks_for_two_views_and_no_other_method_gets_them(scenes):
    two_view = {n for n in registry.names(include_internal=True) if "two_views" in registry.get(n).needs}
    assert two_view == {"mlld"}
    cfg = tiny_run_config(scenes, "kd")
    for name in registry.names(include_internal=True):
        needs = registry.get(name).needs
        data = DataModule(cfg.data, cfg.seed, needs=needs)
        first = next(iter(data.train_loader(8, epoch_seed=0)))
        assert ("image_strong" in first) == (name == "mlld"), name
        assert {"image", "label", "index"} <= set(first)


def test_a_copy_of_the_teacher_as_student_takes_no_distillation_gradient():
    d = make(student="resnet8x4")
    d.student.load_state_dict(copy.deepcopy(d.teacher.state_dict()))
    d.eval()
    _, losses = d.forward_train(batch())
    sum(losses[level] for level in LEVELS).backward()
    grads = [p.grad.abs().max().item() for p in d.student.parameters() if p.grad is not None]
    assert grads and max(grads) < 1e-5
