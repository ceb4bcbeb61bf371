"""Every registered method honours the Distiller contract (parametrised over the registry, so a
new method is covered by adding its file)."""

from __future__ import annotations

import json

import pytest
import torch

from rsdistill.config import build_config
from rsdistill.distillers import registry
from rsdistill.engine.checkpoint import model_record, read_checkpoint, save_checkpoint
from rsdistill.engine.trainer import build_optimizer
from rsdistill.models import build_model

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


@pytest.mark.parametrize("name", [m for m in METHODS if registry.get(m).requires_teacher])
def test_the_teacher_runs_before_the_student(name):
    """While the teacher's forward runs, the student's activations saved for the backward pass are
    not yet alive: at 224 px on the CPU this made a KD step 8 % faster (benchmarks/run.py)."""
    d = make(name)
    d.train()
    calls = []
    for who, model in (("teacher", d.teacher), ("student", d.student)):
        for module in model.modules():
            module.register_forward_pre_hook(lambda *_, who=who: calls.append(who))
    d.forward_train(batch_for(d))
    assert "teacher" in calls and "student" in calls
    assert calls.index("teacher") < calls.index("student")


# Methods that use the teacher's features build connectors from the shapes at the run's real input
# size: they are also built and trained on the torchvision pair at 32-256 px.
FEATURE_SIZES = {"torchvision": ("resnet34", "resnet18", (32, 64, 224, 256)), "cifar": ("resnet32x4", "resnet8x4", (32, 64, 256))}
DESCENT_CASES = [(m, "cifar16", 16) for m in METHODS] + [
    pytest.param(m, pair, size, marks=[pytest.mark.slow] if size > 64 else [])
    for m in METHODS if "features" in registry.get(m).teacher_outputs
    for pair, (_, _, sizes) in FEATURE_SIZES.items() for size in sizes]
WITH_EXTRA_MODULES = {"fitnet", "ofd", "crd", "reviewkd", "isdm"}  # regressor, connectors, heads, ABFs, scaler


def build_for(name: str, pair: str, size: int):
    if pair == "cifar16":
        return make(name)
    teacher, student, _ = FEATURE_SIZES[pair]
    return build_distiller(name, student=student, teacher=teacher, classes=C, size=size)


@pytest.mark.parametrize(("name", "pair", "size"), DESCENT_CASES)
def test_a_few_sgd_steps_lower_the_loss_on_a_fixed_batch(name, pair, size):
    d = build_for(name, pair, size)
    # Large inputs cost the most on a CPU: three images at 224/256 px (two would leave a
    # BatchNorm over 1x1 maps, as ReviewKD's pooled level has, nothing but the sign to normalise).
    n = 16 if pair == "cifar16" else 4 if size <= 64 else 3
    calibrate_teacher(d, size, n=min(n, 8))
    d.train()
    params = [p for grp in [{"params": list(d.student.parameters())}, *d.extra_param_groups(0.0)] for p in grp["params"]]
    # A small step: the test is that the gradient is a descent direction of the method's loss
    # (CRD's NCE at temperature 0.07 is far from smooth at larger steps, RKD overshoots at 2e-3
    # on the large pair).
    opt = torch.optim.SGD(params, lr=0.002 if pair == "cifar16" else 5e-4, momentum=0.9)
    batch = batch_for(d) if pair == "cifar16" else fixed_batch(n, size, classes=C)
    with torch.no_grad():
        logits, _ = d.forward_train(batch)
    assert logits.shape == (n, C)
    seen = losses_over_sgd_steps(d, batch, opt, steps=6 if pair == "cifar16" else 3)
    assert seen[-1] < seen[0], seen


@pytest.mark.parametrize("name", METHODS)
def test_extra_modules_are_trained_and_saved_but_are_not_part_of_the_student(name, tmp_path):
    d = make(name)
    cfg = build_config({"method": {"name": name}})
    opt = build_optimizer(d, cfg)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    extras = d.extra_modules()
    trainable = [p for m in extras.values() for p in m.parameters() if p.requires_grad]
    assert bool(trainable) == (name in WITH_EXTRA_MODULES)
    assert all(id(p) in in_opt for p in trainable)
    assert all(id(p) in in_opt for p in d.student.parameters())
    assert not any(id(p) in in_opt for p in d.teacher.parameters())
    student_ids = {id(p) for p in d.student.parameters()}
    assert not any(id(p) in student_ids for p in trainable)
    # the student is exactly the plain model: nothing of the method was grafted onto it
    student_keys = set(d.student.state_dict())
    assert student_keys == set(build_model(d.student.arch, C).state_dict())
    save_checkpoint(tmp_path / "c.pt", {"model": model_record(d.student, d.info.class_names, 16),
                                        "extras": {k: m.state_dict() for k, m in extras.items()}})
    back = read_checkpoint(tmp_path / "c.pt")
    assert set(back["extras"]) == set(extras)
    assert set(back["model"]["state_dict"]) == student_keys


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
