"""ISDM as docs/isdm.md states it: identities, the behaviour of L_ER and of the margins."""

from __future__ import annotations

import functools
import json

import pytest
import torch
import torch.nn.functional as F

from rsdistill.config import build_config
from rsdistill.errors import ConfigError
from rsdistill.distillers import registry
from rsdistill.distillers.isdm import (
    InstanceScaler,
    coupled_margin,
    dynamic_margin,
    entropy_regularization,
    er_optimal_shift,
    level_entropy_weights,
    level_shift,
    margin_values,
    scaled_soft_label,
    scaler_input,
)
from rsdistill.distillers.losses import decoupled_kl_per_sample, softened_kl

from .conftest import build_distiller, fixed_batch

C = 6


def confident(teacher: torch.nn.Module) -> None:
    """A confident, non-trivial teacher: the random resnet20's weights, perturbed."""
    torch.manual_seed(123)
    for p in teacher.parameters():
        p.data.add_(0.05 * torch.randn_like(p))


make = functools.partial(build_distiller, teacher="resnet20", classes=C, prepare_teacher=confident)
batch = functools.partial(fixed_batch, classes=C, seed=1, random_labels=True)


def total(losses):
    return sum(losses.values())


def test_without_is_and_dm_isdm_equals_kd_with_weight_gamma_inside_and_after_the_warm_up():
    b = batch()
    isdm = make("isdm", scaling=False, margin="none", gamma=3.0, T=2.5, warmup_epochs=10)
    kd = make("kd", kd_weight=3.0, T=2.5, warmup_epochs=10)
    kd.student.load_state_dict(isdm.student.state_dict())
    kd.teacher.load_state_dict(isdm.teacher.state_dict())
    align = {}
    for epoch in (1, 50):  # w = 0.1 inside the warm-up, 1 after it
        isdm.set_epoch(epoch)
        kd.set_epoch(epoch)
        _, li = isdm.forward_train(b)
        _, lk = kd.forward_train(b)
        assert set(li) == {"ce", "align"}
        assert abs(total(li).item() - total(lk).item()) < 1e-6
        assert abs(li["align"].item() - lk["kd"].item()) < 1e-6
        align[epoch] = li["align"].item()
    assert align[1] == pytest.approx(0.1 * align[50], rel=1e-5)


def test_zero_initialised_scaler_without_margin_takes_the_same_first_step_as_kd():
    b = batch()
    isdm = make("isdm", scaling=True, margin="none", warmup_epochs=0)
    kd = make("kd", warmup_epochs=0)
    kd.student.load_state_dict(isdm.student.state_dict())
    kd.teacher.load_state_dict(isdm.teacher.state_dict())
    _, li = isdm.forward_train(b)
    _, lk = kd.forward_train(b)
    assert li["align"].item() == pytest.approx(lk["kd"].item(), abs=1e-6)
    for model, losses in ((isdm, li), (kd, lk)):
        opt = torch.optim.SGD(model.student.parameters(), lr=0.1)
        total(losses).backward()
        opt.step()
    for (n, a), (_, k) in zip(isdm.student.named_parameters(), kd.student.named_parameters()):
        assert torch.allclose(a, k, atol=1e-6), n


def _er_grad_at_zero(p_target: float, lambda_H: float = 1.0) -> float:
    """dL_ER/da at a = 0 for one sample whose teacher puts p_target on the label."""
    rest = (1 - p_target) / (C - 1)
    p = torch.tensor([[p_target] + [rest] * (C - 1)])
    z = p.log() * 4.0  # teacher logits at T = 4
    a = torch.zeros(1, requires_grad=True)
    q = scaled_soft_label(z, torch.tensor([0]), a, 4.0)
    entropy_regularization(q, torch.tensor([0]), lambda_H).backward()
    return a.grad.item()


def test_er_gradient_raises_a_for_hard_samples_and_lowers_it_for_over_confident_ones():
    assert _er_grad_at_zero(0.15) < 0  # descent increases a: more target confidence
    assert _er_grad_at_zero(0.97) > 0  # descent decreases a: dark knowledge shows


