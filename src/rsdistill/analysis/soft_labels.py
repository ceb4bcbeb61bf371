"""ISDM's soft labels before and after instance-level scaling (article Fig. 5), from a run's
``soft_labels.json`` (one record per training sample: p_t_y, q_y, a, gap, m, ...)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RsDistillError


def read_soft_labels(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
        samples = data["samples"]
        if not samples:
            raise RsDistillError(f"'{path}' holds no samples")
        for key in ("index", "label", "p_t_y", "q_y", "gap"):
            if key not in samples[0]:
                raise RsDistillError(f"'{path}': samples have no field '{key}'")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RsDistillError(f"'{path}' is not a soft_labels.json of an ISDM run ({e})") from None
    return data


def easiest_and_hardest(samples: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The samples with the largest and the smallest teacher logit gap (first one on ties)."""
    easiest = max(samples, key=lambda s: s["gap"])
    hardest = min(samples, key=lambda s: s["gap"])
    return easiest, hardest


def target_scatter(samples: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """(p_t[y], q[y]) over all samples: above the diagonal IS sharpened the label, below softened."""
    return [float(s["p_t_y"]) for s in samples], [float(s["q_y"]) for s in samples]
