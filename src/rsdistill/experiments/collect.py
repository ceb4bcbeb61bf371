"""Reading finished run directories back (tables and figures are computed from them only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RsDistillError


def read_metrics(run_dir: Path) -> dict[str, Any]:
    file = run_dir / "metrics.json"
    if not file.is_file():
        raise RsDistillError(f"run '{run_dir}' has not finished (no metrics.json)")
    return json.loads(file.read_text())


def run_or_resume(cfg, run_dir: Path) -> dict[str, Any]:
    """Finished runs are read back, interrupted ones resumed, missing ones started."""
    from .single import is_finished, run

    if is_finished(run_dir):
        return read_metrics(run_dir)
    if (run_dir / "config.yaml").is_file():
        return run(None, run_dir, resume=True)
    return run(cfg, run_dir)
