"""Claiming a run folder before a run writes into it.

``--out`` must be a missing or empty folder, or a run folder (:meth:`RunDir.is_run`: our marker,
or a run of an earlier version), and never the dataset or a folder inside it. A folder that is
not empty and not a run is a user's: it is refused before anything is written in it. A run holds
an exclusive OS lock on ``RUN/.lock`` for its lifetime, so a second process on the same folder
stops at once instead of interleaving its files with the first one's; the lock file names the
holder (pid and host). The OS drops the lock when its process dies, so a killed run never blocks
``--resume``. A start that fails before writing ``config.yaml`` removes what it created: a rerun
finds the folder as it was.

Kept free of torch: tests hold a lock from a second, plain Python process.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from ..errors import RsDistillError
from .folder import CONFIG, LOCK, MARKER, SKIPPED, RunDir

LOCK_NAME = LOCK


class RunDirectoryInUse(RsDistillError):
    """Another process holds the run directory's lock."""


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def check_outside_data(out: str | Path, data_root: str | Path | None, option: str = "--out") -> None:
    """A run or evaluation folder inside the dataset would mix our files into the data."""
    if not data_root:
        return
    o, d = _resolved(out), _resolved(data_root)
    if o == d or o.is_relative_to(d):
        raise RsDistillError(f"{option} '{out}' is inside the dataset folder '{data_root}': "
                             "choose a folder outside the data")


def check_run_folder(out: str | Path, data_root: str | Path | None) -> None:
    """``out`` may receive a new run: missing, empty, or a run folder (the caller then refuses,
    starts over or resumes it), and outside the data. Checked before anything is written there."""
    out = Path(out)
    check_outside_data(out, data_root)
    if out.exists() and not out.is_dir():
        raise RsDistillError(f"--out '{out}' is a file, not a folder")
    check_not_users_folder(out)


def check_not_users_folder(out: str | Path, option: str = "--out") -> None:
    """A folder that is not empty and holds no run (neither our marker nor an earlier version's
    run) is a user's folder: refused, whatever the options."""
    run = RunDir(out)
    if not run.path.is_dir() or run.is_unused() or run.is_run():
        return
    # A lock file alone is what a killed start leaves behind.
    others = [n for n in _listing(run.path) if n != LOCK_NAME]
    raise RsDistillError(
        f"{option} '{out}' is not empty ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}) "
        f"and is not an rsdistill run folder (no {MARKER}): choose a new or empty folder; "
        "rsdistill never writes into a folder of yours"
    )


def _listing(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir())
    except OSError as e:
        raise RsDistillError(f"--out '{folder}' cannot be read: {e.strerror or e}") from None


def clear_unstarted_run(run_dir: Path) -> None:
    """Remove what a run without a finished epoch wrote (``--overwrite``); the caller holds the
    folder's lock. Files the run did not write are kept, in ``checkpoints/`` and ``tb/`` too."""
    import shutil

    run = RunDir(run_dir)
    if run.has_finished_epoch():
        raise RsDistillError(f"run directory '{run_dir}' has finished epochs: --overwrite only starts over "
                             f"a run without one; continue it with --resume {run_dir}, or delete it yourself")
    if not run.is_run():
        raise RsDistillError(f"'{run_dir}' is not an rsdistill run folder (no {MARKER}): --overwrite never "
                             "removes a user's files")
    for entry in run.written_files():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)
    for folder in (run.checkpoints, run.tensorboard):  # removed once the run's own files are gone
        try:
            folder.rmdir()
        except OSError:  # missing, or holding files of the user's
            pass


def remove_leftover_temporaries(run_dir: Path) -> list[Path]:
    """Remove the temporary files of atomic writes that a killed process left (a SIGKILL while
    ``checkpoints/last.pt`` was written leaves ``checkpoints/.last.pt.XXXX.tmp``, as large as a
    checkpoint); returns them. The caller holds the folder's lock."""
    found = RunDir(run_dir).leftover_temporaries()
    for f in found:
        f.unlink(missing_ok=True)
    return found


SKIPPED_NAME = SKIPPED


