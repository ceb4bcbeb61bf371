"""A comparison table of finished run directories (the numbers come from their metrics.json)."""

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path
from typing import Any

from ..errors import RsDistillError
from ..runs.folder import RunDir
from .below_alone import Score, below_alone_notes
from .comparable import warn_if_groups_not_comparable, warn_if_not_comparable
from .tables import Table, mean_std


def read_run(run_dir: Path) -> dict[str, Any]:
    """A run's final metrics (those of a failed run too: it is shown as failed) and its config."""
    run = RunDir(run_dir)
    metrics = run.read_metrics()
    if metrics.missing:
        raise RsDistillError(f"'{run_dir}' is not a finished run directory (no metrics.json)")
    return {"dir": run_dir, "metrics": metrics.require(), "config": run.read_config().require()
            if run.config.is_file() else {}}


def failed(metrics: dict[str, Any]) -> bool:
    """A run that stopped (diverged): its metrics.json has a reason, not an accuracy."""
    return metrics.get("status") == "failed"


def _baseline_top1(runs: list[dict[str, Any]], name: str | Path) -> float:
    if any(failed(r["metrics"]) for r in runs):
        raise RsDistillError(f"--baseline '{name}' is a failed run: it has no accuracy to compare with")
    return statistics.mean(r["metrics"]["top1"] for r in runs)


def method_label(cfg: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The method's name and the fields the run set away from the method's defaults (fields whose
    default is resolved per run, such as warm-ups, are not shown)."""
    section = cfg.get("method") or {}
    method = section.get("name", metrics.get("method", "?"))
    if method == "ce":
        return "CE (no teacher)"
    from ..distillers import registry

    try:
        config_cls = registry.get(method).Config
        defaults = config_cls(name=method).model_dump(mode="json")
    except Exception:  # a method this version does not know: its name is all we can show
        return method
    try:
        # read as the run reads it: a config made before a field existed takes the value the
        # method's rules give it (e.g. ISDM's lambda_H without is_level means is_level=entropy)
        values = config_cls.model_validate({**section, "name": method}).model_dump(mode="json")
    except Exception:  # a field this version no longer takes: show what was written
        values = section
    keys = [*section, *(k for k in values if k not in section)]  # as written, then what the rules set
    changed = [f"{k}={_fmt(values[k])}" for k in keys
               if k in values and k != "name" and defaults.get(k) is not None and defaults[k] != values[k]]
    return " ".join([method, *changed])


def score(label: str, runs: list[dict[str, Any]]) -> Score:
    """A row (one run, or the seeds of one setting) as the below-the-student-alone check sees it."""
    m, cfg = runs[0]["metrics"], runs[0]["config"]
    data = cfg.get("data") or {}
    setting = "|".join(str(data.get(k)) for k in ("root", "preset", "image_size", "train_ratio", "val_ratio"))
    method = (cfg.get("method") or {}).get("name", m.get("method"))
    teachers = [r["metrics"]["teacher"]["top1"] for r in runs
                if isinstance(r["metrics"].get("teacher"), dict) and "top1" in r["metrics"]["teacher"]]
    return Score(label, str(m.get("model", "?")), method == "ce", setting,
                 tuple(r["metrics"]["top1"] for r in runs if not failed(r["metrics"])),
                 statistics.mean(teachers) if teachers else None)


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
    base = _baseline_top1([read_run(baseline)], baseline) if baseline else None
    if baseline:
        warn_if_not_comparable([r["dir"] for r in runs], Path(baseline))
    table = Table(["run", "model", "method", "epochs", "top-1 (%)", "top-5 (%)", "best top-1 (%)",
                   "Δ top-1" + (f" vs {baseline.name}" if baseline else ""), "train time (min)"], title=title)
    for r, label in zip(runs, run_labels([r["dir"] for r in runs])):
        m, cfg = r["metrics"], r["config"]
        if failed(m):
            table.add(label, m.get("model", "?"), method_label(cfg, m), m.get("epochs"), "failed", None, None,
                      None, round(m.get("seconds", 0.0) / 60, 1))
            continue
        best = f"{m['best_top1']:.2f} ({m.get('best_selected_on', 'test')})"
        delta = "—" if base is None else f"{m['top1'] - base:+.2f}"
        table.add(label, m.get("model", "?"), method_label(cfg, m), m.get("epochs"), m["top1"], m["top5"],
                  best, delta, round(m.get("seconds", 0.0) / 60, 1))
    table.notes += below_alone_notes(score(label, [r]) for r, label in zip(runs, run_labels([r["dir"] for r in runs])))
    return table


SEED_DIR = re.compile(r"^seed\d+$")


def group_by_seed(run_dirs: list[Path]) -> dict[Path, list[Path]]:
    """Runs of the layout ``<setting>/seed<k>`` grouped by setting (in the order given); a run
    directory not named ``seed<k>`` is a group of its own."""
    groups: dict[Path, list[Path]] = {}
    for d in run_dirs:
        d = Path(d)
        groups.setdefault(d.parent if SEED_DIR.match(d.name) else d, []).append(d)
    return groups


def seed_groups_table(run_dirs: list[Path], baseline: str | None = None, title: str = "") -> Table:
    """One row per setting: top-1/top-5 mean ± std over its seeds, the number of seeds, and the
    difference of the mean top-1 to the ``baseline`` setting's (a folder of seed runs or a run)."""
    groups = group_by_seed(run_dirs)
    labels = run_labels(list(groups))
    rows = []
    for (setting, dirs), label in zip(groups.items(), labels):
        runs = [read_run(d) for d in dirs]
        top1 = [r["metrics"]["top1"] for r in runs if not failed(r["metrics"])]
        rows.append((setting, label, runs, top1, [r["metrics"]["top5"] for r in runs if not failed(r["metrics"])]))
    base = None
    if baseline is not None:
        wanted = Path(baseline).resolve()
        match = [r for r in rows if r[0].resolve() == wanted]
        if not match:
            raise RsDistillError(f"--baseline '{baseline}' is not one of the tabulated settings")
        base = _baseline_top1(match[0][2], baseline)
        warn_if_groups_not_comparable([[r["dir"] for r in row[2]] for row in rows], [r["dir"] for r in match[0][2]])
    table = Table(["setting", "model", "method", "epochs", "seeds", "top-1 (%)", "top-5 (%)",
                   "Δ top-1" + (f" vs {Path(baseline).name}" if baseline else ""), "train time (min, per run)"],
                  title=title)
    for _, label, runs, top1, top5 in rows:
        m, cfg = runs[0]["metrics"], runs[0]["config"]
        minutes = statistics.mean(r["metrics"].get("seconds", 0.0) for r in runs) / 60
        n_failed = len(runs) - len(top1)
        if n_failed:  # a mean over the seeds that did not fail would hide the failures
            table.add(label, m.get("model", "?"), method_label(cfg, m), m.get("epochs"), len(runs),
                      f"failed ({n_failed} of {len(runs)} seeds)", None, None, round(minutes, 1))
            continue
        delta = "—" if base is None else f"{statistics.mean(top1) - base:+.2f}"
        table.add(label, m.get("model", "?"), method_label(cfg, m), m.get("epochs"), len(runs),
                  mean_std(top1), mean_std(top5), delta, round(minutes, 1))
    table.notes += below_alone_notes(score(label, runs) for _, label, runs, top1, _ in rows if len(top1) == len(runs))
    return table
