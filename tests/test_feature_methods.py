"""Feature-based methods: the feature term itself reaches the student. (That their connectors are
built at the run's real input size, on both model pairs, and that their extra modules are trained
and saved but are not part of the student, is in the contract tests of every method.)"""

from __future__ import annotations

import pytest
import torch

from rsdistill.distillers import registry

from .conftest import build_distiller, calibrate_teacher, fixed_batch


def test_the_methods_that_read_teacher_features_are_the_feature_baselines_and_sdd():
    # SDD is logit-based but its regional logits come from the teacher's last feature map
    assert sorted(FEATURE_METHODS) == ["at", "cat", "crd", "fitnet", "ofd", "reviewkd", "rkd", "sdd"]

FEATURE_METHODS = [n for n in registry.names() if "features" in registry.get(n).teacher_outputs]
C = 4


def build(name: str, size: int):
    return build_distiller(name, student="resnet8x4", teacher="resnet32x4", classes=C, size=size)


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_the_feature_term_alone_sends_gradients_to_the_student(name):
    """The descent test above is dominated by CE; this one fails for a detached or constant term."""
    d = build(name, 32)
    calibrate_teacher(d, 32, n=4)
    d.train()
    torch.manual_seed(0)
    _, losses = d.forward_train(fixed_batch(4, 32, classes=C))
    feature_terms = [v for k, v in losses.items() if k != "ce"]
    assert feature_terms
    sum(feature_terms).backward()
    grads = [p.grad for p in d.student.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
