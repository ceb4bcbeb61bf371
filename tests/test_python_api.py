"""The Python API (rsdistill.api, rsdistill.loss): the examples of docs/python_api.md run as they
are, the functions behave as the commands do, and any method works as a loss around plain modules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import rsdistill
from rsdistill.errors import ConfigError, RsDistillError

from .conftest import TINY, run_cli

DOCS = Path(__file__).resolve().parents[1] / "docs" / "python_api.md"


def doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)


@pytest.mark.slow
def test_the_documented_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    namespace: dict = {}
    for i, block in enumerate(doc_blocks()):
        exec(compile(block, f"{DOCS.name} block {i + 1}", "exec"), namespace)
    # what the examples claim: runs in their folders, the evaluation of the run's own test split
    # reproduces the run's last-epoch accuracy, the loop trained ISDM's scaler, the cache stood in
    teacher, student, result = namespace["teacher_run"], namespace["isdm_run"], namespace["result"]
    assert teacher.run_dir == Path("runs/teacher") and (teacher.run_dir / "metrics.json").is_file()
    assert student.config.method.name == "isdm" and student.checkpoint.is_file()
    assert result.top1 == pytest.approx(student.top1, abs=1e-6)
    assert Path("student.safetensors").is_file() and namespace["exported"].metadata["format"] == "safetensors"
    assert len(namespace["predictions"].predictions) == 48 and not namespace["predictions"].failed
    isdm = namespace["isdm"]
    assert set(namespace["losses"]) == {"ce", "align", "er"} and set(namespace["kd_losses"]) == {"ce", "kd"}
    assert any(p.abs().sum() > 0 for p in isdm.trainable_parameters())  # the scaler starts at zero output
    assert all(not p.requires_grad for p in namespace["teacher"].parameters())


def plain(width: int, classes: int = 4) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, classes))


def test_a_logit_method_around_plain_modules_gives_the_loss_dict_and_its_trainable_modules():
    torch.manual_seed(0)
    student, teacher = plain(8), plain(16)
    isdm = rsdistill.distillation_loss("isdm", student, teacher, num_classes=4, image_size=16, epochs=10, gamma=2.0)
    assert isdm.config.gamma == 2.0 and isdm.config.warmup_epochs == 1  # 10 % of the epochs, resolved
    assert set(isdm.extra_modules()) == {"scaler"}
    scaler = list(isdm.extra_modules()["scaler"].parameters())
    assert [id(p) for p in isdm.trainable_parameters()] == [id(p) for p in scaler]
    assert isdm.param_groups(5e-4)[0]["weight_decay"] == 0.0
    batch = {"image": torch.rand(6, 3, 16, 16), "label": torch.tensor([0, 1, 2, 3, 0, 1])}
    losses = isdm(batch)
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters()) and not teacher.training


def test_the_teacher_cache_gives_the_loss_of_the_live_teacher():
    torch.manual_seed(0)
    student, teacher = plain(8), plain(16)
    images, labels = torch.rand(10, 3, 16, 16), torch.randint(0, 4, (10,))
    cache = rsdistill.teacher_logits_cache(teacher, images)
    live = rsdistill.distillation_loss("kd", student, teacher, num_classes=4, image_size=16, warmup_epochs=0)
    cached = rsdistill.distillation_loss("kd", student, teacher, num_classes=4, image_size=16, warmup_epochs=0,
                                         teacher_cache=cache)
    index = torch.tensor([7, 2, 5])
    batch = {"image": images[index], "label": labels[index]}
    expected = live(batch)
    teacher.forward = None  # the cached loss must not run the teacher
    got = cached({**batch, "index": index})
    assert got["kd"].item() == pytest.approx(expected["kd"].item(), rel=1e-6)
    with pytest.raises(ConfigError, match="'index'"):
        cached(batch)


def test_feature_methods_take_torchvision_models_and_refuse_plain_modules_in_one_line():
    from torchvision.models import resnet18

    at = rsdistill.distillation_loss("at", resnet18(num_classes=4), resnet18(num_classes=4), num_classes=4,
                                     image_size=32)
    losses = at({"image": torch.rand(2, 3, 32, 32), "label": torch.tensor([0, 3])})
    assert {"ce", "at"} <= set(losses) and all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(RsDistillError, match="Sequential gives logits only"):
        rsdistill.distillation_loss("fitnet", plain(8), plain(16), num_classes=4, image_size=16)
    with pytest.raises(RsDistillError, match="unknown method 'isdmm'"):
        rsdistill.distillation_loss("isdmm", plain(8), plain(16), num_classes=4, image_size=16)
    with pytest.raises(RsDistillError, match="method.gamma"):
        rsdistill.distillation_loss("isdm", plain(8), plain(16), num_classes=4, image_size=16, gamma=-1)


def test_a_config_as_object_dict_or_files_merges_as_the_command_line_merges_it(tmp_path):
    base, extra = tmp_path / "base.yaml", tmp_path / "extra.yaml"
    base.write_text(yaml.safe_dump({"method": {"name": "isdm", "gamma": 2.0}, "train": {"epochs": 7}}))
    extra.write_text(yaml.safe_dump({"train": {"epochs": 9, "lr": 0.01}}))
    from rsdistill.cli import build_parser, config_from_args

    args = build_parser().parse_args(["distill", "--config", str(base), "--config", str(extra), "--data", "ucm:/d",
                                      "--student", "resnet20", "--set", "train.batch_size=8", "method.m=3"])
    cli = config_from_args(args, "distill")
    kwargs = dict(data="ucm:/d", model="resnet20", set={"train.batch_size": 8, "method.m": 3})
    for config in ([base, extra], [str(base), {"train": {"epochs": 9, "lr": 0.01}}],
                   [rsdistill.RunConfig.model_validate(yaml.safe_load(base.read_text())), extra]):
        assert rsdistill.build_run_config("distill", config, **kwargs) == cli
    assert rsdistill.build_run_config("distill", [base, extra], data="ucm:/d", model="resnet20",
                                      set=["train.batch_size=8", "method.m=3"]) == cli
    with pytest.raises(RsDistillError, match="train.epochs"):
        rsdistill.build_run_config("train", {"train": {"epochs": 0}})
    with pytest.raises(RsDistillError, match="trains with cross-entropy only"):
        rsdistill.build_run_config("train", set={"method.name": "kd"})


def test_the_api_returns_what_the_command_prints_and_takes_the_run_positionally(capsys, scenes, teacher_run, tmp_path):
    result = rsdistill.evaluate(teacher_run)
    assert result.top1 == pytest.approx(float((teacher_run / "metrics.json").read_text().split('"top1": ')[1].split(",")[0]))
    code, out, _ = run_cli(capsys, "eval", teacher_run)
    assert code == 0 and f"top-1 {result.top1:.2f}%" in out
    code, out2, _ = run_cli(capsys, "eval", "--checkpoint", teacher_run)  # the older spelling still works
    assert code == 0 and out2 == out
    code, _, err = run_cli(capsys, "eval", teacher_run, "--checkpoint", tmp_path / "other")
    assert code == 2 and "two runs given" in err
    code, _, err = run_cli(capsys, "eval")
    assert code == 2 and "give the run directory or checkpoint" in err
    code, out, _ = run_cli(capsys, "export", teacher_run, "--out", tmp_path / "t.onnx")
    assert code == 0 and (tmp_path / "t.onnx").is_file() and "[onnx]" in out


def test_a_failed_call_raises_the_commands_one_line_error(tmp_path, scenes):
    with pytest.raises(RsDistillError, match="--out RUN is required"):
        rsdistill.train(data=scenes, model="resnet8x4")
    with pytest.raises(RsDistillError, match="does not go with --resume"):
        rsdistill.train(resume=tmp_path, overwrite=True)
    assert not any(tmp_path.iterdir())


def test_public_names_are_listed_typed_and_importable():
    for name in rsdistill.__all__:
        assert getattr(rsdistill, name) is not None, name
    assert {"train", "distill", "evaluate", "predict", "export", "suite", "distillation_loss"} <= set(rsdistill.__all__)
    assert (Path(rsdistill.__file__).parent / "py.typed").is_file()
    assert "isdm" in rsdistill.method_names() and "resnet20" in rsdistill.model_names()
    with pytest.raises(AttributeError):
        rsdistill.not_a_name  # noqa: B018


def test_train_then_distill_through_the_api(scenes, teacher_run, tmp_path):
    run = rsdistill.distill(data=scenes, teacher=teacher_run, student="resnet20", method="kd", out=tmp_path / "kd",
                            set=TINY)
    assert run.run_dir == tmp_path / "kd" and run.metrics["method"] == "kd" and run.config.train.epochs == 1
    assert run.top1 == pytest.approx(run.metrics["top1"])
    again = rsdistill.distill(resume=run.run_dir)  # a finished run resumes to its metrics
    assert again.metrics == run.metrics


def test_suite_overrides_as_a_mapping_read_back_as_the_values_given():
    from rsdistill.api import suite_overrides
    from rsdistill.config import parse_set

    given = {"seeds": [0, 1], "splits": ["8:2"], "set.train.epochs": 2, "datasets.aid.root": "/data/AID 2"}
    items = suite_overrides(given)
    assert parse_set(items) == {"seeds": [0, 1], "splits": ["8:2"], "set": {"train": {"epochs": 2}},
                                "datasets": {"aid": {"root": "/data/AID 2"}}}
    assert suite_overrides(["seeds=[0]"]) == ["seeds=[0]"] and suite_overrides("seeds=[0]") == ["seeds=[0]"]
