"""A suite expanded into cells, and the folder a suite works in.

A cell is one run: a (dataset, split, row, seed), where a row is the teacher, a method of the
suite or one value of a sweep. Each cell's run config is resolved here, once, from layers in this
order (later wins): the shared config files, the dataset's, the role's (teacher or student); the
method's name and its own config files; the shared ``set``, the dataset's, the role's, the method's, the sweep's and the
swept value; then what the suite's structure fixes (seed, dataset root and preset, split, model,
teacher). Students use their teacher's split (``data.split_file``), the student alone included, so
every row of a table is measured on the same test images.

The suite folder::

    DIR/suite.json               the cells and their resolved settings (compared on every rerun)
    DIR/suite.yaml               the suite file as run (after --set)
    DIR/.lock                    held by the `rsdistill suite` working on the folder
    DIR/data/<dataset>/          generated synthetic scenes
    DIR/runs/<cell id>/          each cell's run directory (see experiments/single.py)
    DIR/cells/<cell id>.json     each cell's record: status, error, attempts, cost
    DIR/tables/, results.json, report.md, report.html   written by `rsdistill report`

The folder can be moved or copied: in suite.json (and results.json) a path inside the folder (a
cell's run directory, its teacher checkpoint and split file, generated data) is stored relative to
it; a path outside (a dataset, a reused teacher run) as an absolute path. A suite.json written
before paths were stored that way is read the same: its absolute paths under the folder's old
place (known from its cells' run directories) are taken to be inside the folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ...config import PATH_FIELDS, build_config, load_yaml
from ...errors import ConfigError, RsDistillError
from ...runs.folder import METRICS, RunDir
from .spec import SuiteFile, nested, split_ratios, split_slug, sweep_rows, value_text

MANIFEST_VERSION = 1


class SuiteFolder:
    """The paths of a suite's output folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root).absolute()

    @property
    def manifest(self) -> Path:
        return self.root / "suite.json"

    def run_dir(self, cell_id: str) -> Path:
        return self.root / "runs" / cell_id

    def record(self, cell_id: str) -> Path:
        return self.root / "cells" / f"{cell_id}.json"

    def data_dir(self, dataset: str) -> Path:
        return self.root / "data" / dataset

    def read_manifest(self) -> dict[str, Any]:
        if not self.manifest.is_file():
            raise RsDistillError(f"'{self.root}' is not a suite folder (no suite.json): make one with "
                                 "`rsdistill suite SUITE.yaml --out DIR`")
        return json.loads(self.manifest.read_text())

    # ------------------------------------------------------------- paths that move with the folder
    def portable(self, path: str | None) -> str | None:
        """A path inside the folder as relative to it; any other as it is."""
        if not path or not Path(path).is_absolute() or not Path(path).is_relative_to(self.root):
            return path
        return Path(path).relative_to(self.root).as_posix()

    def local(self, path: str | None, old_root: Path | None = None) -> str | None:
        """A path as suite.json stores it, made absolute here: a relative one is inside the
        folder; an absolute one under the folder's ``old_root`` moves with it."""
        if not path:
            return path
        p = Path(path)
        if not p.is_absolute():
            return str(self.root / p)
        if old_root is not None and old_root != self.root and p.is_relative_to(old_root):
            return str(self.root / p.relative_to(old_root))
        return path

    def _cell_paths(self, cell: dict[str, Any], convert) -> dict[str, Any]:
        cell = {**cell, "run_dir": convert(cell["run_dir"])}
        if cell.get("config") is not None:
            cell["config"] = config_paths(cell["config"], convert)
        return cell

    def portable_cell(self, cell: dict[str, Any]) -> dict[str, Any]:
        return self._cell_paths(cell, self.portable)

    def read_cells(self, man: dict[str, Any]) -> list[Cell]:
        """The cells of a manifest, their paths absolute in the folder's present place."""
        old = old_root(man)
        return [Cell.from_dict(self._cell_paths(c, lambda p: self.local(p, old))) for c in man["cells"]]

    def read_record(self, cell_id: str) -> dict[str, Any] | None:
        file = self.record(cell_id)
        try:
            return json.loads(file.read_text()) if file.is_file() else None
        except json.JSONDecodeError:  # written atomically; unreadable only if edited by hand
            return None


def config_paths(config: dict[str, Any], convert) -> dict[str, Any]:
    """``config`` with ``convert`` applied to its path fields (data.root, teacher.checkpoint, ...)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    for field_name in PATH_FIELDS:
        section, key = field_name.split(".")
        if isinstance(out.get(section), dict) and out[section].get(key):
            out[section][key] = convert(out[section][key])
    return out


def old_root(man: dict[str, Any]) -> Path | None:
    """Where a suite folder was when its suite.json was written: recorded (``folder``), or, for a
    suite.json of an earlier version, from a cell's absolute run directory (``ROOT/runs/<cell
    id>``). The runs' own config.yaml files name their files under it."""
    if man.get("folder"):
        return Path(man["folder"])
    for c in man.get("cells", []):
        run_dir, parts = Path(c["run_dir"]), len(Path(c["id"]).parts) + 1
        if (c.get("config") is not None and run_dir.is_absolute() and len(run_dir.parts) > parts
                and run_dir.parts[-parts:] == ("runs", *Path(c["id"]).parts)):
            return Path(*run_dir.parts[:-parts])
    return None


