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
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..deploy.profile import QUICK, cpu_batch1_ms, flops_unit, times
from ..reports.tables import Table
from ..shipped import shipped_config
from .suite.scheduler import run_suite
from .suite.spec import load_suite, read_with_bases

DEMO_SUITE = "suites/demo.yaml"
DATASET = "scenes"  # the suite file's one dataset
SYNTH = f"datasets.{DATASET}.synth"
# Each option and the suite-file fields it sets; --help shows the first one's value as the default.
# One seed for everything, as the demo always had: the scenes, the teacher, the students.
FIELDS = {
    "classes": (f"{SYNTH}.classes",),
    "per_class": (f"{SYNTH}.per_class",),
    "mix": (f"{SYNTH}.mix",),
    "image_size": (f"{SYNTH}.size", "set.data.image_size"),
    "teacher_epochs": ("teacher.set.train.epochs",),
    "student_epochs": ("student.set.train.epochs",),
    "lr_warmup_epochs": ("set.train.lr_warmup_epochs",),
    "seed": (f"{SYNTH}.seed", "teacher.seed", "seeds"),
}


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
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in FIELDS and value is not None:
                out += [f"{key}={json.dumps([value] if key == 'seeds' else value)}" for key in FIELDS[f.name]]
        return out + [f"set.train.progress={json.dumps(self.progress)}"]


def suite_defaults() -> dict[str, Any]:
    """What the demo runs when no flag is given, read from the suite file (for `rsdistill demo --help`,
    so read, not validated: every command builds the parser)."""
    raw = read_with_bases(shipped_config(DEMO_SUITE))

    def value(key: str) -> Any:
        node: Any = raw
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    return {option: value(keys[0]) for option, keys in FIELDS.items()}


def demo(out: Path, options: DemoOptions = DemoOptions(), *, jobs: int = 1,
         command: list[str] | None = None) -> tuple[Table, Path]:
    """Run the demo suite into ``out`` and write its table; returns the table and results.md's path."""
    suite_file = shipped_config(DEMO_SUITE)
    overrides = options.overrides()
    spec = load_suite(suite_file, overrides).spec  # checked before anything is written
    run_suite(suite_file, out, jobs=jobs, overrides=overrides, verbose=options.progress,
              command=command or ["rsdistill", "demo", "--out", str(out)]).require_all("demo", out)
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
    latency = times(r.get("latency_ms", {}).get("pytorch", {}).get("cpu", {}).get("1"))
    for row, label in rows:
        m = by_row[row]["metrics"]
        table.add(m["model"], label, m["epochs"], m["top1"], m["top5"],
                  None if row == "alone" else f"{m['top1'] - alone:+.2f}", measured(st, "params"),
                  times(r.get("params")), measured(st, "flops"), times(r.get("flops")), size_mb(st),
                  times(r.get("onnx_bytes")), cpu_batch1_ms(st) if st else None, latency)
    return table
