"""One run, from a config to a finished run directory.

A run directory is the unit of truth; its files are described in :mod:`rsdistill.runs.folder`
(and how a folder is claimed in :mod:`rsdistill.runs.claim`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig, load_run_config
from ..data.bands import BandPlan, plan_bands, resolve_bands
from ..data.datamodule import DataModule, default_cache_dir
from ..data.decode import band_count
from ..data.fingerprint import check_fingerprint, write_fingerprint
from ..data.presets import scan_dataset
from ..data.splits import Split, load_split, save_split
from ..distillers import registry
from ..distillers.settings import RunContext
from ..engine import distributed
from ..engine.checkpoint import is_rsdistill_checkpoint, load_model, read_checkpoint, run_dir_of
from ..engine.evaluate import evaluate as evaluate_model
from ..engine.distributed import SINGLE, Distributed
from ..engine.runlog import NoRunLog, RunLog
from ..engine.teacher_cache import CACHEABLE, load_or_build
from ..engine.seeding import configure_determinism, resolve_device, seed_everything
from ..engine.trainer import Trainer
from ..errors import CheckpointError, ConfigError, DataError, RsDistillError, TrainingDiverged
from ..io import atomic_write_json, atomic_write_text
from ..models import LogitsOnly, ModelAdapter, build_model, count_parameters
from ..models.input_bands import rgb_positions
from ..models.named_weights import is_named_weights
from ..reports.per_class import write_per_class
from ..engine.threads import CpuShare
from ..runs.claim import (
    ClaimedRunDirectory,
    check_outside_data,
    check_output_folder,
    check_run_folder,
    clear_unstarted_run,
    record_skipped,
    remove_leftover_temporaries,
)
from ..runs.folder import RunDir, Status
from .eval_split import checkpoint_config, eval_split
from .preflight import class_difference, preflight, warn_unfinished_teacher
from .resume_settings import resumed_config

log = logging.getLogger("rsdistill")


@dataclass(frozen=True)
class LoadedTeacher:
    """A teacher as a run uses it: the model, its checkpoint's record (file, architecture, classes,
    input size) and the split of the run that trained it (None without a split manifest)."""

    model: ModelAdapter
    record: dict[str, Any]
    split: Split | None


def is_finished(run_dir: Path) -> bool:
    return RunDir(run_dir).metrics.is_file()


def run(cfg: RunConfig | None, out: str | Path, *, resume: bool = False,
        data_root: str | Path | None = None, overwrite: bool = False,
        changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train (``method.name == "ce"``) or distil into ``out``; returns the final metrics.

    With ``resume``, ``cfg`` is read from ``out``; ``data_root`` gives the new place of a dataset
    that moved (it must have the fingerprint recorded in the run's ``dataset.json``); ``changes``
    (a config layer: what the command line asked for) may change only what a resumed run may
    change (threads, device), anything else is an error naming the field. With ``overwrite``, a run
    in ``out`` that has no finished epoch (a failed start) is started over."""
    out = Path(out)
    if resume:
        cfg = resumed_config(out, load_run_config(out), changes or {})  # a run folder, read before anything is locked or written
    if resume and killed_while_starting(out):
        # config.yaml written, split.json not: nothing was trained, and there is no split to resume
        # with. Start it again with its own settings (what --overwrite does; the lock still guards
        # a process that is starting it right now).
        log.warning("run '%s' was stopped while starting (config.yaml without split.json): starting it again", out)
        resume, overwrite = False, True
    proc = distributed.from_env()
    if proc.enabled:
        return _run_distributed(proc, cfg, out, resume, data_root, overwrite)
    index = None
    if resume:
        threads = cfg.train.threads
        check_outside_data(out, data_root)
    else:
        check_run_folder(out, cfg.data.root)
        index = preflight(cfg)  # an unavailable device or unreadable data: no folder is created
        threads = cfg.train.threads
    # Created and locked before the data is decoded: a second process on the folder stops at once.
    # A start rejected before config.yaml is written removes what the claim created.
    with ClaimedRunDirectory(out), CpuShare(threads) as cpu:
        return _run(cfg, out, resume, data_root, overwrite=overwrite, cpu=cpu, index=index)


def killed_while_starting(out: Path) -> bool:
    """A run directory whose run wrote config.yaml and stopped before split.json (the first thing
    it writes after), with no finished epoch."""
    return RunDir(out).status() is Status.STARTING_KILLED


