"""Feature-based methods on both model pairs at several real input sizes: connectors are built from
the shapes of the run's input size, the loss is finite and falls, extra modules are trained and
saved but are not part of the student."""

from __future__ import annotations

import pytest
import torch

from rsdistill.config import build_config
from rsdistill.engine.trainer import build_optimizer
from rsdistill.models import build_model

from .conftest import build_distiller, calibrate_teacher, fixed_batch, losses_over_sgd_steps

FEATURE_METHODS = ["fitnet", "at", "rkd", "ofd", "crd", "reviewkd", "cat"]
PAIRS = {"torchvision": ("resnet34", "resnet18", (32, 64, 224, 256)),
         "cifar": ("resnet32x4", "resnet8x4", (32, 64, 256))}
CASES = [(m, pair, size) for m in FEATURE_METHODS for pair, (_, _, sizes) in PAIRS.items() for size in sizes]
C = 4
WITH_EXTRA_MODULES = {"fitnet", "ofd", "crd", "reviewkd"}  # regressor, connectors, heads + banks, ABFs
TRAIN = build_config({})  # the default training settings (all that build_optimizer reads)


def build(name: str, pair: str, size: int):
    teacher, student, _ = PAIRS[pair]
    return build_distiller(name, student=student, teacher=teacher, classes=C, size=size)


@pytest.mark.parametrize(("name", "pair", "size"), CASES)
def test_builds_at_the_real_input_size_and_a_few_steps_lower_the_loss(name, pair, size):
    d = build(name, pair, size)
    # Large inputs cost the most on a CPU: three images at 224/256 px (two would leave a
    # BatchNorm over 1x1 maps, as ReviewKD's pooled level has, nothing but the sign to normalise).
    n = 4 if size <= 64 else 3
    calibrate_teacher(d, size, n=n)
    d.train()
    opt = build_optimizer(d, TRAIN)
    for g in opt.param_groups:
        g["lr"] = 5e-4  # a small step: the gradient must be a descent direction (RKD overshoots at 2e-3)
    batch = fixed_batch(n, size, classes=C)
    with torch.no_grad():
        logits, _ = d.forward_train(batch)
    assert logits.shape == (n, C)
    seen = losses_over_sgd_steps(d, batch, opt, steps=3)
    assert seen[-1] < seen[0], seen


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_extra_modules_are_optimised_and_checkpointed_but_not_in_the_student(name, tmp_path):
    d = build(name, "cifar", 32)
    opt = build_optimizer(d, TRAIN)
    in_opt = {id(p) for grp in opt.param_groups for p in grp["params"]}
    extras = d.extra_modules()
    assert bool(extras) == (name in WITH_EXTRA_MODULES)
    trainable = [p for m in extras.values() for p in m.parameters() if p.requires_grad]
    assert all(id(p) in in_opt for p in trainable)
    assert bool(trainable) == (name in WITH_EXTRA_MODULES)
    # the student is exactly the plain model: nothing of the method was grafted onto it
    student_keys = set(d.student.state_dict())
    assert student_keys == set(build_model(d.student.arch, C).state_dict())
    from rsdistill.engine.checkpoint import read_checkpoint, save_checkpoint
    from rsdistill.engine.checkpoint import model_record

    save_checkpoint(tmp_path / "c.pt", {"model": model_record(d.student, d.info.class_names, 32),
                                        "extras": {k: m.state_dict() for k, m in extras.items()}})
    back = read_checkpoint(tmp_path / "c.pt")
    assert set(back["extras"]) == set(extras)
    assert set(back["model"]["state_dict"]) == student_keys


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_the_feature_term_alone_sends_gradients_to_the_student(name):
    """The descent test above is dominated by CE; this one fails for a detached or constant term."""
    d = build(name, "cifar", 32)
    calibrate_teacher(d, 32, n=4)
    d.train()
    torch.manual_seed(0)
    _, losses = d.forward_train(fixed_batch(4, 32, classes=C))
    feature_terms = [v for k, v in losses.items() if k != "ce"]
    assert feature_terms
    sum(feature_terms).backward()
    grads = [p.grad for p in d.student.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
