"""The teacher of a distillation run: loaded from a run, a checkpoint or a plain weights file, and
checked against the run's data (its classes, its split: it must never have trained on the run's
test images)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..data.datamodule import DataModule
from ..data.splits import Split, load_split
from ..engine.checkpoint import is_rsdistill_checkpoint, load_model, run_dir_of
from ..errors import CheckpointError, ConfigError, DataError
from ..models import ModelAdapter
from ..models.named_weights import is_named_weights
from ..runs.folder import RunDir
from .preflight import class_difference, warn_unfinished_teacher

log = logging.getLogger("rsdistill")

# A teacher fewer points than this ahead of the student alone (validation top-1) is warned about:
# on AID with a teacher 1 point below the student alone, KD cost 0.87 points (docs/isdm.md).
ALONE_LEAD = 3.0


@dataclass(frozen=True)
class LoadedTeacher:
    """A teacher as a run uses it: the model, its checkpoint's record (file, architecture, classes,
    input size) and the split of the run that trained it (None without a split manifest)."""

    model: ModelAdapter
    record: dict[str, Any]
    split: Split | None


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


def student_alone_val(cfg: RunConfig, data: DataModule) -> tuple[str, float] | None:
    """teacher.alone_run's last validation top-1, as ``(run, top1)``; None without one, or when this
    run has no validation split to compare on. The alone run must have this run's validation split."""
    run = cfg.teacher.alone_run
    if not run:
        return None
    if not data.has_val:
        log.warning("teacher.alone_run is set but this run has no validation split (data.val_ratio): "
                    "the teacher is not compared with the student alone")
        return None
    rd = RunDir(run)
    if not rd.split.is_file():
        raise ConfigError(f"teacher.alone_run: '{run}' is not a run folder with a split.json")
    if sorted(load_split(rd.split).val) != sorted(data.split.val):
        raise ConfigError(f"teacher.alone_run: '{run}' was trained on another split than this run "
                          f"(its validation images differ): train it with --split-file of this run's teacher")
    vals = [r["val/top1"] for r in rd.read_epochs().get([]) or [] if "val/top1" in r]
    if not vals:
        raise ConfigError(f"teacher.alone_run: '{run}' has no epoch evaluated on a validation split")
    return str(run), float(vals[-1])


def report_teacher_lead(teacher_val: float, alone: tuple[str, float]) -> dict[str, Any]:
    """Says how far the teacher is ahead of the student alone on the validation split (a warning
    below ALONE_LEAD points); returns what metrics.json keeps of it."""
    run, alone_val = alone
    lead = teacher_val - alone_val
    text = (f"teacher {teacher_val:.2f}% on the validation split, the student alone ('{run}') "
            f"{alone_val:.2f}%: the teacher is {lead:+.2f} points ahead")
    if lead < ALONE_LEAD:
        log.warning("%s; a teacher this close can cost the student accuracy (docs/isdm.md, 'A teacher "
                    "barely better than its student')", text)
    else:
        log.info("%s", text)
    return {"alone_run": run, "alone_val_top1": alone_val}
