"""The GPU check of issue 25, driven by ``scripts/gpu_check.sh`` (its header says how to run it).

    python scripts/gpu_check.py pack SRC DEST [--per-class N --size PX --quality Q --seed S]
    python scripts/gpu_check.py env
    python scripts/gpu_check.py run --results DIR --data PACK [--dry-run] [--deadline T] ...

``pack`` makes the AID subset that travels to the GPU machine: N images per class drawn with a
seed, resized to the training size as the data layer resizes (bilinear, antialiased) and
re-encoded as JPEG, under DEST/AID/<Class>/, with DEST/pack.json recording what was done.

``env`` prints, as JSON, what the machine has: the GPU, its driver, torch, CUDA, cuDNN, Python,
and each package rsdistill imports (its version, or missing).

``run`` runs the check's steps one after another, each in its own processes under a time limit
(a step that finishes early leaves its time to the next ones), and after every step writes what
it measured to ``gpu_check.json`` and ``gpu_check.md`` in ``--results`` (and copies the result
files to ``--copy-to``, the device tool's $OUT), so a check stopped part-way keeps what it did:

1. ``cuda_tests``: ``pytest -m cuda tests/test_cuda.py`` (on the CPU in a dry run);
2. ``protocol``: the real-data protocol on the pack: a ResNet34 teacher, then a ResNet18 student
   alone, with KD and with ISDM side by side, with AMP, and ``rsdistill table``;
3. ``benchmark``: ``benchmarks/run.py --device cuda`` (``--smoke`` in a dry run).

Only the standard library is imported here (Pillow too for ``pack``): the check reports a missing
package instead of failing to start.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}

# What rsdistill imports (module, distribution), and torchdistill for the benchmark's peer.
PACKAGES = [("torch", "torch"), ("torchvision", "torchvision"), ("pydantic", "pydantic"),
            ("pydantic_core", "pydantic-core"), ("annotated_types", "annotated-types"),
            ("typing_extensions", "typing-extensions"), ("typing_inspection", "typing-inspection"),
            ("numpy", "numpy"), ("PIL", "pillow"), ("yaml", "pyyaml"), ("tqdm", "tqdm"),
            ("tifffile", "tifffile"), ("matplotlib", "matplotlib"), ("tensorboard", "tensorboard"),
            ("sklearn", "scikit-learn"), ("onnx", "onnx"), ("onnxruntime", "onnxruntime"),
            ("onnxscript", "onnxscript"), ("safetensors", "safetensors"), ("timm", "timm"),
            ("pytest", "pytest"), ("torchdistill", "torchdistill")]
# Without these nothing of rsdistill runs (the others disable one feature each).
REQUIRED = {"torch", "torchvision", "pydantic", "numpy", "PIL", "yaml", "pytest"}


# ---------------------------------------------------------------------------------------- pack
def class_folders(src: Path) -> list[Path]:
    """The class folders of SRC, or of SRC/AID (the published layout, as ``aid150/AID``)."""
    if (src / "AID").is_dir():
        src = src / "AID"
    folders = sorted(p for p in src.iterdir() if p.is_dir()) if src.is_dir() else []
    if not folders:
        raise SystemExit(f"pack: '{src}' holds no class folders (expected SRC/<Class>/*.jpg or SRC/AID/<Class>/)")
    return folders


def pack(src: Path, dest: Path, per_class: int, size: int, quality: int, seed: int) -> dict[str, Any]:
    from PIL import Image

    folders = class_folders(src)
    if dest.exists():
        shutil.rmtree(dest)
    rng = random.Random(seed)
    counts, total = {}, 0
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        chosen = sorted(rng.sample(files, min(per_class, len(files))))
        out = dest / "AID" / folder.name
        out.mkdir(parents=True)
        for f in chosen:
            with Image.open(f) as im:
                # as the data layer resizes (data/decode.py): bilinear with antialiasing
                im = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
                target = out / (f.stem + ".jpg")
                im.save(target, "JPEG", quality=quality)
                total += target.stat().st_size
        counts[folder.name] = len(chosen)
    record = {"source": str(src), "classes": len(folders), "images": sum(counts.values()), "per_class": per_class,
              "size": size, "jpeg_quality": quality, "seed": seed, "bytes": total, "counts": counts}
    (dest / "pack.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


# ---------------------------------------------------------------------------------------- env
def environment() -> dict[str, Any]:
    """The machine, the GPU and the packages, each read without failing on what is missing."""
    env: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable,
                           "platform": platform.platform(), "cpus": os.cpu_count()}
    packages, missing = {}, []
    for module, dist in PACKAGES:
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - an import that fails for any reason is reported
            packages[dist] = f"missing ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
            missing.append(dist)
            continue
        try:
            packages[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            packages[dist] = getattr(sys.modules[module], "__version__", "?")
    env["packages"], env["missing"] = packages, missing
    env["missing_required"] = [d for m, d in PACKAGES if m in REQUIRED and d in missing]
    try:
        import onnxruntime

        env["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except Exception:  # noqa: BLE001
        pass
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        env["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
        if smi.returncode == 0 and smi.stdout.strip():
            name, driver, memory = (x.strip() for x in smi.stdout.splitlines()[0].split(","))
            env.update({"gpu": name, "driver": driver, "gpu_memory": memory})
    except (OSError, subprocess.TimeoutExpired) as e:
        env["nvidia_smi"] = f"not available ({type(e).__name__})"
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda
        env["cuda_available"] = torch.cuda.is_available()
        env["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            env.update({"device": torch.cuda.get_device_name(0), "capability": f"{p.major}.{p.minor}",
                        "multiprocessors": p.multi_processor_count, "bf16": torch.cuda.is_bf16_supported(),
                        "device_count": torch.cuda.device_count()})
    except Exception as e:  # noqa: BLE001
        env["torch"] = f"missing ({e})"
    return env


# ---------------------------------------------------------------------------------------- plans
@dataclass(frozen=True)
class Protocol:
    """The real-data protocol: one teacher, then the students side by side."""

    size: int
    teacher: str
    student: str
    teacher_epochs: int
    student_epochs: int
    methods: tuple[str, ...] = ("alone", "kd", "isdm")
    common: tuple[str, ...] = ()  # --set overrides of every run

    def describe(self) -> str:
        return (f"{self.teacher} teacher ({self.teacher_epochs} epochs) -> {self.student} students "
                f"({self.student_epochs} epochs: {', '.join(self.methods)}) at {self.size} px; "
                f"settings: {' '.join(self.common)}")


@dataclass(frozen=True)
class Plan:
    device: str
    budgets: dict[str, float]  # seconds planned for each step, in order
    protocol: Protocol
    bench_args: tuple[str, ...]
    test_env: dict[str, str] = field(default_factory=dict)


# Every run of the protocol: AID's 5:5 split, rotations and flips, mixed precision (bfloat16 on a
# GPU that has it), the views cut on the GPU, the decoded images shared through the disk cache.
PROTOCOL_SETTINGS = ("data.train_ratio=0.5", "data.rs_aug=true", "data.gpu_augment=true", "data.cache=disk",
                     "train.amp=true", "train.progress=false")
GPU_PLAN = Plan(
    device="cuda",
    # the order they run in; the benchmark, last, also takes what the others leave
    budgets={"cuda_tests": 150, "protocol": 210, "benchmark": 170},
    protocol=Protocol(size=128, teacher="resnet34", student="resnet18", teacher_epochs=60, student_epochs=40,
                      common=PROTOCOL_SETTINGS),
    bench_args=("--device", "cuda", "--sections", "cache", "overhead", "overhead224", "speed", "methods"),
)
DRY_PLAN = Plan(
    device="cpu",
    # generous: the dry run checks the steps, not their time (a loaded 2-core machine is slow)
    budgets={"cuda_tests": 900, "protocol": 600, "benchmark": 600},
    protocol=Protocol(size=32, teacher="resnet34", student="resnet18", teacher_epochs=1, student_epochs=1,
                      common=PROTOCOL_SETTINGS + ("train.batch_size=16", "train.test_batch_size=64")),
    bench_args=("--smoke", "--device", "cpu", "--sections", "cache", "overhead", "speed", "methods"),
    test_env={"RSDISTILL_CUDA_TESTS_DEVICE": "cpu"},
)


# ---------------------------------------------------------------------------------------- processes
def run_process(cmd: list[str], log: Path, limit: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``cmd`` in its own process group, output to ``log``, stopped (the whole group) after
    ``limit`` seconds."""
    return wait_all([start(cmd, log, env)], limit)[0]


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path, float]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    return proc, log, time.monotonic()


