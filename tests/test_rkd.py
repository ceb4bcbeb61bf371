"""RKD: golden relations, equality with the authors' (unbounded) formulation, invariances (zero
loss for equal or similar embeddings), and the angle term's bounded memory on a large batch."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._pytree import tree_flatten
from torch.utils._python_dispatch import TorchDispatchMode

from rsdistill.distillers.rkd import (
    normalized_distances,
    rkd_angle_loss,
    rkd_distance_loss,
)

from .conftest import build_distiller, fixed_batch

make = functools.partial(build_distiller, "rkd")


def reference_rkd(stu, tea, squared=False, eps=1e-12):
    """The authors' code (lenscloth/RKD, as in mdistiller): N x N x D differences, N^3 angles."""
    def pdist(e):
        e_square = e.pow(2).sum(dim=1)
        res = (e_square.unsqueeze(1) + e_square.unsqueeze(0) - 2 * e @ e.t()).clamp(min=eps)
        res = (res if squared else res.sqrt()).clone()
        res[range(len(e)), range(len(e))] = 0
        return res

    with torch.no_grad():
        t_d = pdist(tea)
        t_d = t_d / t_d[t_d > 0].mean()
    d = pdist(stu)
    d = d / d[d > 0].mean()
    loss_d = F.smooth_l1_loss(d, t_d)
    with torch.no_grad():
        td = F.normalize(tea.unsqueeze(0) - tea.unsqueeze(1), p=2, dim=2)
        t_angle = torch.bmm(td, td.transpose(1, 2)).view(-1)
    sd = F.normalize(stu.unsqueeze(0) - stu.unsqueeze(1), p=2, dim=2)
    s_angle = torch.bmm(sd, sd.transpose(1, 2)).view(-1)
    return loss_d, F.smooth_l1_loss(s_angle, t_angle)


def smooth_l1(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def test_golden_values_right_triangle_against_equilateral_triangle():
    s = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # right angle at point 0
    t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])  # all sides 1, all angles 60
    # Distances: student sides 1, 1, sqrt 2 over their mean (2 + sqrt 2) / 3; teacher all 1.
    mu = (2 + math.sqrt(2)) / 3
    dist = (4 * smooth_l1(1 / mu - 1) + 2 * smooth_l1(math.sqrt(2) / mu - 1)) / 9
    assert rkd_distance_loss(s, t).item() == pytest.approx(dist, rel=1e-5)
    # Angles: cos 90 = 0 at point 0 and cos 45 at points 1 and 2 against cos 60 = 0.5; each appears
    # twice (j, k and k, j); j = k entries are 1 for both, j = i or k = i entries 0 for both.
    ang = 2 * (smooth_l1(0 - 0.5) + 2 * smooth_l1(1 / math.sqrt(2) - 0.5)) / 27
    assert rkd_angle_loss(s, t).item() == pytest.approx(ang, rel=1e-5)


@pytest.mark.parametrize("squared", [False, True])
def test_equal_to_the_authors_formulation_in_value_and_gradient_blocked_or_not(squared):
    g = torch.Generator().manual_seed(0)
    n = 13
    s0 = torch.randn(n, 24, generator=g, dtype=torch.float64) + 2.0
    t = (torch.randn(n, 40, generator=g, dtype=torch.float64) * 3).relu()
    ref_s = s0.clone().requires_grad_()
    rd, ra = reference_rkd(ref_s, t, squared)
    (25 * rd + 50 * ra).backward()
    for block in (10**9, n * 40 * 3, 1):  # one block; blocks of 3 anchors (checkpointed); 1 anchor
        s = s0.clone().requires_grad_()
        md, ma = rkd_distance_loss(s, t, squared), rkd_angle_loss(s, t, block_elements=block)
        assert md.item() == pytest.approx(rd.item(), rel=1e-10, abs=1e-14)
        assert ma.item() == pytest.approx(ra.item(), rel=1e-10, abs=1e-14)
        (25 * md + 50 * ma).backward()
        assert torch.allclose(s.grad, ref_s.grad, rtol=1e-8, atol=1e-14)


