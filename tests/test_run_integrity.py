"""A run directory is used by one run at a time, is never a user's folder or inside the data, works
from any working folder on the dataset it was made on, and never reports a diverged run as
finished."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rsdistill.data.folders import scan_folder
from rsdistill.data.splits import save_split, stratified_split

from .conftest import TINY, interrupt_after_logging_epoch, run_cli


def train(capsys, data, out, *extra):
    return run_cli(capsys, "train", "--data", data, "--model", "resnet20", "--out", out, "--set", *TINY, *extra)


def error_line(result: tuple[int, str, str]) -> str:
    """The one-line error of a CLI call that failed with exit code 2."""
    code, _, err = result
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def interrupted_run(capsys, monkeypatch, data, out) -> None:
    """A 3-epoch run stopped in its second epoch (what --resume continues; last.pt holds epoch 1)."""
    interrupt_after_logging_epoch(monkeypatch, 2)
    code, _, err = train(capsys, data, out, "train.epochs=3")
    assert code == 130, err
    monkeypatch.undo()


def copy_of(scenes: Path, where: Path) -> Path:
    shutil.copytree(scenes, where)
    return where


# A second process holding a run directory's lock the way a run does, until it is killed.
HOLDER = ("import sys, time\nfrom rsdistill.runs.claim import RunLock\n"
          "RunLock(sys.argv[1]).acquire()\nprint('held', flush=True)\ntime.sleep(300)\n")


def hold_lock(run_dir: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def kill(holder: subprocess.Popen) -> None:
    holder.send_signal(signal.SIGKILL)  # no clean-up of its own: the OS drops the lock
    holder.wait()


# --------------------------------------------------------------------------- one run per folder


def test_a_second_run_on_a_folder_in_use_stops_at_once_naming_the_holder(capsys, scenes, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = hold_lock(run)
    try:
        line = error_line(train(capsys, scenes, run))
        assert "in use" in line and f"pid {holder.pid}" in line and socket.gethostname() in line
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written beside the holder
        assert json.loads((run / ".lock").read_text())["pid"] == holder.pid
    finally:
        kill(holder)
    code, _, err = train(capsys, scenes, run)  # the killed holder's lock is stale
    assert code == 0, err
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"


def test_resume_is_refused_while_the_run_is_held_and_works_after_its_holder_was_killed(capsys, scenes, tmp_path,
                                                                                         monkeypatch):
    run = tmp_path / "run"
    interrupted_run(capsys, monkeypatch, scenes, run)
    holder = hold_lock(run)
    try:
        line = error_line(run_cli(capsys, "train", "--resume", run))
        assert f"pid {holder.pid}" in line
    finally:
        kill(holder)
    code, _, err = run_cli(capsys, "train", "--resume", run)
    assert code == 0, err
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3


def test_resume_of_a_run_killed_while_starting_starts_it_again_with_its_own_settings(capsys, scenes, tmp_path):
    """Killed after config.yaml and before split.json: nothing trained, no split to resume with."""
    run = tmp_path / "run"
    code, _, err = train(capsys, scenes, run, "train.epochs=1", "seed=3")
    assert code == 0, err
    for name in ("split.json", "metrics.json", "metrics.jsonl", "checkpoints"):
        shutil.rmtree(run / name) if (run / name).is_dir() else (run / name).unlink()
    code, _, err = run_cli(capsys, "train", "--resume", run)
    assert code == 0, err
    assert "stopped while starting" in err
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 3
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"


def test_a_start_rejected_after_the_lock_leaves_an_empty_folder_as_it_was(capsys, scenes, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    data = copy_of(scenes, tmp_path / "data")
    bad = sorted((data / sorted(p.name for p in data.iterdir())[0]).iterdir())[0]
    bad.write_bytes(b"not an image")
    line = error_line(train(capsys, data, empty))
    assert bad.name in line
    assert list(empty.iterdir()) == []  # not even the lock file
    code, _, err = train(capsys, scenes, empty)  # and a rerun is not blocked
    assert code == 0, err


# --------------------------------------------------------------------------- which folders --out takes


def test_out_refuses_a_users_folder_and_anything_inside_the_data(capsys, scenes, tmp_path):
    data = copy_of(scenes, tmp_path / "data")
    listing = sorted(str(p) for p in data.rglob("*"))
    users = tmp_path / "mine"
    users.mkdir()
    (users / "metrics.json").write_text('{"mine": true}')
    line = error_line(train(capsys, data, users))
    assert "mine" in line and "not empty" in line and "metrics.json" in line
    assert (users / "metrics.json").read_text() == '{"mine": true}' and len(list(users.iterdir())) == 1

    for out in (data, data / "runs" / "r1", data / sorted(p.name for p in data.iterdir())[0]):
        line = error_line(train(capsys, data, out))
        assert f"'{out}' is inside the dataset folder '{data}'" in line
    (tmp_path / "file").write_text("x")
    assert "is a file" in error_line(train(capsys, data, tmp_path / "file"))
    assert sorted(str(p) for p in data.rglob("*")) == listing  # the dataset is untouched


def test_eval_out_refuses_the_data_and_a_folder_of_other_files(capsys, scenes, teacher_run, tmp_path):
    data = copy_of(scenes, tmp_path / "data")
    line = error_line(run_cli(capsys, "eval", "--data", data, "--checkpoint", teacher_run, "--out", data / "ev"))
    assert "inside the dataset folder" in line and not (data / "ev").exists()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    line = error_line(run_cli(capsys, "eval", "--data", data, "--checkpoint", teacher_run,
                               "--out", tmp_path / "notes"))
    assert "notes" in line and not (tmp_path / "notes" / "eval.json").exists()


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_users_folder_with_a_config_yaml_is_refused_before_anything_is_written_overwrite_included(
        capsys, scenes, tmp_path):
    proj = tmp_path / "proj"
    (proj / "checkpoints").mkdir(parents=True)
    (proj / "config.yaml").write_text("lr: 0.5\n")
    (proj / "checkpoints" / "my_model.pt").write_text("w")
    before = listing(proj)
    for extra in ([], ["--overwrite"]):
        line = error_line(train(capsys, scenes, proj, *extra))
        assert "not an rsdistill run folder" in line and "run.json" in line, extra
        assert listing(proj) == before and not (proj / ".lock").exists(), extra  # not even the lock
    line = error_line(run_cli(capsys, "train", "--resume", proj))
    assert "not an rsdistill run folder" in line and listing(proj) == before


def test_a_run_folder_is_marked_by_the_run_json_it_writes_first(capsys, scenes, tmp_path, monkeypatch):
    from rsdistill import __version__
    from rsdistill.io import atomic_write_text

    written = []
    monkeypatch.setattr("rsdistill.io.atomic_write_text",
                        lambda path, text: (written.append(Path(path).name), atomic_write_text(path, text))[1])
    run = tmp_path / "run"
    code, _, err = train(capsys, scenes, run)
    assert code == 0, err
    assert written[0] == "run.json"
    marker = json.loads((run / "run.json").read_text())
    assert marker["tool"] == "rsdistill" and marker["version"] == __version__


def started_without_an_epoch(capsys, monkeypatch, data, out) -> None:
    """A run stopped in its first epoch: config.yaml, split.json, no checkpoints/last.pt."""
    interrupt_after_logging_epoch(monkeypatch, 1)
    code, _, err = train(capsys, data, out, "train.epochs=2")
    assert code == 130, err
    monkeypatch.undo()
    assert not (out / "checkpoints" / "last.pt").exists()


def test_overwrite_removes_only_the_files_the_run_wrote(capsys, scenes, tmp_path, monkeypatch):
    run = tmp_path / "run"
    started_without_an_epoch(capsys, monkeypatch, scenes, run)
    (run / "checkpoints").mkdir(exist_ok=True)
    mine = {run / "checkpoints" / "my_model.pt": "w", run / "tb" / "notes.txt": "n", run / "README.md": "r"}
    for file, text in mine.items():
        file.write_text(text)
    code, _, err = train(capsys, scenes, run, "--overwrite")
    assert code == 0, err
    assert all(f.read_text() == text for f, text in mine.items())
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"


def test_a_run_folder_of_an_earlier_version_without_the_marker_still_resumes_and_overwrites(
        capsys, scenes, tmp_path, monkeypatch):
    old = tmp_path / "old"
    interrupted_run(capsys, monkeypatch, scenes, old)
    (old / "run.json").unlink()
    code, _, err = run_cli(capsys, "train", "--resume", old)
    assert code == 0, err
    assert json.loads((old / "run.json").read_text())["tool"] == "rsdistill"  # marked from now on

    unstarted = tmp_path / "unstarted"
    started_without_an_epoch(capsys, monkeypatch, scenes, unstarted)
    (unstarted / "run.json").unlink()
    code, _, err = train(capsys, scenes, unstarted, "--overwrite")
    assert code == 0, err
    # A config.yaml of the user's beside a run's file is no run: its config is not a resolved one.
    (unstarted / "config.yaml").write_text("lr: 0.5\n")
    (unstarted / "run.json").unlink()
    line = error_line(train(capsys, scenes, unstarted, "--overwrite"))
    assert "not an rsdistill run folder" in line and (unstarted / "config.yaml").read_text() == "lr: 0.5\n"


@pytest.mark.parametrize("args, field", [
    (["--set", "train.epochs=5"], "train.epochs"),
    (["--model", "resnet18"], "model.name"),
    (["--seed", "7"], "seed"),
    (["--config", "CONFIG"], "train.lr"),
])
def test_resume_with_other_settings_is_refused_naming_the_field(capsys, scenes, tmp_path, monkeypatch, args, field):
    run = tmp_path / "run"
    interrupted_run(capsys, monkeypatch, scenes, run)
    (tmp_path / "c.yaml").write_text("train:\n  lr: 0.5\n")
    args = [str(tmp_path / "c.yaml") if a == "CONFIG" else a for a in args]
    before = listing(run)
    line = error_line(run_cli(capsys, "train", "--resume", run, *args))
    assert field in line and "resumed run keeps its settings" in line
    assert listing(run) == before
    # The same value as the run's is no change.
    code, _, err = run_cli(capsys, "train", "--resume", run, "--set", "train.epochs=3", "seed=0")
    assert code == 0, err


def test_resume_may_change_the_threads_and_the_device_and_says_so(capsys, scenes, tmp_path, monkeypatch):
    run = tmp_path / "run"
    interrupted_run(capsys, monkeypatch, scenes, run)
    stored = (run / "config.yaml").read_text()
    code, _, err = run_cli(capsys, "train", "--resume", run, "--threads", "1", "--device", "cpu")
    assert code == 0, err
    assert "train.threads = 1" in err and "train.device = 'cpu'" in err
    assert (run / "config.yaml").read_text() == stored  # the run's own settings stay on record


def test_resume_removes_the_temporary_file_of_a_checkpoint_write_that_was_killed(capsys, scenes, tmp_path,
                                                                                   monkeypatch):
    run = tmp_path / "run"
    interrupted_run(capsys, monkeypatch, scenes, run)
    leftover = run / "checkpoints" / ".last.pt.k2j4x9q1.tmp"
    leftover.write_bytes(b"half a checkpoint")
    mine = run / "checkpoints" / "notes.tmp"
    mine.write_text("mine")
    code, _, err = run_cli(capsys, "train", "--resume", run)
    assert code == 0, err
    assert not leftover.exists() and mine.read_text() == "mine"


def test_eval_out_takes_the_lock_of_a_run(capsys, scenes, teacher_run, tmp_path):
    out = tmp_path / "ev"
    out.mkdir()
    holder = hold_lock(out)
    try:
        line = error_line(run_cli(capsys, "eval", "--checkpoint", teacher_run, "--out", out))
        assert "in use" in line and f"pid {holder.pid}" in line
        assert not (out / "eval.json").exists()
    finally:
        kill(holder)
    code, _, err = run_cli(capsys, "eval", "--checkpoint", teacher_run, "--out", out)
    assert code == 0, err
    assert json.loads((out / "eval.json").read_text())["images"] > 0
    code, _, err = run_cli(capsys, "eval", "--checkpoint", teacher_run, "--out", out)  # an earlier result
    assert code == 0, err


# --------------------------------------------------------------------------- absolute paths, fingerprint


def test_eval_and_resume_work_from_another_working_folder(capsys, scenes, tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    b.mkdir()
    copy_of(scenes, a / "data")
    save_split(stratified_split(scan_folder(a / "data"), 0.8, 0.0, seed=3), a / "split.json")
    monkeypatch.chdir(a)
    interrupt_after_logging_epoch(monkeypatch, 1)
    code, _, err = train(capsys, "data", "run", "train.epochs=2", "--split-file", "split.json")
    assert code == 130, err
    monkeypatch.undo()
    cfg = yaml.safe_load((a / "run" / "config.yaml").read_text())
    assert cfg["data"]["root"] == str(a / "data") and cfg["data"]["split_file"] == str(a / "split.json")
    fingerprint = json.loads((a / "run" / "dataset.json").read_text())
    assert fingerprint["classes"] == scan_folder(scenes).classes and fingerprint["files"] == 48
    assert fingerprint["bytes"] == sum((scenes / p).stat().st_size for p in scan_folder(scenes).paths)

    monkeypatch.chdir(b)
    code, _, err = run_cli(capsys, "train", "--resume", "../a/run")
    assert code == 0, err
    metrics = json.loads((a / "run" / "metrics.json").read_text())
    code, out, err = run_cli(capsys, "eval", "--checkpoint", "../a/run")
    assert code == 0, err
    assert f"top-1 {metrics['top1']:.2f}%" in out


def test_a_moved_dataset_resumes_with_data_and_a_different_one_is_refused(capsys, scenes, tmp_path, monkeypatch):
    first, moved, run = tmp_path / "first", tmp_path / "moved", tmp_path / "run"
    copy_of(scenes, first)
    interrupted_run(capsys, monkeypatch, first, run)
    first.rename(moved)
    line = error_line(run_cli(capsys, "train", "--resume", run))
    assert f"no longer at '{first}'" in line and "--data" in line

    # Another dataset with the same name and classes in the old place: one image more.
    copy_of(moved, first)
    cls = sorted(p for p in first.iterdir())[0]
    shutil.copy(sorted(cls.iterdir())[0], cls / "extra.png")
    for args in (["train", "--resume", run], ["train", "--resume", run, "--data", first],
                 ["eval", "--checkpoint", run, "--data", first]):
        line = error_line(run_cli(capsys, *args))
        assert f"dataset '{first}' (4 classes, 49 files" in line and "48 files" in line and str(run) in line, args

    code, _, err = run_cli(capsys, "train", "--resume", run, "--data", moved)
    assert code == 0, err
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["root"] == str(moved)
    shutil.rmtree(first)
    code, _, err = run_cli(capsys, "eval", "--checkpoint", run)  # finds the data at its new place
    assert code == 0, err


# --------------------------------------------------------------------------- diverged runs


@pytest.mark.parametrize("what", ["weights", "loss"])
def test_a_run_that_diverges_in_its_last_epoch_exits_non_zero_and_is_marked_failed(capsys, scenes, teacher_run,
                                                                                  tmp_path, monkeypatch, what):
    from rsdistill.distillers import registry
    from rsdistill.engine.trainer import Trainer

    if what == "weights":  # the last step leaves NaN weights behind a finite loss
        original = Trainer.train_epoch

        def nan_weights(self, epoch):
            out = original(self, epoch)
            if epoch == self.cfg.train.epochs:
                next(self.distiller.student.parameters()).data.fill_(float("nan"))
            return out

        monkeypatch.setattr(Trainer, "train_epoch", nan_weights)
    else:  # a loss that is NaN at the last epoch's steps
        ce = registry.get("ce")
        forward = ce.forward_train

        def nan_loss(self, batch):
            logits, losses = forward(self, batch)
            if self.epoch == 2:
                losses = {k: v * float("nan") for k, v in losses.items()}
            return logits, losses

        monkeypatch.setattr(ce, "forward_train", nan_loss)
    run = tmp_path / "run"
    line = error_line(train(capsys, scenes, run, "train.epochs=2"))
    assert "epoch 2" in line and "not finite" in line
    monkeypatch.undo()

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "not finite" in metrics["reason"] and "top1" not in metrics
    assert metrics["epochs"] == 1
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert last["train_state"]["progress"]["epoch"] == 1  # the last good state
    assert all(torch.isfinite(t).all() for t in last["model"]["state_dict"].values() if t.is_floating_point())

    code, out, err = run_cli(capsys, "table", run, teacher_run)
    assert code == 0, err
    rows = [ln for ln in out.splitlines() if ln.startswith("| ")][1:]
    failed_rows = [r for r in rows if "failed" in r]
    assert len(rows) == 2 and len(failed_rows) == 1 and "resnet20" in failed_rows[0]
    assert json.loads((teacher_run / "metrics.json").read_text())["status"] == "finished"
    assert "failed" in error_line(run_cli(capsys, "train", "--resume", run))


def test_seed_groups_show_a_setting_with_a_failed_seed_as_failed_not_as_the_mean_of_the_rest(capsys, tmp_path):
    def fake(path: Path, metrics: dict) -> Path:
        path.mkdir(parents=True)
        (path / "metrics.json").write_text(json.dumps({"model": "resnet18", "method": "kd", "epochs": 3,
                                                       "seconds": 60.0, **metrics}))
        (path / "config.yaml").write_text("method:\n  name: kd\n")
        return path

    good = {"status": "finished", "top1": 60.0, "top5": 90.0, "best_top1": 60.0}
    runs = [fake(tmp_path / "ok" / "seed0", good), fake(tmp_path / "kd" / "seed0", good),
            fake(tmp_path / "kd" / "seed1", {"status": "failed", "reason": "epoch 2: loss is not finite"})]
    code, out, err = run_cli(capsys, "table", *runs, "--group-seeds", "--baseline", tmp_path / "ok")
    assert code == 0, err
    kd = next(ln for ln in out.splitlines() if ln.startswith("| kd "))
    assert "failed (1 of 2 seeds)" in kd and "60.00" not in kd
    line = error_line(run_cli(capsys, "table", *runs, "--group-seeds", "--baseline", tmp_path / "kd"))
    assert "failed run" in line
