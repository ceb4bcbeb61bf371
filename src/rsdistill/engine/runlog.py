"""Where a run's numbers go: ``metrics.jsonl`` (one flat line per epoch), TensorBoard, the console
and ``train.log``."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from torch import Tensor

from ..io import atomic_write_text
from ..runs.folder import RunDir

log = logging.getLogger("rsdistill")


def _epoch_of(line: str) -> float:
    """The epoch of a metrics line; a line cut short by a crash counts as after every checkpoint."""
    try:
        return json.loads(line).get("epoch", 0) if line.strip() else math.inf
    except json.JSONDecodeError:
        return math.inf


class RunLog:
    def __init__(self, run_dir: Path, resume_after_epoch: int = 0):
        self.run_dir = run_dir
        self.jsonl = RunDir(run_dir).epochs
        self._truncate_after(resume_after_epoch)
        self._file_handler = logging.FileHandler(RunDir(run_dir).log)
        self._file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger("rsdistill").addHandler(self._file_handler)
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # an optional view of the numbers: metrics.jsonl holds them all
            log.warning("TensorBoard is not installed: the run's numbers go to metrics.jsonl and train.log "
                        "only (pip install tensorboard)")
            return
        # purge_step drops events of epochs a crashed run logged after its last checkpoint.
        self.tb = SummaryWriter(str(RunDir(run_dir).tensorboard), purge_step=resume_after_epoch + 1 if resume_after_epoch else None)

    def _truncate_after(self, epoch: int) -> None:
        """Keep only the lines of epochs that the checkpoint being resumed from has seen."""
        if not self.jsonl.is_file():
            return
        if epoch == 0:
            self.jsonl.unlink()
            return
        kept = [ln for ln in self.jsonl.read_text().splitlines() if _epoch_of(ln) <= epoch]
        atomic_write_text(self.jsonl, "".join(ln + "\n" for ln in kept))

    def epoch(self, record: dict[str, Any], histograms: dict[str, Tensor] | None = None) -> None:
        with self.jsonl.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is None:
            return
        step = record["epoch"]
        for k, v in record.items():
            if k != "epoch" and isinstance(v, (int, float)):
                self.tb.add_scalar(k, v, step)
        for k, v in (histograms or {}).items():
            if v.numel():
                self.tb.add_histogram(f"hist/{k}", v, step)
        self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        logging.getLogger("rsdistill").removeHandler(self._file_handler)
        self._file_handler.close()


class NoRunLog:
    """What the processes other than 0 of a distributed run log to: nothing (process 0 logs the
    figures, which are reduced over every process)."""

    def epoch(self, record: dict[str, Any], histograms: dict[str, Tensor] | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
