"""`rsdistill report DIR`: a suite's cells aggregated into the article's tables.

One table per dataset (the article's Tables 1-3: rows are the teacher and the suite's methods,
columns each split's top-1 and top-5) and one per sweep and dataset (Tables 5-7: one row per
value). A cell shows the mean ± std over the seeds that finished, the number of seeds, and the
difference of the mean top-1 to the student alone and to KD; the best student value of each
accuracy column is in bold (the teacher is the reference, not a contender). A row with a failed
seed shows "failed" instead of a mean over the others; seeds not run yet show in the seed count.
Next to each table: the settings that produced it (image size, epochs, device, seeds, and which
epoch's accuracy, with what the best epoch was selected on).

Each dataset's table is also drawn (``figures/<dataset>_top1_seeds`` and ``_cost``, PNG and SVG,
by analysis/figures.py): every seed's top-1 per method over a mean ± std bar, and mean top-1 against
ms per iteration. Cost columns bold their lowest value (less time, memory and waiting is better).

After them, the cost of compression: per dataset, a teacher and a student run measured by the
profiler (parameters, FLOPs, float ONNX size, CPU latency at batch 1) with the student / teacher
ratios (suite_profile.py; cached in ``tables/profile.json``).

Written into DIR: ``tables/<name>.md/.csv/.tex``, ``results.json`` (every number, with each
cell's config and command and the suite's command), ``report.md`` and ``report.html``. Every
number is read from the cells' run directories (metrics.json) and records.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...analysis import figures
from ...errors import RsDistillError
from ...io import atomic_write_json
from ...reports.below_alone import below_alone_note
from ...reports.html import ReportSection, write_html, write_markdown
from ...reports.tables import Table, mean_std
from ...runs.folder import RunDir
from .plan import Cell, SuiteFolder
from .profile import caption as cost_caption
from .profile import cost_table, profile_suite

ACCURACY = {"last": ("top1", "top5"), "best": ("best_top1", "best_top5")}
COST_COLUMNS = ["ms/iter", "data wait (%)", "peak RAM (MB)", "train (min/run)"]

log = logging.getLogger("rsdistill")


@dataclass
class CellResult:
    cell: Cell
    status: str  # "finished", "failed" or "missing"
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)


def read_cell(folder: SuiteFolder, cell: Cell) -> CellResult:
    run_dir = Path(cell.run_dir)
    record = folder.read_record(cell.id) or {}
    cost = record.get("cost") or {}
    read = RunDir(run_dir).read_metrics()
    if read.damaged:
        return CellResult(cell, "failed", f"'{read.file}' is damaged ({read.problem})", {}, cost)
    if read.ok:
        metrics = read.value
        if metrics.get("status", "finished") == "failed":
            return CellResult(cell, "failed", f"the run failed: {metrics.get('reason')}", metrics, cost)
        return CellResult(cell, "finished", None, metrics, cost)
    if record.get("status") == "failed":
        return CellResult(cell, "failed", record.get("error"), {}, cost)
    why = {"running": "running, or interrupted", "interrupted": "interrupted"}.get(record.get("status"), "not run yet")
    return CellResult(cell, "missing", why, {}, cost)


@dataclass
class Group:
    """The cells of one (split, row): one per seed."""

    results: list[CellResult]
    keys: tuple[str, str]

    @property
    def finished(self) -> list[CellResult]:
        return [r for r in self.results if r.status == "finished"]

    @property
    def failed(self) -> list[CellResult]:
        return [r for r in self.results if r.status == "failed"]

    def values(self, i: int) -> list[float]:
        return [float(r.metrics[self.keys[i]]) for r in self.finished]

    def mean_top1(self) -> float | None:
        v = self.values(0)
        return statistics.mean(v) if v and not self.failed else None

    def shown(self, i: int) -> str:
        if self.failed:
            return f"failed ({len(self.failed)} of {len(self.results)})"
        return mean_std(self.values(i)) if self.finished else "missing"

    def seeds(self) -> str:
        k, n = len(self.finished), len(self.results)
        return str(n) if k == n else f"{k} of {n}"

    def as_json(self) -> dict[str, Any]:
        def stats(v: list[float]) -> dict[str, Any]:
            return {"mean": statistics.mean(v) if v else None, "std": statistics.stdev(v) if len(v) > 1 else None,
                    "values": v, "seeds": [r.cell.seed for r in self.finished]}

        return {"top1": stats(self.values(0)), "top5": stats(self.values(1)), "n": len(self.results),
                "finished": len(self.finished), "failed": [r.cell.id for r in self.failed],
                "missing": [r.cell.id for r in self.results if r.status == "missing"]}


class FewerResults(RsDistillError):
    """The report would replace tables with fewer finished cells than the last one had."""


def write_report(root: str | Path, epoch: str = "last", command: list[str] | None = None,
                 allow_fewer: bool = False) -> Path:
    """Write the tables, results.json, report.md and report.html of the suite folder ``root``;
    returns report.html's path. Cells the last report counted as finished that are not finished
    now (their run directories deleted or damaged) are an error and nothing is written, unless
    ``allow_fewer`` (then a warning names them)."""
    folder = SuiteFolder(root)
    man = folder.read_manifest()
    cells = folder.read_cells(man)
    results = {r.cell.id: r for r in (read_cell(folder, c) for c in cells)}
    gone = [cid for cid in _finished_before(folder.root) if cid in results and results[cid].status != "finished"]
    if gone:
        what = (f"{len(gone)} cell(s) finished in the last report are not finished now ({gone[0]}: "
                f"{results[gone[0]].status}, {results[gone[0]].reason})")
        if not allow_fewer:
            raise FewerResults(f"report: {what}; the tables in '{folder.root}' are kept: restore the runs, rerun "
                               "the suite, or delete results.json to report what is left")
        log.warning("report: %s; their rows lose them", what)
    keys = ACCURACY[epoch]
    tables: list[tuple[str, Table, dict[str, Any], list[dict[str, Any]]]] = []
    for dataset in man["datasets"]:
        mine = [r for r in results.values() if r.cell.dataset == dataset]
        rows = [("teacher", _teacher_label(mine))] if any(r.cell.kind == "teacher" for r in mine) else []
        rows += [(row["row"], row["label"]) for row in man["rows"]]
        settings = table_settings(man, dataset, [r for r in mine if r.cell.kind != "sweep"], epoch)
        title = (f"{man['name']}: {dataset}, {man['student']['model']} students, "
                 f"{_acc_words(epoch)} top-1/top-5 (%), mean ± std over seeds")
        table, rows_json = grid_table(title, "method", rows, man, mine, keys, settings)
        tables.append((dataset, table, settings, rows_json))
        for sweep in man["sweeps"]:
            swept = [r for r in mine if r.cell.kind == "sweep" and r.cell.sweep["index"] == sweep["index"]]
            srows = [(row, next((r.cell.label for r in swept if r.cell.row == row), row)) for row in sweep["rows"]]
            settings = table_settings(man, dataset, [r for r in mine if r.cell.kind == "teacher"] + swept, epoch)
            title = (f"{man['name']}: {dataset}, {sweep['method']} with {sweep['field']} swept, "
                     f"{_acc_words(epoch)} top-1/top-5 (%), mean ± std over seeds")
            name = f"{dataset}_sweep_{sweep['prefix'].replace('.', '_')}"
            table, rows_json = grid_table(title, sweep["field"], srows, man, mine, keys, settings)
            tables.append((name, table, settings, rows_json))

    out = folder.root
    files = []
    for name, table, _, _ in tables:
        files += [str(p.relative_to(out)) for p in table.write(out / "tables" / name, ("md", "csv", "tex"))]
    report_command = command or ["rsdistill", "report", str(out)] + (["--epoch", epoch] if epoch != "last" else [])
    cost = profile_suite(out, {d: [r for r in results.values() if r.cell.dataset == d] for d in man["datasets"]})
    ctable = cost_table(cost)
    cost_files = [str(p.relative_to(out)) for p in Table(ctable.columns, ctable.rows, f"{man['name']}: cost of compression",
                                                         [cost_caption(cost)]).write(out / "tables" / "compression_cost")]
    unfinished = [r for r in results.values() if r.status != "finished"]
    counts = {s: sum(r.status == s for r in results.values()) for s in ("finished", "failed", "missing")}
    sections = []
    for name, t, s, rj in tables:
        sections.append(ReportSection(t.title, settings_line(s), Table(t.columns, t.rows, bold=t.bold).to_markdown()))
        if name in man["datasets"]:
            sections += dataset_figures(out / "figures", name, man, rj)
    sections.append(ReportSection("Cost of compression: teacher and student as deployed", cost_caption(cost),
                                  ctable.to_markdown()))
    if unfinished:
        missing = Table(["cell", "status", "why"])
        for r in unfinished:
            missing.add(r.cell.id, r.status, (r.reason or "").replace("|", "/"))
        sections.append(ReportSection("Cells not finished", "failed cells keep their error; missing ones "
                                      "have not run (rerun the suite command)", missing.to_markdown()))
    figure_files = [str(f.relative_to(out)) for sec in sections if sec.image is not None
                    for f in (sec.image, sec.image.with_suffix(".svg"))]
    atomic_write_json(out / "results.json", {
        "name": man["name"], "description": man.get("description", ""), "suite_file": man["suite_file"],
        "suite_command": man.get("command"), "report_command": report_command,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"), "accuracy": epoch, "cells_by_status": counts,
        "baselines": man["baselines"],
        "tables": [{"name": name, "title": t.title, "settings": s, "files": [f"tables/{name}.{x}" for x in ("md", "csv", "tex")],
                    "columns": t.columns, "rows": rj} for name, t, s, rj in tables],
        "profile": cost | {"files": cost_files}, "figures": figure_files,
        "cells": [folder.portable_cell(cell_json(r)) for r in results.values()],
        "suite": man["suite"],
    })

    page = {"suite": man["name"], "suite file": man["suite_file"], "suite command": " ".join(man.get("command") or []),
            "report command": " ".join(report_command), "folder": str(out),
            "cells": ", ".join(f"{v} {k}" for k, v in counts.items()), "tables": ", ".join(files + cost_files),
            "figures": ", ".join(figure_files) or "none (no cell finished)"}
    title = f"{man['name']}: results"
    write_markdown(out / "report.md", title, page, sections)
    return write_html(out / "report.html", title, page, sections)


def dataset_figures(folder: Path, dataset: str, man: dict[str, Any], rows_json: list[dict[str, Any]]) -> list[ReportSection]:
    """The dataset's table as two figures (analysis/figures.py, as `rsdistill analyze` draws them):
    every seed's top-1 per method and split, and mean top-1 against cost. None when no cell finished."""
    students = [r for r in rows_json if r["row"] != "teacher"]
    splits = man["splits"]

    def top1(r: dict[str, Any], sp: str) -> dict[str, Any]:
        return r["splits"].get(sp, {}).get("top1") or {"values": [], "mean": None, "std": None}

    if not any(top1(r, sp)["values"] for r in students for sp in splits):
        return []
    refs = [r for name in ("alone", "kd") for r in students if r["row"] == man["baselines"].get(name)]
    panels = [figures.SeedPanel(
        "test" if sp == "published" else f"split {sp}", {r["label"]: top1(r, sp)["values"] for r in students},
        {r["label"]: top1(r, sp)["mean"] for r in refs if top1(r, sp)["mean"] is not None and not r["splits"][sp].get("failed")})
        for sp in splits]
    seeds = figures.seeds_figure(folder / f"{dataset}_top1_seeds.png", panels,
                                 f"{man['name']}: {dataset}, top-1 of every seed (bar: mean ± std)", svg=True)
    # ms per iteration where every drawn row has it (a reused run has no step timings): else minutes
    drawn = [r for r in students if any(top1(r, sp)["values"] for sp in splits)]
    key, xlabel = (("ms_per_iteration", "training time per iteration (ms)")
                   if all(r["cost"]["ms_per_iteration"] is not None for r in drawn)
                   else ("train_minutes_per_run", "training time per run (min)"))
    points = [figures.CostPoint(r["label"] if len(splits) == 1 else f"{r['label']} ({sp})", r["label"],
                                float("nan") if r["cost"][key] is None else float(r["cost"][key]),
                                top1(r, sp)["mean"], top1(r, sp)["std"])
              for r in drawn for sp in splits if top1(r, sp)["mean"] is not None]
    cost = figures.cost_figure(folder / f"{dataset}_cost.png", points, xlabel,
                               f"{man['name']}: {dataset}, mean top-1 against cost", svg=True)
    return [ReportSection(f"{dataset}: top-1 of every seed",
                          "dots: seeds; bar: mean ± std; dashed: the references' means", image=seeds),
            ReportSection(f"{dataset}: accuracy against cost",
                          f"mean top-1 (± std over seeds) against {xlabel}: up and left is better", image=cost)]


