"""One cell of a suite, in its own process: run (or resume) its run directory, record the outcome
and the cost.

The record (``DIR/cells/<cell id>.json``) holds the status (``running``, ``finished``,
``failed``, ``interrupted``), the error of a failed attempt, every attempt (pid, host, start, end,
wall time, peak memory) and the cost the tables show: seconds per training iteration (the training
steps' time, without the per-epoch test pass, over the iterations), peak resident memory of the
cell's process (``getrusage`` max RSS, shared library pages included) and, on CUDA, peak allocated
GPU memory.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from ...errors import RsDistillError
from ...io import atomic_write_json
from ...runs.folder import RunDir
from .plan import SuiteFolder

log = logging.getLogger("rsdistill")


def run_cell(root: str, cell_id: str, config: dict[str, Any], threads: int, env: dict[str, str], cwd: str,
             verbose: bool, nproc: int = 1, suite_pid: int | None = None) -> None:
    """The body of a cell's process (a ``multiprocessing`` target): exits 0 when the run finished,
    1 when it failed, 130 when interrupted. ``nproc`` > 1: the run is data-parallel under torchrun,
    ``nproc`` processes of ``threads // nproc`` threads each."""
    # A forked server's child inherits the server's environment, not the suite's: restore it.
    os.environ.clear()
    os.environ.update(env)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.chdir(cwd)
    import torch

    torch.set_num_threads(threads)
    # The suite stops its cells with SIGINT. A suite started as a background job of a script
    # (`rsdistill suite ... &`) has SIGINT ignored, and its cells would inherit that and run on.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _stop_with_suite(suite_pid)
    _console(verbose)
    sys.exit(_run(SuiteFolder(root), cell_id, config, nproc))


def _run(folder: SuiteFolder, cell_id: str, config: dict[str, Any], nproc: int = 1) -> int:
    from ...config import build_config
    from ..collect import run_or_resume

    run_dir = folder.run_dir(cell_id)
    record = folder.read_record(cell_id) or {"id": cell_id, "attempts": []}
    for a in record["attempts"]:
        if a.get("outcome") == "running":  # its process ended without recording (killed)
            a["outcome"] = "killed"
    attempt: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "outcome": "running"}
    record["attempts"].append(attempt)
    record.update(status="running", error=None, run_dir=str(run_dir))
    atomic_write_json(folder.record(cell_id), record)

    t0 = time.perf_counter()
    code, error, tb = 1, None, None
    try:
        restart_if_killed_while_starting(run_dir)
        if nproc > 1:
            run_under_torchrun(folder, cell_id, config, nproc)
        else:
            run_or_resume(build_config(config, source=f"cell {cell_id}"), run_dir)
        code = 0
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the record short
        code, error = 130, "interrupted"
    except RsDistillError as e:
        error = str(e)
    except Exception as e:  # a crash of this cell must reach its record, not stop the suite
        error, tb = f"{type(e).__name__}: {e}", traceback.format_exc()
    outcome = {0: "finished", 130: "interrupted"}.get(code, "failed")
    attempt.update(outcome=outcome, ended=time.strftime("%Y-%m-%d %H:%M:%S"),
                   wall_seconds=round(time.perf_counter() - t0, 2), cpu_seconds=round(cpu_seconds(), 2),
                   peak_rss_mb=round(peak_rss_mb(), 1),
                   peak_cuda_mb=peak_cuda_mb(), error=error)
    if tb:
        attempt["traceback"] = tb
    record.update(status=outcome, error=error, cost=cost(record, run_dir, config))
    atomic_write_json(folder.record(cell_id), record)
    if error and code != 130:
        log.error("cell %s failed: %s", cell_id, error)
    return code


def run_under_torchrun(folder: SuiteFolder, cell_id: str, config: dict[str, Any], nproc: int) -> None:
    """The cell's run as ``nproc`` torchrun processes on this machine (experiments/suite/torchrun.py);
    their output goes to ``cells/<cell id>.torchrun.log``, whose last error is the cell's error."""
    import subprocess

    from ...config import build_config

    build_config(config, source=f"cell {cell_id}")  # a bad config fails here, not in N processes
    stem = folder.record(cell_id).with_suffix("")
    config_file, log_file = Path(f"{stem}.torchrun.json"), Path(f"{stem}.torchrun.log")
    atomic_write_json(config_file, config)
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, int(os.environ.get("OMP_NUM_THREADS", "1")) // nproc)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "rsdistill.experiments.suite.torchrun", str(config_file), str(folder.run_dir(cell_id))]
    log.info("%s: torchrun, %d processes (log: %s)", cell_id, nproc, log_file)
    with open(log_file, "a") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    if code != 0:
        lines = [ln for ln in log_file.read_text(errors="replace").splitlines() if ln.startswith("error: ")]
        raise RsDistillError(lines[-1].removeprefix("error: ") if lines else
                             f"torchrun exited with code {code}; see {log_file}")


