"""End to end through the CLI on tiny generated data: run directories, resume, errors, eval."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rsdistill.engine.runlog import read_jsonl

from .conftest import TINY, interrupt_after_logging_epoch, run_cli

RUN_FILES = ["config.yaml", "split.json", "metrics.jsonl", "metrics.json", "checkpoints/last.pt",
             "checkpoints/best.pt", "train.log", "per_class_accuracy.csv", "confusion_matrix.csv",
             "confusion_matrix.png"]


def train(capsys, scenes, out, *extra, model="resnet20"):
    return run_cli(capsys, "train", "--data", scenes, "--model", model, "--out", out, "--set", *TINY, *extra)


def test_train_writes_a_complete_run_directory(capsys, scenes, tmp_path):
    code, out, err = train(capsys, scenes, tmp_path / "run", "train.epochs=3")
    assert code == 0, err
    run = tmp_path / "run"
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["milestones"] == [1, 2] and cfg["model"]["name"] == "resnet20"
    lines = read_jsonl(run / "metrics.jsonl")
    assert [ln["epoch"] for ln in lines] == [1, 2, 3]
    assert {"lr", "train/ce", "train/loss", "train/top1", "test/top1", "test/top5"} <= set(lines[0])
    assert [ln["lr"] for ln in lines] == pytest.approx([0.1, 0.01, 0.001])
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"top1", "top5", "best_top1", "best_top5", "epochs", "seconds"} <= set(metrics)
    assert metrics["top1"] == lines[-1]["test/top1"] and metrics["epochs"] == 3
    assert metrics["best_selected_on"] == "test"  # no validation split: "best" is best on test
    assert metrics["best_top1"] == max(ln["test/top1"] for ln in lines)
    split = json.loads((run / "split.json").read_text())
    assert split["counts"] == {"train": 40, "val": 0, "test": 8}
    assert all(not Path(p).is_absolute() for p in split["train"])
    per_class = (run / "per_class_accuracy.csv").read_text().splitlines()
    assert per_class[0] == "class,accuracy,correct,support" and len(per_class) == 5
    assert json.loads(out.strip().splitlines()[-1])["top1"] == pytest.approx(metrics["top1"], abs=0.01)


def test_checkpoints_load_with_weights_only_and_hold_only_the_model_for_eval(teacher_run):
    ckpt = torch.load(teacher_run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["model"]["arch"] == "resnet8x4" and ckpt["model"]["num_classes"] == 4
    assert all(k.startswith(("net.", "input_")) for k in ckpt["model"]["state_dict"])
    assert ckpt["train_state"]["progress"]["epoch"] == 2


def test_quiet_silences_the_console_but_train_log_keeps_every_epoch(capsys, scenes, tmp_path):
    code, _, err = run_cli(capsys, "-q", "train", "--data", scenes, "--model", "resnet8x4", "--out",
                           tmp_path / "q", "--set", *TINY, "train.epochs=2")
    assert code == 0, err
    assert "epoch 1/2" not in err
    log = (tmp_path / "q" / "train.log").read_text()
    assert "epoch 1/2" in log and "epoch 2/2" in log


def test_validation_split_selects_best_on_val(capsys, scenes, tmp_path):
    code, _, err = train(capsys, scenes, tmp_path / "v", "data.train_ratio=0.6", "data.val_ratio=0.2",
                         "train.epochs=2")
    assert code == 0, err
    metrics = json.loads((tmp_path / "v" / "metrics.json").read_text())
    lines = read_jsonl(tmp_path / "v" / "metrics.jsonl")
    assert metrics["best_selected_on"] == "val" and "val/top1" in lines[0]
    assert metrics["best_top1"] == max(ln["val/top1"] for ln in lines)


def test_same_seed_gives_the_same_run_and_the_seed_changes_the_split(capsys, scenes, tmp_path):
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        assert train(capsys, scenes, tmp_path / name, "train.epochs=2", "--seed", seed)[0] == 0
    la, lb = (read_jsonl(tmp_path / n / "metrics.jsonl") for n in "ab")
    assert [ln["train/loss"] for ln in la] == [ln["train/loss"] for ln in lb]
    assert [ln["test/top1"] for ln in la] == [ln["test/top1"] for ln in lb]
    split = lambda n: json.loads((tmp_path / n / "split.json").read_text())["test"]  # noqa: E731
    assert split("a") == split("b") != split("c")


@pytest.mark.parametrize("damage", ["none", "scheduler_state_of_another_scheduler", "torn_metrics_line"])
def test_resume_continues_an_interrupted_run_to_the_same_metrics(capsys, scenes, tmp_path, monkeypatch, damage):
    args = ["train.epochs=3", "--deterministic"]
    assert train(capsys, scenes, tmp_path / "full", *args)[0] == 0

    interrupt_after_logging_epoch(monkeypatch, 2)
    code, _, err = train(capsys, scenes, tmp_path / "cut", *args)
    assert code == 130 and "--resume" in err
    assert not (tmp_path / "cut" / "metrics.json").exists()
    monkeypatch.undo()
    if damage == "scheduler_state_of_another_scheduler":  # e.g. written by an older rsdistill
        last = tmp_path / "cut" / "checkpoints" / "last.pt"
        ckpt = torch.load(last, weights_only=True)
        ckpt["train_state"]["scheduler"] = {"milestones": {30: 1}, "gamma": 0.1, "last_epoch": 7}
        torch.save(ckpt, last)
    if damage == "torn_metrics_line":  # killed in the middle of appending a line
        with (tmp_path / "cut" / "metrics.jsonl").open("a") as f:
            f.write('{"epoch": 3, "lr": 0.0')

    code, _, err = run_cli(capsys, "train", "--resume", tmp_path / "cut")
    assert code == 0, err
    full, cut = (read_jsonl(tmp_path / n / "metrics.jsonl") for n in ("full", "cut"))
    assert [ln["epoch"] for ln in cut] == [1, 2, 3]
    for key in ("train/loss", "test/top1", "test/top5", "test/loss", "lr"):
        assert [ln[key] for ln in cut] == [ln[key] for ln in full], key
    mf, mc = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("full", "cut"))
    for key in ("top1", "top5", "best_top1", "best_top5", "epochs"):
        assert mf[key] == mc[key]


def test_without_tensorboard_a_run_logs_its_numbers_to_metrics_jsonl_and_says_so(capsys, scenes, tmp_path,
                                                                                    monkeypatch):
    """TensorBoard is optional (the GPU image of issue 25 may lack it): the run finishes, every
    number is in metrics.jsonl, and a warning says what is missing."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # its import now fails
    code, _, err = train(capsys, scenes, tmp_path / "run", "train.epochs=2")
    assert code == 0, err
    assert "TensorBoard is not installed" in err
    assert [ln["epoch"] for ln in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [1, 2]
    assert (tmp_path / "run" / "metrics.json").is_file() and not (tmp_path / "run" / "tb").exists()


def test_an_existing_run_directory_is_not_overwritten(capsys, scenes, teacher_run):
    before = (teacher_run / "metrics.json").read_text()
    code, _, err = train(capsys, scenes, teacher_run)
    assert code == 2 and "already holds a run" in err and "--resume" in err
    assert (teacher_run / "metrics.json").read_text() == before


def _one_line_error(code, err, *fragments):
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--data", "{tmp}/missing"], ["missing", "does not exist"]),
        (["--data", "{scenes}", "--set", "data.train_ratio=1.5"], ["data.train_ratio"]),
        (["--data", "{scenes}", "--set", "train.epoch=2"], ["train.epoch", "epochs"]),
        (["--data", "{scenes}", "--model", "resnet19"], ["model.name", "resnet19"]),
        (["--data", "{scenes}", "--set", "data.preset=ucm"], ["UC Merced"]),
        (["--data", "{scenes}", "--config", "{tmp}/nope.yaml"], ["nope.yaml"]),
    ],
)
def test_bad_input_is_a_one_line_error_and_writes_nothing(capsys, scenes, tmp_path, args, fragments):
    args = [a.format(tmp=tmp_path, scenes=scenes) for a in args]
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "run", *args)
    _one_line_error(code, err, *[f.format(tmp=tmp_path) for f in fragments])
    assert not (tmp_path / "run").exists()


