"""The GPU check (scripts/gpu_check.sh, issue 25) cannot rot while no GPU is at hand: its dry run
goes through every step on the CPU on tiny data; its parts (the AID pack, the time limits, the
report of the tests) are checked on their own."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gpu_check = load_gpu_check()


def test_the_pack_holds_a_seeded_subset_of_each_class_at_the_training_size(tmp_path):
    src = tmp_path / "src" / "AID"
    for c, n in (("Beach", 5), ("Forest", 3)):
        (src / c).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (50, 50), (40 * i, 100, 200)).save(src / c / f"{c}_{i}.jpg")
    record = gpu_check.pack(tmp_path / "src", tmp_path / "a", per_class=4, size=24, quality=90, seed=0)
    assert record["counts"] == {"Beach": 4, "Forest": 3} and record["images"] == 7
    files = sorted((tmp_path / "a" / "AID").rglob("*.jpg"))
    assert len(files) == 7 and all(Image.open(f).size == (24, 24) for f in files)
    assert record["bytes"] == sum(f.stat().st_size for f in files)
    assert json.loads((tmp_path / "a" / "pack.json").read_text()) == record
    # the same seed draws the same images; another seed, another subset of the larger class
    gpu_check.pack(tmp_path / "src", tmp_path / "b", per_class=4, size=24, quality=90, seed=0)
    names = lambda d: sorted(f.name for f in (tmp_path / d).rglob("*.jpg"))  # noqa: E731
    assert names("a") == names("b")
    for seed in range(1, 6):
        gpu_check.pack(tmp_path / "src", tmp_path / f"s{seed}", per_class=4, size=24, quality=90, seed=seed)
    assert any(names("a") != names(f"s{seed}") for seed in range(1, 6))


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed and not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_step_over_its_time_is_stopped_with_its_children_and_marked(tmp_path):
    child = tmp_path / "child.pid"
    # a process that starts a child and sleeps: both must be gone after the stop
    code = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
            f"open({str(child)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    r = gpu_check.run_process([sys.executable, "-c", code], tmp_path / "sleep.log", limit=3)
    assert r["timed_out"] and r["returncode"] != 0
    # killed with its group; on a loaded machine its end can take a moment to show in /proc
    pid, deadline = int(child.read_text()), time.monotonic() + 20
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    done = gpu_check.run_process([sys.executable, "-c", "print('ok')"], tmp_path / "ok.log", limit=30)
    assert done["returncode"] == 0 and not done["timed_out"] and "ok" in (tmp_path / "ok.log").read_text()


def test_a_step_that_ends_early_or_late_shares_the_difference_with_the_next_ones(tmp_path, monkeypatch):
    args = argparse.Namespace(
        dry_run=True, results=tmp_path / "r", work=tmp_path / "w", deadline=1000.0, command="x", copy_to=None,
        site=None, data=tmp_path)
    check = gpu_check.Check(args)
    tests, protocol, bench = check.plan.budgets.values()
    now = 1000.0 - (tests + protocol + bench)  # as planned
    monkeypatch.setattr(gpu_check.time, "time", lambda: now)
    assert check.seconds_for("cuda_tests") == pytest.approx(tests)
    now += tests / 2  # the tests ended early: the next steps share their time
    assert check.seconds_for("protocol") == pytest.approx(protocol * (1 + tests / 2 / (protocol + bench)))
    now = 1000.0 - bench / 2  # late: the last step takes whatever is left
    assert check.seconds_for("benchmark") == pytest.approx(bench / 2)


def test_the_report_lists_the_failed_tests_from_pytests_junit_xml(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
                   '<testcase name="test_a"/><testcase name="test_b"><failure message="assert 1 == 2&#10;more"/>'
                   '</testcase><testcase name="test_c"><skipped message="needs CUDA"/></testcase>'
                   '</testsuite></testsuites>')
    summary = gpu_check.junit_summary(xml)
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (1, 1, 1)
    assert summary["failures"] == [{"test": "test_b", "failure": "assert 1 == 2"}]
    record = {"kind": "GPU", "command": "bash scripts/gpu_check.sh", "date": "d", "environment": {},
              "steps": {"cuda_tests": {"status": "failed", "seconds": 1, **summary}}}
    md = gpu_check.report(record)
    assert "1 passed, 1 failed, 0 errors, 1 skipped" in md and "`test_b`: assert 1 == 2" in md


@pytest.mark.slow
def test_the_dry_run_goes_through_every_step_on_the_cpu(tmp_path):
    """``scripts/gpu_check.sh --dry-run``: the environment, the tests marked cuda (run on the CPU),
    the protocol on a pack of synthetic scenes and the benchmark's smoke run, each reported."""
    results = tmp_path / "results"
    before = sorted((REPO / "benchmarks" / "results").rglob("*"))
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--results", str(results)], capture_output=True,
                          text=True, env=env, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    record = json.loads((results / "gpu_check.json").read_text())
    assert record["command"] == "bash scripts/gpu_check.sh --dry-run"
    assert record["environment"]["torch"] and not record["environment"]["missing_required"]
    steps = record["steps"]
    assert list(steps) == ["cuda_tests", "protocol", "benchmark"]
    tests = steps["cuda_tests"]
    assert tests["status"] == "passed" and tests["failed"] == tests["errors"] == 0 and tests["passed"] >= 10
    runs = steps["protocol"]["runs"]
    assert steps["protocol"]["status"] == "done" and set(runs) == {"teacher", "alone", "kd", "isdm"}
    assert all(r["epochs_done"] == 1 and 0 <= r["top1"] <= 100 for r in runs.values())
    assert "isdm" in steps["protocol"]["table"]
    summary = steps["benchmark"]["summary"]
    assert steps["benchmark"]["status"] == "done" and summary["kind"] == "smoke"
    assert summary["sections_done"] == ["cache", "overhead", "speed", "methods"]
    assert {f.name for f in results.iterdir()} == {"gpu_check.json", "gpu_check.md", "cuda_tests.log", "benchmark.md",
                                                   "benchmark.json", "protocol.md", "logs.tar.gz"}
    assert "## Real-data protocol" in (results / "gpu_check.md").read_text()
    # a dry run never writes into the results that are committed
    assert sorted((REPO / "benchmarks" / "results").rglob("*")) == before
