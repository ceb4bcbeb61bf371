"""The main job of `make demo`, a front end over the suite engine: it runs the suite
``configs/suites/demo.yaml`` (synthetic scenes; a teacher, then the student alone, with KD and with
ISDM: same seed, same epochs, same bank of views) into OUT, then writes the demo's table,
``OUT/results.md`` and ``.csv``: top-1/top-5 with what compression bought (the parameters, FLOPs,
ONNX file size and CPU latency of the student beside the teacher, as the suite report's profiler
measured them: ``OUT/tables/compression_cost.md``). OUT is a suite folder: re-running resumes and
skips finished runs, and `rsdistill report OUT` works on it.

The command's flags set the suite file's fields (:meth:`DemoOptions.overrides`); the defaults live
in the suite file, once."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..deploy.profile import QUICK, cpu_batch1_ms, flops_unit, times
from ..errors import RsDistillError
from ..reports.tables import Table
from ..shipped import shipped_config
from .suite.scheduler import run_suite
from .suite.spec import load_suite

log = logging.getLogger("rsdistill")

DEMO_SUITE = "suites/demo.yaml"
DATASET = "scenes"  # the suite file's one dataset


@dataclass(frozen=True)
class DemoOptions:
    """`rsdistill demo`'s flags; None leaves the suite file's value."""

    classes: int | None = None
    per_class: int | None = None
    mix: float | None = None
    image_size: int | None = None
    teacher_epochs: int | None = None
    student_epochs: int | None = None
    lr_warmup_epochs: float | None = None
    seed: int | None = None
    progress: bool = True

    def overrides(self) -> list[str]:
        """The suite-file fields these options set, as ``rsdistill suite --set`` items."""
        synth = f"datasets.{DATASET}.synth"
        items = {f"{synth}.classes": self.classes, f"{synth}.per_class": self.per_class, f"{synth}.mix": self.mix,
                 f"{synth}.size": self.image_size, "set.data.image_size": self.image_size,
                 "teacher.set.train.epochs": self.teacher_epochs, "student.set.train.epochs": self.student_epochs,
                 "set.train.lr_warmup_epochs": self.lr_warmup_epochs,
                 # one seed for everything, as the demo always had: the scenes, the teacher, the students
                 "seeds": None if self.seed is None else [self.seed], f"{synth}.seed": self.seed,
                 "teacher.seed": self.seed}
        out = [f"{key}={json.dumps(value)}" for key, value in items.items() if value is not None]
        return out + [f"set.train.progress={json.dumps(self.progress)}"]


def suite_defaults() -> dict[str, Any]:
    """What the demo runs when no flag is given, read from the suite file (for `rsdistill demo --help`)."""
    spec = load_suite(shipped_config(DEMO_SUITE)).spec
    synth = spec.datasets[DATASET].synth
    train = lambda role: role.overrides.get("train", {})  # noqa: E731
    return {"classes": synth.classes, "per_class": synth.per_class, "mix": synth.mix, "image_size": synth.size,
            "teacher_epochs": train(spec.teacher).get("epochs"), "student_epochs": train(spec.student).get("epochs"),
            "lr_warmup_epochs": spec.overrides.get("train", {}).get("lr_warmup_epochs"), "seed": spec.seeds[0]}


def demo(out: Path, options: DemoOptions = DemoOptions(), *, jobs: int = 1,
         command: list[str] | None = None) -> tuple[Table, Path]:
    """Run the demo suite into ``out`` and write its table; returns the table and results.md's path."""
    suite_file = shipped_config(DEMO_SUITE)
    overrides = options.overrides()
    spec = load_suite(suite_file, overrides).spec  # checked before anything is written
    outcome = run_suite(suite_file, out, jobs=jobs, overrides=overrides, verbose=options.progress,
                        command=command or ["rsdistill", "demo", "--out", str(out)])
    if not outcome.ok:
        cell, why = next(iter(outcome.failed.items()))
        raise RsDistillError(f"demo: {len(outcome.failed)} run(s) did not finish ({cell}: {why}); the finished ones "
                             f"are kept in '{out}': run the same command again to resume")
    results = json.loads((Path(out) / "results.json").read_text())
    synth = spec.datasets[DATASET].synth
    seed = spec.seeds[0]
    title = (f"rsdistill demo: {synth.classes} synthetic aerial scene classes, {synth.per_class} images each at "
             f"{synth.size} px{f' ({synth.mix:.0%} of them mixed land use)' if synth.mix else ''}, "
             f"{spec.splits[0]} split, seed {seed}; last-epoch test accuracy")
    table = demo_table(results, [(m.name, m.row_label) for m in spec.methods], seed, title)
    table.write(Path(out) / "results", ("md", "csv"))
    return table, Path(out) / "results.md"


def demo_table(results: dict[str, Any], rows: list[tuple[str, str]], seed: int, title: str) -> Table:
    """The teacher and each student row of the suite's ``results.json`` at ``seed``, with the
    profiler's cost of the teacher and the student and the student / teacher ratios."""
    cells = [c for c in results["cells"] if c["dataset"] == DATASET]
    teacher = next(c for c in cells if c["kind"] == "teacher")
    by_row = {c["row"]: c for c in cells if c["kind"] == "method" and c["seed"] == seed}
    cost = results["profile"]["datasets"][DATASET]
    t, st, r = cost["teacher"], cost["student"], cost["ratios_student_over_teacher"] or {}
    unit, scale = flops_unit(max((c["flops"] for c in (t, st) if c), default=0))
    size_mb = lambda c: c["onnx_bytes"] / 1e6 if c and c["onnx_bytes"] else None  # noqa: E731
    table = Table(
        ["model", "training", "epochs", "top-1 (%)", "top-5 (%)", "Δ top-1 vs alone", "params (M)",
         "params vs teacher", f"{unit} (1 image)", "FLOPs vs teacher", "ONNX file (MB)", "size vs teacher",
         "CPU ms (batch 1)", "latency vs teacher"],
        title=title,
        notes=[f"Cost as `rsdistill profile` measures it (all figures: tables/compression_cost.md, results.json): FLOPs "
               f"of one image at the runs' size, the float ONNX file, PyTorch on the CPU at batch 1 (median of "
               f"{QUICK['repeats']} runs, {(st or t or {}).get('threads', '?')} thread(s); onnxruntime's in "
               "tables/compression_cost.md); \"vs teacher\" is student / teacher."
               + "".join(f" {n}." for n in cost["notes"])],
    )

    def measured(c: dict[str, Any] | None, key: str) -> float | None:
        return None if c is None else c[key] / (1e6 if key == "params" else scale)

    tm = teacher["metrics"]
    table.add(tm["model"], "teacher (CE)", tm["epochs"], tm["top1"], tm["top5"], None, measured(t, "params"),
              "1.00x", measured(t, "flops"), "1.00x", size_mb(t), "1.00x" if size_mb(t) else None,
              cpu_batch1_ms(t) if t else None, "1.00x")
    alone = by_row["alone"]["metrics"]["top1"]
    for row, label in rows:
        m = by_row[row]["metrics"]
        ms = r.get("latency_ms", {}).get("pytorch", {}).get("cpu", {}).get("1")
        table.add(m["model"], label, m["epochs"], m["top1"], m["top5"],
                  None if row == "alone" else f"{m['top1'] - alone:+.2f}", measured(st, "params"),
                  times(r.get("params")), measured(st, "flops"), times(r.get("flops")), size_mb(st),
                  times(r.get("onnx_bytes")), cpu_batch1_ms(st) if st else None, times(ms))
    return table
