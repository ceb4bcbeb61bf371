"""`rsdistill suite` and `rsdistill report`: a grid of cells on tiny synthetic scenes (the session's
trained teacher reused), its tables read back against the cells' metrics.json, resumption after a
kill, parallel jobs, sweeps, failures and malformed suite files."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rsdistill.engine.runlog import read_jsonl
from rsdistill.errors import ConfigError
from rsdistill.experiments.suite.cell import restart_if_killed_while_starting
from rsdistill.runs.claim import RunDirectoryInUse, RunLock
from rsdistill.experiments.suite.plan import SuiteFolder, manifest, plan
from rsdistill.experiments.suite.spec import load_suite
from rsdistill.reports.tables import Table, mean_std

from .browser import open_page
from .conftest import run_cli

REPO = Path(__file__).resolve().parents[1]


def write_suite(path: Path, scenes: Path, teacher_run: Path, **changes) -> Path:
    """2 methods (the student alone, KD) x 2 seeds x 1 split, 1 epoch at 16 px, the teacher reused."""
    suite = {
        "name": "tiny",
        "datasets": {"scenes": {"root": str(scenes)}},
        "splits": ["8:2"],
        "seeds": [0, 1],
        "set": {"train.epochs": 1, "data.image_size": 16, "train.batch_size": 16, "train.progress": False},
        "teacher": {"run": str(teacher_run), "model": "resnet8x4"},
        "student": {"model": "resnet20"},
        "methods": [{"name": "alone", "method": "ce", "label": "student alone"}, {"name": "kd", "label": "KD"}],
        **changes,
    }
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def metrics(out: Path, cell: str) -> dict:
    return json.loads((out / "runs" / cell / "metrics.json").read_text())


def csv_rows(file: Path) -> dict[str, dict[str, str]]:
    with open(file, newline="") as f:
        return {r[next(iter(r))]: r for r in csv.DictReader(f)}


CELLS = [f"scenes/8_2/{row}/seed{s}" for row in ("alone", "kd") for s in (0, 1)]


def test_two_jobs_finish_with_the_results_of_one_and_the_tables_hold_the_cells_numbers(
        capsys, scenes, teacher_run, tmp_path, monkeypatch, request):
    # The same threads per cell in both suites: float sums over threads are not associative.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # 2 epochs: the last and the best epoch can differ
    tiny = {"train.epochs": 2, "data.image_size": 16, "train.batch_size": 16, "train.progress": False}
    suite = write_suite(tmp_path / "suite.yaml", scenes, teacher_run, set=tiny)
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    for out, jobs in ((serial, 1), (parallel, 2)):
        code, stdout, err = run_cli(capsys, "-q", "suite", suite, "--out", out, "--jobs", jobs)
        assert code == 0, err
        assert "5 cells finished, 0 failed" in stdout  # the reused teacher too
    for cell in CELLS:
        a, b = metrics(serial, cell), metrics(parallel, cell)
        assert a["status"] == b["status"] == "finished"
        assert (a["top1"], a["top5"], a["best_top1"]) == (b["top1"], b["top5"], b["best_top1"]), cell
        losses = [[r["train/loss"] for r in read_jsonl(o / "runs" / cell / "metrics.jsonl")] for o in (serial, parallel)]
        assert losses[0] == losses[1], cell
        record = json.loads((parallel / "cells" / f"{cell}.json").read_text())
        assert record["status"] == "finished" and record["cost"]["seconds_per_iteration"] > 0
        assert 0 < record["cost"]["data_wait_share"] < 1
        assert record["cost"]["peak_rss_mb"] > 0

    out = parallel
    rows = csv_rows(out / "tables" / "scenes.csv")
    assert list(rows) == ["teacher (resnet8x4)", "student alone", "KD"]
    top1 = {row: [metrics(out, f"scenes/8_2/{row}/seed{s}")["top1"] for s in (0, 1)] for row in ("alone", "kd")}
    top5 = {row: [metrics(out, f"scenes/8_2/{row}/seed{s}")["top5"] for s in (0, 1)] for row in ("alone", "kd")}
    for row, label in (("alone", "student alone"), ("kd", "KD")):
        assert rows[label]["8:2 top-1 (%)"] == mean_std(top1[row])
        assert rows[label]["8:2 top-5 (%)"] == mean_std(top5[row])
        assert rows[label]["8:2 seeds"] == "2"
        shares = [json.loads((out / "cells" / f"{c}.json").read_text())["cost"]["data_wait_share"]
                  for c in CELLS if f"/{row}/" in c]
        assert float(rows[label]["data wait (%)"]) == pytest.approx(100 * sum(shares) / 2, abs=0.06)
    delta = sum(top1["kd"]) / 2 - sum(top1["alone"]) / 2
    assert rows["KD"]["8:2 Δ vs alone"] == f"{delta:+.2f}" and rows["student alone"]["8:2 Δ vs alone"] == "—"
    assert rows["student alone"]["8:2 Δ vs KD"] == f"{sum(top1['alone']) / 2 - sum(top1['kd']) / 2:+.2f}"
    assert rows["teacher (resnet8x4)"]["8:2 top-1 (%)"] == f"{json.loads((teacher_run / 'metrics.json').read_text())['top1']:.2f}"

    results = json.loads((out / "results.json").read_text())
    assert results["suite_command"][:2] == ["rsdistill", "suite"] and results["accuracy"] == "last"
    by_id = {c["id"]: c for c in results["cells"]}
    for cell in CELLS:
        assert by_id[cell]["metrics"] == metrics(out, cell)
        assert by_id[cell]["config"]["train"]["epochs"] == 2 and by_id[cell]["command"].startswith("rsdistill ")
    kd_row = next(r for r in results["tables"][0]["rows"] if r["row"] == "kd")
    assert kd_row["splits"]["8:2"]["top1"]["values"] == top1["kd"]
    settings = results["tables"][0]["settings"]
    assert settings["students"]["image_size"] == [16] and settings["students"]["epochs"] == [2]
    assert settings["seeds"] == [0, 1] and settings["device"] == ["cpu"]

    md = (out / "tables" / "scenes.md").read_text()
    assert "image size 16 px" in md and "seeds 0, 1" in md and "device cpu" in md
    assert "accuracy: last epoch, test split" in md and "selected on test" in md
    assert (out / "tables" / "scenes.tex").read_text().count("\\\\") == 4  # header + 3 rows
    page = (out / "report.html").read_text()
    assert "<table>" in page and "student alone" in page and "Settings" in page
    assert (out / "report.md").is_file()
    # the cost columns bold their lowest value among the students, the accuracy columns their highest
    waits = {label: float(rows[label]["data wait (%)"]) for label in ("student alone", "KD")}
    low = min(waits, key=waits.get)
    assert f"**{rows[low]['data wait (%)']}**" in md and f"**{rows[max(waits, key=waits.get)]['data wait (%)']}**" not in md

    # the table as pictures: every seed's top-1 per method, and accuracy against cost, PNG and SVG
    # (drawn by analysis/figures.py), embedded in the page, which opens with every image loaded
    figs = ["figures/scenes_top1_seeds", "figures/scenes_cost"]
    assert results["figures"] == [f"{f}.{x}" for f in figs for x in ("png", "svg")]
    for f in results["figures"]:
        assert (out / f).stat().st_size > 1000
    assert "![scenes: top-1 of every seed](figures/scenes_top1_seeds.png)" in (out / "report.md").read_text()

    # the cost of compression: the teacher and a student run measured by the profiler at 16 px
    cost = results["profile"]["datasets"]["scenes"]
    t, s = cost["teacher"], cost["student"]
    assert (t["arch"], s["arch"], t["image_size"], s["image_size"]) == ("resnet8x4", "resnet20", 16, 16)
    assert s["params"] < t["params"] and s["flops"] < t["flops"] and 0 < s["onnx_bytes"] < t["onnx_bytes"]
    assert cost["ratios_student_over_teacher"]["params"] == pytest.approx(s["params"] / t["params"], rel=1e-3)
    assert cost["notes"] == [] and "Cost of compression" in page and "student / teacher" in page
    assert "student / teacher" in (out / "report.md").read_text()

    # `rsdistill report` alone gives the same tables, the costs from the cache (nothing measured);
    # --epoch best switches to the best epochs
    import rsdistill.deploy.profile

    def no_measuring(*args, **kwargs):
        raise RuntimeError("measured again")

    monkeypatch.setattr(rsdistill.deploy.profile, "measure", no_measuring)
    before = (out / "tables" / "scenes.csv").read_text()
    assert run_cli(capsys, "report", out)[0] == 0
    assert (out / "tables" / "scenes.csv").read_text() == before
    assert json.loads((out / "results.json").read_text())["profile"]["datasets"]["scenes"] == cost
    assert run_cli(capsys, "report", out, "--epoch", "best")[0] == 0
    best = [metrics(out, f"scenes/8_2/kd/seed{s}")["best_top1"] for s in (0, 1)]
    assert csv_rows(out / "tables" / "scenes.csv")["KD"]["8:2 top-1 (%)"] == mean_std(best)
    assert "best epoch, selected on test" in (out / "tables" / "scenes.md").read_text()

    # a run that cannot be profiled costs the section its figures, not the report
    (out / "tables" / "profile.json").unlink()
    code, _, err = run_cli(capsys, "report", out)
    assert code == 0 and "could not be profiled: measured again" in err
    assert json.loads((out / "results.json").read_text())["profile"]["datasets"]["scenes"]["teacher"] is None
    assert "could not be profiled: measured again" in (out / "report.md").read_text()

    # the page in a browser, last: where none is installed the test skips only this check
    check = open_page(request.getfixturevalue("browser"), out / "report.html")
    assert check.title == "tiny: results" and check.console_errors == []
    assert [src for src, _ in check.images] == [f"{f}.png" for f in figs] and check.broken_images == []


def test_a_killed_suite_resumes_without_redoing_finished_cells(capsys, scenes, teacher_run, tmp_path):
    methods = [{"name": "alone", "method": "ce"}, {"name": "kd", "set": {"train.epochs": 4}}]
    suite = write_suite(tmp_path / "suite.yaml", scenes, teacher_run, seeds=[0], methods=methods)
    out = tmp_path / "out"
    # killed once the alone cell has finished and the kd cell has logged its first epoch (of 4)
    done, started = out / "runs/scenes/8_2/alone/seed0/metrics.json", out / "runs/scenes/8_2/kd/seed0/metrics.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "rsdistill", "-q", "suite", str(suite), "--out", str(out)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not (done.is_file() and started.is_file() and started.stat().st_size) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the suite, its fork server and the running cell
    proc.wait()
    assert done.is_file() and started.is_file(), proc.stderr.read().decode()[-2000:]
    assert not (out / "runs/scenes/8_2/kd/seed0/metrics.json").is_file(), "the kill came too late"
    finished_at = done.stat().st_mtime_ns
    # the running cell notices that its suite is gone and stops by itself (on a loaded machine,
    # not at once): until then its run folder is rightly in use
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            RunLock(out / "runs/scenes/8_2/kd/seed0").acquire().release()
            break
        except RunDirectoryInUse:
            time.sleep(0.2)

    code, stdout, err = run_cli(capsys, "-q", "suite", suite, "--out", out)
    assert code == 0, err
    assert done.stat().st_mtime_ns == finished_at  # not redone
    alone = json.loads((out / "cells/scenes/8_2/alone/seed0.json").read_text())
    assert [a["outcome"] for a in alone["attempts"]] == ["finished"]
    kd = json.loads((out / "cells/scenes/8_2/kd/seed0.json").read_text())
    assert [a["outcome"] for a in kd["attempts"]] == ["killed", "finished"]
    assert [r["epoch"] for r in read_jsonl(out / "runs/scenes/8_2/kd/seed0/metrics.jsonl")] == [1, 2, 3, 4]
    assert metrics(out, "scenes/8_2/kd/seed0")["epochs"] == 4

    # A changed suite file is an error naming the cell and the field; nothing is rerun.
    methods[1]["set"] = {"train.epochs": 3}
    write_suite(suite, scenes, teacher_run, seeds=[0], methods=methods)
    code, _, err = run_cli(capsys, "-q", "suite", suite, "--out", out)
    assert code == 2
    assert "cell 'scenes/8_2/kd/seed0'" in err and "train.epochs" in err
    assert done.stat().st_mtime_ns == finished_at


def test_a_sweep_gives_one_row_per_value_and_a_failing_cell_does_not_stop_the_others(
        capsys, scenes, teacher_run, tmp_path):
    sweeps = [{"method": "kd", "field": "train.lr", "values": [0.05, 1.0e+30]}]  # lr 1e30 diverges
    suite = write_suite(tmp_path / "suite.yaml", scenes, teacher_run, seeds=[0],
                        methods=[{"name": "alone", "method": "ce"}], sweeps=sweeps)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "-q", "suite", suite, "--out", out, "--jobs", 2)
    assert code == 1  # some cells failed
    assert "3 cells finished, 1 failed" in stdout and "scenes/8_2/kd.lr=1e+30/seed0" in err
    rows = csv_rows(out / "tables" / "scenes_sweep_kd_lr.csv")
    assert list(rows) == ["lr = 0.05", "lr = 1e+30"]
    assert rows["lr = 0.05"]["8:2 top-1 (%)"] == f"{metrics(out, 'scenes/8_2/kd.lr=0.05/seed0')['top1']:.2f}"
    assert rows["lr = 1e+30"]["8:2 top-1 (%)"] == "failed (1 of 1)"
    assert metrics(out, "scenes/8_2/kd.lr=1e+30/seed0")["status"] == "failed"
    results = json.loads((out / "results.json").read_text())
    failed = next(c for c in results["cells"] if c["row"] == "kd.lr=1e+30")
    assert failed["status"] == "failed" and "not finite" in failed["reason"]
    assert "Cells not finished" in (out / "report.md").read_text()


@pytest.mark.parametrize("override, named", [
    ("seeds=[0, 0]", "seeds"),
    ("splits=['8-2']", "splits"),
    ("methods.1.method=kdd", "methods.1.method: unknown method 'kdd' (did you mean 'kd'?)"),
    ("methods.0.set.seed=3", "methods.0.set: 'seed' is given by the suite"),
    ("set.train.epoch=2", "set: unknown field 'train.epoch'"),
    ("teacher.modle=resnet8x4", "unknown field 'teacher.modle' (did you mean 'model'?)"),
    ("sweeps=[{method: kd, field: method.T, values: [0]}]", "sweeps.0.values.0: method.T"),
    ("train.epochs=2", "go under set"),
])
def test_a_malformed_suite_file_is_an_error_naming_the_field(capsys, tmp_path, override, named):
    suite = write_suite(tmp_path / "suite.yaml", tmp_path, tmp_path / "teacher", teacher={"model": "resnet8x4"})
    code, _, err = run_cli(capsys, "suite", suite, "--out", tmp_path / "out", "--set", override)
    assert code == 2
    assert err.startswith(f"error: {suite}: ") and named in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_shipped_suite_files_expand_into_cells(tmp_path, monkeypatch):
    for var in ("UCM_DIR", "AID_DIR", "NWPU_DIR", "CIFAR100_DIR", "IMAGENET_DIR", "WEIGHTS_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var))
    (tmp_path / "WEIGHTS_DIR").mkdir()
    for name in ("resnet34-b627a593.pth", "resnet50-0676ba61.pth"):  # torchvision's file names
        (tmp_path / "WEIGHTS_DIR" / name).write_bytes(b"")
    files = sorted(f for f in (REPO / "configs" / "suites").glob("*.yaml") if not f.name.startswith("_"))  # not fragments
    assert {"demo.yaml", "ablation.yaml", "table8_cifar100_resnet32x4_resnet8x4.yaml",
            "table9_imagenet_resnet34_resnet18.yaml"} <= {f.name for f in files}
    for file in files:
        cells = plan(load_suite(file), SuiteFolder(tmp_path / "out"))
        assert cells and all(c.config is not None for c in cells), file
    # Tables 8 and 9: the published split, each method's paper settings, the weights-file teacher
    cells = {c.row: c for c in plan(load_suite(REPO / "configs/suites/table8_cifar100_resnet32x4_resnet8x4.yaml"),
                                    SuiteFolder(tmp_path / "t8"))}
    assert cells["teacher"].config["train"]["epochs"] == 240 and cells["teacher"].config["model"]["name"] == "resnet32x4"
    assert cells["dkd"].config["method"]["warmup_epochs"] == 20 and cells["dkd"].config["data"]["preset"] == "cifar100"
    assert cells["dkd"].config["data"]["val_ratio"] == 0.0 and cells["kd"].split == "published"
    cells = plan(load_suite(REPO / "configs/suites/table9_imagenet_resnet34_resnet18.yaml"), SuiteFolder(tmp_path / "t9"))
    assert "teacher" not in {c.row for c in cells} and all(not c.depends for c in cells)
    kd = next(c for c in cells if c.row == "kd").config
    assert kd["teacher"] == {**kd["teacher"], "model": "resnet34",
                             "checkpoint": str(tmp_path / "WEIGHTS_DIR" / "resnet34-b627a593.pth")}
    assert kd["method"]["T"] == 1.0 and kd["train"]["milestones"] == [30, 60, 90]


def test_a_row_with_seeds_runs_only_at_those_of_the_suites_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("AID_DIR", str(tmp_path / "aid"))
    suite = REPO / "configs/suites/cpu_protocol.yaml"
    cells = plan(load_suite(suite), SuiteFolder(tmp_path / "out"))
    seeds = {row: sorted(c.seed for c in cells if c.row == row) for row in dict.fromkeys(c.row for c in cells)}
    assert seeds == {"teacher": [0], **{r: [0, 1, 2] for r in ("alone", "kd", "isdm", "wo_is", "wo_dm")},
                     **{r: [0] for r in ("dkd", "kd_ls", "sdd", "fitnet", "at", "mlld")}}
    # a row given none of the suite's seeds is left out (of the cells and of the report's rows)
    one = load_suite(suite, ["seeds=[1]", "teacher.seed=1"])
    assert {c.row for c in plan(one, SuiteFolder(tmp_path / "one"))} == {"teacher", "alone", "kd", "isdm", "wo_is",
                                                                          "wo_dm"}
    rows = manifest(one, plan(one, SuiteFolder(tmp_path / "one")), [], SuiteFolder(tmp_path / "one"))["rows"]
    assert [r["row"] for r in rows] == ["alone", "kd", "isdm", "wo_is", "wo_dm"]


def test_protocol_sh_runs_the_cpu_protocol_suite_on_the_data_it_is_given(tmp_path):
    """scripts/protocol.sh AID_DIR OUT: the suite cpu_protocol.yaml on AID 5:5 at 64 px, with SEEDS
    and EXTRA (overrides for every student) as --set items."""
    (tmp_path / "aid").mkdir()
    env = {**os.environ, "RSDISTILL": "echo", "SEEDS": "0 1", "EXTRA": "train.epochs=20"}
    out = subprocess.run([str(REPO / "scripts/protocol.sh"), "aid", "run"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[:6] == ["suite", str(REPO / "configs/suites/cpu_protocol.yaml"), "--out", "run", "--jobs", "2"]
    cells = plan(load_suite(out[1], out[7:]), SuiteFolder(tmp_path / "run"))
    teacher = next(c for c in cells if c.row == "teacher").config
    isdm = next(c for c in cells if c.row == "isdm").config
    assert teacher["data"]["root"] == isdm["data"]["root"] == str(tmp_path / "aid")
    assert teacher["train"]["epochs"] == 50 and isdm["train"]["epochs"] == 20 and isdm["data"]["view_bank"] == 8
    assert isdm["data"]["image_size"] == 64 and isdm["data"]["train_ratio"] == 0.5
    assert sorted({c.seed for c in cells}) == [0, 1]
    assert next(c for c in cells if c.row == "dkd").config["method"]["beta"] == 2.0
    missing = subprocess.run([str(REPO / "scripts/protocol.sh"), "nothere", "run"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "AID_DIR: no folder 'nothere'" in missing.stderr


def test_demo_spread_sh_trains_the_three_students_against_each_seeds_teacher_at_a_schedule(tmp_path):
    """scripts/demo_spread.sh OUT SCHEDULE THREADS SEEDS: per data seed k, the student alone, KD and
    ISDM from the demo suite's alone cell of seed k, on its teacher's split, at the schedule's
    settings and the thread count; finished runs are skipped; an unknown stage is refused."""
    env = {**os.environ, "RSDISTILL": "rsdistill", "DRY": "1"}
    script = str(REPO / "scripts/demo_spread.sh")
    done = tmp_path / "students/lr05/t2/d1/kd"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text("{}")
    lines = subprocess.run([script, str(tmp_path), "lr05", "2", "0", "1"], env=env, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    assert [line.split()[2] for line in lines] == ["train", "distill", "distill", "train", "distill"]
    teacher = f"{tmp_path}/base1/runs/scenes/8_2/teacher/seed1"
    isdm = lines[-1].split()
    assert isdm[isdm.index("--config") + 1] == f"{tmp_path}/base1/runs/scenes/8_2/alone/seed1/config.yaml"
    assert isdm[isdm.index("--split-file") + 1] == f"{teacher}/split.json"
    assert isdm[isdm.index("--teacher") + 1] == teacher and isdm[isdm.index("--method") + 1] == "isdm"
    assert isdm[isdm.index("--threads") + 1] == "2" and isdm[isdm.index("--seed") + 1] == "1"
    assert isdm[isdm.index("--set") + 1] == "train.lr=0.05"
    assert isdm[-2:] == ["--out", f"{tmp_path}/students/lr05/t2/d1/isdm"]
    unknown = subprocess.run([script, str(tmp_path), "nosuch"], env=env, capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown stage 'nosuch'" in unknown.stderr


def test_demo_spread_sh_trains_the_demo_suites_teacher_per_data_seed_with_extra_settings(tmp_path):
    """The teachers stage: the demo suite per data seed k (scenes, teacher and student seed k; the
    student alone only), into OUT/base<k>; TEACHER_SET adds suite --set items (a teacher recipe)."""
    env = {**os.environ, "RSDISTILL": "rsdistill", "DRY": "1", "TEACHER_SET": "teacher.set.train.milestones=[20,30]"}
    lines = subprocess.run([str(REPO / "scripts/demo_spread.sh"), str(tmp_path), "teachers", "1", "2"], env=env,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(lines) == 2
    cmd = lines[1].split()
    assert cmd[:3] == ["rsdistill", "-q", "suite"] and cmd[3] == str(REPO / "configs/suites/demo.yaml")
    assert cmd[cmd.index("--out") + 1] == f"{tmp_path}/base2"
    sets = cmd[cmd.index("--set") + 1:]
    assert {"datasets.scenes.synth.seed=2", "teacher.seed=2", "seeds=[2]"} <= set(sets)
    assert 'methods=[{"name":"alone","method":"ce"}]' in sets and sets[-1] == "teacher.set.train.milestones=[20,30]"


def test_a_cifar100_suite_on_the_published_split_with_a_weights_file_teacher_runs_each_cell_under_torchrun(
        capsys, tmp_path):
    """Tables 8/9 in small: the dataset's own train/test split, a teacher given as a plain weights
    file (not trained by the suite), a method with its own config file, and each cell run by two
    torchrun processes (gloo on the CPU)."""
    import torch

    from rsdistill.models.registry import build_model

    from .test_cifar_imagenet import write_fake_cifar100

    data = write_fake_cifar100(tmp_path / "cifar-100-python")
    weights = tmp_path / "teacher.pth"  # what torchvision's weights files hold: the bare state dict
    torch.save(build_model("resnet20", 100).net.state_dict(), weights)
    recipe = tmp_path / "kd_recipe.yaml"
    recipe.write_text("method: {T: 2.0}\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "datasets": {"c100": {"root": str(data), "preset": "cifar100"}},
        "splits": ["published"], "seeds": [0],
        "config": [str(REPO / "configs/recipes/cifar100.yaml")],
        "set": {"train.epochs": 1, "train.milestones": [], "train.progress": False, "train.batch_size": 50},
        "teacher": {"model": "resnet20", "weights": str(weights)},
        "student": {"model": "resnet20"},
        "methods": [{"name": "kd", "config": [str(recipe)]}],
    }))
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "-q", "suite", suite, "--out", out, "--nproc-per-cell", "2")
    assert code == 0, err + "".join(p.read_text() for p in (out / "cells").rglob("*.torchrun.log"))
    assert "1 cells finished, 0 failed" in stdout
    assert not (out / "runs" / "c100" / "published" / "teacher").exists()
    kd = out / "runs" / "c100" / "published" / "kd" / "seed0"
    cfg = yaml.safe_load((kd / "config.yaml").read_text())
    assert cfg["method"]["T"] == 2.0 and cfg["teacher"]["checkpoint"] == str(weights)
    assert json.loads((kd / "split.json").read_text())["counts"] == {"train": 200, "val": 0, "test": 100}
    assert metrics(out, "c100/published/kd/seed0")["processes"] == 2
    assert (out / "cells" / "c100" / "published" / "kd" / "seed0.torchrun.log").is_file()
    table = csv_rows(out / "tables" / "c100.csv")
    assert list(table) == ["kd"] and table["kd"]["test top-1 (%)"] == f"{metrics(out, 'c100/published/kd/seed0')['top1']:.2f}"
    assert f"teacher from the weights file {weights}" in (out / "report.md").read_text()


@pytest.mark.parametrize("change, named", [
    ({"splits": ["published"]}, "datasets.scenes (preset folder) has no published split"),
    ({"datasets": {"c": {"root": "/x", "preset": "cifar100"}}}, "use splits: [published], not 8:2"),
    ({"teacher": {"model": "resnet20", "weights": "w.pth", "seed": 0}}, "is not trained: it takes no config, set or seed"),
    ({"teacher": {"run": "r", "weights": "w.pth"}}, "teacher.weights is a weights file for teacher.model"),
    ({"student": {"model": "resnet2"}}, "unknown model 'resnet2'"),
])
def test_splits_teachers_and_models_that_do_not_fit_the_suite_are_errors(capsys, tmp_path, change, named):
    suite = write_suite(tmp_path / "suite.yaml", tmp_path, tmp_path / "teacher", **change)
    code, _, err = run_cli(capsys, "suite", suite, "--out", tmp_path / "out")
    assert code == 2 and named in err and "Traceback" not in err, err


def test_timm_models_are_accepted_as_the_suites_student(tmp_path):
    suite = write_suite(tmp_path / "suite.yaml", tmp_path, tmp_path / "teacher",
                        teacher={"model": "resnet20"}, student={"model": "timm:resnet10t"})
    cells = plan(load_suite(suite), SuiteFolder(tmp_path / "out"))
    assert {c.config["model"]["name"] for c in cells if c.row != "teacher"} == {"timm:resnet10t"}


def test_the_best_value_of_each_column_is_bold_in_markdown_and_latex_and_plain_in_csv():
    t = Table(["method", "top-1 (%)", "Δ"], notes=["Settings: 16 px"])
    t.add("teacher", "90.00", "—")
    t.add("a", "61.20 ± 0.30", "+1.20")
    t.add("b", "failed (1 of 2)", "—")
    t.add("c", "61.20 ± 0.90", "-0.40")
    t.bold_best(["top-1 (%)", "Δ"], rows=[1, 2, 3])  # the teacher is not a contender
    md = t.to_markdown()
    assert "**61.20 ± 0.30**" in md and "**61.20 ± 0.90**" in md and "**+1.20**" in md
    assert "**90.00**" not in md and md.rstrip().endswith("Settings: 16 px")
    assert "\\textbf{61.20 $\\pm$ 0.30}" in t.to_latex() and "% Settings: 16 px" in t.to_latex()
    assert "**" not in t.to_csv()


def test_cost_columns_bold_their_lowest_value():
    t = Table(["method", "top-1 (%)", "ms/iter", "data wait (%)"])
    t.add("teacher", "90.00", 1.0, 1.0)
    t.add("a", "61.20", 12.5, 40.0)
    t.add("b", "60.00", 9.25, 55.5)
    t.bold_best(["top-1 (%)"], rows=[1, 2])
    t.bold_best(["ms/iter", "data wait (%)"], rows=[1, 2], lower=True)  # the least time waiting is best
    assert t.bold == {(1, 1), (2, 2), (1, 3)}


def test_report_figures_draw_partial_grids(tmp_path):
    # a method with no finished seed, a split without references, a row without a cost: drawn
    # around, never an error; PNG for the page and SVG beside it
    from PIL import Image

    from rsdistill.analysis import figures

    panels = [figures.SeedPanel("split 8:2", {"alone": [61.0, 62.5], "KD": [64.0], "ISDM": []}, {"alone": 61.75}),
              figures.SeedPanel("split 5:5", {"alone": [], "KD": [], "ISDM": [58.0, 59.0, 60.5]}, {})]
    png = figures.seeds_figure(tmp_path / "seeds.png", panels, "t", svg=True)
    points = [figures.CostPoint("KD", "KD", 12.5, 64.0), figures.CostPoint("ISDM", "ISDM", float("nan"), 59.2, 1.2)]
    cost = figures.cost_figure(tmp_path / "cost.png", points, "training time per run (min)", svg=True)
    for f in (png, cost):
        assert Image.open(f).size[0] > 300 and f.with_suffix(".svg").read_text().lstrip().startswith("<?xml")


def test_report_of_a_folder_that_is_not_a_suite_is_an_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", tmp_path)
    assert code == 2 and "is not a suite folder (no suite.json)" in err


def test_a_cell_killed_while_its_run_was_starting_starts_afresh(tmp_path):
    run = tmp_path / "run"  # config.yaml written, killed before split.json: nothing trained yet
    run.mkdir()
    (run / "run.json").write_text('{"tool": "rsdistill"}')  # the marker, written first
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "dataset.json").write_text("{}")
    restart_if_killed_while_starting(run)
    assert not (run / "config.yaml").exists() and not (run / "dataset.json").exists()
    assert not (run / "run.json").exists()
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "split.json").write_text("{}")
    restart_if_killed_while_starting(run)  # a run that got further is resumed, never cleared
    assert (run / "config.yaml").is_file()


def test_the_report_flags_each_distilled_row_below_the_student_alone_per_split_with_the_teachers_margin():
    from rsdistill.experiments.suite.report import below_alone_flags

    class Mean:
        def __init__(self, v):
            self.v = v

        def mean_top1(self):
            return self.v

    rows = [("teacher", "teacher"), ("alone", "student alone"), ("kd", "KD"), ("isdm", "ISDM")]
    groups = {("8:2", "teacher"): Mean(81.6), ("8:2", "alone"): Mean(78.8), ("8:2", "kd"): Mean(77.0),
              ("8:2", "isdm"): Mean(79.0),
              ("5:5", "teacher"): Mean(70.0), ("5:5", "alone"): Mean(60.0), ("5:5", "kd"): Mean(None),
              ("5:5", "isdm"): Mean(59.5)}
    notes = below_alone_flags(rows, ["8:2", "5:5"], "alone", groups)
    assert len(notes) == 2
    assert notes[0].startswith("⚠ KD (8:2): top-1 77.00 is 1.80 below the student trained alone (78.80); "
                               "its teacher (81.60) is +2.80 points")
    assert notes[1].startswith("⚠ ISDM (5:5): top-1 59.50 is 0.50 below")  # a missing row is not judged
    assert below_alone_flags(rows, ["8:2"], None, groups) == []  # no student alone in the suite
    # another student trained alone (e.g. on other bands) is not a distilled row
    assert below_alone_flags(rows, ["8:2"], "alone", groups, {"kd"}) == []

# --------------------------------------------------------------------------- suite folders move


def tables(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((out / "tables").iterdir())}


def attempts(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out / "cells")): len(json.loads(p.read_text())["attempts"])
            for p in (out / "cells").rglob("*.json")}


def test_a_finished_suite_moved_or_copied_reports_the_same_tables_and_reruns_nothing(capsys, scenes, tmp_path):
    import shutil

    # a teacher cell of its own: its students' configs name its checkpoint and split file
    suite = write_suite(tmp_path / "suite.yaml", scenes, None, seeds=[0], teacher={"model": "resnet8x4"},
                        methods=[{"name": "alone", "method": "ce"}])
    first = tmp_path / "first"
    code, _, err = run_cli(capsys, "-q", "suite", suite, "--out", first)
    assert code == 0, err
    want, tried = tables(first), attempts(first)
    cells = {c["id"]: c for c in json.loads((first / "suite.json").read_text())["cells"]}
    student = cells["scenes/8_2/alone/seed0"]
    assert student["run_dir"] == "runs/scenes/8_2/alone/seed0"  # inside the folder: relative to it
    assert student["config"]["data"]["split_file"] == "runs/scenes/8_2/teacher/seed0/split.json"
    assert student["config"]["data"]["root"] == str(scenes)  # outside: as it is

    copy, moved = tmp_path / "copy", tmp_path / "moved"
    shutil.copytree(first, copy)
    first.rename(moved)  # the copy must not read the original's runs: it is gone from its place
    for out in (copy, moved):
        code, _, err = run_cli(capsys, "report", out)
        assert code == 0, err
        assert tables(out) == want, out
        assert all(c["status"] == "finished" for c in json.loads((out / "results.json").read_text())["cells"])
        code, _, err = run_cli(capsys, "-q", "suite", suite, "--out", out)  # every finished cell skipped
        assert code == 0, err
        assert attempts(out) == tried and tables(out) == want
        student = yaml.safe_load((out / "runs/scenes/8_2/alone/seed0/config.yaml").read_text())
        assert student["data"]["split_file"] == str(out / "runs/scenes/8_2/teacher/seed0/split.json")


def test_report_never_replaces_tables_with_fewer_finished_cells_without_saying_so(capsys, scenes, teacher_run,
                                                                                    tmp_path):
    import shutil

    suite = write_suite(tmp_path / "suite.yaml", scenes, teacher_run, seeds=[0])
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "-q", "suite", suite, "--out", out)
    assert code == 0, err
    want, results = tables(out), (out / "results.json").read_text()
    shutil.rmtree(out / "runs/scenes/8_2/kd/seed0")
    code, _, err = run_cli(capsys, "report", out)
    assert code == 2 and "scenes/8_2/kd/seed0" in err and "not finished now" in err
    assert tables(out) == want and (out / "results.json").read_text() == results


@pytest.mark.parametrize("sigint", ["default", "ignored"])  # ignored: a background job of a script (`... &`)
def test_sigterm_to_the_suite_stops_its_running_cell_which_is_resumable(capsys, scenes, teacher_run, tmp_path, sigint):
    # far more epochs than the stop takes: the suite gives a cell 2 s before it sends SIGINT, and
    # 50 epochs of these tiny scenes once finished within that grace under a parallel test run
    suite = write_suite(tmp_path / "suite.yaml", scenes, teacher_run, seeds=[0],
                        methods=[{"name": "alone", "method": "ce", "set": {"train.epochs": 2000}}])
    out = tmp_path / "out"
    started = out / "runs/scenes/8_2/alone/seed0/metrics.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "rsdistill", "-q", "suite", str(suite), "--out", str(out)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint == "ignored" else None)
    deadline = time.monotonic() + 600
    while not (started.is_file() and started.stat().st_size) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # the suite's own process only, as `kill PID` does
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    err = proc.stderr.read().decode()
    record = json.loads((out / "cells/scenes/8_2/alone/seed0.json").read_text())
    cell_pid = record["attempts"][-1]["pid"]
    still_running = True
    try:
        os.kill(cell_pid, 0)
    except ProcessLookupError:
        still_running = False
    if still_running:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not still_running, "the cell runs on as an orphan"
    assert proc.returncode == 130, err[-2000:]
    assert record["attempts"][-1]["outcome"] == "interrupted" and record["status"] == "interrupted", record
    run = out / "runs/scenes/8_2/alone/seed0"
    assert not (run / "metrics.json").exists() and (run / "split.json").is_file()  # started, resumable
    RunLock(run).acquire().release()  # and nobody holds it


def test_a_suite_file_extends_a_base_in_its_folder_mappings_merged_lists_replaced(tmp_path):
    (tmp_path / "_base.yaml").write_text(
        "seeds: [0, 1, 2]\nsplits: ['8:2']\nset: {train.epochs: 3, data.image_size: 32}\n"
        "teacher: {model: resnet8x4}\nstudent: {model: resnet20}\nmethods:\n  - {name: alone, method: ce}\n  - {name: kd}\n")
    (tmp_path / "mid.yaml").write_text("extends: _base.yaml\nset: {train.epochs: 5}\nseeds: [4]\n")
    (tmp_path / "suite.yaml").write_text(
        "extends: mid.yaml\nname: mine\ndatasets: {d: {root: data}}\nmethods:\n  - {name: isdm}\n")
    spec = load_suite(tmp_path / "suite.yaml").spec
    assert spec.name == "mine" and spec.seeds == [4] and spec.splits == ["8:2"]
    assert spec.overrides == {"train": {"epochs": 5}, "data": {"image_size": 32}}  # merged key by key
    assert [m.name for m in spec.methods] == ["isdm"]  # a list is replaced whole
    assert spec.student.model == "resnet20"


@pytest.mark.parametrize(("extends", "error"), [("../_base.yaml", "same folder"), ("missing.yaml", "does not exist"),
                                                 ("suite.yaml", "a loop")])
def test_extends_names_a_file_of_the_same_folder_that_exists_without_a_loop(tmp_path, extends, error):
    (tmp_path / "suite.yaml").write_text(f"extends: {extends}\ndatasets: {{d: {{root: data}}}}\n")
    with pytest.raises(ConfigError) as e:
        load_suite(tmp_path / "suite.yaml")
    assert error in str(e.value) and "suite.yaml" in str(e.value)