def restart_if_killed_while_starting(run_dir: Path) -> None:
    """A run killed right after writing its config.yaml and before its split.json (a run writes
    config.yaml first) cannot be resumed, and has trained nothing yet: clear what it wrote so that
    the cell starts afresh instead of failing for good."""
    from ...runs.claim import RunLock, clear_unstarted_run
    from ..single import killed_while_starting

    if not killed_while_starting(run_dir):
        return
    with RunLock(run_dir):  # a process still working on it stops this with an error naming it
        log.warning("run '%s' was stopped while starting (config.yaml without split.json): starting it again",
                    run_dir)
        clear_unstarted_run(run_dir)


def cpu_seconds() -> float:
    import resource

    # the cell's own process and, under torchrun, the processes that trained
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB. On Linux its memory map's own high-water mark
    (VmHWM): ``ru_maxrss`` also keeps the parent's peak across the exec of a spawned process."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def peak_cuda_mb() -> float | None:
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def step_costs(run_dir: Path, batch_size: int) -> tuple[float | None, float | None]:
    """From the run's metrics.jsonl, read once: the training steps' time per iteration and the
    share of it spent waiting for data (analysis.curves); None for what the logs do not give."""
    from ...analysis.curves import data_wait_share, seconds_per_iteration

    run = RunDir(run_dir)
    records = run.read_epochs()
    if not records.ok:
        return None, None
    records = records.value
    try:
        num_train = run.read_split().get({})["counts"]["train"]
        spi = seconds_per_iteration(records, num_train, batch_size)
    except (KeyError, TypeError, ValueError):
        spi = math.nan
    wait = data_wait_share(records)
    return (None if math.isnan(spi) else spi), (None if math.isnan(wait) else wait)


def cost(record: dict[str, Any], run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    attempts = record["attempts"]
    peaks = [a["peak_rss_mb"] for a in attempts if a.get("peak_rss_mb") is not None]
    cuda = [a["peak_cuda_mb"] for a in attempts if a.get("peak_cuda_mb") is not None]
    spi, wait = step_costs(run_dir, config["train"]["batch_size"])
    return {"seconds_per_iteration": None if spi is None else round(spi, 5),
            "data_wait_share": None if wait is None else round(wait, 4),
            "peak_rss_mb": max(peaks) if peaks else None,
            "peak_cuda_mb": max(cuda) if cuda else None,
            "wall_seconds": round(sum(a.get("wall_seconds", 0.0) for a in attempts), 2),
            "cpu_seconds": round(sum(a.get("cpu_seconds", 0.0) for a in attempts), 2),
            "attempts": len(attempts)}


def _console(verbose: bool) -> None:
    logger = logging.getLogger("rsdistill")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    # Cells running side by side would interleave their epochs: the full log is in train.log.
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.addHandler(console)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _stop_with_suite(suite_pid: int | None) -> None:
    """Stop this cell when the suite's process is gone (killed without the chance to stop its
    cells): an orphan would keep training and hold its run directory's lock against the rerun.
    The suite's process, not this one's parent: cells are forked by a fork server, which may
    outlive it. The run is interrupted as by Ctrl-C (recorded, resumable); a run that does not
    stop within a minute is ended."""
    import _thread

    parent = os.getppid()

    def gone() -> bool:
        if suite_pid is None:
            return os.getppid() != parent
        try:
            os.kill(suite_pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # the pid now belongs to another user's process: ours is gone
            return True
        return False

    def watch() -> None:
        while not gone():
            time.sleep(1.0)
        _thread.interrupt_main()
        time.sleep(60.0)
        os._exit(137)

    threading.Thread(target=watch, name="rsdistill-parent-watch", daemon=True).start()