def _acc_words(epoch: str) -> str:
    return "last-epoch test" if epoch == "last" else "best-epoch"


def _teacher_label(results: list[CellResult]) -> str:
    return next((r.cell.label for r in results if r.cell.kind == "teacher"), "teacher")


def grid_table(title: str, first: str, rows: list[tuple[str, str]], man: dict[str, Any],
               results: list[CellResult], keys: tuple[str, str],
               settings: dict[str, Any]) -> tuple[Table, list[dict[str, Any]]]:
    splits = man["splits"]
    base = man["baselines"]
    refs = [(name, f"Δ vs {word}") for name, word in (("alone", "alone"), ("kd", "KD")) if base.get(name)]
    groups = {(sp, row): Group([r for r in results if r.cell.split == sp and r.cell.row == row], keys)
              for sp in splits for row, _ in rows}
    all_groups = {(r.cell.split, r.cell.row) for r in results}
    columns = [first]
    for sp in splits:
        sp = "test" if sp == "published" else sp  # the dataset's own test set (not a published number)
        columns += [f"{sp} top-1 (%)", f"{sp} top-5 (%)", *[f"{sp} {label}" for _, label in refs], f"{sp} seeds"]
    columns += COST_COLUMNS
    table = Table(columns, title=title, notes=[settings_line(settings)])
    rows_json = []
    for row, label in rows:
        cells: list[object] = [label]
        row_json: dict[str, Any] = {"row": row, "label": label, "splits": {}}
        for sp in splits:
            g = groups[(sp, row)]
            cells += [g.shown(0), g.shown(1)]
            js = g.as_json() if (sp, row) in all_groups else {"n": 0}
            for name, _ in refs:
                ref_row = base[name]
                ref = groups.get((sp, ref_row)) or Group([r for r in results if r.cell.split == sp and r.cell.row == ref_row], keys)
                mine, theirs = g.mean_top1(), ref.mean_top1()
                delta = None if mine is None or theirs is None else mine - theirs
                js[f"delta_top1_vs_{name}"] = delta
                cells.append("—" if delta is None or row == ref_row else f"{delta:+.2f}")
            cells.append(g.seeds() if g.results else "—")
            row_json["splits"][sp] = js
        cost = row_cost([r for sp in splits for r in groups[(sp, row)].finished])
        row_json["cost"] = cost
        cells += [cost["ms_per_iteration"], cost["data_wait_pct"], cost["peak_rss_mb"], cost["train_minutes_per_run"]]
        table.add(*cells)
        rows_json.append(row_json)
    table.notes += below_alone_flags(rows, splits, base.get("alone"), groups,
                                     {r.cell.row for r in results if r.cell.method == "ce"})
    students = [i for i, (row, _) in enumerate(rows) if row != "teacher"]
    accuracy_columns = [c for c in columns[1:] if c not in COST_COLUMNS and (c.endswith("(%)") or "Δ vs" in c)]
    table.bold_best(accuracy_columns, students)
    table.bold_best(COST_COLUMNS, students, lower=True)  # the cheapest is best: time, data wait, memory
    return table, rows_json


