"""Every registered method honours the Distiller contract (parametrised over the registry, so a
new method is covered by adding its file)."""

from __future__ import annotations

import json

import pytest
import torch

from rsdistill.config import build_config
from rsdistill.distillers import registry
from rsdistill.engine.trainer import build_optimizer

from .conftest import TINY, build_distiller, calibrate_teacher, fixed_batch, losses_over_sgd_steps, run_cli

METHODS = registry.names()
C = 5


def make(name: str):
    """The method on the CIFAR pair, over a training split of 16 images (a batch of all of them)."""
    return build_distiller(name, classes=C, train_labels=torch.arange(16) % C)


def batch_for(d):
    """Every training image once, with a second view for the methods that need two."""
    return fixed_batch(16, classes=C, strong="two_views" in d.needs)


@pytest.mark.parametrize("name", METHODS)
def test_forward_train_returns_logits_and_finite_named_losses(name):
    d = make(name)
    d.train()
    b = batch_for(d)
    logits, losses = d.forward_train(b)
    assert logits.shape == (16, C)
    assert losses and all(isinstance(k, str) for k in losses)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("name", METHODS)
def test_a_few_sgd_steps_lower_the_loss_on_a_fixed_batch(name):
    d = make(name)
    calibrate_teacher(d, 16)
    d.train()
    params = [p for grp in [{"params": list(d.student.parameters())}, *d.extra_param_groups(0.0)] for p in grp["params"]]
    # A small step: the test is that the gradient is a descent direction of the method's loss
    # (CRD's NCE at temperature 0.07 is far from smooth at larger steps).
    opt = torch.optim.SGD(params, lr=0.002, momentum=0.9)
    seen = losses_over_sgd_steps(d, batch_for(d), opt, steps=6)
    assert seen[-1] < seen[0], seen


@pytest.mark.parametrize("name", METHODS)
def test_extra_modules_are_trained_but_are_not_part_of_the_student(name):
    d = make(name)
    cfg = build_config({"method": {"name": name}})
    opt = build_optimizer(d, cfg)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    extras = [p for m in d.extra_modules().values() for p in m.parameters() if p.requires_grad]
    assert all(id(p) in in_opt for p in extras)
    assert all(id(p) in in_opt for p in d.student.parameters())
    assert not any(id(p) in in_opt for p in d.teacher.parameters())
    student_ids = {id(p) for p in d.student.parameters()}
    assert not any(id(p) in student_ids for p in extras)


@pytest.mark.parametrize("name", METHODS)
def test_hyper_parameters_are_overridable_with_set(name):
    cls = registry.get(name)
    numeric = [k for k, f in cls.Config.model_fields.items() if f.annotation in (float,) and k != "name"]
    if not numeric:
        pytest.skip("no float hyper-parameter")
    key = numeric[0]
    default = getattr(cls.Config(name=name), key)
    from rsdistill.config import parse_set

    cfg = build_config(parse_set([f"method.name={name}", f"method.{key}={default + 0.5}"]))
    assert getattr(cfg.method, key) == default + 0.5


@pytest.mark.parametrize("name", METHODS)
def test_distill_cli_runs_the_method_end_to_end(capsys, scenes, teacher_run, tmp_path, name):
    out = tmp_path / name
    code, _, err = run_cli(capsys, "distill", "--data", scenes, "--teacher", teacher_run, "--student",
                           "resnet20", "--method", name, "--out", out, "--set", *TINY)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == name and "teacher" in metrics
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert all(k.startswith(("net.", "input_")) for k in ckpt["model"]["state_dict"])
    assert set(ckpt["extras"]) == set(make(name).extra_modules())
    code, out_text, err = run_cli(capsys, "eval", "--data", scenes, "--checkpoint", out)
    assert code == 0, err
