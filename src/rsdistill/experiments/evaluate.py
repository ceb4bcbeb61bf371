"""`rsdistill eval`: the accuracy of a stored model (a run's checkpoint, or one out of its run) on
a split of a dataset folder, optionally written to a folder (eval.json, per-class accuracy)."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig, load_run_config
from ..data.datamodule import DataModule
from ..data.presets import scan_dataset
from ..engine.checkpoint import load_model, run_dir_of
from ..engine.evaluate import evaluate as evaluate_model
from ..engine.seeding import resolve_device
from ..errors import CheckpointError, ConfigError
from ..io import atomic_write_json
from ..models import LogitsOnly
from ..reports.per_class import write_per_class
from ..runs.claim import ClaimedRunDirectory, check_output_folder
from .eval_split import checkpoint_config, eval_split
from .preflight import class_difference

log = logging.getLogger("rsdistill")


def evaluate(checkpoint: str | Path, data_root: str | None, *, preset: str | None = None,
             split_file: str | None = None, part: str = "test", image_size: int | None = None,
             batch_size: int = 128, device: str = "auto", out: str | Path | None = None) -> dict[str, Any]:
    """Top-1/top-5 (and per-class accuracy) of a stored model on a split of a dataset folder.

    The split is, in order: ``split_file``; the ``split.json`` of the run the checkpoint belongs
    to; otherwise every image of the folder (``part`` = "all").
    """
    if image_size is not None and not 8 <= image_size <= 4096:
        raise ConfigError(f"eval --image-size: must be between 8 and 4096 px (got {image_size})")
    dev = resolve_device(device, "eval --device")
    model, record = load_model(checkpoint)
    run_dir = run_dir_of(Path(record["file"]))
    run_cfg = load_run_config(run_dir) if run_dir is not None else None
    # A checkpoint out of its run carries the run's config: its decoding options and split.
    stored = checkpoint_config(record["file"]) if run_cfg is None else None
    data_cfg = (run_cfg or stored or RunConfig()).data.model_copy()
    if data_root:
        data_cfg.root = data_root
    if preset:
        data_cfg.preset = preset
    data_cfg.image_size = image_size if image_size is not None else int(record.get("image_size") or data_cfg.image_size)
    data_cfg.split_file = None
    if not data_cfg.root:
        raise ConfigError("eval: no dataset folder given (use --data DIR)")
    with contextlib.ExitStack() as claim:
        if out is not None:
            check_output_folder(out, data_cfg.root, "eval.json")
            # A run's lock: two evaluations into one folder never interleave their files.
            claim.enter_context(ClaimedRunDirectory(out, started="eval.json"))
        return _score(model, record, data_cfg, run_dir, stored, split_file, part, batch_size, dev, out)


def _score(model, record: dict[str, Any], data_cfg, run_dir: Path | None, stored: RunConfig | None,
           split_file: str | None, part: str, batch_size: int, dev: torch.device,
           out: str | Path | None) -> dict[str, Any]:
    index = scan_dataset(data_cfg.preset, data_cfg.root)
    if list(record["class_names"]) != index.classes:
        raise CheckpointError(
            f"checkpoint '{record['file']}' has other classes than the data: "
            f"{class_difference(list(record['class_names']), index.classes, 'checkpoint')}"
        )
    split, part, images_from = eval_split(index, part, split_file, run_dir, record["file"], stored)
    if part not in ("train", "val", "test") or (part == "val" and not split.val):
        raise ConfigError(f"eval: split part '{part}' is not available (train, test{', val' if split.val else ''})")
    # The bands the model reads (a checkpoint of an earlier version: the run's data.bands).
    bands = tuple(record["bands"]) if record.get("bands") is not None else None if "bands" in record else "data.bands"
    data = DataModule(data_cfg, 0, split=split, index=index, parts=(part,), bands=bands)
    log.info("evaluating on %d images: %s", len(getattr(data.split, part)), images_from)
    model.to(dev)
    t0 = time.perf_counter()
    meter = evaluate_model(LogitsOnly(model), data.eval_loader(part, batch_size), len(index.classes), dev)
    result = {**meter.summary(), "images": meter.n, "part": part, "checkpoint": record["file"],
              "model": record["arch"], "seconds": round(time.perf_counter() - t0, 2), "images_from": images_from,
              **({"skipped_images": data.skipped} if data.skipped else {}),
              "per_class": dict(zip(index.classes, [round(a, 2) for a in meter.per_class_accuracy()]))}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "eval.json", result)
        write_per_class(out, index.classes, meter.confusion, f"{record['arch']} on {part}")
    return result

