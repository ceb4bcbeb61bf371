"""Bad input and faults end in one clean line, never a traceback or a folder that blocks a rerun;
values are checked up front; YAML is read strictly; every bad image is named; messages and
warnings say what happened; the console suits a terminal and a log file alike; a run picks a
sensible number of CPU threads (issue 10)."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rsdistill.cli import build_parser, main
from rsdistill.config import build_config, load_yaml, parse_set
from rsdistill.errors import ConfigError

from .conftest import TINY, interrupt_after_logging_epoch, run_cli


def train(capsys, data, out, *extra):
    return run_cli(capsys, "train", "--data", data, "--model", "resnet20", "--out", out, "--set", *TINY, *extra)


def error_line(result: tuple[int, str, str]) -> str:
    """The one-line error of a CLI call that failed with exit code 2 (and no traceback)."""
    code, _, err = result
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def copy_of(scenes: Path, where: Path) -> Path:
    shutil.copytree(scenes, where)
    return where


def class_folders(data: Path) -> list[Path]:
    return sorted(p for p in data.iterdir() if p.is_dir())


# --------------------------------------------------------------------------- failed starts


@pytest.mark.parametrize(("device", "says"), [("cuda:abc", "is not a device"), ("cuda:7", "CUDA"), ("mps", "MPS")])
def test_an_invalid_or_absent_device_stops_before_the_run_folder_exists(capsys, scenes, tmp_path, device, says):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 CUDA devices")
    line = error_line(train(capsys, scenes, tmp_path / "run", "--device", device))
    assert "train.device" in line and device in line and says in line
    assert not (tmp_path / "run").exists()  # a rerun with another device is not blocked


def test_a_run_without_a_finished_epoch_starts_over_with_overwrite_and_a_finished_one_is_kept(
        capsys, scenes, tmp_path, monkeypatch):
    run = tmp_path / "run"
    interrupt_after_logging_epoch(monkeypatch, 1)  # Ctrl-C in the first epoch, before its checkpoint
    code, _, err = train(capsys, scenes, run)
    assert code == 130 and f"--resume {run}" in err
    monkeypatch.undo()
    line = error_line(train(capsys, scenes, run))
    assert "--overwrite" in line and "no finished epoch" in line and f"--resume {run}" in line

    code, _, err = train(capsys, scenes, run, "--overwrite")
    assert code == 0, err
    metrics = (run / "metrics.json").read_text()
    assert json.loads(metrics)["status"] == "finished"
    line = error_line(train(capsys, scenes, run, "--overwrite"))
    assert "finished epochs" in line and f"--resume {run}" in line
    assert (run / "metrics.json").read_text() == metrics and (run / "checkpoints" / "last.pt").is_file()


# --------------------------------------------------------------------------- OS errors


def read_only(monkeypatch, folder: Path) -> None:
    """Make ``folder`` behave as on a read-only file system (even for root, who ignores modes)."""
    real_mkdir, real_open = os.mkdir, os.open

    def inside(path) -> bool:
        p = Path(os.fspath(path)).absolute()
        return p == folder or folder in p.parents

    def mkdir(path, *args, **kwargs):
        if inside(path):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)


def test_a_read_only_out_is_one_line_naming_it(capsys, scenes, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    read_only(monkeypatch, ro)
    line = error_line(train(capsys, scenes, ro / "run"))  # a new folder inside a read-only one
    assert f"'{ro / 'run'}'" in line and "Read-only file system" in line
    line = error_line(train(capsys, scenes, ro))  # an empty folder that cannot be written
    assert f"'{ro}'" in line and "Read-only file system" in line
    monkeypatch.undo()
    assert list(ro.iterdir()) == []


def test_a_full_disk_is_one_line_naming_the_file_and_the_run_resumes_once_there_is_space(
        capsys, scenes, tmp_path, monkeypatch):
    import tempfile

    import rsdistill.io

    real = tempfile.mkstemp

    def full_at_checkpoint(*args, prefix="", **kwargs):
        if prefix.startswith(".last.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(rsdistill.io.tempfile, "mkstemp", full_at_checkpoint)
    run = tmp_path / "run"
    line = error_line(train(capsys, scenes, run))
    assert f"'{run / 'checkpoints' / 'last.pt'}'" in line and "No space left on device" in line and "disk is full" in line
    monkeypatch.undo()
    code, _, err = run_cli(capsys, "train", "--resume", run)
    assert code == 0, err


@pytest.mark.parametrize(("content", "says"), [
    (None, "is a folder"),
    (b"train:\n  epochs: 2 # caf\xe9\n", "is not UTF-8 text (byte 0xe9 on line 2)"),
    (b"train:\n  epochs: [2\n  lr: 0.1\n", "line 3, column 5"),
    (b"train:\n  epochs: 2\n  lr: 0.1\n  epochs: 3\n", "line 4, column 3: duplicate key 'epochs' (first at line 2)"),
])
def test_a_config_file_that_cannot_be_used_is_one_line_naming_it(capsys, scenes, tmp_path, content, says):
    config = tmp_path / "config.yaml"
    if content is None:
        config.mkdir()
    else:
        config.write_bytes(content)
    line = error_line(train(capsys, scenes, tmp_path / "run", "--config", config))
    assert f"'{config}'" in line and says in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("unreadable", ["root", "class"])
def test_an_unreadable_data_folder_is_named_not_reported_as_empty(capsys, scenes, tmp_path, monkeypatch,
                                                                   unreadable):
    data = copy_of(scenes, tmp_path / "data")
    denied = data if unreadable == "root" else class_folders(data)[1]
    real = os.scandir

    def scandir(path="."):
        if Path(os.fspath(path)) == denied:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    line = error_line(train(capsys, data, tmp_path / "run"))
    assert f"'{denied}'" in line and "Permission denied" in line and "no images" not in line
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- values checked up front


@pytest.mark.parametrize(("args", "says"), [
    (["train", "--seed", "4294967296"], "seed"),
    (["train", "--seed", "-1"], "seed"),
    (["eval", "--checkpoint", "{tmp}/none.pt", "--image-size", "0"], "--image-size"),
    (["eval", "--checkpoint", "{tmp}/none.pt", "--image-size", "4"], "--image-size"),
    (["models", "--classes", "-3"], "--classes"),
    (["methods", "--classes", "0"], "--classes"),
])
def test_invalid_values_are_one_line_errors_before_anything_runs(capsys, scenes, tmp_path, args, says):
    args = [a.format(tmp=tmp_path) for a in args]
    if args[0] == "train":
        args += ["--data", str(scenes), "--out", str(tmp_path / "run")]
    line = error_line(run_cli(capsys, *args))
    assert says in line and args[args.index(says) + 1 if says in args else 2] in line  # the value given
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- YAML


def test_yaml_errors_keep_the_line_and_column_and_a_duplicate_key_is_an_error(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("data:\n  image_size: 32\n  cache: disk\n  image_size: 64\n")
    with pytest.raises(ConfigError, match=r"c\.yaml'.*line 4, column 3: duplicate key 'image_size'"):
        load_yaml(file)
    with pytest.raises(ConfigError, match="duplicate key 'epochs'"):
        parse_set(["train={epochs: 1, epochs: 2}"])
    file.write_text("base: &b {epochs: 3}\ntrain:\n  <<: *b\n  epochs: 4\n")  # a merge key may be overridden
    assert load_yaml(file)["train"] == {"epochs": 4}


def test_data_cache_off_means_off_although_yaml_reads_off_as_false(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("data:\n  cache: off\n")
    assert build_config(load_yaml(file)).data.cache == "off"
    assert build_config(parse_set(["data.cache=off"])).data.cache == "off"
    with pytest.raises(ConfigError, match="data.cache"):
        build_config(parse_set(["data.cache=true"]))


# --------------------------------------------------------------------------- bad images


def spoil(data: Path) -> list[str]:
    """Three images of two classes replaced by garbage; their paths relative to ``data``."""
    folders = class_folders(data)
    victims = sorted(folders[0].iterdir())[:2] + sorted(folders[2].iterdir())[5:6]
    for v in victims:
        v.write_bytes(b"not an image")
    return [v.relative_to(data).as_posix() for v in victims]


def test_every_bad_image_is_named_and_nothing_is_written(capsys, scenes, tmp_path):
    data = copy_of(scenes, tmp_path / "data")
    bad = spoil(data)
    line = error_line(train(capsys, data, tmp_path / "run"))
    assert "3 of 48 images cannot be read" in line and "data.skip_bad_images" in line
    assert all(b in line for b in bad)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("cache", ["memory", "off"])
def test_skip_bad_images_leaves_them_out_and_lists_them_in_the_log_and_metrics(capsys, scenes, tmp_path, cache):
    data = copy_of(scenes, tmp_path / "data")
    bad = spoil(data)
    run = tmp_path / "run"
    code, _, err = train(capsys, data, run, "data.skip_bad_images=true", f"data.cache={cache}")
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert [s["path"] for s in metrics["skipped_images"]] == bad
    log = (run / "train.log").read_text()
    assert all(f"left out (data.skip_bad_images): cannot read image '{data / b}'" in log for b in bad)
    split = json.loads((run / "split.json").read_text())
    kept = split["train"] + split["val"] + split["test"]
    assert len(kept) == 45 and not set(bad) & set(kept)


def test_beyond_ten_bad_images_each_is_logged_on_its_own_line(caplog):
    from rsdistill.data.bad_images import UnreadableImages

    e = UnreadableImages([(f"c/{i}.png", f"cannot read image 'c/{i}.png': broken") for i in range(12)], 100)
    assert "12 of 100 images" in str(e) and "and 2 more (each logged above)" in str(e)
    with caplog.at_level(logging.ERROR, logger="rsdistill"):
        e.log_each()
    assert [r.getMessage() for r in caplog.records] == [why for _, why in e.failures]


# --------------------------------------------------------------------------- messages that do not mislead


@pytest.mark.parametrize("stage", ["preflight", "DataModule"])
def test_ctrl_c_before_the_run_exists_does_not_suggest_resume(capsys, scenes, tmp_path, monkeypatch, stage):
    import rsdistill.experiments.single as single

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(single, stage, interrupted)  # while listing, and while decoding (folder claimed)
    code, _, err = train(capsys, scenes, tmp_path / "run")
    assert code == 130 and "--resume" not in err and "nothing was started" in err
    assert not (tmp_path / "run").exists()


def test_a_teacher_with_renamed_classes_names_the_differing_classes(capsys, scenes, teacher_run, tmp_path):
    data = copy_of(scenes, tmp_path / "data")
    last = class_folders(data)[-1]
    last.rename(last.with_name(last.name + "_renamed"))  # still 4 classes, still last
    line = error_line(run_cli(capsys, "distill", "--data", data, "--teacher", teacher_run, "--student", "resnet20",
                              "--out", tmp_path / "run", "--set", *TINY))
    assert f"class 3 is '{last.name}' in the teacher but '{last.name}_renamed' in the data" in line


def test_eval_of_a_loose_checkpoint_says_which_images_and_uses_the_test_split_it_knows(capsys, scenes, teacher_run,
                                                                                      tmp_path):
    loose = tmp_path / "teacher.pt"
    shutil.copy(teacher_run / "checkpoints" / "last.pt", loose)
    code, out, err = run_cli(capsys, "eval", "--data", scenes, "--checkpoint", loose)
    assert code == 0, err
    top1 = json.loads((teacher_run / "metrics.json").read_text())["top1"]
    assert "(8 images)" in out and f"top-1 {top1:.2f}%" in out  # the run's 8 test images, not all 48
    assert "the test split of the checkpoint's run" in out + err and "seed 0" in out + err

    ckpt = torch.load(loose, weights_only=True)
    del ckpt["config"]  # a checkpoint that does not say how it was trained
    torch.save(ckpt, loose)
    code, out, err = run_cli(capsys, "eval", "--data", scenes, "--checkpoint", loose)
    assert code == 0, err
    assert "(48 images)" in out and "every image" in out + err and "not a test accuracy" in out + err


# --------------------------------------------------------------------------- warnings


def test_an_unfinished_teacher_is_warned_about(capsys, scenes, teacher_run, tmp_path, monkeypatch):
    import rsdistill.experiments.single as single

    teacher = tmp_path / "teacher"
    shutil.copytree(teacher_run, teacher)
    (teacher / "metrics.json").unlink()
    last = teacher / "checkpoints" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["config"]["train"]["epochs"] = 5  # it stopped after epoch 2 of 5
    torch.save(ckpt, last)

    def stop(*args):
        raise single.RsDistillError("stopped after loading the teacher")

    monkeypatch.setattr(single, "check_teacher_classes", stop)  # the warning is all this test needs
    code, _, err = run_cli(capsys, "distill", "--data", scenes, "--teacher", teacher, "--student", "resnet20",
                           "--out", tmp_path / "run", "--set", *TINY)
    assert code == 2
    assert f"teacher '{last}' is unfinished" in err and "after epoch 2 of 5" in err


def fake_run(path: Path, data: str, test: list[str], top1: float) -> Path:
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"status": "finished", "model": "resnet18", "method": "kd",
                                                   "epochs": 3, "top1": top1, "top5": 90.0, "best_top1": top1}))
    (path / "config.yaml").write_text(yaml.safe_dump({"method": {"name": "kd"}, "data": {"root": f"/data/{data}"}}))
    (path / "dataset.json").write_text(json.dumps({"root": f"/data/{data}", "classes": ["a", data],
                                                   "files": 10, "bytes": 1000}))
    (path / "split.json").write_text(json.dumps({"train": [], "test": test}))
    return path


def test_table_baseline_warns_about_runs_on_another_dataset_or_split(capsys, tmp_path):
    base = fake_run(tmp_path / "base", "aid", ["a/1.jpg", "a/2.jpg"], 60.0)
    same = fake_run(tmp_path / "same", "aid", ["a/2.jpg", "a/1.jpg"], 62.0)
    resplit = fake_run(tmp_path / "resplit", "aid", ["a/3.jpg", "a/4.jpg"], 63.0)
    other = fake_run(tmp_path / "other", "ucm", ["a/1.jpg", "a/2.jpg"], 64.0)
    code, out, err = run_cli(capsys, "table", base, same, resplit, other, "--baseline", base)
    assert code == 0, err
    assert f"run '{other}' was made on another dataset than --baseline '{base}'" in err
    assert f"run '{resplit}' was tested on other images than --baseline '{base}'" in err
    assert f"'{same}'" not in err
    assert "+4.00" in out  # a warning, not a refusal


def test_table_baseline_compares_folders_when_one_run_predates_fingerprints(capsys, tmp_path):
    base = fake_run(tmp_path / "base", "aid", ["a/1.jpg"], 60.0)
    (base / "dataset.json").unlink()  # made before dataset fingerprints were recorded
    same = fake_run(tmp_path / "same", "aid", ["a/1.jpg"], 62.0)
    other = fake_run(tmp_path / "other", "ucm", ["a/1.jpg"], 64.0)
    code, _, err = run_cli(capsys, "table", base, same, other, "--baseline", base)
    assert code == 0, err
    assert f"'{same}'" not in err
    assert f"run '{other}' was made on another dataset" in err


def test_export_warns_when_the_suffix_contradicts_the_format(capsys, teacher_run, tmp_path):
    code, _, err = run_cli(capsys, "export", "--checkpoint", teacher_run, "--format", "torchscript",
                           "--out", tmp_path / "x.onnx")
    assert code == 0, err
    assert "x.onnx" in err and "suffix of a onnx file" in err and "x.pt" in err


# --------------------------------------------------------------------------- version, -q, console, threads


def test_version_and_quiet_after_the_command(capsys):
    from rsdistill import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"rsdistill {__version__}"
    parser = build_parser()
    assert parser.parse_args(["models", "-q"]).quiet and parser.parse_args(["-q", "models"]).quiet
    assert parser.parse_args(["train", "--quiet", "--out", "x"]).quiet
    assert not parser.parse_args(["models"]).quiet


def test_a_redirected_console_gets_plain_epoch_lines_with_the_runs_eta_and_files_keep_the_umask(
        capsys, scenes, tmp_path):
    old = os.umask(0o002)
    try:
        code, _, err = train(capsys, scenes, tmp_path / "run", "train.epochs=2", "train.progress=true",
                             "--threads", "1")
    finally:
        os.umask(old)
    assert code == 0, err
    assert "\r" not in err  # capsys is not a terminal: no progress bars
    epoch1 = next(ln for ln in err.splitlines() if ln.startswith("epoch 1/2"))
    assert "run ~" in epoch1 and "left" in epoch1
    log = (tmp_path / "run" / "train.log").read_text()
    assert "1 CPU thread(s) (train.threads)" in log
    for name in ("config.yaml", "metrics.json", "train.log", "checkpoints/last.pt", "split.json"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o664, name


def test_threads_come_from_the_option_then_omp_num_threads_then_the_cores_shared_among_runs():
    from rsdistill.engine.threads import choose_threads

    assert choose_threads(3, 2, 16, 4, 16).threads == 3
    assert choose_threads(0, 2, 16, 4, 16).threads == 2
    assert choose_threads(0, None, 16, 4, 16).threads == 4
    assert choose_threads(0, None, 2, 2, 2).threads == 1
    assert choose_threads(0, None, 2, 5, 2).threads == 1  # never 0
    assert choose_threads(0, None, 16, 1, 8).threads == 8  # never above torch's own default
    assert "shared with 3 other" in choose_threads(0, None, 16, 4, 16).why


HOLD_MARKER = ("import sys, time\nfrom pathlib import Path\nfrom rsdistill.engine.threads import RunningRuns\n"
               "RunningRuns(Path(sys.argv[1])).__enter__()\nprint('held', flush=True)\ntime.sleep(300)\n")


def test_runs_working_on_this_machine_are_counted_and_a_killed_one_is_not(tmp_path):
    from rsdistill.engine.threads import RunningRuns

    other = subprocess.Popen([sys.executable, "-c", HOLD_MARKER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        with RunningRuns(tmp_path) as me:
            assert me.count() == 2
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
    with RunningRuns(tmp_path) as me:
        assert me.count() == 1
    assert len(list(tmp_path.glob("*.run"))) <= 1  # ours is gone; the killed one's goes once it is stale


def test_a_librarys_warning_is_one_line_without_its_source(capsys, monkeypatch):
    import warnings

    from rsdistill.distillers import registry

    names = registry.names

    def warning_names():
        warnings.warn("the pickle protocol 2 is old\nsecond line", DeprecationWarning, stacklevel=1)
        return names()

    monkeypatch.setattr(registry, "names", warning_names)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, _, err = run_cli(capsys, "methods")
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == ["DeprecationWarning: the pickle protocol 2 is old"], err
