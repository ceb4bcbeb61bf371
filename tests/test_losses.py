"""Golden values and identities of the shared maths and of KD."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rsdistill.distillers.losses import (
    kl_divergence,
    max_non_target_logit,
    non_target_mask,
    softened_kl,
    standardize_logits,
    target_logit,
    target_mask,
    warmup_factor,
)

from .conftest import build_distiller


def numpy_kd(zs, zt, T):
    def softmax(z):
        e = np.exp(z / T - (z / T).max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(zt), softmax(zs)
    return float((p * (np.log(p) - np.log(q))).sum(-1).mean() * T * T)


def test_softened_kl_matches_a_hand_computed_value():
    zs = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    zt = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    for T in (1.0, 4.0):
        assert softened_kl(zs, zt, T).item() == pytest.approx(numpy_kd(zs.numpy(), zt.numpy(), T), rel=1e-5)
    # the value for T = 4, pinned
    assert softened_kl(zs, zt, 4.0).item() == pytest.approx(GOLDEN_T4, rel=1e-5)


GOLDEN_T4 = 1.1711820150564864  # computed once with numpy_kd; pins the T^2 scaling and reduction


def test_kl_is_zero_for_equal_logits_and_matches_torch():
    z = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    assert softened_kl(z, z, 4.0).abs().item() < 1e-5  # float32 rounding, times T^2 = 16
    zs = torch.randn(6, 10, generator=torch.Generator().manual_seed(1))
    ref = F.kl_div(F.log_softmax(zs / 2, 1), F.softmax(z / 2, 1), reduction="batchmean") * 4
    assert softened_kl(zs, z, 2.0).item() == pytest.approx(ref.item(), rel=1e-5)


def test_kl_treats_zero_probabilities_as_zero_terms():
    p = torch.tensor([[1.0, 0.0]])
    assert torch.isfinite(kl_divergence(p, torch.log(torch.tensor([[0.5, 0.5]])))).all()
    assert kl_divergence(p, torch.log(torch.tensor([[0.5, 0.5]]))).item() == pytest.approx(math.log(2))


def test_target_masks_and_logit_gap_helpers():
    z = torch.tensor([[1.0, 5.0, 3.0], [4.0, 0.0, 2.0]])
    y = torch.tensor([2, 0])
    assert target_mask(z, y).tolist() == [[False, False, True], [True, False, False]]
    assert (non_target_mask(z, y) == ~target_mask(z, y)).all()
    assert target_logit(z, y).tolist() == [3.0, 4.0]
    assert max_non_target_logit(z, y).tolist() == [5.0, 2.0]


def test_standardized_logits_are_invariant_to_shift_and_scale():
    z = torch.randn(4, 9)
    assert torch.allclose(standardize_logits(3 * z + 7), standardize_logits(z), atol=1e-5)
    s = standardize_logits(z)
    assert torch.allclose(s.mean(1), torch.zeros(4), atol=1e-6)


def test_warmup_ramps_linearly_from_the_first_epoch():
    assert [warmup_factor(e, 4) for e in (1, 2, 4, 9)] == [0.25, 0.5, 1.0, 1.0]
    assert warmup_factor(1, 0) == warmup_factor(1, None) == 1.0


_kd = functools.partial(build_distiller, "kd", teacher="resnet20", classes=5)


def test_kd_loss_is_ce_plus_weighted_softened_kl_with_warmup():
    torch.manual_seed(0)
    kd = _kd(warmup_epochs=4)
    batch = {"image": torch.rand(6, 3, 16, 16), "label": torch.randint(0, 5, (6,))}
    kd.set_epoch(2)
    logits, losses = kd.forward_train(batch)
    with torch.no_grad():
        zt = kd.teacher(batch["image"]).logits
    assert set(losses) == {"ce", "kd"}
    assert losses["ce"].item() == pytest.approx(F.cross_entropy(logits, batch["label"]).item(), rel=1e-6)
    assert losses["kd"].item() == pytest.approx(0.5 * 4.0 * softened_kl(logits, zt, 4.0).item(), rel=1e-5)


def test_teacher_is_frozen_and_stays_in_eval_mode():
    kd = _kd()
    kd.train()
    assert not kd.teacher.training and kd.student.training
    assert not any(p.requires_grad for p in kd.teacher.parameters())
    logits, losses = kd.forward_train({"image": torch.rand(4, 3, 16, 16), "label": torch.tensor([0, 1, 2, 3])})
    sum(losses.values()).backward()
    assert all(p.grad is None for p in kd.teacher.parameters())
