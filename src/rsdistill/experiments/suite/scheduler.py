"""`rsdistill suite`: every cell of a suite file, each in its own process, then the report.

- Finished cells are skipped, interrupted ones resumed (their run directory's last checkpoint),
  missing ones started; a teacher runs before the students that need it.
- A cell whose run has started is reused only with the settings it was made with: any change is
  an error naming the cell and the field, before anything runs.
- ``jobs`` cells run side by side, each in its own process with ``cpu_count // jobs`` threads
  (``OMP_NUM_THREADS`` fixes the count; results are reproducible for a given count). They share
  the decoded cache and the teacher-output cache (both guarded by file locks) and never share a
  run directory (each holds its lock).
- A cell that fails is recorded with its error and the others go on; its students are recorded as
  not run. The outcome says how many failed.

Cells are forked from a multiprocessing fork server that has imported torch once (see
``cell_preload``): a cell starts in a fraction of a second, yet is a process of its own, so a crash
of one cell leaves the others running.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from ...errors import ConfigError, RsDistillError
from ...io import atomic_write_json, atomic_write_text
from ..collect import differing_settings
from ...runs.claim import RunDirectoryInUse, RunLock, check_outside_data
from ...runs.folder import RunDir, Status
from .cell import run_cell
from .plan import Cell, SuiteFolder, config_paths, manifest, old_root, plan, suite_yaml
from .spec import load_suite

log = logging.getLogger("rsdistill")


@dataclass
class SuiteOutcome:
    finished: list[str]
    failed: dict[str, str]  # cell id -> why
    report: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    def require_all(self, what: str, out: str | Path) -> None:
        """For a front end whose table needs every cell (`rsdistill demo`, `ablate`): one line naming
        the first cell that did not finish."""
        if self.failed:
            cid, why = next(iter(self.failed.items()))
            raise RsDistillError(f"{what}: {len(self.failed)} run(s) did not finish ({cid}: {why}); the finished "
                                 f"ones are kept in '{out}': run the same command again to resume")


def run_suite(suite_file: str | Path, out: str | Path, *, jobs: int = 1, overrides: list[str] = (),
              command: list[str] | None = None, verbose: bool = True, nproc_per_cell: int = 1) -> SuiteOutcome:
    from .report import write_report

    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1 (got {jobs})")
    if nproc_per_cell < 1:
        raise ConfigError(f"--nproc-per-cell must be at least 1 (got {nproc_per_cell})")
    if nproc_per_cell > 1 and jobs > 1:
        # each cell's processes take the machine's devices (cuda:0..N-1): two cells would share them
        raise ConfigError("--nproc-per-cell runs each cell on all the machine's devices: give --jobs 1 with it")
    suite = load_suite(suite_file, overrides)
    folder = SuiteFolder(out)
    _check_folder(folder)
    for name, ds in suite.spec.datasets.items():
        if ds.root is not None:
            check_outside_data(folder.root, suite.resolve_path(ds.root, f"datasets.{name}.root"))
    lock = _lock(folder, "suite")
    try:
        cells = plan(suite, folder)
        follow_move(cells, folder)
        check_unchanged(cells, folder, suite.shown)
        atomic_write_json(folder.manifest, manifest(suite, cells, command or [], folder))
        atomic_write_text(folder.root / "suite.yaml", suite_yaml(suite))
        _generate_data(suite, folder)
        outcome = run_cells(cells, folder, jobs, verbose, nproc_per_cell)
        outcome.report = write_report(folder.root, allow_fewer=True)  # the cells that ran say why
    finally:
        lock.release()
    return outcome


def run_planned(cells: list[Cell], folder: SuiteFolder, what: str, jobs: int = 1, verbose: bool = True) -> SuiteOutcome:
    """Cells a front end planned itself (`rsdistill ablate`: its rows' configs), run by the suite's
    scheduler in ``folder`` under its lock: one process per cell, their records, resuming and
    skipping finished cells, Ctrl-C and SIGTERM stopping them. No suite.json: the front end writes
    its own table. ``what`` names the front end in errors; a started cell with other settings than
    its run folder holds is refused, naming the fields, before anything runs."""
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1 (got {jobs})")
    lock = _lock(folder, what)
    try:
        check_unchanged(cells, folder, what, "Give the settings it ran with, use another --out")
        return run_cells(cells, folder, jobs, verbose)
    finally:
        lock.release()


def _lock(folder: SuiteFolder, what: str) -> RunLock:
    """The folder, created, and its lock: one command at a time works on it."""
    folder.root.mkdir(parents=True, exist_ok=True)
    try:
        return RunLock(folder.root).acquire()
    except RunDirectoryInUse as e:  # another command works on this folder
        raise RsDistillError(f"{what}: {e}") from None


def _check_folder(folder: SuiteFolder) -> None:
    root = folder.root
    if root.exists() and not root.is_dir():
        raise RsDistillError(f"--out '{root}' is a file, not a folder")
    if root.is_dir() and not folder.manifest.is_file():
        others = sorted(p.name for p in root.iterdir() if p.name != ".lock")
        if others:
            raise RsDistillError(f"--out '{root}' is not empty ({', '.join(others[:3])}) and is not a suite "
                                 "folder (no suite.json): choose a new or empty folder")


def check_unchanged(cells: list[Cell], folder: SuiteFolder, suite_path: str,
                    remedy: str = "Restore the suite file, use another --out") -> None:
    """A started cell (its run directory holds a config.yaml) must have the settings it was made
    with, as suite.json recorded them and as its run directory holds them. A cell not started yet
    takes the new settings: there is no result to mistake for theirs."""
    stored: dict[str, Any] = {}
    if folder.manifest.is_file():
        stored = {c.id: c.to_dict() for c in folder.read_cells(folder.read_manifest())}
    changed = []
    for cell in cells:
        if cell.reused or not RunDir(cell.run_dir).config.is_file():
            continue
        diffs = []
        old = stored.get(cell.id, {}).get("config")
        if old is not None:
            diffs = differing_settings(cell.config, old, strict=True)
        if not diffs:
            diffs = differing_settings(cell.config, RunDir(cell.run_dir).read_config().require())
        if diffs:
            changed.append((cell.id, diffs))
    if changed:
        cid, diffs = changed[0]
        more = f" (and {len(changed) - 1} more cell(s))" if len(changed) > 1 else ""
        raise ConfigError(
            f"{suite_path}: the settings of cell '{cid}' changed since it ran{more}: {'; '.join(diffs)}. "
            f"{remedy}, or delete '{folder.run_dir(cid)}' to redo the cell")


def follow_move(cells: list[Cell], folder: SuiteFolder) -> None:
    """A suite folder moved or copied since its suite.json was written with absolute paths: the
    config.yaml of each started cell names the old place (its teacher, split file, generated
    data); point those paths inside the folder to its present place. The suite holds the folder's
    lock, and a cell's run folder is the suite's own."""
    import yaml

    if not folder.manifest.is_file():
        return
    old = old_root(folder.read_manifest())
    if old is None or old == folder.root:
        return
    for cell in cells:
        run = RunDir(cell.run_dir)
        if cell.reused or not run.config.is_file():
            continue
        stored = run.read_config().require()
        moved = config_paths(stored, lambda p: folder.local(p, old))
        if moved != stored:
            atomic_write_text(run.config, yaml.safe_dump(moved, sort_keys=False))
    log.info("suite: '%s' was at '%s': its runs now name their files in the new place", folder.root, old)


def _generate_data(suite, folder: SuiteFolder) -> None:
    from ...synth import generate_dataset

    for name, ds in suite.spec.datasets.items():
        if ds.synth is not None:
            s = ds.synth
            log.info("synthetic scenes '%s': %d classes x %d images at %d px -> %s", name, s.classes,
                     s.per_class, s.size, folder.data_dir(name))
            generate_dataset(folder.data_dir(name), classes=s.classes, per_class=s.per_class, size=s.size, seed=s.seed,
                             bands=s.bands, mix=s.mix)


def cell_status(cell: Cell) -> tuple[str, str | None]:
    """("finished" | "failed" | "todo", why it failed). A run that diverged (metrics.json says
    failed) would diverge again: it stays failed until its run directory is deleted."""
    run = RunDir(cell.run_dir)
    metrics = run.read_metrics()
    if metrics.missing:
        return "todo", None
    if metrics.damaged:
        return "failed", f"'{metrics.file}' is damaged ({metrics.problem})"
    if run.status() is Status.FAILED:
        return "failed", f"the run failed: {metrics.value.get('reason')}"
    return "finished", None


def _context():
    """A fork server that has imported torch once; spawn where there is none (Windows)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["rsdistill.experiments.suite.preload"])
        return ctx
    return multiprocessing.get_context("spawn")