def test_optimising_the_scaler_moves_q_y_to_an_interior_value_from_both_sides():
    torch.manual_seed(0)
    labels = torch.zeros(4, dtype=torch.long)
    p = torch.tensor([[0.12] + [0.88 / (C - 1)] * (C - 1), [0.25] + [0.75 / (C - 1)] * (C - 1),
                      [0.90] + [0.10 / (C - 1)] * (C - 1), [0.98] + [0.02 / (C - 1)] * (C - 1)])
    z = p.log() * 4.0
    scaler = InstanceScaler(C, 64, 5.0)
    opt = torch.optim.SGD(scaler.parameters(), lr=0.5)
    p_t = F.softmax(z / 4.0, 1)
    for _ in range(300):
        q = scaled_soft_label(z, labels, scaler(scaler_input(p_t, labels)), 4.0)
        loss = entropy_regularization(q, labels, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    q_y = q.detach()[:, 0]
    assert q_y[0] > p[0, 0] and q_y[1] > p[1, 0]  # hard: raised
    assert q_y[2] < p[2, 0] and q_y[3] < p[3, 0]  # easy: lowered
    assert q_y.max() - q_y.min() < p[:, 0].max() - p[:, 0].min()  # pulled together


def test_dynamic_margin_sign_and_range():
    gap = torch.tensor([4.0, 0.5, -1.0, 2.0, 8.0])
    m = dynamic_margin(gap, 5.0, 1e-6)
    assert m[gap.argmax()] > 0 and m[gap.argmin()] < 0
    assert (m.abs() < 5.0).all()
    # Eq. (9) with the batch's population std
    z = (gap - gap.mean()) / (gap.var(correction=0).sqrt() + 1e-6)
    assert torch.allclose(m, 5.0 * torch.tanh(z), atol=1e-6)
    assert dynamic_margin(torch.tensor([3.0]), 5.0, 1e-6).item() == 0.0  # one sample: no margin


def test_margin_modes_and_that_the_margin_shifts_the_target_logit_only():
    b = batch()
    dyn = make("isdm", margin="dynamic", margin_source="gap")
    with torch.no_grad():
        zt = dyn.teacher(b["image"]).logits
    p_t = F.softmax(zt / 4.0, 1)
    parts = {"p_t": p_t, "a": torch.zeros(8)}
    m = dyn.margins(zt, b["label"], parts)
    gaps = dyn.difficulty(zt, b["label"], p_t)
    assert m[gaps.argmax()] > 0 and m[gaps.argmin()] < 0
    fixed = make("isdm", margin="fixed", m=3.0)
    assert torch.equal(fixed.margins(zt, b["label"], parts), torch.full((8,), 3.0))
    none = make("isdm", margin="none")
    assert torch.equal(none.margins(zt, b["label"], parts), torch.zeros(8))

    zs = torch.randn(8, C)
    onehot = F.one_hot(b["label"], C).float()
    expected = softened_kl(zs - m[:, None] * onehot, zt, 4.0)
    assert dyn.alignment(zs, b["label"], p_t, m).item() == pytest.approx(expected.item(), rel=1e-5)
    # without a margin the alignment is the plain softened KL, and the margin changes it
    unshifted = dyn.alignment(zs, b["label"], p_t, torch.zeros(8))
    assert unshifted.item() == pytest.approx(softened_kl(zs, zt, 4.0).item(), rel=1e-5)
    assert abs(unshifted.item() - expected.item()) > 1e-4


def test_scaler_output_is_clamped_to_a_max():
    scaler = InstanceScaler(4, 8, a_max=2.0)
    torch.nn.init.constant_(scaler.net[2].bias, 100.0)
    assert torch.equal(scaler(torch.rand(3, 4)), torch.full((3,), 2.0))
    torch.nn.init.constant_(scaler.net[2].bias, -100.0)
    assert torch.equal(scaler(torch.rand(3, 4)), torch.full((3,), -2.0))


def test_options_that_lost_the_search_are_gone_and_old_configs_at_their_value_still_load():
    # is_input (class-ordered scaler input) and is_grad_from_kd lost the search and no table needs them;
    # a run's config.yaml written before lists them at the value still computed: it loads as it ran
    old = build_config({"method": {"name": "isdm", "is_input": "sorted", "is_grad_from_kd": False}}).method
    assert old == build_config({"method": {"name": "isdm"}}).method
    for key, value in (("is_input", "probs"), ("is_grad_from_kd", True)):
        with pytest.raises(ConfigError, match=f"{key}.*removed .*lost the search"):
            build_config({"method": {"name": "isdm", key: value}})
    # the first reconstruction's gap margin stays (the search record's tables use it); p_t[y] does not
    assert build_config({"method": {"name": "isdm", "margin_source": "gap"}}).method.margin_source == "gap"
    with pytest.raises(ConfigError, match="margin_source"):
        build_config({"method": {"name": "isdm", "margin_source": "prob"}})


def test_scaler_input_is_class_agnostic():
    p = torch.tensor([[0.1, 0.5, 0.2, 0.2]])
    assert torch.equal(scaler_input(p, torch.tensor([2])), torch.tensor([[0.2, 0.5, 0.2, 0.1]]))


def test_scaler_is_small_and_gets_gradients_only_from_er():
    cfg = build_config({"method": {"name": "isdm"}}).method
    assert registry.get("isdm").extra_parameter_count(cfg, 100) < 10_000
    assert sum(p.numel() for p in InstanceScaler(100, 64, 5.0).parameters()) < 10_000

    b = batch()
    d = make("isdm", warmup_epochs=0)
    _, losses = d.forward_train(b)
    losses["align"].backward()
    assert not any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.scaler.parameters())
    d = make("isdm")
    _, losses = d.forward_train(b)
    losses["er"].backward()
    assert d.scaler.net[2].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in d.student.parameters())  # L_ER trains the scaler only


