"""Top-1 of any deployable form of a model on the test split of the run that trained it.

The split is the run's ``split.json``; the data is the run's dataset (``config.yaml``'s
``data.root``, or ``data_root`` where it has moved), checked against the run's fingerprint as
``eval`` and ``--resume`` check it. The images are read by the data layer with the run's data
settings, as the run's own evaluation read them: CIFAR-100's rows of its python files (its paths
are not files), ImageNet's resize and centre crop, a folder's decoding options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from ..config import DataConfig, build_config, split_data_argument
from ..data.datamodule import DataModule
from ..data.fingerprint import check_fingerprint
from ..data.folders import FolderIndex
from ..data.presets import scan_dataset
from ..data.splits import Split, load_split
from ..errors import ConfigError, DataError, RsDistillError
from ..runs.folder import CONFIG, SPLIT, RunDir
from ..yamlfile import load_file
from .formats import Predictor


@dataclass
class RunTestSplit:
    """A run's test split and how its training read the images (``data``); ``loader`` serves them
    at a model's input size, in [0, 1], unnormalised (deployed models normalise themselves)."""

    data: DataConfig
    index: FolderIndex
    split: Split
    split_file: Path
    _modules: dict[int, DataModule] = field(default_factory=dict, repr=False)

    @property
    def paths(self) -> list[str]:
        """The test images' paths as ``split.json`` names them (relative to the dataset)."""
        return list(self.split.test)

    @property
    def labels(self) -> list[str]:
        return [self.split.classes[self.split.label_of(p)] for p in self.split.test]

    def __len__(self) -> int:
        return len(self.split.test)

    def loader(self, image_size: int, batch: int = 64) -> DataLoader:
        """Batches of ``image``, ``label`` (index into ``split.classes``), decoded once per size."""
        if image_size not in self._modules:
            cfg = self.data.model_copy(update={"image_size": int(image_size), "split_file": None})
            self._modules[image_size] = DataModule(cfg, 0, split=self.split, split_source=self.split_file,
                                                   index=self.index, parts=("test",))
        return self._modules[image_size].eval_loader("test", batch)


def run_test_split(run_dir: Path, data_root: str | Path | None = None) -> RunTestSplit:
    """The test split of a run directory, with the run's data settings."""
    run_dir = Path(run_dir)
    config_file = RunDir(run_dir).config
    if not config_file.is_file():
        raise ConfigError(f"run '{run_dir}' has no {CONFIG}: its data settings are unknown")
    data = build_config(load_file(config_file, "run config"), source=str(config_file)).data.model_copy()
    if data_root:
        layout, data.root = split_data_argument(str(data_root))  # cifar100:DIR as training took it
        if layout not in (None, data.preset):
            raise ConfigError(f"--data '{data_root}': run '{run_dir}' was trained on a '{data.preset}' dataset")
    if not data.root:
        raise ConfigError(f"run '{run_dir}' names no dataset folder: give --data DIR")
    split_file = RunDir(run_dir).split
    if not split_file.is_file():
        raise DataError(f"run '{run_dir}' has no {SPLIT}: its test split is unknown")
    index = scan_dataset(data.preset, data.root)
    check_fingerprint(run_dir, index)
    return RunTestSplit(data, index, load_split(split_file, index), split_file)


def top1(predictor: Predictor, test: RunTestSplit, batch: int = 64) -> float:
    """Top-1 accuracy in percent; an unreadable test image is an error naming it (it was read in
    training, so the data has changed), unless the run skipped bad images."""
    known = predictor.info.classes
    if not set(test.labels) <= set(known):
        raise RsDistillError(f"'{predictor.file}' does not know the test split's classes")
    # The predictor's class order may differ from the split's: compare by name.
    ids = {c: i for i, c in enumerate(test.split.classes)}
    to_split = np.array([ids.get(c, -1) for c in known])
    correct = seen = 0
    for b in test.loader(predictor.info.image_size, batch):
        logits = predictor(b["image"].numpy())
        correct += int((to_split[logits.argmax(axis=1)] == b["label"].numpy()).sum())
        seen += len(b["label"])
    return 100.0 * correct / max(1, seen)
