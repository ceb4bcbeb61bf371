"""The article's ablation (Table 4): which part of ISDM does what.

Rows (each over the given seeds, same teacher, same split):
  ISDM; w/o IS; w/o DM; w/o IS and DM (= KD with weight gamma); IS + fixed margin, m = 3, 5, 7.
Run directories: ``OUT/<row>/seed<k>``; finished runs are skipped when the command is re-run.
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any

from ..config import RunConfig, build_config
from ..errors import RsDistillError
from ..reports.tables import Table, mean_std
from .collect import read_metrics, run_or_resume

log = logging.getLogger("rsdistill")

ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("isdm", "ISDM (IS + DM)", {"scaling": True, "margin": "dynamic"}),
    ("wo_is", "w/o IS", {"scaling": False, "margin": "dynamic"}),
    ("wo_dm", "w/o DM", {"scaling": True, "margin": "none"}),
    ("wo_both", "w/o IS and DM (= KD)", {"scaling": False, "margin": "none"}),
    ("is_fm3", "IS + FM (m = 3)", {"scaling": True, "margin": "fixed", "m": 3.0}),
    ("is_fm5", "IS + FM (m = 5)", {"scaling": True, "margin": "fixed", "m": 5.0}),
    ("is_fm7", "IS + FM (m = 7)", {"scaling": True, "margin": "fixed", "m": 7.0}),
]


def row_config(base: RunConfig, overrides: dict[str, Any], seed: int) -> RunConfig:
    raw = base.to_dict()
    raw["method"] = {**raw["method"], **overrides}
    raw["seed"] = seed
    return build_config(raw, source="ablation")


ROW_SLUGS = [slug for slug, _, _ in ROWS]


def selected_rows(rows: list[str] | None) -> list[tuple[str, str, dict[str, Any]]]:
    """The rows named (all by default), in the table's order."""
    unknown = sorted(set(rows or []) - set(ROW_SLUGS))
    if unknown:
        raise RsDistillError(f"ablate --rows: unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROW_SLUGS)}")
    return [r for r in ROWS if rows is None or r[0] in rows]


def ablate(base: RunConfig, out: Path, seeds: list[int], rows: list[str] | None = None) -> Table:
    if base.method.name != "isdm":
        raise ValueError("the ablation varies ISDM's switches; base.method must be isdm")
    chosen = selected_rows(rows)
    total = len(chosen) * len(seeds)
    done = 0
    for slug, label, overrides in chosen:
        for seed in seeds:
            done += 1
            run_dir = out / slug / f"seed{seed}"
            log.info("[%d/%d] %s, seed %d -> %s", done, total, label, seed, run_dir)
            run_or_resume(row_config(base, overrides, seed), run_dir)
    table = ablation_table(out, seeds, rows)
    table.write(out / "ablation", ("md", "csv", "tex"))
    return table


def ablation_table(out: Path, seeds: list[int], rows: list[str] | None = None) -> Table:
    chosen = selected_rows(rows)
    results = {slug: [read_metrics(out / slug / f"seed{s}") for s in seeds] for slug, _, _ in chosen}
    ref = statistics.mean(m["top1"] for m in results["isdm"]) if "isdm" in results else None
    first = next(iter(results.values()))[0]
    teacher = first.get("teacher", {})
    table = Table(
        ["row", "IS", "margin", "top-1 (%)", "top-5 (%)", "Δ top-1 vs ISDM"],
        title=(f"ISDM ablation: {first['model']} student, {teacher.get('model', '?')} teacher "
               f"(top-1 {teacher.get('top1', float('nan')):.2f}%), last-epoch test accuracy, "
               f"mean ± std over seeds {seeds}"),
    )
    for slug, label, overrides in chosen:
        top1 = [m["top1"] for m in results[slug]]
        top5 = [m["top5"] for m in results[slug]]
        margin = overrides["margin"] + (f" m={overrides['m']:g}" if "m" in overrides else "")
        delta = "—" if slug == "isdm" or ref is None else f"{statistics.mean(top1) - ref:+.2f}"
        table.add(label, "on" if overrides["scaling"] else "off", margin, mean_std(top1), mean_std(top5), delta)
    return table
