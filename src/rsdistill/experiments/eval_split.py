"""Which images ``eval`` scores, and how it says so.

In order: a ``--split-file``; the ``split.json`` of the run the checkpoint is in; for a checkpoint
taken out of its run, the run's split made again from the config the checkpoint carries (its
seed and ratios, or its split file), when the data has the checkpoint's classes; otherwise every
image of the folder, with a warning. The description names the choice, so a result never reads
as a test accuracy when the model has seen some of the images.
"""

from __future__ import annotations

import logging
from pathlib import Path
from ..config import RunConfig, build_config
from ..data.fingerprint import check_fingerprint
from ..data.folders import FolderIndex
from ..data.splits import Split, check_split_matches, load_split, published_split, stratified_split
from ..engine.checkpoint import read_checkpoint
from ..errors import RsDistillError
from ..runs.folder import RunDir

log = logging.getLogger("rsdistill")


def eval_split(index: FolderIndex, part: str, split_file: str | None, run_dir: Path | None,
               checkpoint_file: str, stored: RunConfig | None) -> tuple[Split, str, str]:
    """(split, part, description of the images) for evaluating on ``index``; ``stored``: the
    config the checkpoint carries (:func:`checkpoint_config`)."""
    if split_file:
        return load_split(split_file, index), part, f"the {part} split of '{split_file}'"
    if run_dir is not None and RunDir(run_dir).split.is_file():
        # The run's own split: the data must be the run's dataset, wherever it is now.
        check_fingerprint(run_dir, index)
        split = load_split(RunDir(run_dir).split)
        check_split_matches(split, index, RunDir(run_dir).split)
        return split, part, f"the {part} split of run '{run_dir}'"
    remade = _split_of_config(stored, index) if stored is not None else None
    if remade is not None:
        split, how = remade
        return split, part, f"the {part} split of the checkpoint's run, {how}"
    log.warning("no split given or known for '%s': evaluating every image of '%s', including any the model "
                "was trained on", checkpoint_file, index.root)
    split = Split(index.classes, [], [], list(index.paths), class_depth=index.class_depth)
    return split, "test", f"every image of '{index.root}' (no split known: not a test accuracy)"


def _split_of_config(cfg: RunConfig, index: FolderIndex) -> tuple[Split, str] | None:
    """The split of the run a loose checkpoint was trained in, made again from its config; None
    where it cannot be."""
    data = cfg.data
    if data.split_file and Path(data.split_file).is_file():
        try:
            return load_split(data.split_file, index), f"from its split file '{data.split_file}'"
        except RsDistillError:
            return None
    if index.parts is not None:  # a dataset with a published split (CIFAR-100, ImageNet)
        return published_split(index, data.val_ratio, cfg.seed), "the dataset's published split"
    try:
        split = stratified_split(index, data.train_ratio, data.val_ratio, cfg.seed)
    except RsDistillError:
        return None
    return split, (f"made again from its seed {cfg.seed} and train_ratio {data.train_ratio}"
                   f"{f', val_ratio {data.val_ratio}' if data.val_ratio else ''} (the same images only "
                   f"on the run's dataset '{data.root}')")


def checkpoint_config(checkpoint_file: str) -> RunConfig | None:
    """The config of the run a checkpoint was saved by (it carries it), or None: none stored, or
    one this version cannot read."""
    try:
        stored = read_checkpoint(checkpoint_file).get("config")
        return build_config(stored, source=checkpoint_file) if stored else None
    except RsDistillError:
        return None
