"""Reading finished run directories back (tables and figures are computed from them only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import PATH_FIELDS
from ..errors import RsDistillError
from ..runs.folder import RunDir


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """A finished run's final metrics (one-line errors for an unfinished, failed or damaged one)."""
    return RunDir(run_dir).finished_metrics()


# Settings that do not change what a run computes (where and how it is shown or cached).
# data.image_size_from says where data.image_size came from (the layout, the default, a flag): not a
# setting of its own, and absent from runs made before it was recorded.
INCIDENTAL = {"train.progress", "train.device", "data.cache", "data.cache_dir", "data.workers", "train.threads",
              "data.image_size_from"}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def differing_settings(requested: dict[str, Any], stored: dict[str, Any], strict: bool = False) -> list[str]:
    """The fields whose requested value differs from the one a run directory was made with.
    Fields left to be filled in (None, "auto") and incidental ones are not compared; with
    ``strict`` (two configs resolved the same way, e.g. a suite's cell then and now) every field
    but the incidental ones is, a field present on one side only too."""
    want, have = _flat(requested), _flat(stored)
    keys = list(want) + ([k for k in have if k not in want] if strict else [])
    diffs = []
    for key in keys:
        value = want.get(key)
        if key in INCIDENTAL:
            continue
        if not strict and (value is None or value == "auto" or key not in have):
            continue
        old = have.get(key)
        if value is None or old is None:
            same = value is None and old is None
        elif key in PATH_FIELDS:
            same = Path(str(value)).expanduser().resolve() == Path(str(old)).expanduser().resolve()
        elif isinstance(value, (int, float)) and isinstance(old, (int, float)):
            same = float(value) == float(old)
        else:
            same = value == old
        if not same:
            diffs.append(f"{key} {old!r} (stored) != {value!r} (requested)")
    return diffs


def run_or_resume(cfg, run_dir: Path) -> dict[str, Any]:
    """Finished runs are read back, interrupted ones resumed, missing ones started; a run
    directory made with other settings is an error, never silently reused."""
    from .single import is_finished, run

    rundir = RunDir(run_dir)
    if rundir.config.is_file():
        diffs = differing_settings(cfg.resolve().to_dict(), rundir.read_config().require())
        if diffs:
            raise RsDistillError(f"'{run_dir}' holds a run made with other settings ({'; '.join(diffs)}): "
                                 "use another --out, or delete that run directory to redo it")
    if is_finished(run_dir):
        return read_metrics(run_dir)
    if rundir.config.is_file():
        return run(None, run_dir, resume=True)
    return run(cfg, run_dir)