def test_corrupt_image_is_named_and_nothing_is_written(capsys, scenes, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(scenes, data)
    victim = sorted((data / sorted(p.name for p in data.iterdir() if p.is_dir())[1]).iterdir())[3]
    victim.write_bytes(b"garbage, not a png")
    code, _, err = train(capsys, data, tmp_path / "run")
    _one_line_error(code, err, victim.name)
    assert not (tmp_path / "run").exists()


def test_distill_kd_evaluates_the_teacher_and_logs_each_loss(capsys, scenes, teacher_run, tmp_path):
    code, _, err = run_cli(capsys, "distill", "--data", scenes, "--teacher", teacher_run, "--student",
                           "resnet20", "--method", "kd", "--out", tmp_path / "kd", "--set", *TINY)
    assert code == 0, err
    metrics = json.loads((tmp_path / "kd" / "metrics.json").read_text())
    teacher_metrics = json.loads((teacher_run / "metrics.json").read_text())
    assert metrics["teacher"]["top1"] == pytest.approx(teacher_metrics["top1"])
    assert metrics["method"] == "kd"
    line = read_jsonl(tmp_path / "kd" / "metrics.jsonl")[0]
    assert {"train/ce", "train/kd"} <= set(line)
    assert "teacher resnet8x4 on the test split" in (tmp_path / "kd" / "train.log").read_text()
    # the student's split is the teacher's, even without --split-file
    assert json.loads((tmp_path / "kd" / "split.json").read_text())["test"] == json.loads(
        (teacher_run / "split.json").read_text())["test"]


def test_a_teacher_split_naming_missing_images_is_an_error_naming_the_teacher(capsys, scenes, teacher_run,
                                                                             tmp_path):
    data = tmp_path / "scenes"
    shutil.copytree(scenes, data)
    gone = json.loads((teacher_run / "split.json").read_text())["test"][0]
    (data / gone).unlink()
    code, _, err = run_cli(capsys, "distill", "--data", data, "--teacher", teacher_run, "--student", "resnet20",
                           "--method", "kd", "--out", tmp_path / "s", "--set", *TINY)
    assert code != 0 and f"teacher {teacher_run}" in err and gone in err
    assert not (tmp_path / "s").exists()


def test_resnet34_teacher_and_resnet18_student_pair_runs(capsys, scenes, tmp_path):
    assert train(capsys, scenes, tmp_path / "t34", model="resnet34")[0] == 0
    code, _, err = run_cli(capsys, "distill", "--data", scenes, "--teacher", tmp_path / "t34",
                           "--student", "resnet18", "--out", tmp_path / "s18", "--set", *TINY,
                           "teacher.model=resnet34")
    assert code == 0, err
    assert json.loads((tmp_path / "s18" / "metrics.json").read_text())["teacher"]["model"] == "resnet34"


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--teacher", "{tmp}/no_such_run"], ["no_such_run", "does not exist"]),
        ([], ["needs a teacher", "--teacher"]),
        (["--teacher", "{teacher}", "--set", "teacher.model=resnet34"], ["resnet8x4", "resnet34"]),
        (["--teacher", "{teacher}", "--data", "{other}"], ["trained on 4 classes", "has 3"]),
        (["--teacher", "{teacher}", "--split-file", "{tmp}/other_split.json"], ["test split", "teacher"]),
        (["--teacher", "{teacher}", "--method", "ce"], ["rsdistill train"]),
    ],
)
def test_distill_rejects_teachers_that_do_not_fit(capsys, scenes, teacher_run, tmp_path, extra, fragments):
    from rsdistill.data.folders import scan_folder
    from rsdistill.data.splits import save_split, stratified_split
    from rsdistill.synth import generate_dataset

    other = tmp_path / "other"
    generate_dataset(other, classes=3, per_class=4, size=16, seed=1)
    save_split(stratified_split(scan_folder(scenes), 0.8, 0.0, seed=7), tmp_path / "other_split.json")
    fmt = dict(tmp=tmp_path, teacher=teacher_run, other=other)
    args = ["distill", "--data", scenes, "--student", "resnet20", "--out", tmp_path / "run",
            "--set", *TINY, *[a.format(**fmt) for a in extra]]
    code, _, err = run_cli(capsys, *args)
    _one_line_error(code, err, *[f.format(**fmt) for f in fragments])
    assert not (tmp_path / "run").exists()


