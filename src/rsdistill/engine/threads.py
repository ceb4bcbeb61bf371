"""How many CPU threads a run's tensor operations use.

torch takes one thread per physical core by default. Two runs doing so on the same cores fight
over them: measured on 2 cores, two runs of two threads each ran tens of times slower per epoch
than two runs of one thread. So a run chooses, in order:

1. ``train.threads`` (``--threads N``) when set: what ``suite --jobs`` passes to each job;
2. ``OMP_NUM_THREADS`` when set in the environment;
3. otherwise the usable cores (this process's CPU affinity) divided by the number of rsdistill runs
   working on this machine at the start, itself included, and never more than torch's default.

Runs are counted through a marker file per run in a per-user folder of the temporary directory,
each held with an OS lock while the run works (a killed run's lock is released by the OS, so it
is not counted). The count is taken when the run starts: runs started later do not shrink it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("rsdistill")

# A marker file younger than this may belong to a run that has created it but not locked it yet.
FRESH_S = 5.0


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def env_threads() -> int | None:
    """``OMP_NUM_THREADS`` as a positive int (None when unset or not a number)."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    try:
        n = int(raw.split(",")[0])
    except ValueError:
        return None
    return n if n > 0 else None


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    why: str


def choose_threads(requested: int, env: int | None, cores: int, runs: int, default: int) -> ThreadChoice:
    """The rule of the module docstring, as a pure function (``default``: torch's own count)."""
    if requested > 0:
        return ThreadChoice(requested, "train.threads")
    if env:
        return ThreadChoice(env, "OMP_NUM_THREADS")
    share = max(1, cores // max(1, runs))
    threads = max(1, min(default, share))
    others = runs - 1
    why = (f"{cores} usable cores" + (f" shared with {others} other rsdistill run(s)" if others else "")
           + ("" if threads == share else f"; torch's default is {default}"))
    return ThreadChoice(threads, why)


def registry_folder() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"rsdistill-{uid}" / "running"


class RunningRuns:
    """This process's marker among the runs working on this machine (``with`` holds it)."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder or registry_folder()
        self.file: Path | None = None
        self._fd: int | None = None

    def __enter__(self) -> RunningRuns:
        try:
            import fcntl

            self.folder.mkdir(parents=True, exist_ok=True)
            self.file = self.folder / f"{os.getpid()}-{time.monotonic_ns()}.run"
            self._fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (ImportError, OSError):  # no flock or no writable temporary folder: not counted
            self._close()
        return self

    def count(self) -> int:
        """The runs holding a marker now, this one included (at least 1)."""
        try:
            import fcntl

            markers = list(self.folder.glob("*.run"))
        except (ImportError, OSError):
            return 1
        live = 0
        for marker in markers:
            if marker == self.file:
                continue
            try:
                fd = os.open(marker, os.O_RDONLY)
            except OSError:  # removed in the meantime
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                live += 1
            except OSError:
                pass
            else:  # nobody holds it: a run that was killed; removed once it cannot be a new one
                try:
                    if time.time() - os.fstat(fd).st_mtime > FRESH_S:
                        marker.unlink(missing_ok=True)
                except OSError:
                    pass
            finally:
                os.close(fd)
        return live + 1

    def _close(self) -> None:
        if self.file is not None:
            self.file.unlink(missing_ok=True)
        if self._fd is not None:
            os.close(self._fd)
        self.file, self._fd = None, None

    def __exit__(self, *exc: object) -> None:
        self._close()


class CpuShare:
    """``with CpuShare(cfg.train.threads) as share:`` sets torch's thread count for the run (see
    the module docstring) and restores the previous one afterwards; ``share.choice`` says why."""

    def __init__(self, requested: int = 0):
        import torch  # here, not above: counting runs needs no torch (a second process's tests)

        self.requested = requested
        self.runs = RunningRuns()
        self.choice: ThreadChoice | None = None
        self._previous = torch.get_num_threads()

    def __enter__(self) -> CpuShare:
        import torch

        self.runs.__enter__()
        self.choice = choose_threads(self.requested, env_threads(), usable_cores(), self.runs.count(),
                                     self._previous)
        torch.set_num_threads(self.choice.threads)
        return self

    def describe(self) -> str:
        c = self.choice
        return f"{c.threads} CPU thread(s) ({c.why})" if c else "CPU threads: torch's default"

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self._previous)
        self.runs.__exit__()