@dataclass
class Cell:
    id: str  # <dataset>/<split as 8_2>/<row>/seed<k>
    dataset: str
    split: str  # "8:2"
    row: str
    seed: int
    kind: str  # "teacher", "method" or "sweep"
    label: str
    method: str  # as the suite names it: ce, kd, kd+ls, ...
    run_dir: str
    # The resolved run config (None for a reused teacher run: it is read, never run).
    config: dict[str, Any] | None
    depends: list[str] = field(default_factory=list)  # cells that must finish first (its teacher)
    sweep: dict[str, Any] | None = None  # {"index", "field", "value"}

    @property
    def reused(self) -> bool:
        return self.config is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Cell:
        return Cell(**d)


def cell_id(dataset: str, split: str, row: str, seed: int) -> str:
    return f"{dataset}/{split_slug(split)}/{row}/seed{seed}"


def plan(suite: SuiteFile, folder: SuiteFolder) -> list[Cell]:
    """Every cell of the suite, teachers first, each with its resolved config."""
    s = suite.spec
    shared = _files(suite, s.config, "config")
    teacher_files = _files(suite, s.teacher.config, "teacher.config")
    student_files = _files(suite, s.student.config, "student.config")
    methods = {m.name: m for m in s.methods}
    method_files = {m.name: _files(suite, m.config, f"methods.{i}.config") for i, m in enumerate(s.methods)}
    weights = None if s.teacher.weights is None else suite.resolve_path(s.teacher.weights, "teacher.weights")
    if weights is not None and not weights.is_file():
        raise ConfigError(f"{suite.shown}: teacher.weights: '{weights}' is not a file")
    cells: list[Cell] = []
    for ds_name, ds in s.datasets.items():
        ds_files = _files(suite, ds.config, f"datasets.{ds_name}.config")
        root = (folder.data_dir(ds_name) if ds.synth is not None
                else suite.resolve_path(ds.root, f"datasets.{ds_name}.root"))
        for split in s.splits:
            data: dict[str, Any] = {"root": str(root), "preset": ds.preset}
            ratios = split_ratios(split)
            if ratios is not None:  # else the dataset's published split
                data["train_ratio"], data["val_ratio"] = ratios
                if str(ds.preset).startswith("torchgeo:"):
                    data["published_split"] = False

            def build(cid: str, files: list[dict], method: str, sets: list[dict], structural: dict,
                      method_files: list[dict] = ()) -> dict:
                # the method's own files after its name: a file without method.name adds to it
                layers = [*files, {"method": {"name": method}}, *method_files, s.overrides, ds.overrides, *sets,
                          structural]
                try:
                    cfg = build_config(*layers, source="")
                except ConfigError as e:
                    raise ConfigError(f"{suite.shown}: cell {cid}: {str(e).removeprefix(': ')}") from None
                return cfg.resolve().with_absolute_paths().to_dict()

            teachers: dict[int, Cell] = {}
            for seed in teacher_seeds(suite, ds_name, split) if weights is None else []:
                cid = cell_id(ds_name, split, "teacher", seed)
                label = f"teacher ({s.teacher.model or 'reused run'})"
                if s.teacher.run is not None:
                    run = reused_run(suite, ds_name, split, seed)
                    if not RunDir(run).metrics.is_file():
                        raise ConfigError(f"{suite.shown}: teacher.run: '{run}' is not a finished run "
                                          f"(no {METRICS})")
                    cell = Cell(cid, ds_name, split, "teacher", seed, "teacher", label, "ce", str(run), None)
                else:
                    structural = {"seed": seed, "data": data, "model": {"name": s.teacher.model}}
                    config = build(cid, [*shared, *ds_files, *teacher_files], "ce", [s.teacher.overrides], structural)
                    cell = Cell(cid, ds_name, split, "teacher", seed, "teacher", label, "ce",
                                str(folder.run_dir(cid)), config)
                teachers[seed] = cell
                cells.append(cell)

            for seed in s.seeds:
                if weights is not None:
                    # a weights file: no teacher cell; the students of a seed share their split
                    # (the published one, or the seed's draw)
                    teacher_dir, split_data, depends = str(weights), data, []
                else:
                    teacher = teachers[seed] if seed in teachers and len(teachers) > 1 else next(iter(teachers.values()))
                    teacher_dir, depends = teacher.run_dir, [] if teacher.reused else [teacher.id]
                    split_data = {**data, "split_file": str(RunDir(teacher.run_dir).split)}

                def student(row: str, kind: str, label: str, method: str, sets: list[dict],
                            sweep: dict | None = None, files: list[dict] = ()) -> Cell:
                    cid = cell_id(ds_name, split, row, seed)
                    structural: dict[str, Any] = {"seed": seed, "model": {"name": s.student.model}, "data": split_data}
                    if method != "ce":
                        structural["teacher"] = {"checkpoint": teacher_dir, "model": s.teacher.model}
                    config = build(cid, [*shared, *ds_files, *student_files], method,
                                   [s.student.overrides, *sets], structural, files)
                    return Cell(cid, ds_name, split, row, seed, kind, label, method, str(folder.run_dir(cid)), config,
                                depends=list(depends), sweep=sweep)

                for m in (m for m in s.methods if seed in m.runs_at(s.seeds)):
                    cells.append(student(m.name, "method", m.row_label, m.method, [m.overrides],
                                         files=method_files[m.name]))
                for i, w in enumerate(s.sweeps):
                    base = methods.get(w.method)
                    method = base.method if base else w.method
                    for row, value in sweep_rows(w):
                        label = f"{w.field.rsplit('.', 1)[-1]} = {value_text(value)}"
                        sets = [base.overrides if base else {}, w.overrides, nested({w.field: value})]
                        files = method_files[base.name] if base else []
                        cells.append(student(row, "sweep", label, method, sets,
                                             {"index": i, "field": w.field, "value": value}, files))
    return cells