def wait_all(procs: list[tuple[subprocess.Popen, Path, float]], limit: float) -> list[dict[str, Any]]:
    """Wait for every process until ``limit`` seconds from now; those still running then are
    stopped together (see ``stop``)."""
    end = time.monotonic() + max(limit, 1)
    finished: dict[int, float] = {}
    while len(finished) < len(procs) and time.monotonic() < end:
        for proc, _, t0 in procs:
            if proc.pid not in finished and proc.poll() is not None:
                finished[proc.pid] = time.monotonic() - t0
        time.sleep(0.2)
    late = [proc for proc, _, _ in procs if proc.pid not in finished]
    stop(late)
    return [{"returncode": proc.returncode, "timed_out": proc in late,
             "seconds": round(finished.get(proc.pid, time.monotonic() - t0), 1), "log": log.name}
            for proc, log, t0 in procs]


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to each process's group (a process this script started, and its children), then
    SIGKILL to those still there after 10 seconds."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        alive = [p for p in procs if p.poll() is None]
        for p in alive:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + grace
        for p in alive:
            try:
                p.wait(timeout=max(end - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
    for p in procs:  # the children of a group whose leader had already ended
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------- steps
class Check:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.plan = DRY_PLAN if args.dry_run else GPU_PLAN
        self.results = args.results.resolve()
        self.work = args.work.resolve()
        self.logs = self.work / "logs"
        self.python = sys.executable
        self.deadline = args.deadline or (time.time() + sum(self.plan.budgets.values()))
        self.record: dict[str, Any] = {
            "kind": "dry run (CPU, tiny data: checks the steps, measures nothing)" if args.dry_run else "GPU",
            "command": args.command or " ".join(sys.argv),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "git_commit": git_commit(),
            "steps": {},
        }

    # ------------------------------------------------------------------ bookkeeping
    def seconds_for(self, step: str) -> float:
        """This step's share of what is left before the deadline, in the proportion of the steps'
        planned times: a step that ended early leaves its time to the next ones, and one that ran
        late takes it from all of them alike."""
        names = list(self.plan.budgets)
        planned = [self.plan.budgets[n] for n in names[names.index(step):]]
        return (self.deadline - time.time()) * planned[0] / sum(planned)

    def save(self) -> None:
        self.results.mkdir(parents=True, exist_ok=True)
        (self.results / "gpu_check.json").write_text(json.dumps(self.record, indent=2) + "\n")
        (self.results / "gpu_check.md").write_text(report(self.record))
        self.archive()
        if self.args.copy_to:
            self.args.copy_to.mkdir(parents=True, exist_ok=True)
            for f in sorted(self.results.iterdir()):
                if f.is_file():  # at most 8 flat files: what the device tool sends back
                    shutil.copy2(f, self.args.copy_to / f.name)

    def archive(self) -> None:
        """The logs and the protocol's run records (no checkpoints) in one file."""
        with tarfile.open(self.results / "logs.tar.gz", "w:gz") as tar:
            for f in sorted(self.work.rglob("*")):
                if f.is_file() and (f.suffix in {".log", ".jsonl", ".json", ".yaml", ".md", ".csv", ".tex", ".xml"}):
                    tar.add(f, arcname=str(f.relative_to(self.work)))

    def step(self, name: str, fn) -> None:
        budget = self.seconds_for(name)
        print(f"== {name}: up to {budget:.0f} s", flush=True)
        t0 = time.monotonic()
        if budget < 10:
            out = {"status": "skipped", "reason": f"no time left ({budget:.0f} s)"}
        else:
            try:
                out = fn(budget)
            except Exception as e:  # noqa: BLE001 - one step's failure must not lose the others
                out = {"status": "error", "reason": f"{type(e).__name__}: {e}"}
        out["seconds"] = round(time.monotonic() - t0, 1)
        self.record["steps"][name] = out
        print(f"== {name}: {out['status']} in {out['seconds']} s" + (f" ({out['reason']})" if out.get("reason") else ""),
              flush=True)
        self.save()

    # ------------------------------------------------------------------ the steps
    def env(self) -> None:
        try:
            proc = subprocess.run([self.python, __file__, "env"], capture_output=True, text=True, cwd=REPO,
                                  timeout=300)
            self.record["environment"] = json.loads(proc.stdout)
        except (subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            out = getattr(e, "stdout", None) or (proc.stdout + proc.stderr if isinstance(e, json.JSONDecodeError) else "")
            self.record["environment"] = {"error": f"{type(e).__name__}: {str(out)[-2000:]}"}
        e = self.record["environment"]
        print(f"device: {e.get('device') or e.get('nvidia_smi')}; driver {e.get('driver')}; torch {e.get('torch')} "
              f"(CUDA {e.get('torch_cuda')}, cuDNN {e.get('cudnn')}); Python {e.get('python')}", flush=True)
        if e.get("missing"):
            print(f"missing packages: {', '.join(e['missing'])}", flush=True)
        self.save()

    def cuda_tests(self, budget: float) -> dict[str, Any]:
        log, xml = self.results / "cuda_tests.log", self.logs / "cuda_tests.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        cmd = [self.python, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-p", "no:cacheprovider", "-q",
               "-rfEs", "--durations=10", f"--junitxml={xml}"]
        r = run_process(cmd, log, budget, self.plan.test_env)
        out: dict[str, Any] = {**r, "command": " ".join(cmd[1:]), **junit_summary(xml)}
        print(tail(log, 30), flush=True)
        if r["timed_out"]:
            out.update(status="timed out", reason=f"stopped after {r['seconds']} s")
        elif out.get("tests") is None:
            out.update(status="error", reason=f"pytest exited {r['returncode']} without a report")
        else:
            out["status"] = "passed" if out["failed"] == out["errors"] == 0 and r["returncode"] == 0 else "failed"
        return out

    def benchmark(self, budget: float) -> dict[str, Any]:
        md, summary = self.results / "benchmark.md", self.results / "benchmark.json"
        cmd = [self.python, "benchmarks/run.py", *self.plan.bench_args, "--out", str(md), "--summary", str(summary)]
        if self.args.site:
            cmd += ["--peer-deps", str(self.args.site)]
        r = run_process(cmd, self.logs / "benchmark.log", budget)
        out: dict[str, Any] = {**r, "command": " ".join(cmd[1:])}
        try:
            out["summary"] = json.loads(summary.read_text())
        except (OSError, json.JSONDecodeError):
            out["summary"] = None
        done = (out["summary"] or {}).get("sections_done", [])
        if r["timed_out"]:
            out.update(status="timed out", reason=f"stopped after {r['seconds']} s; sections done: {done}")
        elif r["returncode"] != 0:
            out.update(status="failed", reason=f"exit {r['returncode']}: {tail(self.logs / 'benchmark.log', 3)}")
        else:
            out["status"] = "done"
        return out

    def protocol(self, budget: float) -> dict[str, Any]:
        p, end = self.plan.protocol, time.monotonic() + budget
        data = self.args.data.resolve()
        aid = data / "AID" if (data / "AID").is_dir() else data
        runs = self.work / "protocol"
        common = ["--data", str(aid), "--device", self.plan.device,
                  "--set", f"data.image_size={p.size}", f"data.cache_dir={self.work / 'decoded'}", *p.common]
        cli = [self.python, "-m", "rsdistill.cli", "-q"]
        out: dict[str, Any] = {"recipe": p.describe(), "data": str(aid), "runs": {}}
        try:
            out["pack"] = json.loads((data / "pack.json").read_text())
        except (OSError, json.JSONDecodeError):
            out["pack"] = None
        teacher = runs / "teacher"
        # the teacher: fresh augmentation at every step (drawn on the GPU); 2 warm-up epochs
        t = wait_all([start([*cli, "train", *common, f"train.epochs={p.teacher_epochs}", "train.lr_warmup_epochs=2",
                             "--model", p.teacher, "--out", str(teacher)], self.logs / "protocol_teacher.log")],
                     end - time.monotonic())[0]
        out["runs"]["teacher"] = {**t, **run_summary(teacher)}
        if t["returncode"] != 0 or t["timed_out"]:
            out.update(status="failed" if not t["timed_out"] else "timed out",
                       reason=f"the teacher did not finish: {tail(self.logs / 'protocol_teacher.log', 3)}")
            return out
        # the students side by side, on the same bank of 8 views (the teacher's logits cached)
        student = [f"train.epochs={p.student_epochs}", "train.lr_warmup_epochs=1", "data.view_bank=8"]
        procs = []
        for m in p.methods:
            args = (["train", "--model", p.student, "--split-file", str(teacher / "split.json")] if m == "alone" else
                    ["distill", "--teacher", str(teacher), "--student", p.student, "--method", m])
            procs.append(start([*cli, *args, *common, *student, "--out", str(runs / m)],
                               self.logs / f"protocol_{m}.log"))
        for m, r in zip(p.methods, wait_all(procs, end - time.monotonic())):
            out["runs"][m] = {**r, **run_summary(runs / m)}
        finished = [str(runs / n) for n in ("teacher", *p.methods) if (runs / n / "metrics.json").is_file()]
        if finished:
            baseline = ["--baseline", str(runs / "alone")] if str(runs / "alone") in finished else []
            cmd = [*cli, "table", *finished, *baseline, "--out", str(runs / "protocol"), "--title",
                   f"AID subset, 5:5, {p.size} px: {p.teacher} teacher, {p.student} students, last-epoch test top-1"]
            r = wait_all([start(cmd, self.logs / "protocol_table.log")], max(end - time.monotonic(), 30))[0]
            if r["returncode"] == 0 and (runs / "protocol.md").is_file():
                shutil.copy2(runs / "protocol.md", self.results / "protocol.md")
                out["table"] = (runs / "protocol.md").read_text()
        bad = [m for m in p.methods if out["runs"][m]["returncode"] != 0 or out["runs"][m]["timed_out"]]
        out["status"] = "done" if not bad else "failed"
        if bad:
            out["reason"] = f"runs that did not finish: {', '.join(bad)}"
        return out

    def main(self) -> int:
        self.results.mkdir(parents=True, exist_ok=True)
        for stale in self.results.glob("*"):
            if stale.is_file():
                stale.unlink()
        self.env()
        if self.record["environment"].get("missing_required"):
            self.record["steps"]["all"] = {"status": "error", "reason": "missing packages: " + ", ".join(
                self.record["environment"]["missing_required"]) + " (run scripts/gpu_check.sh --prepare here, "
                "then carry .gpu-carry)"}
            self.save()
            print(self.record["steps"]["all"]["reason"], flush=True)
            return 1
        steps = {"cuda_tests": self.cuda_tests, "protocol": self.protocol, "benchmark": self.benchmark}
        for name in self.plan.budgets:
            self.step(name, steps[name])
        ok = all(s["status"] in ("passed", "done") for s in self.record["steps"].values())
        print(f"results: {self.results}" + (f" (and {self.args.copy_to})" if self.args.copy_to else ""), flush=True)
        return 0 if ok else 1


def git_commit() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=REPO, timeout=10).stdout.strip()
        return r.stdout.strip() + (" (with uncommitted changes)" if dirty else "") if r.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def junit_summary(xml: Path) -> dict[str, Any]:
    """Counts and the failures' names and first lines, from pytest's JUnit XML."""
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError):
        return {"tests": None}
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed, skipped = [], []
    for case in suite.iter("testcase"):
        name = case.get("name")
        for kind in ("failure", "error"):
            el = case.find(kind)
            if el is not None:
                failed.append({"test": name, kind: (el.get("message") or "").splitlines()[0][:300] if el.get("message")
                               else ""})
        el = case.find("skipped")
        if el is not None:
            skipped.append({"test": name, "reason": (el.get("message") or "")[:300]})
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {"tests": counts["tests"], "passed": passed, "failed": counts["failures"], "errors": counts["errors"],
            "skipped": counts["skipped"], "failures": failed, "skips": skipped[:20]}