def test_scaler_is_an_extra_module_without_weight_decay():
    d = make("isdm")
    assert set(d.extra_modules()) == {"scaler"}
    (group,) = d.extra_param_groups(5e-4)
    assert group["weight_decay"] == 0.0 and len(group["params"]) == 4
    assert not make("isdm", scaling=False).extra_modules()


def test_every_hyper_parameter_is_overridable():
    cfg = build_config({"method": {"name": "isdm", "T": 2, "ce_weight": 0.5, "gamma": 2, "beta": 0.2,
                                   "m": 3, "lambda_H": 0.3, "h": 32, "scaling": False,
                                   "margin": "fixed", "margin_source": "gap", "is_direction": "raise"}}).method
    assert (cfg.T, cfg.ce_weight, cfg.gamma, cfg.beta, cfg.m, cfg.lambda_H, cfg.h) == (2, 0.5, 2, 0.2, 3, 0.3, 32)
    assert (cfg.scaling, cfg.margin, cfg.margin_source, cfg.is_direction) == (False, "fixed", "gap", "raise")
    cfg = build_config({"method": {"name": "isdm", "a_max": 2, "eps": 1e-3, "warmup_epochs": 7,
                                   "logit_std": True, "ls_T": 3, "ls_weight": 5}}).method
    assert (cfg.a_max, cfg.eps, cfg.warmup_epochs, cfg.logit_std, cfg.ls_T, cfg.ls_weight) == (
        2, 1e-3, 7, True, 3, 5)
    from rsdistill.errors import ConfigError

    with pytest.raises(ConfigError, match="method.margin"):
        build_config({"method": {"name": "isdm", "margin": "wide"}})


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    d = make("isdm", warmup_epochs=0)
    b = batch(16)
    opt = torch.optim.SGD([*d.student.parameters(), *d.scaler.parameters()], lr=0.02, momentum=0.9)
    first = None
    for _ in range(8):
        _, losses = d.forward_train(b)
        loss = total(losses)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first


# --------------------------------------------------------------------------- through the CLI


def test_isdm_run_trains_the_scaler_records_diagnostics_and_exports_only_the_student(capsys, scenes, teacher_run, tmp_path):
    import json

    from rsdistill.engine.checkpoint import load_model
    from rsdistill.engine.runlog import read_jsonl

    from .conftest import TINY, run_cli

    out = tmp_path / "isdm"
    code, _, err = run_cli(capsys, "distill", "--data", scenes, "--teacher", teacher_run, "--student", "resnet20",
                           "--method", "isdm", "--out", out, "--set", *TINY, "train.epochs=2", "train.batch_size=8",
                           "method.warmup_epochs=0")
    assert code == 0, err
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    scaler = ckpt["extras"]["scaler"]
    assert scaler["net.2.weight"].abs().sum() > 0  # trained away from its zero initialisation
    groups = ckpt["train_state"]["optimizer"]["param_groups"]
    assert len(groups) == 2 and groups[1]["weight_decay"] == 0.0
    student, _ = load_model(out)
    assert not any("scaler" in k for k in student.state_dict())
    assert sum(p.numel() for p in student.parameters()) == json.loads((out / "metrics.json").read_text())["params"]

    line = read_jsonl(out / "metrics.jsonl")[-1]
    for key in ("diag/a", "diag/m", "diag/p_t_y/teacher_right", "diag/q_y/teacher_right", "train/er", "train/align"):
        assert key in line, key
    soft = json.loads((out / "soft_labels.json").read_text())
    assert len(soft["samples"]) == 40
    sample = soft["samples"][0]
    assert {"path", "label", "teacher_correct", "p_t_y", "q_y", "a", "m", "gap"} <= set(sample)
    assert sample["path"].split("/")[0] in json.loads((out / "split.json").read_text())["classes"]

    code, _, err = run_cli(capsys, "export", "--checkpoint", out, "--out", tmp_path / "s.onnx")
    assert code == 0, err
    meta = json.loads((tmp_path / "s.onnx.json").read_text())
    assert meta["parameters"] == sum(p.numel() for p in student.parameters())