def threads_per_cell(jobs: int) -> int:
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 1) // jobs)


def run_cells(cells: list[Cell], folder: SuiteFolder, jobs: int, verbose: bool = True,
              nproc_per_cell: int = 1) -> SuiteOutcome:
    status: dict[str, str] = {}
    why: dict[str, str] = {}
    for c in cells:
        status[c.id], reason = cell_status(c)
        if reason:
            why[c.id] = reason
    todo = [c for c in cells if status[c.id] == "todo"]
    total = len(cells)
    log.info("suite: %d cells, %d finished before, %d failed before, %d to run (%d at a time, %d thread(s) each)",
             total, sum(s == "finished" for s in status.values()), sum(s == "failed" for s in status.values()),
             len(todo), jobs, threads_per_cell(jobs))
    ctx = _context() if todo else None
    threads = threads_per_cell(jobs)
    running: dict[str, Any] = {}
    by_id = {c.id: c for c in cells}
    env, cwd = dict(os.environ), os.getcwd()
    n = total - len(todo)
    previous_term = _stop_on_sigterm()
    try:
        while todo or running:
            for cid, proc in list(running.items()):
                if proc.exitcode is None:
                    continue
                proc.join()
                del running[cid]
                n += 1
                status[cid], reason = _after(by_id[cid], folder, proc.exitcode)
                if reason:
                    why[cid] = reason
                    log.warning("[%d/%d] %s: FAILED: %s", n, total, cid, reason)
                else:
                    log.info("[%d/%d] %s: finished%s", n, total, cid, _summary(by_id[cid], folder))
            for c in list(todo):
                bad = [d for d in c.depends if status.get(d) == "failed"]
                if bad:
                    todo.remove(c)
                    n += 1
                    status[c.id], why[c.id] = "failed", f"not run: its teacher cell {bad[0]} failed"
                    _record_not_run(folder, c, why[c.id])
                    log.warning("[%d/%d] %s: not run (its teacher %s failed)", n, total, c.id, bad[0])
            while len(running) < jobs:
                ready = next((c for c in todo if all(status.get(d) == "finished" for d in c.depends)), None)
                if ready is None:
                    break
                todo.remove(ready)
                proc = ctx.Process(target=run_cell, name=f"rsdistill cell {ready.id}",
                                   args=(str(folder.root), ready.id, ready.config, threads, env, cwd,
                                         verbose and jobs == 1, nproc_per_cell, os.getpid()))
                proc.start()
                running[ready.id] = proc
                log.info("%s: started (pid %s)", ready.id, proc.pid)
            if running:
                wait([p.sentinel for p in running.values()], timeout=5.0)
            elif todo:  # cannot happen: every dependency is a cell of the plan
                raise RuntimeError(f"suite: cells {[c.id for c in todo]} wait for cells that never run")
    except KeyboardInterrupt:
        _stop_cells(list(running.values()))
        raise
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    failed = {cid: why.get(cid, "failed") for cid, s in status.items() if s != "finished"}
    return SuiteOutcome([cid for cid, s in status.items() if s == "finished"], failed)


