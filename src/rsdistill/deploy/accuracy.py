"""Top-1 of any deployable form of a model on the test split of the run that trained it.

The split is the run's ``split.json``; the data is the run's dataset (``config.yaml``'s
``data.root``, or ``data_root`` where it has moved), checked against the run's fingerprint as
``eval`` and ``--resume`` check it. Images go through the same reading as ``predict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from ..data.fingerprint import check_fingerprint
from ..data.presets import scan_dataset
from ..data.splits import check_split_matches, load_split
from ..errors import ConfigError, DataError, RsDistillError
from .formats import Predictor
from .predict import predict_images


@dataclass(frozen=True)
class LabelledImages:
    paths: list[Path]
    labels: list[str]


def run_test_split(run_dir: Path, data_root: str | Path | None = None) -> LabelledImages:
    """The test images of a run directory with their class names."""
    try:
        data = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("data") or {}
    except (OSError, yaml.YAMLError, AttributeError) as e:
        raise ConfigError(f"'{run_dir / 'config.yaml'}' cannot be read: {str(e).splitlines()[0]}") from None
    root = data_root or data.get("root")
    if not root:
        raise ConfigError(f"run '{run_dir}' names no dataset folder: give --data DIR")
    split_file = run_dir / "split.json"
    if not split_file.is_file():
        raise DataError(f"run '{run_dir}' has no split.json: its test split is unknown")
    index = scan_dataset(data.get("preset") or "folder", root)
    check_fingerprint(run_dir, index)
    split = load_split(split_file)
    check_split_matches(split, index, split_file)
    return LabelledImages([index.root / p for p in split.test], [split.classes[split.label_of(p)] for p in split.test])


def top1(predictor: Predictor, images: LabelledImages, batch: int = 64) -> float:
    """Top-1 accuracy in percent; an unreadable test image is an error naming it (it was read in
    training, so the data has changed)."""
    if list(images.labels) and not set(images.labels) <= set(predictor.info.classes):
        raise RsDistillError(f"'{predictor.file}' does not know the test split's classes")
    correct = 0
    for p, label in zip(predict_images(predictor, images.paths, k=1, batch=batch), images.labels):
        if p.error:
            raise DataError(p.error)
        correct += p.top[0][0] == label
    return 100.0 * correct / max(1, len(images.labels))