def test_eval_reproduces_the_runs_final_accuracy(capsys, scenes, teacher_run, tmp_path):
    code, out, err = run_cli(capsys, "eval", "--data", scenes, "--checkpoint", teacher_run, "--out", tmp_path / "ev")
    assert code == 0, err
    result = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert result["top1"] == pytest.approx(json.loads((teacher_run / "metrics.json").read_text())["top1"])
    assert result["images"] == 8 and "top-1" in out
    assert (tmp_path / "ev" / "confusion_matrix.png").is_file()
    code, out, _ = run_cli(capsys, "eval", "--data", scenes, "--checkpoint", teacher_run / "checkpoints" / "last.pt")
    assert code == 0 and f"top-1 {result['top1']:.2f}%" in out


def test_eval_of_a_bad_checkpoint_is_a_clear_error(capsys, scenes, tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    code, _, err = run_cli(capsys, "eval", "--data", scenes, "--checkpoint", tmp_path / "x.pt")
    _one_line_error(code, err, "x.pt")


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    from rsdistill.engine.checkpoint import save_checkpoint

    target = tmp_path / "last.pt"
    save_checkpoint(target, {"model": {"a": torch.ones(2)}})
    good = target.read_bytes()

    def broken_save(obj, f):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(target, {"model": {"a": torch.zeros(2)}})
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_methods_and_models_are_listed(capsys):
    code, out, _ = run_cli(capsys, "methods")
    assert code == 0 and "kd " in out and "T=4.0" in out and "kd_weight=4.0" in out
    code, out, _ = run_cli(capsys, "models", "--classes", "21")
    assert code == 0
    for name in ("resnet18", "resnet34", "resnet50", "mobilenet_v2", "resnet20", "resnet56",
                 "resnet8x4", "resnet32x4", "wrn_16_2", "wrn_40_2"):
        assert name in out


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_writes_a_model_that_matches_pytorch_and_names_the_classes(capsys, teacher_run, tmp_path, fmt):
    out = tmp_path / ("model.onnx" if fmt == "onnx" else "model.pt")
    code, text, err = run_cli(capsys, "export", "--checkpoint", teacher_run, "--out", out, "--format", fmt)
    assert code == 0, err
    meta = json.loads(out.with_suffix(out.suffix + ".json").read_text())
    assert meta["classes"] == json.loads((teacher_run / "split.json").read_text())["classes"]
    assert meta["max_abs_diff_vs_pytorch"] < 1e-3
    if fmt == "onnx":
        import numpy as np
        import onnxruntime as ort

        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert session.run(None, {"image": np.random.rand(5, 3, 20, 20).astype(np.float32)})[0].shape == (5, 4)


def test_lr_schedule_steps_at_milestones_and_warms_up_linearly():
    from rsdistill.engine.trainer import lr_factor

    f = lambda step, warm=0.0: lr_factor(step, 10, [60, 120, 160], 0.1, warm)  # noqa: E731
    assert [f(0), f(599), f(600), f(1200), f(1600)] == pytest.approx([1, 1, 0.1, 0.01, 0.001])
    assert [f(0, 2.0), f(9, 2.0), f(19, 2.0), f(20, 2.0)] == pytest.approx([0.05, 0.5, 1.0, 1.0])


def test_a_method_that_rejects_the_data_stops_before_the_run_directory_exists(capsys, tmp_path):
    from rsdistill.synth import generate_dataset

    two = tmp_path / "two"
    generate_dataset(two, classes=2, per_class=6, size=16, seed=0)
    assert train(capsys, two, tmp_path / "t2")[0] == 0
    code, _, err = run_cli(capsys, "distill", "--data", two, "--teacher", tmp_path / "t2", "--student", "resnet20",
                           "--method", "dkd", "--out", tmp_path / "dkd", "--set", *TINY)
    _one_line_error(code, err, "dkd", "3 classes")
    assert not (tmp_path / "dkd").exists()


def test_config_yaml_records_defaults_a_method_resolves_from_the_models(capsys, scenes, teacher_run, tmp_path):
    code, _, err = run_cli(capsys, "distill", "--data", scenes, "--teacher", teacher_run, "--student", "resnet20",
                           "--method", "reviewkd", "--out", tmp_path / "r", "--set", *TINY)
    assert code == 0, err
    cfg = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    # resnet20: the official resnet56 -> resnet20 weight; a CIFAR-style student: post-ReLU features
    assert cfg["method"]["weight"] == 0.6 and cfg["method"]["student_preact"] is False


def test_demo_runs_teacher_and_three_students_and_writes_the_report(capsys, tmp_path):
    out = tmp_path / "demo"
    args = ["-q", "demo", "--out", out, "--classes", "3", "--per-class", "10", "--image-size", "16",
            "--teacher-epochs", "1", "--student-epochs", "1"]
    code, text, err = run_cli(capsys, *args)
    assert code == 0, err
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 5 and rows[0].startswith("model,training,epochs,top-1")
    assert [r.split(",")[1] for r in rows[1:]] == ["teacher (CE)", "student alone (CE)", "KD", "ISDM"]
    assert f"report: {out / 'results.md'}" in text
    # what compression bought, as `rsdistill profile` measures it: the student is cheaper on every count
    with open(out / "results.csv", newline="") as f:
        teacher, *students = list(csv.DictReader(f))
    flops = "MFLOPs (1 image)"  # resnet18 at 16 px: about 31 MFLOPs
    for student in students:
        assert float(student[flops]) < float(teacher[flops]) and float(student["params (M)"]) < float(teacher["params (M)"])
        assert 0 < float(student["ONNX file (MB)"]) < float(teacher["ONNX file (MB)"])
        assert float(student["CPU ms (batch 1)"]) > 0 and student["latency vs teacher"].endswith("x")
        for ratio in ("params vs teacher", "FLOPs vs teacher", "size vs teacher"):
            assert 0 < float(student[ratio].rstrip("x")) < 1, ratio
    profile = json.loads((out / "results.json").read_text())["profile"]["datasets"]["scenes"]
    assert profile["student"]["flops"] == pytest.approx(float(students[0][flops]) * 1e6, rel=0.01)
    assert profile["teacher"]["arch"] == "resnet18" and (out / "tables" / "compression_cost.md").is_file()
    # the demo is the suite configs/suites/demo.yaml with the flags' fields set: a suite folder
    runs = out / "runs" / "scenes" / "8_2"
    for run in ("teacher", "alone", "kd", "isdm"):
        assert (runs / run / "seed0" / "metrics.json").is_file()
    assert (out / "report.md").is_file()
    cfg = yaml.safe_load((runs / "isdm" / "seed0" / "config.yaml").read_text())
    assert cfg["teacher"]["checkpoint"] == str(runs / "teacher" / "seed0") and cfg["train"]["lr_warmup_epochs"] == 2.0
    assert cfg["data"]["view_bank"] == 8 and cfg["train"]["epochs"] == 1 and cfg["data"]["image_size"] == 16
    assert yaml.safe_load((runs / "teacher" / "seed0" / "config.yaml").read_text())["data"]["view_bank"] == 0
    assert len([p for p in (out / "data" / "scenes").iterdir() if p.is_dir()]) == 3  # --classes 3
    stamp = (runs / "kd" / "seed0" / "metrics.json").stat().st_mtime_ns
    assert run_cli(capsys, *args)[0] == 0  # re-running reuses the finished runs
    assert (runs / "kd" / "seed0" / "metrics.json").stat().st_mtime_ns == stamp
    assert (out / "results.csv").read_text().splitlines()[1:] == rows[1:]


def test_demo_flags_set_the_demo_suite_files_fields_and_leave_the_rest():
    from rsdistill.experiments.demo import DEMO_SUITE, DemoOptions
    from rsdistill.experiments.suite.spec import load_suite
    from rsdistill.shipped import shipped_config

    suite = shipped_config(DEMO_SUITE)
    default = load_suite(suite, DemoOptions().overrides()).spec
    assert default.datasets["scenes"].synth.classes == 23 and default.seeds == [0]
    assert default.student.overrides["train"]["epochs"] == 20 and default.teacher.overrides["train"]["epochs"] == 40
    spec = load_suite(suite, DemoOptions(classes=5, per_class=7, mix=0.3, image_size=32, teacher_epochs=3,
                                         student_epochs=2, lr_warmup_epochs=0.5, seed=4, progress=False).overrides()).spec
    synth = spec.datasets["scenes"].synth
    assert (synth.classes, synth.per_class, synth.mix, synth.size, synth.seed) == (5, 7, 0.3, 32, 4)
    assert spec.seeds == [4] and spec.teacher.seed == 4
    assert spec.overrides["data"]["image_size"] == 32 and spec.overrides["train"]["lr_warmup_epochs"] == 0.5
    assert spec.overrides["train"]["progress"] is False and spec.overrides["data"]["rs_aug"] is True
    assert spec.teacher.overrides["train"]["epochs"] == 3 and spec.student.overrides["train"]["epochs"] == 2
    assert spec.student.overrides["data"]["view_bank"] == 8  # untouched by the flags
    assert [m.name for m in spec.methods] == ["alone", "kd", "isdm"]
    # what --help shows as the defaults is the suite file's
    from rsdistill.experiments.demo import suite_defaults

    assert suite_defaults() == {"classes": 23, "per_class": 100, "mix": 0.0, "image_size": 64, "teacher_epochs": 40,
                                "student_epochs": 20, "lr_warmup_epochs": 2, "seed": 0}


def test_table_labels_runs_by_their_path_and_shows_settings_away_from_the_defaults(tmp_path):
    from rsdistill.reports.runs_table import method_label, run_labels

    assert run_labels([tmp_path / "abl" / "isdm" / "seed0", tmp_path / "abl" / "wo_is" / "seed0"]) == [
        "isdm/seed0", "wo_is/seed0"]
    assert method_label({"method": {"name": "ce"}}, {}) == "CE (no teacher)"
    assert method_label({"method": {"name": "isdm", "T": 4.0, "scaling": False, "m": 3.0, "margin": "fixed",
                                    "warmup_epochs": 2}}, {}) == "isdm scaling=false m=3 margin=fixed"
    assert method_label({"method": {"name": "kd", "logit_std": True}}, {}) == "kd logit_std=true"
    # a config.yaml written before is_level existed: its lambda_H means the entropy level, as the run read it
    assert method_label({"method": {"name": "isdm", "lambda_H": 1.0, "kappa": 0.5}}, {}) == "isdm is_level=entropy"


def test_table_compares_finished_runs_and_refuses_unfinished_ones(capsys, teacher_run, tmp_path):
    code, out, err = run_cli(capsys, "table", teacher_run, teacher_run, "--baseline", teacher_run,
                             "--out", tmp_path / "cmp")
    assert code == 0, err
    metrics = json.loads((teacher_run / "metrics.json").read_text())
    rows = (tmp_path / "cmp.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and f"{metrics['top1']:.2f}" in rows[1] and "+0.00" in rows[1]
    assert (tmp_path / "cmp.tex").read_text().startswith("\\begin{tabular}")
    (tmp_path / "half").mkdir()
    code, _, err = run_cli(capsys, "table", tmp_path / "half")
    _one_line_error(code, err, "half", "not a finished run")


def fake_run(path: Path, top1: float, method: str = "kd") -> Path:
    """A finished run directory with only what tables read."""
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"top1": top1, "top5": 90.0, "best_top1": top1, "epochs": 3,
                                                   "model": "resnet18", "method": method, "seconds": 60.0}))
    (path / "config.yaml").write_text(f"method:\n  name: {method}\n")
    return path