def _run_distributed(proc: Distributed, cfg: RunConfig | None, out: Path, resume: bool,
                     data_root: str | Path | None, overwrite: bool = False) -> dict[str, Any]:
    """One of the processes torchrun started (engine.distributed): every process trains; process 0
    alone checks, claims (locks) and writes the run directory, the others learn whether it could."""
    device = distributed.setup(proc, cfg.train.device)
    with contextlib.ExitStack() as claim:
        def check_and_claim() -> None:
            if resume:
                check_outside_data(out, data_root)
            else:
                check_run_folder(out, cfg.data.root)
                preflight(cfg)  # an unavailable device or unreadable data: no folder is created
            claim.enter_context(ClaimedRunDirectory(out))

        distributed.on_main(proc, check_and_claim, "claiming the run directory")
        return _run(cfg, out, resume, data_root, proc, device, overwrite=overwrite)


def _run(cfg: RunConfig | None, out: Path, resume: bool, data_root: str | Path | None,
         proc: Distributed = SINGLE, device: torch.device | None = None, *, overwrite: bool = False,
         cpu: CpuShare | None = None, index: Any = None) -> dict[str, Any]:
    """``proc``: this process's place in a distributed run (process 0 alone writes files)."""
    relocated = False
    rundir = RunDir(out)
    if resume:
        stored = load_run_config(out)  # as written, for config.yaml: without the changes of this resume
        cfg = cfg if cfg is not None else stored
        if is_finished(out):
            metrics = rundir.read_metrics().require("the run's final metrics")
            if metrics.get("status") == "failed":
                raise TrainingDiverged(f"run '{out}' failed and cannot be resumed: {metrics.get('reason')}")
            log.info("run '%s' is already finished", out)
            return metrics
        if data_root:
            cfg.data.root, relocated = _absolute(data_root), True
            stored.data.root = cfg.data.root
        elif cfg.data.root and not Path(cfg.data.root).exists():
            raise DataError(f"the dataset of run '{out}' is no longer at '{cfg.data.root}': give its new "
                            f"place with --resume {out} --data DIR")
        if proc.is_main:
            if not rundir.has_marker():  # a run of an earlier version: marked as ours from now on
                rundir.write_marker()
            for leftover in remove_leftover_temporaries(out):
                log.info("removed '%s', left by a process killed while writing it", leftover)
        ckpt = read_checkpoint(rundir.last) if rundir.last.is_file() else None
    else:
        if rundir.config.is_file() and overwrite:
            if proc.is_main:  # the other processes of a distributed run never write
                clear_unstarted_run(out)  # refuses a run with a finished epoch, and a folder of the user's
        elif rundir.config.is_file():
            restart = "" if rundir.has_finished_epoch() else ", start it over with --overwrite (it has no finished epoch)"
            raise RsDistillError(
                f"run directory '{out}' already holds a run; continue it with --resume {out}{restart} "
                "or choose another --out"
            )
        cfg = cfg.resolve().with_absolute_paths()
        ckpt = None

    device = device if device is not None else resolve_device(cfg.train.device)
    distributed.check_batch_size(proc, cfg.train.batch_size)
    configure_determinism(cfg.train.deterministic, device)
    method_cls = registry.get(cfg.method.name)

    if not cfg.data.root:
        raise ConfigError("data.root: no dataset folder given (use --data DIR)")
    index = index if index is not None else scan_dataset(cfg.data.preset, cfg.data.root)
    if resume:
        check_fingerprint(out, index)
    teacher = None
    if method_cls.requires_teacher:
        teacher = load_teacher(cfg, index.classes)
        check_teacher_classes(teacher, index.classes)
    split, split_source = None, None
    if resume:
        split, split_source = load_split(rundir.split), rundir.split
    elif teacher is not None and teacher.split is not None and not cfg.data.split_file:
        split, split_source = teacher.split, f"the split.json of teacher {cfg.teacher.checkpoint}"

    bands = run_bands(cfg, index, teacher)
    data = DataModule(cfg.data, cfg.seed, needs=method_cls.needs, split=split, split_source=split_source,
                      progress=cfg.train.progress and proc.is_main, device=str(device), index=index,
                      bands=bands.decoded)
    if teacher is not None:
        check_teacher_split(teacher, cfg, data)
    # Defaults that depend on the run (warm-up, per-pair weights) are filled in before the method
    # is built: config.yaml records the values actually used.
    ctx = RunContext(student=cfg.model.name, teacher=teacher.record["arch"] if teacher else None,
                     num_classes=data.info.num_classes, epochs=cfg.train.epochs)
    cfg = cfg.model_copy(update={"method": method_cls.resolve_config(cfg.method, ctx)})

    seed_everything(cfg.seed)
    student_bands = bands.decoded if bands.student is None else tuple(bands.decoded[i] for i in bands.student)
    student = build_model(cfg.model.name, data.info.num_classes, cfg.model.weights,
                          channels=len(student_bands) if student_bands is not None else 3,
                          rgb=rgb_positions(student_bands, cfg.data.rgb_bands))
    student.bands = list(student_bands) if student_bands is not None else None
    # The student's statistics: those of its own bands, or the pretrained weights' own where they have them.
    own = bands.student or range(data.channels)
    stats = [student.weights_statistics.get(c, (data.mean[i], data.std[i])) for c, i in enumerate(own)]
    student.set_normalization([m for m, _ in stats], [sd for _, sd in stats])
    student.set_read_channels(bands.student)
    if teacher is not None:
        teacher.model.set_read_channels(bands.teacher)
    distiller = method_cls(student, teacher.model if teacher else None, cfg.method, data.info)
    # Everything that can reject the input has run: only now is anything written (config.yaml
    # first: it marks the folder as a started run), by process 0 once every process got here.
    distributed.barrier(proc)
    if proc.is_main and not resume:
        rundir.write_marker()  # first: the folder is a run folder from now on
        atomic_write_text(rundir.config, cfg.to_yaml())
        write_fingerprint(out, index)
        save_split(data.split, rundir.split)
    elif proc.is_main and relocated:  # later resumes and evals find the data at its new place
        atomic_write_text(rundir.config, stored.to_yaml())
    trainer = Trainer(cfg, distiller, data, out, device, ctx=proc)
    if ckpt is not None:
        trainer.load_state(ckpt)
        log.info("resuming '%s' after epoch %d of %d", out, trainer.state.epoch, cfg.train.epochs)

    runlog = RunLog(out, resume_after_epoch=trainer.state.epoch) if proc.is_main else NoRunLog()
    try:
        log.info("run '%s': %s %s on %d classes (%d train / %d val / %d test images at %d px), %s",
                 out, cfg.method.name, cfg.model.name, data.info.num_classes, len(data.split.train),
                 len(data.split.val), len(data.split.test), cfg.data.image_size, device)
        if proc.enabled:
            log.info(distributed.describe(proc, data.info.num_train, cfg.train.batch_size))
        if cpu is not None:
            log.info("%s", cpu.describe())
        skipped = record_skipped(out, data.skipped, write=proc.is_main)
        for s in skipped:  # data.skip_bad_images: in train.log, and in metrics.json below
            log.warning("left out (data.skip_bad_images): %s", s["reason"])
        if teacher is not None and uses_teacher_cache(cfg, method_cls):
            # after the run log exists, so that train.log records how the cache was obtained
            trainer.set_teacher_cache(load_or_build(teacher.model, data, device, cache_directory(cfg.data),
                                                    cfg.train.test_batch_size, proc))
        try:
            state = trainer.fit(runlog)
        except TrainingDiverged as e:
            # A run that diverged must never read as finished: metrics.json says so, with why.
            if proc.is_main:
                atomic_write_json(rundir.metrics, {
                    "status": "failed", "reason": str(e), "epochs": trainer.state.epoch,
                    "method": cfg.method.name, "model": cfg.model.name, "device": str(device)})
            raise
        # The last epoch's test pass (evaluated again only when resuming a run whose last epoch
        # finished before the interruption).
        final = trainer.last_test or trainer.evaluate(distiller, "test")
        if proc.is_main:
            write_per_class(out, data.class_names, final.confusion,
                            f"{cfg.model.name} ({cfg.method.name}), test split, last epoch")
            distiller.on_train_end(out, data.eval_loader("train", cfg.train.test_batch_size), device)
    finally:
        runlog.close()

    metrics = {
        "status": "finished",
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
    if proc.enabled:
        metrics["processes"] = proc.world_size
    if skipped:
        metrics["skipped_images"] = skipped
    if trainer.teacher_metrics is not None:
        metrics["teacher"] = {"model": teacher.record["arch"], **trainer.teacher_metrics,
                              "checkpoint": cfg.teacher.checkpoint, "params": count_parameters(teacher.model)}
    if proc.is_main:
        atomic_write_json(rundir.metrics, metrics)
    log.info("finished '%s': top-1 %.2f%%  top-5 %.2f%% (last epoch); best on %s %.2f%%",
             out, metrics["top1"], metrics["top5"], metrics["best_selected_on"], metrics["best_top1"])
    return metrics


def _absolute(path: str | Path) -> str:
    return os.path.abspath(os.path.expanduser(str(path)))


def run_bands(cfg: RunConfig, index: Any, teacher: LoadedTeacher | None) -> BandPlan:
    """The bands a run decodes and which of them the student and the teacher read: a teacher
    trained on other bands (a 13-band teacher, an RGB student) reads its own from the same images."""
    student = resolve_bands(cfg.data.bands, index)
    if teacher is None:
        return BandPlan(student, None, None)
    theirs = tuple(teacher.model.bands) if teacher.model.bands is not None else None
    if theirs is None and teacher.model.in_channels != 3:
        raise CheckpointError(f"teacher '{teacher.record['file']}' reads {teacher.model.in_channels} bands "
                              "but its checkpoint does not say which")
    image_bands = None
    if index.store is None and index.paths and (student is not None or theirs is not None):
        image_bands = band_count(index.root / index.paths[0])
        if theirs is not None and max(theirs) >= image_bands:
            raise DataError(f"the teacher reads bands {list(theirs)}, but the images have {image_bands} bands "
                            f"(e.g. '{index.paths[0]}')")
    elif theirs is not None and index.store is not None:
        raise DataError(f"the teacher reads bands {list(theirs)}; this dataset's images are RGB")
    rgb = tuple(cfg.data.rgb_bands) if cfg.data.rgb_bands is not None else None
    return plan_bands(student, theirs, image_bands, rgb)


def uses_teacher_cache(cfg: RunConfig, method_cls: type) -> bool:
    """A bank of views, the cache not switched off, and a method that uses only the teacher's
    logits (the others need its features and run it live) on the bank's views only (a second,
    strongly augmented view is drawn live at every step)."""
    return (bool(cfg.data.view_bank) and cfg.teacher.cache and method_cls.teacher_outputs <= CACHEABLE
            and "two_views" not in method_cls.needs)


def cache_directory(data_cfg) -> Path | None:
    if data_cfg.cache != "disk":
        return None
    return Path(data_cfg.cache_dir) if data_cfg.cache_dir else default_cache_dir()


def load_teacher(cfg: RunConfig, classes: list[str] | None = None) -> LoadedTeacher:
    """The teacher of ``cfg``: an rsdistill run or checkpoint, or (with ``teacher.model`` and the
    data's ``classes``) a plain torchvision/timm weights file for that architecture."""
    if not cfg.teacher.checkpoint:
        raise ConfigError(f"method '{cfg.method.name}' needs a teacher: give --teacher RUN_OR_CKPT")
    weights_file = Path(cfg.teacher.checkpoint)
    named = is_named_weights(cfg.teacher.checkpoint)
    if named and not (cfg.teacher.model and classes is not None):
        raise ConfigError(f"--teacher {cfg.teacher.checkpoint}: name the architecture with --set teacher.model=NAME")
    if (cfg.teacher.model and classes is not None and (named or weights_file.is_file())
            and (named or not is_rsdistill_checkpoint(weights_file))):
        from ..models.pretrained import teacher_from_weights

        model = teacher_from_weights(cfg.teacher.checkpoint if named else weights_file, cfg.teacher.model,
                                     len(classes))
        record = {"arch": cfg.teacher.model, "num_classes": len(classes), "class_names": list(classes),
                  "image_size": None, "file": str(weights_file)}
        log.info("teacher: %s from the weights file '%s' (its classes taken to be the data's, in order)",
                 cfg.teacher.model, weights_file)
        return LoadedTeacher(model, record, None)
    teacher, record = load_model(cfg.teacher.checkpoint)
    warn_unfinished_teacher(record)
    if cfg.teacher.model and record["arch"] != cfg.teacher.model:
        raise CheckpointError(
            f"teacher '{record['file']}' is a {record['arch']}, not the expected {cfg.teacher.model}"
        )
    split = None
    run_dir = run_dir_of(Path(record["file"]))
    if run_dir is not None and RunDir(run_dir).split.is_file():
        split = load_split(RunDir(run_dir).split)
    return LoadedTeacher(teacher, record, split)


def check_teacher_classes(teacher: LoadedTeacher, classes: list[str]) -> None:
    record = teacher.record
    if list(record["class_names"]) != classes:
        raise CheckpointError(
            f"teacher '{record['file']}' was trained on {record['num_classes']} classes, the data has "
            f"{len(classes)}: {class_difference(list(record['class_names']), classes)}"
        )


def check_teacher_split(teacher: LoadedTeacher, cfg: RunConfig, data: DataModule) -> None:
    record = teacher.record
    if teacher.split is not None:
        leaked = set(teacher.split.train) & set(data.split.test)
        if leaked:
            raise DataError(
                f"the teacher was trained on {len(leaked)} image(s) of this run's test split "
                f"(e.g. '{sorted(leaked)[0]}'): use the teacher's split (the default without "
                "data.split_file) or a teacher trained on this split"
            )
    else:
        log.warning("teacher '%s' has no split manifest beside it: cannot check that it never saw "
                    "this run's test images", record["file"])
    if record.get("image_size") not in (None, cfg.data.image_size):  # None: a weights file
        log.warning("teacher was trained at %s px, this run uses %d px", record.get("image_size"),
                    cfg.data.image_size)


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