def _stop_on_sigterm():
    """SIGTERM of the suite's process stops it as Ctrl-C does (its cells stopped, resumable);
    returns the handler it replaces (None off the main thread, where none can be set)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        return None


def _stop_cells(procs: list) -> None:
    """Stop the running cells as Ctrl-C stops a run: each records itself as interrupted, its run
    resumable from its last checkpoint. A Ctrl-C in a terminal reached them already (one process
    group); a signal to the suite's process alone did not: they get SIGINT from here."""
    deadline = time.monotonic() + 2.0
    for proc in procs:
        proc.join(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.exitcode is None:
            try:
                os.kill(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    for proc in procs:
        proc.join(timeout=30)
        if proc.exitcode is None:
            proc.terminate()
            proc.join(timeout=5)


def _after(cell: Cell, folder: SuiteFolder, exitcode: int) -> tuple[str, str | None]:
    state, reason = cell_status(cell)
    if state == "finished":
        return state, None
    record = folder.read_record(cell.id) or {"id": cell.id, "attempts": []}
    last = record["attempts"][-1] if record["attempts"] else None
    if last is None or last.get("outcome") == "running":  # died without recording (killed, out of memory)
        reason = f"its process ended with exit code {exitcode} without recording an outcome"
        if last is not None:
            last["outcome"] = "crashed"
        record.update(status="failed", error=reason)
        atomic_write_json(folder.record(cell.id), record)
        return "failed", reason
    return "failed", reason or record.get("error") or f"exit code {exitcode}"


def _record_not_run(folder: SuiteFolder, cell: Cell, reason: str) -> None:
    record = folder.read_record(cell.id) or {"id": cell.id, "attempts": []}
    record.update(status="failed", error=reason, run_dir=cell.run_dir)
    atomic_write_json(folder.record(cell.id), record)


def _summary(cell: Cell, folder: SuiteFolder) -> str:
    try:
        m = RunDir(cell.run_dir).read_metrics().get({})
        record = folder.read_record(cell.id) or {}
        wall = (record.get("cost") or {}).get("wall_seconds")
        return f": top-1 {m['top1']:.2f}%" + (f" ({wall:.0f} s)" if wall is not None else "")
    except (OSError, ValueError, KeyError):
        return ""