def test_table_groups_seed_runs_into_mean_and_std_with_the_seed_count(capsys, tmp_path):
    runs = [fake_run(tmp_path / "alone" / f"seed{s}", v, "ce") for s, v in enumerate((60.0, 62.0, 64.0))]
    runs += [fake_run(tmp_path / "kd" / f"seed{s}", v) for s, v in enumerate((65.0, 66.0))]
    code, out, err = run_cli(capsys, "table", *runs, "--group-seeds", "--baseline", tmp_path / "alone",
                             "--out", tmp_path / "t")
    assert code == 0, err
    rows = (tmp_path / "t.csv").read_text().strip().splitlines()
    assert len(rows) == 3
    assert rows[1].startswith("alone,") and ",3,62.00 ± 2.00," in rows[1]
    assert rows[2].startswith("kd,") and ",2,65.50 ± 0.71," in rows[2] and "+3.50" in rows[2]
    code, _, err = run_cli(capsys, "table", *runs, "--group-seeds", "--baseline", tmp_path / "nope")
    _one_line_error(code, err, "nope", "not one of the tabulated settings")


def test_eval_every_evaluates_every_nth_and_the_last_epoch_and_leaves_the_weights_unchanged(capsys, scenes,
                                                                                          tmp_path):
    args = ["train", "--data", scenes, "--model", "resnet8x4", "--seed", "3", "--set", *TINY[1:], "train.epochs=3"]
    assert run_cli(capsys, *args, "--out", tmp_path / "every")[0] == 0
    assert run_cli(capsys, *args, "train.eval_every=2", "--out", tmp_path / "sparse")[0] == 0
    records = read_jsonl(tmp_path / "sparse" / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert ["test/top1" in r for r in records] == [False, True, True]  # every 2nd epoch and the last
    every, sparse = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("every", "sparse"))
    assert sparse["top1"] == every["top1"] and sparse["top5"] == every["top5"]
    w_every, w_sparse = (torch.load(tmp_path / d / "checkpoints" / "last.pt", weights_only=True)["model"]["state_dict"]
                         for d in ("every", "sparse"))
    assert all(torch.equal(w_every[k], w_sparse[k]) for k in w_every)