def teacher_seeds(suite: SuiteFile, dataset: str, split: str) -> list[int]:
    """One teacher per seed, unless the suite fixes its seed (teacher.seed) or reuses one run for
    every seed (teacher.run without {seed}; its seed is the run's own)."""
    t = suite.spec.teacher
    if t.seed is not None:
        return [t.seed]
    if t.run is not None and "{seed}" not in t.run:
        file = RunDir(reused_run(suite, dataset, split, 0)).config
        try:
            seed = (yaml.safe_load(file.read_text()) or {}).get("seed", 0) if file.is_file() else 0
        except yaml.YAMLError:
            seed = 0
        return [int(seed)]
    return list(suite.spec.seeds)


def reused_run(suite: SuiteFile, dataset: str, split: str, seed: int) -> Path:
    run = suite.spec.teacher.run.format(dataset=dataset, split=split_slug(split), seed=seed)
    return suite.resolve_path(run, "teacher.run")


def _files(suite: SuiteFile, files: list[str], field_name: str) -> list[dict[str, Any]]:
    return [load_yaml(p) for p in suite.config_files(files, field_name)]


def manifest(suite: SuiteFile, cells: list[Cell], command: list[str], folder: SuiteFolder) -> dict[str, Any]:
    """suite.json: what `rsdistill report` needs besides the run directories."""
    s = suite.spec
    rows = [{"row": m.name, "label": m.row_label, "kind": "method", "method": m.method,
             "plain": not m.overrides} for m in s.methods if m.runs_at(s.seeds)]
    sweeps = [{"index": i, "method": w.method, "field": w.field, "prefix": w.prefix,
               "values": w.values, "rows": [r for r, _ in sweep_rows(w)]} for i, w in enumerate(s.sweeps)]
    return {
        "version": MANIFEST_VERSION,
        "name": s.name,
        "description": s.description,
        "suite_file": str(suite.path),
        "command": command,
        "suite": suite.raw,
        "datasets": {n: {"preset": d.preset, "root": folder.portable(cells_root(cells, n)), "synth": d.synth.model_dump() if d.synth else None}
                     for n, d in s.datasets.items()},
        "splits": s.splits,
        "seeds": s.seeds,
        "teacher": {"model": s.teacher.model, "run": s.teacher.run, "seed": s.teacher.seed,
                    "weights": s.teacher.weights},
        "student": {"model": s.student.model},
        "rows": rows,
        "sweeps": sweeps,
        "baselines": baselines(rows),
        "cells": [folder.portable_cell(c.to_dict()) for c in cells],
        # where the folder is now: after a move, the absolute paths its runs wrote name this place
        "folder": str(folder.root),
    }


def cells_root(cells: list[Cell], dataset: str) -> str | None:
    for c in cells:
        if c.dataset == dataset and c.config is not None:
            return c.config["data"]["root"]
    return None


def baselines(rows: list[dict[str, Any]]) -> dict[str, str | None]:
    """The rows the Δ columns compare with: the student alone (the first ``ce`` row) and KD (the
    row named ``kd``, else the first plain ``kd`` row)."""
    alone = next((r["row"] for r in rows if r["method"] == "ce"), None)
    kd = next((r["row"] for r in rows if r["row"] == "kd" and r["method"] == "kd"), None)
    kd = kd or next((r["row"] for r in rows if r["method"] == "kd" and r["plain"]), None)
    return {"alone": alone, "kd": kd}


def suite_yaml(suite: SuiteFile) -> str:
    return f"# {suite.path}, as run (after --set)\n" + yaml.safe_dump(suite.raw, sort_keys=False)
