"""The cost of compression in `rsdistill report`: per dataset, one teacher run and one student run
of the suite measured by the profiler (`rsdistill profile`'s parameters, FLOPs, float ONNX size and
CPU latency at batch 1, at each run's ``data.image_size``), with the student / teacher ratios.

Every cell of a role shares its architecture (the method's extra modules are not part of the
deployed model), so one run per role stands for all. Measures are cached in
``DIR/tables/profile.json``, keyed by the checkpoint, its modification time and the settings, so a
rerun of the report measures nothing. A run that cannot be profiled is reported with why, never
fatal to the report.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...deploy import profile as prof
from ...io import atomic_write_json
from ...reports.tables import Table
from ...runs.folder import RunDir

log = logging.getLogger("rsdistill")

CACHE = Path("tables") / "profile.json"
ROLES = ("teacher", "student")


def profile_suite(root: Path, by_dataset: dict[str, list[Any]]) -> dict[str, Any]:
    """``by_dataset``: the suite's :class:`~.suite_report.CellResult` per dataset. Returns the
    ``profile`` section of results.json: settings and, per dataset, each role's cost (or None),
    the student / teacher ratios and notes on what is missing or stood in for it."""
    cache_file = Path(root) / CACHE
    cache = _read_cache(cache_file)
    used: dict[str, Any] = {}
    datasets = {}
    for dataset, results in by_dataset.items():
        entry: dict[str, Any] = {"teacher": None, "student": None, "ratios_student_over_teacher": None, "notes": []}
        for role in ("student", "teacher"):  # the student first: a teacher without a run is built from its config
            result, note = pick_run(results, role)
            student, name, source = entry["student"], _teacher_model(results), role
            try:
                if result is not None:
                    source = f"run {result.cell.run_dir}"
                    key, cost = _cost(Path(result.cell.run_dir), cache, Path(root))
                elif role == "teacher" and student and name:
                    # a weights-file teacher: no run to load, but the architecture is all the cost needs
                    n, size = student["num_classes"], student["image_size"]
                    note = (f"teacher: no teacher run, {name} profiled from its name with {n} classes at "
                            f"{size} px (its cost does not depend on the weights)")
                    source = f"model {name}"
                    key, cost = _named_cost(name, n, size, cache)
                else:
                    entry["notes"].append(note)
                    continue
            except Exception as e:  # noqa: BLE001 - a failed measure costs the section, not the report
                why = str(e).splitlines()[0] if str(e) else type(e).__name__
                log.warning("report: the %s (%s) of %s could not be profiled: %s", role, source, dataset, why)
                entry["notes"].append(f"{role} ({source}) could not be profiled: {why}")
                continue
            if note:
                entry["notes"].append(note)
            used[key] = cost
            entry[role] = cost | {"cell": result.cell.id if result else None}
            entry["notes"] += [f"{role}: {n}" for n in cost.get("notes", [])]
        if entry["teacher"] and entry["student"]:
            entry["ratios_student_over_teacher"] = prof.ratios(
                prof.cost_from_dict(entry["student"]), prof.cost_from_dict(entry["teacher"]), digits=4)
        datasets[dataset] = entry
    if used != cache:
        try:
            atomic_write_json(cache_file, {"settings": prof.QUICK, "costs": used})
        except OSError as e:  # a read-only suite folder: measured again next time, nothing lost
            log.warning("report: cannot write the profile cache %s: %s", cache_file, e)
    return {"settings": prof.QUICK, "cache": str(CACHE), "datasets": datasets,
            "latency": "median ms per batch on the CPU (latency_ms: runtime -> device -> batch)"}


def pick_run(results: list[Any], role: str) -> tuple[Any | None, str | None]:
    """The cell whose run stands for ``role``: a finished one (a method cell before a sweep's), else
    an unfinished one whose run already holds a checkpoint (the architecture's cost does not depend
    on training), with a note saying so; (None, why) when there is none."""
    from ...engine.checkpoint import resolve_checkpoint
    from ...errors import RsDistillError

    mine = [r for r in results if (r.cell.kind == "teacher") == (role == "teacher")]
    mine.sort(key=lambda r: r.cell.kind == "sweep")
    finished = [r for r in mine if r.status == "finished"]
    if finished:
        return finished[0], None
    for r in mine:
        try:
            resolve_checkpoint(r.cell.run_dir)
        except RsDistillError:
            continue
        return r, f"no finished {role} cell: {r.cell.id} ({r.status}) profiled from its latest checkpoint"
    return None, f"{role}: no finished {role} cell and no {role} checkpoint yet" if mine else f"{role}: no {role} cell"


def _teacher_model(results: list[Any]) -> str | None:
    """The teacher architecture the students' configs name (teacher.model), if any."""
    for r in results:
        name = (((r.cell.config or {}) if r.cell.kind != "teacher" else {}).get("teacher") or {}).get("model")
        if name:
            return name
    return None


def _cost(run_dir: Path, cache: dict[str, Any], root: Path) -> tuple[str, dict[str, Any]]:
    """The cost of a run's model, from the cache when the same checkpoint (by name inside the
    suite folder and by contents, so that a moved or copied folder keeps its measures) was
    measured with the same settings."""
    import torch

    from ...engine.checkpoint import load_model, resolve_checkpoint

    ckpt = resolve_checkpoint(run_dir)
    size = _image_size(run_dir)
    shown = _inside(ckpt, root)
    key = json.dumps([shown, _digest(ckpt), size, prof.QUICK])
    if key in cache:
        return key, cache[key]
    model, record = load_model(ckpt)
    size = size or record.get("image_size")
    if not size:
        raise ValueError(f"neither {RunDir(run_dir).config} (data.image_size) nor {ckpt} names the image size")
    log.info("report: profiling %s (%s, %d px, CPU, batch 1)", run_dir, model.arch, size)
    cost, notes = prof.quick_cost(model, str(run_dir), int(size))
    return key, asdict(cost) | {"macs": cost.macs, "checkpoint": shown, "num_classes": model.num_classes,
                                "threads": torch.get_num_threads(), "notes": notes}


def _inside(path: Path, root: Path) -> str:
    """``path`` relative to the suite folder ``root`` when inside it, else absolute."""
    path, root = path.resolve(), root.resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _digest(file: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _named_cost(name: str, classes: int, size: int, cache: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A teacher with no run of its own (a weights file): its architecture, built by name."""
    import torch

    from ...models import build_model

    key = json.dumps(["model", name, classes, size, prof.QUICK])
    if key in cache:
        return key, cache[key]
    log.info("report: profiling %s by name (%d classes, %d px, CPU, batch 1)", name, classes, size)
    cost, notes = prof.quick_cost(build_model(name, classes), name, size)
    return key, asdict(cost) | {"macs": cost.macs, "checkpoint": None, "num_classes": classes,
                                "threads": torch.get_num_threads(), "notes": notes}


def _image_size(run_dir: Path) -> int | None:
    size = (RunDir(run_dir).read_config().get({}).get("data") or {}).get("image_size")
    return int(size) if size else None


def _read_cache(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
        return data["costs"] if isinstance(data.get("costs"), dict) else {}
    except (OSError, ValueError, AttributeError, KeyError):
        return {}  # none yet, or unreadable: measured again


def cost_table(section: dict[str, Any]) -> Table:
    """Per dataset: the teacher, the student, and student / teacher."""
    rows = section["datasets"]
    flops = [c["flops"] for e in rows.values() for c in (e["teacher"], e["student"]) if c]
    unit, scale = prof.flops_unit(max(flops, default=0))
    table = Table(["dataset", "model", "run", "image size (px)", "params (M)", f"{unit} (1 image)",
                   "ONNX file (MB)", "CPU ms (batch 1, PyTorch)", "CPU ms (batch 1, onnxruntime)"])
    for dataset, e in rows.items():
        for role in ROLES:
            c = e[role]
            if c is None:
                table.add(dataset, role, "missing", None, None, None, None, None, None)
                continue
            table.add(dataset, f"{role} ({c['arch']})", c["cell"] or "by name", c["image_size"], c["params"] / 1e6,
                      c["flops"] / scale, c["onnx_bytes"] / 1e6 if c["onnx_bytes"] else None,
                      prof.cpu_batch1_ms(c), prof.cpu_batch1_ms(c, "onnxruntime"))
        r = e["ratios_student_over_teacher"]
        if r is not None:
            t = prof.times
            ms = {rt: r["latency_ms"].get(rt, {}).get("cpu", {}).get("1") for rt in prof.RUNTIMES}
            table.add(dataset, "student / teacher", "", None, t(r["params"]), t(r["flops"]), t(r["onnx_bytes"]),
                      t(ms["pytorch"]), t(ms["onnxruntime"]))
    return table


def caption(section: dict[str, Any]) -> str:
    q = section["settings"]
    notes = [f"{d}, {m}" for d, e in section["datasets"].items() for m in e["notes"]]
    text = ("What compression bought, as `rsdistill profile` measures it: one teacher and one student run per "
            "dataset at the run's image size, FLOPs of one image, the float ONNX file, PyTorch and onnxruntime on "
            f"the CPU at batch 1 (median of {q['repeats']} runs after {q['warmup']} warm-up runs); measured once, cached in "
            f"{section['cache']}.")
    return text + (" Notes: " + "; ".join(notes) + "." if notes else "")