def test_table_flags_a_distilled_student_below_the_student_alone_with_its_teachers_margin(capsys, tmp_path):
    def run(path, top1, method, model="resnet18", teacher=None):
        fake_run(path, top1, method)
        m = json.loads((path / "metrics.json").read_text())
        m["model"] = model
        if teacher is not None:
            m["teacher"] = {"model": "resnet34", "top1": teacher, "top5": 99.0}
        (path / "metrics.json").write_text(json.dumps(m))
        return path

    runs = [run(tmp_path / "alone" / f"seed{s}", v, "ce") for s, v in enumerate((62.0, 64.0))]
    runs += [run(tmp_path / "kd" / f"seed{s}", v, "kd", teacher=65.0) for s, v in enumerate((61.0, 62.0))]
    runs += [run(tmp_path / "isdm" / f"seed{s}", v, "isdm", teacher=65.0) for s, v in enumerate((66.0, 67.0))]
    runs += [run(tmp_path / "small" / "seed0", 50.0, "kd", model="resnet8", teacher=65.0)]  # no alone of its own
    code, out, err = run_cli(capsys, "table", *runs, "--group-seeds", "--out", tmp_path / "t")
    assert code == 0, err
    flags = [line for line in out.splitlines() if line.startswith("⚠")]
    assert len(flags) == 1
    assert flags[0].startswith("⚠ kd: top-1 61.50 is 1.50 below the student trained alone (63.00); "
                               "its teacher (65.00) is +2.00 points from the student alone")
    assert "⚠ kd:" in (tmp_path / "t.md").read_text()
    # run by run, each KD seed is judged against the mean of the alone seeds
    code, out, _ = run_cli(capsys, "table", *runs[:4])
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("⚠")] == ["⚠ kd/seed0", "⚠ kd/seed1"]