def test_relations_are_zero_for_equal_embeddings_and_invariant_to_similarity_transforms():
    g = torch.Generator().manual_seed(1)
    t = torch.randn(16, 8, generator=g).relu() + 0.1 * torch.randn(16, 8, generator=g)
    assert rkd_distance_loss(t, t).item() == 0.0
    assert rkd_angle_loss(t, t).item() == 0.0
    # A wider student holding a scaled, rotated, shifted copy of the teacher's embedding.
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g))
    s = 3.0 * torch.cat([t, torch.zeros(16, 4)], 1) @ q + 5.0
    assert rkd_distance_loss(s, t).item() == pytest.approx(0.0, abs=1e-6)
    assert rkd_angle_loss(s, t).item() == pytest.approx(0.0, abs=1e-6)
    assert rkd_angle_loss(s + torch.randn(16, 12, generator=g), t) > 1e-3
    d = normalized_distances(t)
    assert d.diagonal().abs().max() == 0 and d.sum().item() == pytest.approx(16 * 15, rel=1e-5)


class LargestTensor(TorchDispatchMode):
    """The largest tensor (in elements) produced by any operation, forward or backward."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in tree_flatten(out)[0]:
            if isinstance(o, torch.Tensor):
                self.largest = max(self.largest, o.numel())
        return out


def test_angle_memory_is_bounded_on_a_large_batch():
    n, d, block = 128, 256, 1 << 18
    g = torch.Generator().manual_seed(2)
    s0, t = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    # The authors' form holds N x N x D = 4.2 M-element differences and N^3 = 2.1 M angles.
    s = s0.clone().requires_grad_()
    saved: dict[int, int] = {}  # storage -> bytes that autograd keeps between the passes

    def pack(x):
        saved[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
        return x

    mode = LargestTensor()
    with mode, torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        loss = rkd_angle_loss(s, t, block_elements=block)
        loss.backward()
    assert mode.largest <= block  # no tensor above one block, in the forward or the backward pass
    assert sum(saved.values()) <= 2 * n * d * 4  # the two embeddings only (float32)
    unbounded = s0.clone().requires_grad_()
    full = rkd_angle_loss(unbounded, t, block_elements=10**12)
    full.backward()
    assert loss.item() == pytest.approx(full.item(), rel=1e-5)
    assert torch.allclose(s.grad, unbounded.grad, rtol=1e-4, atol=1e-9)
    # The measure itself sees the unbounded form's N x N x D tensor.
    with LargestTensor() as m:
        rkd_angle_loss(s0, t, block_elements=10**12)
    assert m.largest >= n * n * d


def test_distiller_losses_weights_and_tiny_batches():
    d = make(distance_weight=2.0, angle_weight=3.0)
    d.train()
    batch = fixed_batch(6, seed=3)
    logits, losses = d.forward_train(batch)
    assert set(losses) == {"ce", "distance", "angle"}
    s = d.student(batch["image"]).features.pooled  # BN batch statistics: same batch, same output
    t = d.teacher_forward(batch["image"]).features.pooled
    assert losses["distance"].item() == pytest.approx(2.0 * rkd_distance_loss(s, t).item(), rel=1e-5)
    assert losses["angle"].item() == pytest.approx(3.0 * rkd_angle_loss(s, t).item(), rel=1e-5)
    d.eval()  # a batch of one has no relation: zero, not NaN
    _, one = d.forward_train({"image": batch["image"][:1], "label": batch["label"][:1]})
    assert one["distance"].item() == 0.0 and one["angle"].item() == 0.0
    sum(one.values()).backward()


def test_runs_under_autocast():
    d = make()
    d.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, losses = d.forward_train(fixed_batch(4, seed=4))
    assert losses["angle"].dtype == torch.float32 and torch.isfinite(losses["angle"])
    sum(losses.values()).backward()
