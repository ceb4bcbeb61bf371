"""What ``--resume`` may change of a run's settings.

A resumed run keeps the settings it was made with: a resume that asks for others (``--set``,
``--config``, ``--model``, ``--seed``, ...) would continue one experiment under another's name.
Only where the run computes, not what, may change: the CPU threads and the device (and the
dataset's place, ``--data``, checked by its fingerprint elsewhere); those are applied and said.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..config import RunConfig, build_config
from ..errors import ConfigError

log = logging.getLogger("rsdistill")

# The fields a resumed run may take from the command line.
MAY_CHANGE = ("train.threads", "train.device")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resumed_config(run_dir: Path, stored: RunConfig, requested: dict[str, Any]) -> RunConfig:
    """The run's ``stored`` config with ``requested`` (a config layer) applied where a resume may
    change it; any other field whose requested value differs from the stored one is an error
    naming it."""
    if not requested:
        return stored
    wanted = build_config(stored.to_dict(), requested, source="command line")
    have, want = _flat(stored.to_dict()), _flat(wanted.to_dict())
    differ = [k for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)]
    refused = [k for k in differ if k not in MAY_CHANGE]
    if refused:
        shown = "; ".join(f"{k}: {have.get(k)!r} in the run, {want.get(k)!r} asked" for k in refused[:4])
        more = f" (and {len(refused) - 4} more)" if len(refused) > 4 else ""
        raise ConfigError(
            f"--resume {run_dir}: a resumed run keeps its settings, and these differ: {shown}{more}; "
            f"only {', '.join(MAY_CHANGE)} (--threads, --device) and the dataset's place (--data) may change "
            "on resume: drop the others, or start a new run with --out"
        )
    for k in differ:
        log.info("resuming '%s' with %s = %r (the run had %r)", run_dir, k, want[k], have.get(k))
    return stored.model_copy(update={"train": stored.train.model_copy(
        update={k.split(".", 1)[1]: want[k] for k in differ})})
