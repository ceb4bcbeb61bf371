"""A comparison table of finished run directories (the numbers come from their metrics.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import RsDistillError
from .tables import Table


def read_run(run_dir: Path) -> dict[str, Any]:
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        raise RsDistillError(f"'{run_dir}' is not a finished run directory (no metrics.json)")
    metrics = json.loads(metrics_file.read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    return {"dir": run_dir, "metrics": metrics, "config": cfg}


def method_label(cfg: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The method's name and the fields the run set away from the method's defaults (fields whose
    default is resolved per run, such as warm-ups, are not shown)."""
    section = cfg.get("method") or {}
    method = section.get("name", metrics.get("method", "?"))
    if method == "ce":
        return "CE (no teacher)"
    from ..distillers import registry

    try:
        defaults = registry.get(method).Config(name=method).model_dump(mode="json")
    except Exception:  # a method this version does not know: its name is all we can show
        return method
    changed = [f"{k}={_fmt(v)}" for k, v in section.items()
               if k != "name" and defaults.get(k) is not None and defaults[k] != v]
    return " ".join([method, *changed])


def _fmt(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else f"{v:g}" if isinstance(v, float) else str(v)


def run_labels(run_dirs: list[Path]) -> list[str]:
    """Each run's path relative to the runs' common folder (``isdm/seed0``, not ``seed0``)."""
    resolved = [d.resolve() for d in run_dirs]
    if len(resolved) < 2:
        return [d.name for d in resolved]
    common = Path(os.path.commonpath(resolved))
    return [d.relative_to(common).as_posix() if d != common else d.name for d in resolved]


def runs_table(run_dirs: list[Path], baseline: Path | None = None, title: str = "") -> Table:
    runs = [read_run(Path(d)) for d in run_dirs]
    base = read_run(baseline)["metrics"]["top1"] if baseline else None
    table = Table(["run", "model", "method", "epochs", "top-1 (%)", "top-5 (%)", "best top-1 (%)",
                   "Δ top-1" + (f" vs {baseline.name}" if baseline else ""), "train time (min)"], title=title)
    for r, label in zip(runs, run_labels([r["dir"] for r in runs])):
        m, cfg = r["metrics"], r["config"]
        best = f"{m['best_top1']:.2f} ({m.get('best_selected_on', 'test')})"
        delta = "—" if base is None else f"{m['top1'] - base:+.2f}"
        table.add(label, m.get("model", "?"), method_label(cfg, m), m.get("epochs"), m["top1"], m["top5"],
                  best, delta, round(m.get("seconds", 0.0) / 60, 1))
    return table
