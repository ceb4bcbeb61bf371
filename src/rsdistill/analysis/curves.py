"""Numbers read from a run's logs: per-epoch curves (test top-1 and each loss term), the
training cost per iteration (article Fig. 8) and the share of it spent waiting for data."""

from __future__ import annotations

import math
from typing import Any

# train/<key> entries that are accuracies, not loss terms
_NOT_LOSSES = {"train/top1", "train/top5"}


def epoch_curves(records: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """{quantity: [(epoch, value), ...]} for ``test/top1`` and every ``train/<loss>`` of
    metrics.jsonl, in epoch order (a quantity missing from an epoch is skipped there)."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for r in sorted(records, key=lambda r: r.get("epoch", 0)):
        for k, v in r.items():
            if (k == "test/top1" or (k.startswith("train/") and k not in _NOT_LOSSES)) and isinstance(v, (int, float)):
                curves.setdefault(k, []).append((int(r["epoch"]), float(v)))
    return dict(sorted(curves.items(), key=lambda kv: (kv[0] != "test/top1", kv[0] != "train/loss", kv[0])))


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """The trainer's count: the last, partial batch is a step too."""
    return math.ceil(num_train / batch_size)


def seconds_per_iteration(records: list[dict[str, Any]], num_train: int, batch_size: int) -> float:
    """Mean over epochs of the training steps' time (``time/train_s``, without the epoch's test
    pass; runs that logged only ``time/epoch_s`` use that) / iterations per epoch. NaN without
    timed epochs."""
    times = [r.get("time/train_s", r.get("time/epoch_s")) for r in records]
    times = [float(t) for t in times if isinstance(t, (int, float))]
    if not times or num_train <= 0:
        return float("nan")
    return sum(times) / len(times) / steps_per_epoch(num_train, batch_size)


def data_wait_share(records: list[dict[str, Any]]) -> float:
    """The share of the training steps' time (``time/train_s``) spent waiting for batches
    (``time/data_wait_s``), over the epochs that logged both. NaN without such epochs (runs from
    before the wait was logged)."""
    pairs = [(r["time/data_wait_s"], r["time/train_s"]) for r in records
             if isinstance(r.get("time/data_wait_s"), (int, float)) and isinstance(r.get("time/train_s"), (int, float))]
    total = sum(t for _, t in pairs)
    return sum(w for w, _ in pairs) / total if total > 0 else float("nan")