def below_alone_flags(rows: list[tuple[str, str]], splits: list[str], alone_row: str | None,
                      groups: dict[tuple[str, str], Group], undistilled: set[str] = frozenset()) -> list[str]:
    """A note for each distilled row below the student alone on a split, with the teacher's margin
    (rows in ``undistilled``, other students trained alone, are not judged)."""
    if not alone_row:
        return []
    notes = []
    for sp in splits:
        alone = groups.get((sp, alone_row))
        base = alone.mean_top1() if alone else None
        teacher = groups.get((sp, "teacher"))
        t = teacher.mean_top1() if teacher else None
        for row, label in rows:
            mine = groups[(sp, row)].mean_top1()
            if base is None or mine is None or row in (alone_row, "teacher", *undistilled) or mine >= base:
                continue
            notes.append(below_alone_note(label if len(splits) == 1 else f"{label} ({sp})", mine, base, t))
    return notes


def row_cost(finished: list[CellResult]) -> dict[str, Any]:
    spi = [r.cost["seconds_per_iteration"] for r in finished if r.cost.get("seconds_per_iteration") is not None]
    rss = [r.cost["peak_rss_mb"] for r in finished if r.cost.get("peak_rss_mb") is not None]
    # the share of the steps' time spent waiting for batches: where the data path is the bottleneck
    wait = [r.cost["data_wait_share"] for r in finished if r.cost.get("data_wait_share") is not None]
    secs = [r.metrics["seconds"] for r in finished if isinstance(r.metrics.get("seconds"), (int, float))]
    return {"ms_per_iteration": round(1000 * statistics.mean(spi), 2) if spi else None,
            "data_wait_pct": round(100 * statistics.mean(wait), 1) if wait else None,
            "peak_rss_mb": round(max(rss)) if rss else None,
            "train_minutes_per_run": round(statistics.mean(secs) / 60, 2) if secs else None}