def run_summary(run: Path) -> dict[str, Any]:
    """A protocol run's figures from its metrics files (partial for a run that was stopped)."""
    lines = []
    try:
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    except (OSError, json.JSONDecodeError):
        pass
    out: dict[str, Any] = {"epochs_done": len(lines)}
    if lines:
        last = lines[-1]
        out.update({"last_test_top1": round(last.get("test/top1", float("nan")), 2),
                    "train_seconds": round(sum(x.get("time/train_s", 0) for x in lines), 1),
                    "seconds": round(sum(x.get("time/epoch_s", 0) for x in lines), 1),
                    "data_wait_share": round(sum(x.get("time/data_wait_s", 0) for x in lines)
                                             / max(sum(x.get("time/train_s", 0) for x in lines), 1e-9), 3)})
    try:
        m = json.loads((run / "metrics.json").read_text())
        out.update({k: m[k] for k in ("top1", "top5", "best_top1", "best_epoch", "epochs", "teacher") if k in m})
        split = json.loads((run / "split.json").read_text())
        train_images = len(split.get("train", []))
        out["train_images"] = train_images
        if out.get("train_seconds"):
            out["train_images_per_s"] = round(train_images * len(lines) / out["train_seconds"], 1)
    except (OSError, json.JSONDecodeError, KeyError):
        pass
    return out


