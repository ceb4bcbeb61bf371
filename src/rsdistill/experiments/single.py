"""One run, from a config to a finished run directory.

A run directory is the unit of truth: ``config.yaml`` (resolved), ``split.json``, ``metrics.jsonl``
(per epoch), ``metrics.json`` (final), ``checkpoints/{last,best}.pt``, TensorBoard events in
``tb/``, ``train.log``, and per-class accuracy and the confusion matrix of the final model.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from ..config import RunConfig, build_config
from ..data.datamodule import DataModule
from ..data.presets import scan_dataset
from ..data.splits import Split, check_split_matches, load_split, save_split
from ..distillers import registry
from ..engine.checkpoint import load_model, read_checkpoint, resolve_checkpoint, run_dir_of
from ..engine.runlog import RunLog
from ..engine.seeding import configure_determinism, resolve_device, seed_everything
from ..engine.trainer import Trainer
from ..errors import CheckpointError, ConfigError, DataError, RsDistillError
from ..io import atomic_write_json, atomic_write_text
from ..models import ModelAdapter, build_model, count_parameters
from ..reports.per_class import write_per_class

log = logging.getLogger("rsdistill")


def is_finished(run_dir: Path) -> bool:
    return (run_dir / "metrics.json").is_file()


def run(cfg: RunConfig, out: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """Train (``method.name == "ce"``) or distil into ``out``; returns the final metrics."""
    out = Path(out)
    if resume:
        cfg = load_run_config(out)
        if is_finished(out):
            log.info("run '%s' is already finished", out)
            return _read_json(out / "metrics.json")
        ckpt_file = out / "checkpoints" / "last.pt"
        ckpt = read_checkpoint(ckpt_file) if ckpt_file.is_file() else None
    else:
        if (out / "config.yaml").is_file():
            raise RsDistillError(
                f"run directory '{out}' already holds a run; continue it with --resume {out} "
                "or choose another --out"
            )
        cfg = cfg.resolve()
        ckpt = None

    device = resolve_device(cfg.train.device)
    configure_determinism(cfg.train.deterministic, device)
    method_cls = registry.get(cfg.method.name)

    if not cfg.data.root:
        raise ConfigError("data.root: no dataset folder given (use --data DIR)")
    index = scan_dataset(cfg.data.preset, cfg.data.root)
    teacher, teacher_split = None, None
    if method_cls.requires_teacher:
        teacher, teacher_split = load_teacher(cfg)
        check_teacher_classes(teacher, index.classes)
    split, split_source = None, None
    if resume:
        split, split_source = load_split(out / "split.json"), out / "split.json"
    elif teacher_split is not None and not cfg.data.split_file:
        split, split_source = teacher_split, f"the split.json of teacher {cfg.teacher.checkpoint}"

    data = DataModule(cfg.data, cfg.seed, needs=method_cls.needs, split=split, split_source=split_source,
                      progress=cfg.train.progress, device=str(device), index=index)
    if teacher is not None:
        check_teacher_split(teacher, cfg, data, teacher_split)

    seed_everything(cfg.seed)
    student = build_model(cfg.model.name, data.info.num_classes, cfg.model.weights)
    student.set_normalization(data.mean, data.std)
    distiller = method_cls(student, teacher, cfg.method, data.info)
    # A method may resolve defaults that depend on the models or the data (e.g. a per-pair weight):
    # config.yaml records the values actually used.
    cfg = cfg.model_copy(update={"method": distiller.cfg})
    # Everything that can reject the input has run: only now does the run directory appear.
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        atomic_write_text(out / "config.yaml", cfg.to_yaml())
        save_split(data.split, out / "split.json")
    trainer = Trainer(cfg, distiller, data, out, device)
    if ckpt is not None:
        trainer.load_state(ckpt)
        log.info("resuming '%s' after epoch %d of %d", out, trainer.state.epoch, cfg.train.epochs)

    runlog = RunLog(out, resume_after_epoch=trainer.state.epoch)
    try:
        log.info("run '%s': %s %s on %d classes (%d train / %d val / %d test images at %d px), %s",
                 out, cfg.method.name, cfg.model.name, data.info.num_classes, len(data.split.train),
                 len(data.split.val), len(data.split.test), cfg.data.image_size, device)
        state = trainer.fit(runlog)
        final = trainer.evaluate(distiller, "test")
        write_per_class(out, data.class_names, final.confusion,
                        f"{cfg.model.name} ({cfg.method.name}), test split, last epoch")
        distiller.on_train_end(out, data.eval_loader("train", cfg.train.test_batch_size), device)
    finally:
        runlog.close()

    metrics = {
        "top1": state.last["top1"],
        "top5": state.last["top5"],
        "best_top1": state.best_top1,
        "best_top5": state.best_top5,
        "best_epoch": state.best_epoch,
        # Without a validation split "best" is picked on the test split: an optimistic figure,
        # reported as such; top1/top5 (last epoch) are the primary ones.
        "best_selected_on": "val" if data.has_val else "test",
        "epochs": state.epoch,
        "seconds": round(state.seconds, 2),
        "method": cfg.method.name,
        "model": cfg.model.name,
        "params": count_parameters(student),
        "extra_params": sum(count_parameters(m) for m in distiller.extra_modules().values()),
        "device": str(device),
    }
    if trainer.teacher_metrics is not None:
        metrics["teacher"] = {"model": teacher.arch, **trainer.teacher_metrics,
                              "checkpoint": cfg.teacher.checkpoint, "params": count_parameters(teacher)}
    atomic_write_json(out / "metrics.json", metrics)
    log.info("finished '%s': top-1 %.2f%%  top-5 %.2f%% (last epoch); best on %s %.2f%%",
             out, metrics["top1"], metrics["top5"], metrics["best_selected_on"], metrics["best_top1"])
    return metrics


def load_run_config(run_dir: Path) -> RunConfig:
    file = run_dir / "config.yaml"
    if not file.is_file():
        raise RsDistillError(f"'{run_dir}' is not a run directory (no config.yaml) and cannot be resumed")
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"'{file}' is not valid YAML: {str(e).splitlines()[0]}") from None
    return build_config(raw, source=str(file))


def load_teacher(cfg: RunConfig) -> tuple[ModelAdapter, Split | None]:
    if not cfg.teacher.checkpoint:
        raise ConfigError(f"method '{cfg.method.name}' needs a teacher: give --teacher RUN_OR_CKPT")
    teacher, record = load_model(cfg.teacher.checkpoint)
    if cfg.teacher.model and record["arch"] != cfg.teacher.model:
        raise CheckpointError(
            f"teacher '{record['file']}' is a {record['arch']}, not the expected {cfg.teacher.model}"
        )
    split = None
    run_dir = run_dir_of(Path(record["file"]))
    if run_dir is not None and (run_dir / "split.json").is_file():
        split = load_split(run_dir / "split.json")
    teacher.record = record  # type: ignore[attr-defined]
    return teacher, split


def check_teacher_classes(teacher: ModelAdapter, classes: list[str]) -> None:
    record = teacher.record  # type: ignore[attr-defined]
    if list(record["class_names"]) != classes:
        raise CheckpointError(
            f"teacher '{record['file']}' was trained on {record['num_classes']} classes "
            f"({', '.join(record['class_names'][:3])}, ...) but the data has {len(classes)} "
            f"({', '.join(classes[:3])}, ...)"
        )


def check_teacher_split(teacher: ModelAdapter, cfg: RunConfig, data: DataModule, teacher_split: Split | None) -> None:
    record = teacher.record  # type: ignore[attr-defined]
    if teacher_split is not None:
        leaked = set(teacher_split.train) & set(data.split.test)
        if leaked:
            raise DataError(
                f"the teacher was trained on {len(leaked)} image(s) of this run's test split "
                f"(e.g. '{sorted(leaked)[0]}'): use the teacher's split (the default without "
                "data.split_file) or a teacher trained on this split"
            )
    else:
        log.warning("teacher '%s' has no split manifest beside it: cannot check that it never saw "
                    "this run's test images", record["file"])
    if record.get("image_size") != cfg.data.image_size:
        log.warning("teacher was trained at %s px, this run uses %d px", record.get("image_size"),
                    cfg.data.image_size)


def evaluate(checkpoint: str | Path, data_root: str | None, *, preset: str | None = None,
             split_file: str | None = None, part: str = "test", image_size: int | None = None,
             batch_size: int = 128, device: str = "auto", out: str | Path | None = None) -> dict[str, Any]:
    """Top-1/top-5 (and per-class accuracy) of a stored model on a split of a dataset folder.

    The split is, in order: ``split_file``; the ``split.json`` of the run the checkpoint belongs
    to; otherwise every image of the folder (``part`` = "all").
    """
    from ..engine.metrics import AccuracyMeter
    from ..engine.trainer import move

    model, record = load_model(checkpoint)
    run_dir = run_dir_of(Path(record["file"]))
    run_cfg = load_run_config(run_dir) if run_dir is not None else None
    data_cfg = (run_cfg.data.model_copy() if run_cfg is not None else RunConfig().data)
    if data_root:
        data_cfg.root = data_root
    if preset:
        data_cfg.preset = preset
    data_cfg.image_size = image_size or int(record.get("image_size") or data_cfg.image_size)
    data_cfg.split_file = None
    if not data_cfg.root:
        raise ConfigError("eval: no dataset folder given (use --data DIR)")
    index = scan_dataset(data_cfg.preset, data_cfg.root)
    if split_file:
        split = load_split(split_file, index)
    elif run_dir is not None and (run_dir / "split.json").is_file():
        split = load_split(run_dir / "split.json")
        check_split_matches(split, index, run_dir / "split.json")
    else:
        log.warning("no split given or found beside the checkpoint: evaluating every image of '%s'", index.root)
        split = Split(index.classes, [], [], list(index.paths))
        part = "test"
    if list(record["class_names"]) != index.classes:
        raise CheckpointError(
            f"checkpoint '{record['file']}' has classes ({', '.join(record['class_names'][:3])}, ...) "
            f"that differ from the data's ({', '.join(index.classes[:3])}, ...)"
        )
    if part not in ("train", "val", "test") or (part == "val" and not split.val):
        raise ConfigError(f"eval: split part '{part}' is not available (train, test{', val' if split.val else ''})")
    data = DataModule(data_cfg, 0, split=split, index=index, parts=(part,))
    dev = resolve_device(device)
    model.to(dev)
    meter = AccuracyMeter(len(index.classes))
    t0 = time.perf_counter()
    with torch.no_grad():
        for batch in data.eval_loader(part, batch_size):
            batch = move(batch, dev, False)
            logits = model.logits(batch["image"])
            meter.update(logits, batch["label"],
                         float(torch.nn.functional.cross_entropy(logits, batch["label"], reduction="sum")))
    result = {**meter.summary(), "images": meter.n, "part": part, "checkpoint": record["file"],
              "model": record["arch"], "seconds": round(time.perf_counter() - t0, 2),
              "per_class": dict(zip(index.classes, [round(a, 2) for a in meter.per_class_accuracy()]))}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "eval.json", result)
        write_per_class(out, index.classes, meter.confusion, f"{record['arch']} on {part}")
    return result


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text())