def _unique(values: list[Any]) -> list[Any]:
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def table_settings(man: dict[str, Any], dataset: str, results: list[CellResult], epoch: str) -> dict[str, Any]:
    """What produced a table, from its cells' configs and metrics."""
    def cfg(kind_teacher: bool, *path: str) -> list[Any]:
        vals = []
        for r in results:
            if (r.cell.kind == "teacher") != kind_teacher:
                continue
            c = r.cell.config
            if c is None:  # a reused teacher run: its config.yaml
                c = RunDir(r.cell.run_dir).read_config().get({})
            for p in path:
                c = (c or {}).get(p)
            vals.append(c)
        return _unique(vals)

    ds = man["datasets"][dataset]
    finished = [r for r in results if r.status == "finished"]
    selected = _unique([r.metrics.get("best_selected_on", "test") for r in finished])
    return {
        "dataset": dataset, "preset": ds["preset"], "root": ds["root"],
        "splits": man["splits"], "seeds": man["seeds"],
        "teacher": {"model": cfg(True, "model", "name"), "image_size": cfg(True, "data", "image_size"),
                    "epochs": cfg(True, "train", "epochs"), "weights": man["teacher"].get("weights")},
        "students": {"model": cfg(False, "model", "name"), "image_size": cfg(False, "data", "image_size"),
                     "epochs": cfg(False, "train", "epochs"), "batch_size": cfg(False, "train", "batch_size"),
                     "lr": cfg(False, "train", "lr"), "view_bank": cfg(False, "data", "view_bank")},
        "device": _unique([r.metrics.get("device") for r in finished]) or cfg(False, "train", "device"),
        "accuracy": ("last epoch, test split" if epoch == "last"
                     else f"best epoch, selected on {'/'.join(selected) or 'test'} (accuracy on that split)"),
        "best_selected_on": selected,
    }