def record_skipped(run_dir: Path, skipped: list[dict[str, str]], write: bool = True) -> list[dict[str, str]]:
    """The images a run left out (``data.skip_bad_images``): those found now are added to
    ``RUN/skipped_images.json`` (kept for a resumed run, whose split no longer holds them); returns
    them all."""
    file = run_dir / SKIPPED_NAME
    known: list[dict[str, str]] = []
    if file.is_file():
        try:
            known = list(json.loads(file.read_text()))
        except ValueError:
            known = []
    seen = {k.get("path") for k in known}
    new = [s for s in skipped if s["path"] not in seen]
    if new and write:
        from ..io import atomic_write_json

        atomic_write_json(file, known + new)
    return known + new


def check_output_folder(out: str | Path, data_root: str | Path | None, marker: str) -> None:
    """A folder for a command's result files (``eval --out``): missing, empty or holding an
    earlier result (``marker``), and outside the data."""
    out = Path(out)
    check_outside_data(out, data_root)
    if out.exists() and not out.is_dir():
        raise RsDistillError(f"--out '{out}' is a file, not a folder")
    if out.is_dir() and [n for n in _listing(out) if n != LOCK_NAME] and not (out / marker).is_file():
        raise RsDistillError(f"--out '{out}' is not empty and holds no earlier {marker}: "
                             "choose a new or empty folder")


class RunLock:
    """An exclusive ``flock`` on ``run_dir/.lock`` (non-blocking: a busy folder is an error)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.file = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # no flock on this platform (Windows): run unlocked
            return self
        # Retried when the file was replaced between open and flock (a failed start removing
        # its lock file): a lock on an unlinked file would exclude nobody.
        for _ in range(10):
            try:
                fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as e:  # a read-only folder or file system, a folder we may not write in
                raise RsDistillError(f"cannot write in run directory '{self.run_dir}' ({self.file.name}): "
                                     f"{e.strerror or e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe_holder(fd)
                os.close(fd)
                raise RunDirectoryInUse(
                    f"run directory '{self.run_dir}' is in use by another rsdistill process ({holder}); "
                    "wait for it to end or choose another --out"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, (json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                          "since": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n").encode())
                self._fd = fd
                return self
            os.close(fd)
        raise RunDirectoryInUse(f"run directory '{self.run_dir}': cannot lock '{self.file}' (it keeps being replaced)")

    def release(self, remove: bool = False) -> None:
        if self._fd is None:
            return
        if remove:  # unlinked while still held: nobody can lock the old file in between
            self.file.unlink(missing_ok=True)
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {info['pid']} on host {info['host']}, since {info['since']}"
    except (ValueError, KeyError, OSError, TypeError):
        return "a process that has not written its pid yet"


class ClaimedRunDirectory:
    """``with ClaimedRunDirectory(out):`` creates ``out`` (and missing parents) and holds its lock;
    on leaving, a folder still without ``started`` (``config.yaml``: a run has started; for
    ``eval --out``, its ``eval.json``) loses what the claim created, the marker of a start that
    wrote nothing else included."""

    def __init__(self, out: str | Path, started: str = CONFIG):
        self.out = Path(out)
        self.started = started
        self.created: list[Path] = []
        self.lock = RunLock(self.out)

    def __enter__(self) -> ClaimedRunDirectory:
        missing, p = [], self.out.absolute()
        while not p.exists():
            missing.append(p)
            p = p.parent
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # read-only file system, no permission, a file in the way, disk full
            for d in missing:  # deepest first: parents this call made before failing
                try:
                    d.rmdir()
                except OSError:
                    pass
            where = e.filename or self.out
            raise RsDistillError(f"cannot create the run directory '{self.out}' ('{where}': "
                                 f"{e.strerror or e})") from None
        self.created = missing  # deepest first
        try:
            self.lock.acquire()
        except BaseException:
            self._remove_created()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        started = (self.out / self.started).is_file()
        if not started and self.started == CONFIG and set(RunDir(self.out).entries()) <= {LOCK_NAME, MARKER}:
            (self.out / MARKER).unlink(missing_ok=True)  # nothing of the run was written after it
        self.lock.release(remove=not started)
        if not started:
            self._remove_created()

    def _remove_created(self) -> None:
        for d in self.created:
            try:
                d.rmdir()
            except OSError:  # not empty: another process has claimed it since
                return
