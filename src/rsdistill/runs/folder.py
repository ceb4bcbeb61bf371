"""A run folder: the names of its files, its marker, and typed readers.

A run writes ``run.json`` first (the marker: the tool and its version), then ``config.yaml``
(resolved, paths absolute), ``dataset.json`` (the data's fingerprint), ``split.json``,
``metrics.jsonl`` (one record per epoch), ``train.log``, ``tb/`` (TensorBoard events),
``checkpoints/{last,best}.pt`` and, when it ends, ``metrics.json`` (final, or
``"status": "failed"``) with the per-class accuracy and confusion matrix of the final model.
``.lock`` is held by the process working on the folder (:mod:`.claim`).

A folder is a run folder when it holds the marker, or when it is one an earlier version made (no
marker): its ``config.yaml`` is a full resolved rsdistill config *and* another file only a run
writes is there (see :meth:`RunDir.is_earlier_run`). Anything else is a user's folder.

Readers return a :class:`Read`: the value, or why there is none (missing, or damaged with the
parser's reason), so that callers decide between an error and a default in one place.

Kept free of torch and of the config classes: a reader gives the mapping as stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..errors import RsDistillError

# The files of a run folder (every module that reads or writes one takes the names from here).
MARKER = "run.json"
CONFIG = "config.yaml"
DATASET = "dataset.json"
SPLIT = "split.json"
EPOCHS = "metrics.jsonl"
METRICS = "metrics.json"
LOG = "train.log"
TENSORBOARD = "tb"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
PER_CLASS = "per_class_accuracy.csv"
CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"
SOFT_LABELS = "soft_labels.json"
SKIPPED = "skipped_images.json"
LOCK = ".lock"

# What a run writes at its top level (``--overwrite`` removes these and nothing else; in
# ``checkpoints/`` and ``tb/`` only the run's own files, see :meth:`RunDir.written_files`).
RUN_FILES = (MARKER, CONFIG, DATASET, SPLIT, EPOCHS, METRICS, LOG, PER_CLASS, CONFUSION_CSV, CONFUSION_PNG,
             SOFT_LABELS, SKIPPED)
# The sections of a config.yaml that a run writes (every one is there: the config is resolved).
CONFIG_SECTIONS = ("data", "model", "method", "teacher", "train", "seed")

T = TypeVar("T")


@dataclass(frozen=True)
class Read(Generic[T]):
    """What reading one file of a run gave: ``value``, or ``problem`` ("missing", or why the file
    is damaged)."""

    file: Path
    value: T | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def missing(self) -> bool:
        return self.problem == "missing"

    @property
    def damaged(self) -> bool:
        return self.problem is not None and self.problem != "missing"

    def get(self, default: T | None = None) -> T | None:
        """The value, or ``default`` when the file is missing or damaged."""
        return self.value if self.ok else default

    def require(self, what: str = "") -> T:
        """The value, or a one-line error naming the file and what is wrong with it."""
        if self.missing:
            raise RsDistillError(f"'{self.file}' does not exist{f' ({what})' if what else ''}")
        if self.damaged:
            raise RsDistillError(f"'{self.file}' is damaged ({self.problem})")
        return self.value  # type: ignore[return-value]


def _read(file: Path, parse: Callable[[str], Any], kind: type | None = dict) -> Read[Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Read(file, problem="missing")
    except (OSError, UnicodeDecodeError) as e:
        if isinstance(e, IsADirectoryError):
            return Read(file, problem="a folder, not a file")
        return Read(file, problem=getattr(e, "strerror", None) or str(e))
    try:
        value = parse(text)
    except Exception as e:  # json/yaml parser errors: the reason, on one line
        return Read(file, problem=str(e).splitlines()[0] if str(e) else type(e).__name__)
    if kind is not None and not isinstance(value, kind):
        return Read(file, problem=f"holds a {type(value).__name__}, not a {kind.__name__}")
    return Read(file, value)


def _yaml(text: str) -> Any:
    import yaml

    return yaml.safe_load(text) or {}


def _jsonl(text: str) -> list[dict[str, Any]]:
    # A last line cut short by a crash is left out: every complete line is an epoch's record.
    records = []
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise
    return records


class Status(str, Enum):
    """Where a run stands, from its files."""

    NONE = "none"  # no run was started here (missing, empty, or only the marker and the lock)
    STARTING_KILLED = "killed while starting"  # config.yaml, but no split.json and no finished epoch
    UNFINISHED = "unfinished"  # started (a split, perhaps epochs), no metrics.json
    FINISHED = "finished"
    FAILED = "failed"  # metrics.json says "failed" (diverged), with a reason
    DAMAGED = "damaged"  # metrics.json cannot be read


class RunDir:
    """The paths of a run folder and readers for its files."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------ paths
    marker = property(lambda self: self.path / MARKER)
    config = property(lambda self: self.path / CONFIG)
    dataset = property(lambda self: self.path / DATASET)
    split = property(lambda self: self.path / SPLIT)
    epochs = property(lambda self: self.path / EPOCHS)
    metrics = property(lambda self: self.path / METRICS)
    log = property(lambda self: self.path / LOG)
    tensorboard = property(lambda self: self.path / TENSORBOARD)
    checkpoints = property(lambda self: self.path / CHECKPOINTS)
    last = property(lambda self: self.path / CHECKPOINTS / LAST)
    best = property(lambda self: self.path / CHECKPOINTS / BEST)
    soft_labels = property(lambda self: self.path / SOFT_LABELS)
    skipped = property(lambda self: self.path / SKIPPED)
    lock = property(lambda self: self.path / LOCK)

    # ------------------------------------------------------------------ readers
    def read_marker(self) -> Read[dict[str, Any]]:
        return _read(self.marker, json.loads)

    def read_config(self) -> Read[dict[str, Any]]:
        """``config.yaml`` as stored (a mapping)."""
        return _read(self.config, _yaml)

    def read_metrics(self) -> Read[dict[str, Any]]:
        """``metrics.json``: the final metrics, or ``{"status": "failed", "reason": ...}``."""
        return _read(self.metrics, json.loads)

    def read_epochs(self) -> Read[list[dict[str, Any]]]:
        """``metrics.jsonl``: one record per logged epoch (a line cut short by a crash is left out)."""
        return _read(self.epochs, _jsonl, list)

    def read_split(self) -> Read[dict[str, Any]]:
        """``split.json`` as stored (its classes, parts and counts)."""
        return _read(self.split, json.loads)

    def read_fingerprint(self) -> Read[dict[str, Any]]:
        """``dataset.json``: the fingerprint of the data the run was made on."""
        return _read(self.dataset, json.loads)

    def finished_metrics(self) -> dict[str, Any]:
        """The final metrics of a finished run; one-line errors for a run that has not finished,
        has failed or whose metrics.json is damaged."""
        read = self.read_metrics()
        if read.missing:
            raise RsDistillError(f"run '{self.path}' has not finished (no {METRICS})")
        metrics = read.require()
        if metrics.get("status") == "failed":
            raise RsDistillError(f"run '{self.path}' failed: {metrics.get('reason')}")
        return metrics

    def checkpoint_files(self) -> list[Path]:
        """The run's checkpoints (last.pt, best.pt) that exist."""
        return [p for p in (self.last, self.best) if p.is_file()]

    def final_checkpoint(self) -> Path:
        """The checkpoint of the run's final model: ``best.pt`` when it was selected on a
        validation split, else ``last.pt`` (a model is never picked on the test split silently)."""
        selected_on = (self.read_metrics().get() or {}).get("best_selected_on")
        return self.best if selected_on == "val" else self.last

    # ------------------------------------------------------------------ what the folder is
    def has_finished_epoch(self) -> bool:
        """A run's first epoch ends with ``checkpoints/last.pt``; before it, nothing is lost by
        starting over."""
        return self.last.is_file()

    def status(self) -> Status:
        metrics = self.read_metrics()
        if metrics.ok:
            return Status.FAILED if metrics.value.get("status") == "failed" else Status.FINISHED
        if metrics.damaged:
            return Status.DAMAGED
        if not self.config.is_file():
            return Status.NONE
        if not self.split.is_file() and not self.has_finished_epoch():
            return Status.STARTING_KILLED
        return Status.UNFINISHED

    def has_marker(self) -> bool:
        read = self.read_marker()
        return read.ok and read.value.get("tool") == "rsdistill"

    def is_earlier_run(self) -> bool:
        """A run folder an earlier version made (no marker): its ``config.yaml`` is a resolved
        rsdistill config (every section there) and the run wrote at least one other of its files
        (the fingerprint, the split, the epoch log or the final metrics). A user's
        ``config.yaml`` alone, or beside their own files, is not taken for a run."""
        cfg = self.read_config()
        if not cfg.ok or not all(k in cfg.value for k in CONFIG_SECTIONS):
            return False
        if not all(isinstance(cfg.value[k], dict) for k in CONFIG_SECTIONS if k != "seed"):
            return False
        fp = self.read_fingerprint()
        if fp.ok and {"classes", "files", "bytes"} <= set(fp.value):
            return True
        split = self.read_split()
        if split.ok and {"classes", "train", "test"} <= set(split.value):
            return True
        epochs = self.read_epochs()
        if epochs.ok and epochs.value and all(isinstance(r, dict) and "epoch" in r for r in epochs.value):
            return True
        metrics = self.read_metrics()
        return metrics.ok and metrics.value.get("status") in ("finished", "failed") and "method" in metrics.value

    def is_run(self) -> bool:
        """Holds our marker, or is a run of an earlier version (:meth:`is_earlier_run`)."""
        return self.has_marker() or self.is_earlier_run()

    def entries(self) -> list[str]:
        """The names in the folder (none when it does not exist)."""
        try:
            return sorted(p.name for p in self.path.iterdir())
        except FileNotFoundError:
            return []
        except OSError as e:
            raise RsDistillError(f"'{self.path}' cannot be read: {e.strerror or e}") from None

    def is_unused(self) -> bool:
        """Missing, empty, or holding only what a start writes before anything of the run (the
        lock, the marker): a new run may start here."""
        return set(self.entries()) <= {LOCK, MARKER} and (not self.marker.exists() or self.has_marker())

    def leftover_temporaries(self) -> list[Path]:
        """Temporary files of an atomic write cut short (``checkpoints/.last.pt.XXXX.tmp`` after a
        SIGKILL during a checkpoint write, and the like at the top level)."""
        found = []
        for folder in (self.path, self.checkpoints):
            for name in (MARKER, CONFIG, DATASET, SPLIT, METRICS, SKIPPED, SOFT_LABELS, LAST, BEST):
                found.extend(folder.glob(f".{name}.*.tmp"))
        return sorted(set(found))

    def written_files(self) -> list[Path]:
        """The files and folders of this folder that a run writes (what ``--overwrite`` removes):
        its top-level files, its checkpoints and TensorBoard event files, and temporaries of its
        atomic writes. A user's files put inside ``checkpoints/`` or ``tb/`` are not among them."""
        out = [self.path / n for n in RUN_FILES if (self.path / n).exists()]
        out += self.checkpoint_files()
        if self.tensorboard.is_dir():
            out += sorted(self.tensorboard.glob("events.out.tfevents.*"))
        return out + self.leftover_temporaries()

    # ------------------------------------------------------------------ writing
    def write_marker(self) -> None:
        """Mark the folder as a run folder (the first file a run writes)."""
        from .. import __version__
        from ..io import atomic_write_json

        atomic_write_json(self.marker, {"tool": "rsdistill", "version": __version__, "kind": "run",
                                        "created": time.strftime("%Y-%m-%d %H:%M:%S")})