def test_distill_with_a_validation_split_reports_the_teachers_accuracy_on_it_before_training(capsys, scenes,
                                                                                             tmp_path):
    assert train(capsys, scenes, tmp_path / "t", "data.train_ratio=0.6", "data.val_ratio=0.2")[0] == 0
    code, _, err = run_cli(capsys, "distill", "--data", scenes, "--teacher", tmp_path / "t", "--student",
                           "resnet20", "--method", "kd", "--out", tmp_path / "kd", "--set", *TINY)
    assert code == 0, err
    teacher = json.loads((tmp_path / "kd" / "metrics.json").read_text())["teacher"]
    val = json.loads((tmp_path / "t" / "metrics.jsonl").read_text().splitlines()[-1])["val/top1"]
    assert teacher["val_top1"] == pytest.approx(val)
    log = (tmp_path / "kd" / "train.log").read_text()
    assert log.index("on the validation split") < log.index("epoch 1/1")


def test_distill_shows_the_student_alone_beside_the_teacher_and_warns_when_the_teacher_is_not_ahead(
        capsys, scenes, tmp_path):
    """teacher.alone_run: the student alone's last validation top-1 beside the teacher's, before epoch 1."""
    split = ["data.train_ratio=0.6", "data.val_ratio=0.2"]
    assert train(capsys, scenes, tmp_path / "t", *split)[0] == 0
    code, _, err = run_cli(capsys, "train", "--data", scenes, "--model", "resnet20", "--out", tmp_path / "alone",
                           "--split-file", tmp_path / "t" / "split.json", "--set", *TINY, *split)
    assert code == 0, err
    alone_val = json.loads((tmp_path / "alone" / "metrics.jsonl").read_text().splitlines()[-1])["val/top1"]
    code, _, err = run_cli(capsys, "distill", "--data", scenes, "--teacher", tmp_path / "t", "--student", "resnet20",
                           "--method", "kd", "--out", tmp_path / "kd", "--set", *TINY,
                           f"teacher.alone_run={tmp_path / 'alone'}")
    assert code == 0, err
    teacher = json.loads((tmp_path / "kd" / "metrics.json").read_text())["teacher"]
    assert teacher["alone_val_top1"] == pytest.approx(alone_val)
    assert teacher["alone_run"] == str(tmp_path / "alone")
    log = (tmp_path / "kd" / "train.log").read_text()
    lead = teacher["val_top1"] - alone_val
    said = f"the student alone ('{tmp_path / 'alone'}') {alone_val:.2f}%: the teacher is {lead:+.2f} points ahead"
    assert said in log and log.index(said) < log.index("epoch 1/1")
    # two 1-2 epoch networks on 16 px scenes: the teacher is not 3 points ahead, and the log says what that risks
    assert ("WARNING" in log.split(said)[0].splitlines()[-1]) == (lead < 3.0)


def test_a_student_alone_of_another_split_is_refused_in_one_line_before_anything_is_written(capsys, scenes,
                                                                                              tmp_path):
    split = ["data.train_ratio=0.6", "data.val_ratio=0.2"]
    assert train(capsys, scenes, tmp_path / "t", *split)[0] == 0
    code, _, err = run_cli(capsys, "train", "--data", scenes, "--model", "resnet20", "--out", tmp_path / "alone",
                           "--seed", "5", "--set", *TINY, *split)
    assert code == 0, err
    code, _, err = run_cli(capsys, "distill", "--data", scenes, "--teacher", tmp_path / "t", "--student", "resnet20",
                           "--method", "kd", "--out", tmp_path / "kd", "--set", *TINY,
                           f"teacher.alone_run={tmp_path / 'alone'}")
    assert code == 2
    assert err.strip().count("\n") == 0 and "teacher.alone_run" in err and "another split" in err
    assert not (tmp_path / "kd" / "config.yaml").exists()
