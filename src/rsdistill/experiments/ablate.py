"""The article's ablation (Table 4): which part of ISDM does what.

Rows (each over the given seeds, same teacher, same split):
  ISDM; w/o IS; w/o DM; w/o IS and DM (= KD with weight gamma); IS + fixed margin, m = 3, 5, 7.
They are the ISDM rows of the ablation suite, ``configs/suites/ablation.yaml``, read with the suite
engine's reader: `rsdistill ablate` and `rsdistill suite configs/suites/ablation.yaml` run the same
rows (the suite adds the student alone and KD beside them, at its own protocol). `ablate` is a
front end over the suite engine: each row and seed is a cell of the suite scheduler, on the user's
data, teacher and settings (one process per cell, ``--jobs`` side by side, records in
``OUT/cells/``). Run directories: ``OUT/runs/<row>/seed<k>``; finished runs are skipped and
interrupted ones resumed when the command is re-run. The table: ``OUT/ablation.md/.csv/.tex``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig, build_config
from ..distillers import registry
from ..errors import RsDistillError
from ..reports.tables import Table, mean_std
from ..shipped import shipped_config
from .collect import read_metrics
from .suite.plan import Cell, SuiteFolder
from .suite.scheduler import run_planned
from .suite.spec import load_suite

ABLATION_SUITE = "suites/ablation.yaml"  # in the shipped configs/
# The switches the table shows; every row gives both, so that a base config setting one of them
# (--config, --set) never changes what a row is.
SWITCHES = ("scaling", "margin")


@dataclass(frozen=True)
class Row:
    """One row of the table: its folder name, its label, and ISDM's fields it sets (both switches,
    and ``m`` with a fixed margin)."""

    slug: str
    label: str
    method: dict[str, Any]


def ablation_rows(suite_file: Path | None = None) -> list[Row]:
    """The rows of ``suite_file`` (default: the shipped ablation suite) that run ISDM, in its order;
    a switch a row leaves out is ISDM's default."""
    suite_file = suite_file or shipped_config(ABLATION_SUITE)
    defaults = registry.get("isdm").Config(name="isdm")
    return [Row(m.name, m.row_label, {**{k: getattr(defaults, k) for k in SWITCHES}, **m.overrides.get("method", {})})
            for m in load_suite(suite_file).spec.methods if m.method == "isdm"]


def row_config(base: RunConfig, overrides: dict[str, Any], seed: int) -> RunConfig:
    raw = base.to_dict()
    raw["method"] = {**raw["method"], **overrides}
    raw["seed"] = seed
    return build_config(raw, source="ablation")


def selected_rows(rows: list[str] | None) -> list[Row]:
    """The rows named (all by default), in the table's order."""
    every = ablation_rows()
    slugs = [r.slug for r in every]
    unknown = sorted(set(rows or []) - set(slugs))
    if unknown:
        raise RsDistillError(f"ablate --rows: unknown row(s) {', '.join(unknown)}; choose from {', '.join(slugs)}")
    return [r for r in every if rows is None or r.slug in rows]


def ablate(base: RunConfig, out: Path, seeds: list[int], rows: list[str] | None = None, jobs: int = 1) -> Table:
    if base.method.name != "isdm":
        raise ValueError("the ablation varies ISDM's switches; base.method must be isdm")
    chosen = selected_rows(rows)
    folder = SuiteFolder(out)
    cells = [cell(folder, base, row, seed) for row in chosen for seed in seeds]
    run_planned(cells, folder, "ablate", jobs).require_all("ablate", out)
    table = ablation_table(folder, seeds, chosen)
    table.write(out / "ablation", ("md", "csv", "tex"))
    return table


def cell_id(slug: str, seed: int) -> str:
    return f"{slug}/seed{seed}"


def cell(folder: SuiteFolder, base: RunConfig, row: Row, seed: int) -> Cell:
    cid = cell_id(row.slug, seed)
    return Cell(id=cid, dataset="", split="", row=row.slug, seed=seed, kind="method", label=row.label,
                method="isdm", run_dir=str(folder.run_dir(cid)), config=row_config(base, row.method, seed).to_dict())


def ablation_table(folder: SuiteFolder, seeds: list[int], chosen: list[Row]) -> Table:
    results = {r.slug: [read_metrics(folder.run_dir(cell_id(r.slug, s))) for s in seeds] for r in chosen}
    ref = statistics.mean(m["top1"] for m in results["isdm"]) if "isdm" in results else None
    first = next(iter(results.values()))[0]
    teacher = first.get("teacher", {})
    table = Table(
        ["row", "IS", "margin", "top-1 (%)", "top-5 (%)", "Δ top-1 vs ISDM"],
        title=(f"ISDM ablation: {first['model']} student, {teacher.get('model', '?')} teacher "
               f"(top-1 {teacher.get('top1', float('nan')):.2f}%), last-epoch test accuracy, "
               f"mean ± std over seeds {seeds}"),
    )
    for row in chosen:
        top1 = [m["top1"] for m in results[row.slug]]
        top5 = [m["top5"] for m in results[row.slug]]
        switches = row.method
        margin = switches["margin"] + (f" m={switches['m']:g}" if "m" in switches else "")
        delta = "—" if row.slug == "isdm" or ref is None else f"{statistics.mean(top1) - ref:+.2f}"
        table.add(row.label, "on" if switches["scaling"] else "off", margin, mean_std(top1), mean_std(top5), delta)
    return table
