"""A dataset's fingerprint: its class names, file count and total size.

Written to a run directory as ``dataset.json``; ``--resume`` and ``eval`` compare it with the data
they are given, so a run never continues or is scored on a different dataset that happens to have
the same folder name (and a moved dataset is recognised as the same one).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io import atomic_write_json
from ..runs.folder import DATASET as FILE_NAME
from .folders import FolderIndex


def fingerprint(index: FolderIndex) -> dict[str, Any]:
    return {
        "root": os.path.abspath(index.root),
        "classes": list(index.classes),
        "files": len(index.paths),
        "bytes": (sum(f.stat().st_size for f in index.store.files) if index.store is not None
                  else sum((index.root / p).stat().st_size for p in index.paths)),
    }


def write_fingerprint(run_dir: Path, index: FolderIndex) -> None:
    atomic_write_json(run_dir / FILE_NAME, fingerprint(index))


def _summary(fp: dict[str, Any]) -> str:
    return f"{len(fp['classes'])} classes, {fp['files']} files, {fp['bytes']} bytes"


def check_fingerprint(run_dir: Path, index: FolderIndex) -> None:
    """The data in ``index`` is the dataset the run in ``run_dir`` was made on (runs made before
    fingerprints were recorded are not checked)."""
    file = run_dir / FILE_NAME
    if not file.is_file():
        return
    try:
        stored = json.loads(file.read_text())
        expected = {k: stored[k] for k in ("classes", "files", "bytes")}
    except (ValueError, KeyError, TypeError):
        raise DataError(f"'{file}' is not a dataset fingerprint (damaged?)") from None
    found = fingerprint(index)
    if {k: found[k] for k in expected} != expected:
        raise DataError(
            f"dataset '{found['root']}' ({_summary(found)}) is not the dataset run '{run_dir}' was made "
            f"on ('{stored.get('root', '?')}': {_summary(stored)})"
        )