# ---------------------------------------------------------------------------------------- report
def report(rec: dict[str, Any]) -> str:
    e = rec.get("environment", {})
    lines = [f"# GPU check: {rec['kind']}", "",
             f"`{rec['command']}`, {rec['date']}, commit {rec.get('git_commit')}.", "",
             "| | |", "|---|---|",
             f"| device | {e.get('device') or e.get('nvidia_smi') or 'none'} |",
             f"| driver | {e.get('driver')} |",
             f"| torch | {e.get('torch')} (CUDA {e.get('torch_cuda')}, cuDNN {e.get('cudnn')}) |",
             f"| Python | {e.get('python')} ({e.get('executable')}) |",
             f"| missing packages | {', '.join(e.get('missing', [])) or 'none'} |", ""]
    steps = rec.get("steps", {})
    lines += ["| step | status | seconds | result |", "|---|---|---|---|"]
    for name, s in steps.items():
        lines.append(f"| {name} | {s['status']} | {s.get('seconds')} | {step_result(name, s)} |")
    tests = steps.get("cuda_tests")
    if tests and tests.get("failures"):
        lines += ["", "## Failed CUDA tests", ""]
        lines += [f"- `{f['test']}`: {f.get('failure') or f.get('error')}" for f in tests["failures"]]
    proto = steps.get("protocol")
    if proto and proto.get("runs"):
        lines += ["", "## Real-data protocol", "", proto.get("recipe", ""), ""]
        pack_rec = proto.get("pack") or {}
        if pack_rec:
            lines += [f"Data: {pack_rec.get('images')} images of {pack_rec.get('classes')} classes "
                      f"({pack_rec.get('per_class')} per class at most, {pack_rec.get('size')} px JPEG "
                      f"q{pack_rec.get('jpeg_quality')}, seed {pack_rec.get('seed')}), 5:5 split.", ""]
        lines += ["| run | epochs | test top-1 (last) | best top-1 | training s | images/s | waiting for data |",
                  "|---|---|---|---|---|---|---|"]
        for name, r in proto.get("runs", {}).items():
            cells = [r.get("epochs_done"), r.get("top1", r.get("last_test_top1")), r.get("best_top1"),
                     r.get("train_seconds"), r.get("train_images_per_s"), r.get("data_wait_share")]
            lines.append(f"| {name} | " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
        if proto.get("table"):
            lines += ["", "`rsdistill table` (protocol.md):", "", proto["table"].strip()]
    bench = (steps.get("benchmark") or {}).get("summary")
    if bench:
        lines += ["", "## Benchmark", "", f"`{bench.get('command')}` on {bench.get('device')} (tables: benchmark.md)", ""]
        lines += ["| figure | value |", "|---|---|"]
        for key in ("teacher_cache_speedup", "kd_cached_over_alone", "overhead_ratio", "overhead_ratio_no_augmentation",
                    "peer_ratio", "peer_ratio_no_augmentation", "data_wait_share", "isdm_over_kd"):
            if key in bench:
                lines.append(f"| {key} | {bench[key]} |")
        for key, v in (bench.get("at_224px") or {}).items():
            lines.append(f"| {key} at 224 px | {v} |")
        for key, v in (bench.get("speed_options") or {}).items():
            lines.append(f"| speed-up: {key} | {v} |")
        if bench.get("peer_ratio_note") and bench.get("peer_ratio") is None:
            lines += ["", f"Peer: {bench['peer_ratio_note']}"]
    return "\n".join(lines) + "\n"


def step_result(name: str, s: dict[str, Any]) -> str:
    if name == "cuda_tests" and s.get("tests") is not None:
        return f"{s['passed']} passed, {s['failed']} failed, {s['errors']} errors, {s['skipped']} skipped"
    if name == "protocol" and s.get("runs"):
        return "; ".join(f"{n} {r.get('top1', r.get('last_test_top1', '-'))}" for n, r in s["runs"].items())
    if name == "benchmark" and s.get("summary"):
        return f"sections done: {', '.join(s['summary'].get('sections_done', []))}"
    return s.get("reason", "")


# ---------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="action", required=True)
    p = sub.add_parser("pack", help="the AID subset that travels (the prepare step)")
    p.add_argument("src", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("--per-class", type=int, default=160)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--seed", type=int, default=0)
    sub.add_parser("env", help="the machine and its packages, as JSON")
    p = sub.add_parser("run", help="the check's steps")
    p.add_argument("--results", type=Path, required=True, help="where the result files go")
    p.add_argument("--work", type=Path, required=True, help="scratch folder (runs, logs)")
    p.add_argument("--data", type=Path, required=True, help="the AID pack (or any pack of class folders)")
    p.add_argument("--dry-run", action="store_true", help="on the CPU, tiny sizes")
    p.add_argument("--deadline", type=float, help="Unix time by which every step must have ended")
    p.add_argument("--site", type=Path, help="the folder the carried wheels were installed into (torchdistill)")
    p.add_argument("--copy-to", type=Path, help="also copy the result files there after every step ($OUT)")
    p.add_argument("--command", help="the command line to record")
    args = ap.parse_args(argv)
    if args.action == "pack":
        record = pack(args.src, args.dest, args.per_class, args.size, args.quality, args.seed)
        print(f"packed {record['images']} images of {record['classes']} classes into {args.dest}: "
              f"{record['bytes'] / 2**20:.1f} MiB")
        return 0
    if args.action == "env":
        print(json.dumps(environment(), indent=2))
        return 0
    return Check(args).main()


if __name__ == "__main__":
    sys.exit(main())
