"""Checks a run makes before its folder is created, and warnings about what it is given.

A start that fails on its input must leave nothing that blocks a rerun: the device and the
dataset listing are checked before ``--out`` is created and locked (decoding, which can still find
a corrupt image, comes after the claim, which removes what it created when the start fails).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..data.folders import FolderIndex
from ..data.presets import scan_dataset
from ..engine.checkpoint import read_checkpoint, run_dir_of
from ..engine.seeding import resolve_device
from ..errors import ConfigError
from ..runs.folder import RunDir

log = logging.getLogger("rsdistill")


def preflight(cfg: RunConfig) -> FolderIndex:
    """The device exists here and the dataset can be listed (its folders read, its classes found);
    returns the listing, which the run reuses."""
    resolve_device(cfg.train.device)
    if not cfg.data.root:
        raise ConfigError("data.root: no dataset folder given (use --data DIR)")
    return scan_dataset(cfg.data.preset, os.path.abspath(os.path.expanduser(cfg.data.root)))


def warn_unfinished_teacher(record: dict[str, Any]) -> None:
    """A warning when the teacher's checkpoint is from a run that has not finished (or failed):
    its accuracy is not what the run's tables will say it is."""
    file = Path(record["file"])
    run_dir = run_dir_of(file)
    if run_dir is not None and RunDir(run_dir).metrics.is_file():
        metrics = RunDir(run_dir).read_metrics().get({})
        if metrics.get("status") == "failed":
            log.warning("teacher '%s' is from a run that failed (%s): its last good epoch is used",
                        file, metrics.get("reason", "no reason recorded"))
        return
    try:
        ckpt = read_checkpoint(file)
        done = int(ckpt["train_state"]["progress"]["epoch"])
        planned = int(ckpt["config"]["train"]["epochs"])
    except (KeyError, TypeError, ValueError):  # a checkpoint that does not say
        return
    if done >= planned:
        return
    if run_dir is not None:
        log.warning("teacher '%s' is unfinished: run '%s' stopped after epoch %d of %d (finish it with "
                    "--resume %s, or use it knowingly)", file, run_dir, done, planned, run_dir)
    else:  # a loose file: an unfinished run's, or the best epoch of a finished one
        log.warning("teacher '%s' was saved after epoch %d of the %d its run planned: check that it is "
                    "the model you mean", file, done, planned)


def class_difference(theirs: list[str], ours: list[str], their_name: str = "teacher",
                     our_name: str = "data", shown: int = 5) -> str:
    """How two class lists differ, naming the classes: with the same count, the positions whose
    names differ (a renamed or reordered class); otherwise the names only one side has."""
    if len(theirs) == len(ours):
        pairs = [(i, a, b) for i, (a, b) in enumerate(zip(theirs, ours)) if a != b]
        listed = ", ".join(f"class {i} is '{a}' in the {their_name} but '{b}' in the {our_name}"
                           for i, a, b in pairs[:shown])
        more = f" and {len(pairs) - shown} more" if len(pairs) > shown else ""
        order = " (the same names in another order)" if sorted(theirs) == sorted(ours) else ""
        return f"{listed}{more}{order}"
    only_theirs = [c for c in theirs if c not in set(ours)]
    only_ours = [c for c in ours if c not in set(theirs)]

    def names(cs: list[str]) -> str:
        return ", ".join(f"'{c}'" for c in cs[:shown]) + (f" and {len(cs) - shown} more" if len(cs) > shown else "")

    parts = [f"only the {their_name} has {names(only_theirs)}" if only_theirs else "",
             f"only the {our_name} has {names(only_ours)}" if only_ours else ""]
    return "; ".join(p for p in parts if p) or "the same names, counted differently"
