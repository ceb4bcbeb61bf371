"""One run, from a config to a finished run directory.

A run directory is the unit of truth; its files are described in :mod:`rsdistill.runs.folder`
(and how a folder is claimed in :mod:`rsdistill.runs.claim`). A run goes through four steps:
prepare (the config to run with: a new run's, or a resumed run's own, with its checkpoint), build
(data, teacher, student, method: everything that can reject the input, before any file is
written), fit (the training, logged into train.log) and finish (metrics.json). The teacher is
loaded by :mod:`.teacher`; `rsdistill eval` is :mod:`.evaluate`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig, load_run_config
from ..data.bands import BandPlan, plan_bands, resolve_bands
from ..data.datamodule import DataModule
from ..data.decode import band_count
from ..data.fingerprint import check_fingerprint, write_fingerprint
from ..data.presets import scan_dataset
from ..data.splits import load_split, save_split
from ..distillers import registry
from ..distillers.base import Distiller
from ..distillers.settings import RunContext
from ..engine import distributed
from ..engine.checkpoint import read_checkpoint
from ..engine.distributed import SINGLE, Distributed
from ..engine.runlog import NoRunLog, RunLog
from ..engine.seeding import configure_determinism, resolve_device, seed_everything
from ..engine.teacher_cache import run_teacher_cache
from ..engine.threads import CpuShare
from ..engine.trainer import Trainer
from ..errors import CheckpointError, ConfigError, DataError, RsDistillError, TrainingDiverged
from ..io import atomic_write_json, atomic_write_text
from ..models import ModelAdapter, build_model, count_parameters
from ..models.input_bands import rgb_positions
from ..reports.per_class import write_per_class
from ..runs.claim import (
    ClaimedRunDirectory,
    check_outside_data,
    check_run_folder,
    clear_unstarted_run,
    record_skipped,
    remove_leftover_temporaries,
)
from ..runs.folder import RunDir, Status
from .preflight import preflight
from .resume_settings import resumed_config
from .teacher import (
    LoadedTeacher,
    check_teacher_classes,
    check_teacher_split,
    load_teacher,
    report_teacher_lead,
    student_alone_val,
)

log = logging.getLogger("rsdistill")


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
    start = _prepare(cfg, out, resume, data_root, proc, overwrite)
    if start.finished is not None:
        return start.finished
    device = device if device is not None else resolve_device(start.cfg.train.device)
    built = _build(start.cfg, out, resume, proc, device, index)
    _write_start(out, start, built, resume, proc)
    trainer, skipped = _fit(out, built, start.ckpt, device, proc, cpu)
    return _finish(out, built, trainer, skipped, device, proc)


@dataclass(frozen=True)
class Start:
    """What a run starts from: the config it runs with, and for a resumed run the config as
    config.yaml holds it (without this resume's changes), its last checkpoint, whether its data
    moved, or its metrics when it had already finished."""

    cfg: RunConfig
    stored: RunConfig | None = None
    ckpt: dict[str, Any] | None = None
    relocated: bool = False
    finished: dict[str, Any] | None = None


def _prepare(cfg: RunConfig | None, out: Path, resume: bool, data_root: str | Path | None,
             proc: Distributed, overwrite: bool) -> Start:
    rundir = RunDir(out)
    if not resume:
        if rundir.config.is_file() and overwrite:
            if proc.is_main:  # the other processes of a distributed run never write
                clear_unstarted_run(out)  # refuses a run with a finished epoch, and a folder of the user's
        elif rundir.config.is_file():
            restart = "" if rundir.has_finished_epoch() else ", start it over with --overwrite (it has no finished epoch)"
            raise RsDistillError(
                f"run directory '{out}' already holds a run; continue it with --resume {out}{restart} "
                "or choose another --out"
            )
        return Start(cfg.resolve().with_absolute_paths())
    stored = load_run_config(out)  # as written, for config.yaml: without the changes of this resume
    cfg = cfg if cfg is not None else stored
    if is_finished(out):
        metrics = rundir.read_metrics().require("the run's final metrics")
        if metrics.get("status") == "failed":
            raise TrainingDiverged(f"run '{out}' failed and cannot be resumed: {metrics.get('reason')}")
        log.info("run '%s' is already finished", out)
        return Start(cfg, finished=metrics)
    relocated = False
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
    return Start(cfg, stored, ckpt, relocated)


@dataclass(frozen=True)
class Built:
    """What a run trains: its config (with the method's run-dependent defaults filled in), the
    dataset's index, the data, the teacher (None for a run without one), the student and the
    method around them."""

    cfg: RunConfig
    method_cls: type[Distiller]
    index: Any
    data: DataModule
    teacher: LoadedTeacher | None
    student: ModelAdapter
    distiller: Distiller
    # teacher.alone_run's (run, validation top-1), read before anything is written
    alone: tuple[str, float] | None = None


def _build(cfg: RunConfig, out: Path, resume: bool, proc: Distributed, device: torch.device,
           index: Any) -> Built:
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
        split, split_source = load_split(RunDir(out).split), RunDir(out).split
    elif teacher is not None and teacher.split is not None and not cfg.data.split_file:
        split, split_source = teacher.split, f"the split.json of teacher {cfg.teacher.checkpoint}"

    bands = run_bands(cfg, index, teacher)
    data = DataModule(cfg.data, cfg.seed, needs=method_cls.needs, split=split, split_source=split_source,
                      progress=cfg.train.progress and proc.is_main, device=str(device), index=index,
                      bands=bands.decoded)
    alone = None
    if teacher is not None:
        check_teacher_split(teacher, cfg, data)
        alone = student_alone_val(cfg, data)
    # Defaults that depend on the run (warm-up, per-pair weights) are filled in before the method
    # is built: config.yaml records the values actually used.
    ctx = RunContext(student=cfg.model.name, teacher=teacher.record["arch"] if teacher else None,
                     num_classes=data.info.num_classes, epochs=cfg.train.epochs)
    cfg = cfg.model_copy(update={"method": method_cls.resolve_config(cfg.method, ctx)})

    seed_everything(cfg.seed)  # before the student is initialised
    student = _student(cfg, data, bands)
    if teacher is not None:
        teacher.model.set_read_channels(bands.teacher)
    distiller = method_cls(student, teacher.model if teacher else None, cfg.method, data.info)
    return Built(cfg, method_cls, index, data, teacher, student, distiller, alone)


def _student(cfg: RunConfig, data: DataModule, bands: BandPlan) -> ModelAdapter:
    """The student, initialised, reading its own bands with their statistics."""
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
    return student


def _write_start(out: Path, start: Start, built: Built, resume: bool, proc: Distributed) -> None:
    # Everything that can reject the input has run: only now is anything written (config.yaml
    # first: it marks the folder as a started run), by process 0 once every process got here.
    distributed.barrier(proc)
    rundir = RunDir(out)
    if proc.is_main and not resume:
        rundir.write_marker()  # first: the folder is a run folder from now on
        atomic_write_text(rundir.config, built.cfg.to_yaml())
        write_fingerprint(out, built.index)
        save_split(built.data.split, rundir.split)
    elif proc.is_main and start.relocated:  # later resumes and evals find the data at its new place
        atomic_write_text(rundir.config, start.stored.to_yaml())


def _fit(out: Path, built: Built, ckpt: dict[str, Any] | None, device: torch.device, proc: Distributed,
         cpu: CpuShare | None) -> tuple[Trainer, list[dict[str, Any]]]:
    """The training and its last test pass, logged into train.log; also the images the data left
    out (data.skip_bad_images)."""
    cfg, data, distiller, teacher = built.cfg, built.data, built.distiller, built.teacher
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
        # after the run log exists, so that train.log records how the cache was obtained
        cache = run_teacher_cache(cfg, built.method_cls, teacher.model if teacher else None, data, device, proc)
        if cache is not None:
            trainer.set_teacher_cache(cache)
        if built.alone is not None and "alone_val_top1" not in (trainer.teacher_metrics or {}):
            trainer.evaluate_teacher()  # before epoch 1, as fit would; a resumed run said it already
            trainer.teacher_metrics.update(report_teacher_lead(trainer.teacher_metrics["val_top1"], built.alone))
        try:
            trainer.fit(runlog)
        except TrainingDiverged as e:
            # A run that diverged must never read as finished: metrics.json says so, with why.
            if proc.is_main:
                atomic_write_json(RunDir(out).metrics, {
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
    return trainer, skipped


def _finish(out: Path, built: Built, trainer: Trainer, skipped: list[dict[str, Any]], device: torch.device,
            proc: Distributed) -> dict[str, Any]:
    """The run's final metrics, written to metrics.json (which marks the run finished)."""
    cfg, data, teacher, state = built.cfg, built.data, built.teacher, trainer.state
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
        "params": count_parameters(built.student),
        "extra_params": sum(count_parameters(m) for m in built.distiller.extra_modules().values()),
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
        atomic_write_json(RunDir(out).metrics, metrics)
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