def test_methods_lists_the_scalers_parameter_count_for_a_class_count(capsys):
    from .conftest import run_cli

    code, out, _ = run_cli(capsys, "methods", "--classes", "100")
    isdm_block = out[out.index("isdm "):].split("\n")[:4]
    assert code == 0 and any("6,529" in ln for ln in isdm_block)


def test_ablate_runs_all_rows_writes_the_table_and_skips_finished_runs(capsys, scenes, teacher_run, tmp_path):
    from .conftest import TINY, run_cli

    out = tmp_path / "ablation"
    args = ["ablate", "--data", scenes, "--teacher", teacher_run, "--student", "resnet20", "--out", out,
            "--seeds", "0", "1", "--set", *TINY, "train.batch_size=20"]
    code, text, err = run_cli(capsys, *args)
    assert code == 0, err
    rows = (out / "ablation.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 7
    labels = [r.split(",")[0] for r in rows[1:]]
    assert labels[:4] == ["ISDM (IS + DM)", "w/o IS", "w/o DM", "w/o IS and DM (= KD)"]
    assert all(f"IS + FM (m = {m})" in labels for m in (3, 5, 7))
    assert "±" in rows[1]  # two seeds: mean ± std
    assert (out / "ablation.md").is_file() and (out / "ablation.tex").is_file()
    import yaml

    # each row and seed is a cell of the suite scheduler: its run folder and its record
    runs = out / "runs"
    cfg = yaml.safe_load((runs / "is_fm7" / "seed1" / "config.yaml").read_text())
    assert cfg["method"]["margin"] == "fixed" and cfg["method"]["m"] == 7.0 and cfg["seed"] == 1
    cfg = yaml.safe_load((runs / "wo_both" / "seed0" / "config.yaml").read_text())
    assert cfg["method"]["scaling"] is False and cfg["method"]["margin"] == "none"
    record = json.loads((out / "cells" / "is_fm7" / "seed1.json").read_text())
    assert record["status"] == "finished" and record["cost"]["seconds_per_iteration"] > 0
    stamp = (runs / "isdm" / "seed0" / "metrics.json").stat().st_mtime_ns
    code, text2, _ = run_cli(capsys, *args)
    assert code == 0 and (runs / "isdm" / "seed0" / "metrics.json").stat().st_mtime_ns == stamp
    assert "ISDM (IS + DM)" in text2
    # Other settings into the same directory: an error naming the field, not the old numbers.
    code, _, err = run_cli(capsys, *args, "train.epochs=2")
    assert code != 0 and "train.epochs" in err and "changed since it ran" in err and err.count("\n") == 1
    assert (runs / "isdm" / "seed0" / "metrics.json").stat().st_mtime_ns == stamp


def test_the_ablate_rows_are_the_isdm_rows_of_the_ablation_suite(tmp_path):
    from rsdistill.experiments.ablate import ABLATION_SUITE, ablation_rows
    from rsdistill.experiments.suite.spec import load_suite
    from rsdistill.shipped import shipped_config

    ABLATION_SUITE = shipped_config(ABLATION_SUITE)
    rows = ablation_rows()
    suite_rows = [(m.name, m.row_label) for m in load_suite(ABLATION_SUITE).spec.methods if m.method == "isdm"]
    assert [(r.slug, r.label) for r in rows] == suite_rows == [
        ("isdm", "ISDM (IS + DM)"), ("wo_is", "w/o IS"), ("wo_dm", "w/o DM"), ("wo_both", "w/o IS and DM (= KD)"),
        ("is_fm3", "IS + FM (m = 3)"), ("is_fm5", "IS + FM (m = 5)"), ("is_fm7", "IS + FM (m = 7)")]
    # every row names both switches (a base config setting one never changes a row); m where the margin is fixed
    assert [r.method for r in rows] == [
        {"scaling": True, "margin": "dynamic"}, {"scaling": False, "margin": "dynamic"},
        {"scaling": True, "margin": "none"}, {"scaling": False, "margin": "none"},
        *({"scaling": True, "margin": "fixed", "m": m} for m in (3, 5, 7))]
    # the rows are the file's: a row added there is a row of the ablation
    edited = tmp_path / "ablation.yaml"
    edited.write_text(ABLATION_SUITE.read_text() + "  - {name: is_fm9, method: isdm, label: IS + FM (m = 9), "
                      "set: {method.margin: fixed, method.m: 9}}\n")
    assert ablation_rows(edited)[-1].slug == "is_fm9" and len(ablation_rows(edited)) == 8


def test_ablate_rows_runs_and_tabulates_only_the_named_rows(capsys, scenes, teacher_run, tmp_path):
    from .conftest import TINY, run_cli

    out = tmp_path / "ablation"
    args = ["ablate", "--data", scenes, "--teacher", teacher_run, "--student", "resnet20", "--out", out,
            "--set", *TINY, "train.batch_size=20", "--rows"]
    code, _, err = run_cli(capsys, *args, "is_fm3", "wo_dm")
    assert code == 0, err
    rows = (out / "ablation.csv").read_text().strip().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["w/o DM", "IS + FM (m = 3)"]  # the table's order
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["is_fm3", "wo_dm"]
    code, _, err = run_cli(capsys, *args, "wo_scaling")
    assert code != 0 and "wo_scaling" in err and "wo_is" in err


def test_the_ce_weight_is_ce_weight_and_its_old_name_alpha_still_loads():
    assert build_config({"method": {"name": "isdm", "alpha": 0.3}}).method.ce_weight == 0.3
    with pytest.raises(ConfigError, match="once"):
        build_config({"method": {"name": "isdm", "alpha": 0.3, "ce_weight": 0.3}})


# ---------------------------------------------------------------------- the coupled margin (defaults)
def test_er_optimal_shift_is_the_stationary_point_of_l_er_per_sample():
    zt = torch.tensor([[14.0, 1.0, 0.5, 0.0, -1.0, 0.0], [0.2, 1.5, 1.4, 0.0, 0.0, 0.0],
                       [2.0, 2.0, 2.0, 2.0, 2.0, 2.0], [-1.0, 3.0, 0.0, 0.0, 0.0, 0.0]])
    y = torch.tensor([0, 0, 3, 0])
    p_t = F.softmax(zt / 4.0, 1)
    for lam in (1.0, 0.3):
        a = er_optimal_shift(p_t, y, lam, a_max=50.0).requires_grad_(True)
        q = scaled_soft_label(zt, y, a, 4.0)
        per_sample = [entropy_regularization(q[i:i + 1], y[i:i + 1], lam) for i in range(4)]
        grads = torch.autograd.grad(sum(per_sample), a)[0]
        assert grads.abs().max().item() < 1e-5, (lam, grads)
    # the interior level is set by lambda_H: easy samples are lowered, hard ones raised
    a = er_optimal_shift(p_t, y, 1.0, a_max=5.0)
    assert a[0] < 0 < a[3]
    assert torch.equal(er_optimal_shift(p_t, y, 1.0, a_max=0.5), a.clamp(-0.5, 0.5))
    assert torch.equal(er_optimal_shift(p_t, y, 0.0, a_max=5.0), torch.full((4,), 5.0))


def test_is_level_teacher_puts_l_er_optimum_at_the_batch_mean_target_probability():
    """is_level: teacher (H4): every sample's entropy weight is solved so that L_ER's optimum is
    q[y] = the batch's mean p_t[y]: samples below it are lifted, samples above it lowered."""
    zt = torch.tensor([[8.0, 1.0, 0.5, 0.0, -1.0, 0.0], [0.2, 1.5, 1.4, 0.0, 0.0, 0.0],
                       [-1.0, 3.0, 0.0, 0.0, 0.0, 0.0]])
    y = torch.tensor([0, 0, 0])
    p_t = F.softmax(zt / 4.0, 1)
    level = p_t[:, 0].mean()
    lam = level_entropy_weights(p_t, y, level)
    # by hand for sample 1: t = logit(level), H_nt of p_t[1, 1:] renormalised, lambda = (1 + e^-t) / (t + H_nt)
    rest = p_t[1, 1:] / p_t[1, 1:].sum()
    t = torch.logit(level)
    assert lam[1].item() == pytest.approx(((1 + torch.exp(-t)) / (t - (rest * rest.log()).sum())).item(), rel=1e-5)
    a = level_shift(p_t, y, level, a_max=50.0).requires_grad_(True)
    assert a[0] < 0 < a[2]  # the confident sample is lowered, the misclassified one lifted
    q = scaled_soft_label(zt, y, a, 4.0)
    assert torch.allclose(q[:, 0], level.expand(3), atol=1e-6)
    per_sample = [entropy_regularization(q[i:i + 1], y[i:i + 1], lam[i]) for i in range(3)]
    assert torch.autograd.grad(sum(per_sample), a)[0].abs().max().item() < 1e-5
    # a level at or below the maximum-entropy point cannot be reached: the weight is capped
    assert level_entropy_weights(p_t, y, torch.tensor(1e-4), max_weight=50.0).eq(50.0).all()


def test_a_config_that_sets_lambda_H_without_is_level_means_the_entropy_level():
    """lambda_H only acts with is_level: entropy; run folders made before is_level existed list
    lambda_H in their config.yaml and must resume as they were trained."""
    assert build_config({"method": {"name": "isdm"}}).method.is_level == "teacher"
    assert build_config({"method": {"name": "isdm", "lambda_H": 0.3}}).method.is_level == "entropy"
    explicit = {"name": "isdm", "lambda_H": 0.3, "is_level": "teacher"}
    assert build_config({"method": explicit}).method.is_level == "teacher"


def test_is_level_teacher_without_scaler_margins_use_the_level_shift():
    b = batch()
    d = make("isdm", scaling=False, is_level="teacher", kappa=1.0)
    with torch.no_grad():
        zt = d.teacher(b["image"]).logits
    p_t = F.softmax(zt / 4.0, 1)
    level = p_t.gather(1, b["label"][:, None]).mean()
    expected = -4.0 * level_shift(p_t, b["label"], level, 5.0)
    assert torch.allclose(d.margins(zt, b["label"], {"p_t": p_t, "a": torch.zeros(8)}), expected, atol=1e-5)


def test_is_direction_raise_applies_only_lifts_while_the_scaler_learns_the_two_sided_optimum():
    """is_direction: raise lifts hard samples and leaves easy ones at the teacher's label; L_ER
    (what trains the scaler) is the same as with both directions, so its gradient flows from the
    zero start."""
    b = batch()
    both, up = make("isdm"), make("isdm", is_direction="raise", margin="none")
    torch.manual_seed(5)
    for p in both.scaler.parameters():
        torch.nn.init.normal_(p, std=0.5)
    with torch.no_grad():
        zt = both.teacher(b["image"]).logits
        y = b["label"]
        u = scaler_input(F.softmax(zt / 4.0, 1), y)
        both.scaler.net[2].bias -= both.scaler(u).median()  # some samples lifted, some lowered
    up.scaler.load_state_dict(both.scaler.state_dict())
    two, one = both.soft_targets(zt, y), up.soft_targets(zt, y)
    assert (two["a"] < 0).any() and (two["a"] > 0).any()
    assert torch.equal(one["a"], two["a"].clamp_min(0))
    lowered = two["a"] < 0
    assert torch.allclose(one["q"][lowered], one["p_t"][lowered], atol=1e-6)  # easy samples untouched
    assert torch.allclose(one["er"], two["er"])
    fresh = make("isdm", is_direction="raise")
    _, losses = fresh.forward_train(b)
    losses["er"].backward()
    assert fresh.scaler.net[2].weight.grad.abs().sum() > 0
    # without a scaler, DM's shift is the one-sided optimum too
    wo_is = make("isdm", scaling=False, is_direction="raise", kappa=1.0, is_level="entropy")
    p_t = F.softmax(zt / 4.0, 1)
    m = wo_is.margins(zt, y, {"p_t": p_t, "a": torch.zeros(8)})
    assert torch.allclose(m, -4.0 * er_optimal_shift(p_t, y, 1.0, 5.0).clamp_min(0), atol=1e-5)


def test_coupled_margin_with_kappa_1_keeps_the_teachers_prediction_as_the_students_optimum():
    """m_i = -T a_i: a student equal to the teacher has zero alignment loss whatever IS does, and
    the loss is TCKD on the shifted binaries plus (1 - q_y) NCKD (IS reweights, DM re-centres)."""
    zt = torch.randn(5, C) * 2
    y = torch.tensor([0, 1, 2, 3, 4])
    a = torch.tensor([-1.5, -0.5, 0.0, 0.7, 2.0])
    d = make("isdm")
    q = scaled_soft_label(zt, y, a, 4.0)
    m = coupled_margin(a, 4.0, 1.0)
    assert torch.allclose(m, -4.0 * a)
    assert d.alignment(zt, y, q, m).item() == pytest.approx(0.0, abs=1e-6)
    zs = torch.randn(5, C)
    onehot = F.one_hot(y, C).float()
    tckd, nckd = decoupled_kl_per_sample(zs + 4.0 * a[:, None] * onehot, zt + 4.0 * a[:, None] * onehot, y, 4.0)
    q_y = q.gather(1, y[:, None]).squeeze(1)
    expected = (tckd + (1 - q_y) * nckd).mean()
    assert d.alignment(zs, y, q, m).item() == pytest.approx(expected.item(), rel=1e-5)
    half = coupled_margin(a, 4.0, 0.5)
    assert d.alignment(zt, y, q, half).item() > 1e-4  # kappa < 1: the student is moved towards q


def test_dm_alone_uses_the_shift_a_perfect_scaler_would_learn_and_each_half_changes_the_loss():
    b = batch()
    full, wo_is, wo_dm = make("isdm"), make("isdm", scaling=False), make("isdm", margin="none")
    torch.manual_seed(5)
    for p in full.scaler.parameters():  # a trained scaler: away from its zero start (q = p_t)
        torch.nn.init.normal_(p, std=0.5)
    wo_dm.scaler.load_state_dict(full.scaler.state_dict())
    for d in (wo_is, wo_dm):
        d.student.load_state_dict(full.student.state_dict())
        d.teacher.load_state_dict(full.teacher.state_dict())
    with torch.no_grad():
        zt = full.teacher(b["image"]).logits
    p_t = F.softmax(zt / 4.0, 1)
    level = p_t.gather(1, b["label"][:, None]).mean()  # is_level: teacher
    expected = -0.5 * 4.0 * level_shift(p_t, b["label"], level, 5.0)  # kappa 0.5, T 4
    assert torch.allclose(wo_is.margins(zt, b["label"], {"p_t": p_t, "a": torch.zeros(8)}), expected, atol=1e-5)
    kd = make("kd")
    kd.student.load_state_dict(full.student.state_dict())
    kd.teacher.load_state_dict(full.teacher.state_dict())
    values = {name: d.forward_train(b)[1] for name, d in
              {"full": full, "wo_is": wo_is, "wo_dm": wo_dm, "kd": kd}.items()}
    aligns = [values["full"]["align"], values["wo_is"]["align"], values["wo_dm"]["align"], values["kd"]["kd"]]
    assert len({round(v.item(), 4) for v in aligns}) == 4


# ---------------------------------------------------------------- where the margin acts (issue 21)
def _cfg(**method):
    return build_config({"method": {"name": "isdm", **method}}).method


def test_margin_on_teacher_right_and_positive_sign_restrict_the_coupled_margin_by_hand():
    shift = torch.tensor([1.0, -2.0, 0.5, -0.25])
    right = torch.tensor([True, False, True, True])
    kw = dict(shift=shift, difficulty=torch.zeros(4), teacher_correct=right, T=4.0, kappa=0.5)
    # m_i = -kappa T a_i = -2 a_i
    assert margin_values(_cfg(), **kw).tolist() == [-2.0, 4.0, -1.0, 0.5]
    assert margin_values(_cfg(margin_on="teacher_right"), **kw).tolist() == [-2.0, 0.0, -1.0, 0.5]
    assert margin_values(_cfg(margin_sign="positive"), **kw).tolist() == [0.0, 4.0, 0.0, 0.5]
    assert margin_values(_cfg(margin_on="teacher_right", margin_sign="positive"), **kw).tolist() == [0, 0, 0, 0.5]
    assert margin_values(_cfg(margin="none"), **kw).tolist() == [0.0] * 4
    assert margin_values(_cfg(margin="fixed", m=3, margin_on="teacher_right"), **kw).tolist() == [3, 0, 3, 3]


def test_kappa_end_anneals_kappa_linearly_over_the_runs_epochs():
    d = make("isdm", kappa_end=0.0)  # built through resolve_config with a 10-epoch run
    assert d.cfg.anneal_epochs == 10
    seen = []
    for epoch in (1, 4, 10, 12):
        d.set_epoch(epoch)
        seen.append(d.kappa_now())
    assert seen == pytest.approx([0.5, 0.5 * 6 / 9, 0.0, 0.0])
    assert make("isdm").cfg.anneal_epochs is None  # constant kappa: nothing resolved
    zt = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    parts = {"p_t": F.softmax(zt, 1), "a": torch.tensor([1.0])}
    d.set_epoch(4)
    assert d.margins(zt, torch.tensor([0]), parts).tolist() == pytest.approx([-(0.5 * 6 / 9) * 4.0])


def test_gap_hinge_asks_the_students_own_gap_to_reach_the_scaled_labels_gap_by_hand():
    """r_i = z_t[y] - max_{c != y} z_t + T a_i; loss = mean relu(r_i - d_s,i)."""
    zt = torch.tensor([[3.0, 1.0, 0.0, 0, 0, 0], [0.0, 2.0, 1.0, 0, 0, 0]])
    y = torch.tensor([0, 0])
    a = torch.tensor([0.0, 0.5])  # r = [2, -2 + 4 * 0.5] = [2, 0]
    zs = torch.tensor([[1.0, 0.0, 0.0, 0, 0, 0], [-1.0, 0.0, 0.0, 0, 0, 0]])  # own gaps [1, -1]
    assert make("isdm", margin_acts="gap").gap_hinge(zs, zt, y, a).item() == pytest.approx((1 + 1) / 2)
    # the teacher is wrong on the second sample: only the first keeps its margin
    assert make("isdm", margin_acts="gap", margin_on="teacher_right").gap_hinge(zs, zt, y, a).item() \
        == pytest.approx(1 / 2)
    zs_wide = torch.tensor([[5.0, 0.0, 0.0, 0, 0, 0], [1.0, 0.0, 0.0, 0, 0, 0]])
    assert make("isdm", margin_acts="gap").gap_hinge(zs_wide, zt, y, a).item() == 0.0  # both reached


def test_margin_acts_gap_keeps_is_alones_kl_and_adds_the_hinge_that_trains_the_student_only():
    b = batch()
    gap, alone = make("isdm", margin_acts="gap"), make("isdm", margin="none")
    torch.manual_seed(5)
    for p in gap.scaler.parameters():
        torch.nn.init.normal_(p, std=0.5)
    alone.load_state_dict(gap.state_dict())
    _, lg = gap.forward_train(b)
    _, la = alone.forward_train(b)
    assert lg["align"].item() == pytest.approx(la["align"].item(), rel=1e-6)
    assert lg["er"].item() == pytest.approx(la["er"].item(), rel=1e-6)
    assert lg["gap"].item() > 0 and "gap" not in la
    lg["gap"].backward()
    assert all(p.grad is None or not p.grad.any() for p in gap.scaler.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gap.student.parameters())


def test_advantage_meter_weighs_the_teacher_by_its_running_lead_over_the_student_by_hand():
    from rsdistill.distillers.isdm import AdvantageMeter

    meter = AdvantageMeter(momentum=0.5, margin=0.5)
    right = lambda *bits: torch.tensor([bool(b) for b in bits])  # noqa: E731
    meter.update(right(1, 1, 1, 0), right(1, 0, 0, 0))  # first batch taken as is: 0.75 vs 0.25
    assert meter.acc.tolist() == [0.75, 0.25] and meter.weight().item() == 1.0
    meter.update(right(1, 0), right(1, 0))  # 0.5 vs 0.5 -> running 0.625 vs 0.375: lead 0.25 of 0.5
    assert meter.weight().item() == pytest.approx(0.5)
    meter.update(right(0, 0), right(1, 1))  # the student overtakes the teacher: no alignment
    assert meter.acc.tolist() == pytest.approx([0.3125, 0.6875]) and meter.weight().item() == 0.0


def test_trust_advantage_scales_the_alignment_and_keeps_its_meter_in_the_checkpoints_extras():
    b = batch()
    plain, trusting = make("isdm"), make("isdm", trust="advantage", trust_margin=0.5)
    trusting.load_state_dict(plain.state_dict(), strict=False)
    assert set(trusting.extra_modules()) == {"scaler", "trust"}
    assert trusting.extra_param_groups(5e-4)[0]["params"] == list(trusting.scaler.parameters())
    with torch.no_grad():
        zt = plain.teacher(b["image"]).logits
        zs = plain.student(b["image"]).logits
    _, lp = plain.forward_train(b)
    _, lt = trusting.forward_train(b)
    lead = ((zt.argmax(1) == b["label"]).float().mean() - (zs.argmax(1) == b["label"]).float().mean()).item()
    w = min(1.0, max(0.0, lead / 0.5))
    assert lt["align"].item() == pytest.approx(w * lp["align"].item(), rel=1e-5, abs=1e-7)
    assert lt["ce"].item() == pytest.approx(lp["ce"].item())
    assert "acc" in trusting.extra_modules()["trust"].state_dict()