def settings_line(s: dict[str, Any]) -> str:
    def j(v: list[Any]) -> str:
        return "/".join(str(x) for x in v) if v else "?"

    t, st = s["teacher"], s["students"]
    sizes = j(st["image_size"]) + (f" (teacher {j(t['image_size'])})" if t["image_size"] and t["image_size"] != st["image_size"] else "")
    best = s["best_selected_on"]
    best_note = (f"; best epochs (results.json) are selected on {'/'.join(best)}" if s["accuracy"].startswith("last") and best else "")
    if "test" in best and not s["accuracy"].startswith("last"):
        best_note += " (no validation split: optimistic)"
    splits = ", ".join(sp if sp == "published" else f"{sp} (train:test)" for sp in s["splits"])
    if t.get("weights"):  # not trained by the suite: no epochs, no table row
        teacher_epochs, teacher = "", f"teacher from the weights file {t['weights']}, "
    else:
        teacher_epochs, teacher = f"teacher {j(t['epochs'])}, ", f"{j(t['model'])} teacher, "
    return (f"Settings: {s['dataset']} ({s['preset']}), split(s) {splits}, "
            f"seeds {', '.join(str(x) for x in s['seeds'])}; image size {sizes} px; epochs: {teacher_epochs}"
            f"students {j(st['epochs'])}; {teacher}{j(st['model'])} students; "
            f"device {j(s['device'])}; accuracy: {s['accuracy']}{best_note}.")


def _finished_before(root: Path) -> list[str]:
    """The cells that the folder's last results.json counted as finished."""
    try:
        last = json.loads((root / "results.json").read_text())
        return [c["id"] for c in last.get("cells", []) if c.get("status") == "finished"]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []


def cell_json(r: CellResult) -> dict[str, Any]:
    c = r.cell
    command = None
    if c.config is not None:
        verb = "train" if c.method == "ce" else "distill"
        command = f"rsdistill {verb} --config {Path(c.run_dir) / 'config.yaml'} --out NEW_RUN"
    return {"id": c.id, "dataset": c.dataset, "split": c.split, "row": c.row, "label": c.label, "seed": c.seed,
            "kind": c.kind, "method": c.method, "sweep": c.sweep, "status": r.status, "reason": r.reason,
            "run_dir": c.run_dir, "reused": c.reused, "metrics": r.metrics, "cost": r.cost,
            "config": c.config, "command": command}
