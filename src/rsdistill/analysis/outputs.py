"""Stored models run on a split: a finished run directory -> its model, its data (the run's own
split, checked against the dataset's fingerprint as ``rsdistill eval`` does) and the model's logits
and pooled features on the test split. ISDM runs also give back their distiller (teacher and
trained scaler), which recomputes soft labels and margins."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import RunConfig
from ..data.datamodule import DataModule
from ..data.fingerprint import check_fingerprint
from ..data.folders import FolderIndex
from ..data.presets import scan_dataset
from ..data.splits import check_split_matches, load_split
from ..distillers import registry
from ..distillers.base import Distiller
from ..engine.batch import move
from ..engine.checkpoint import load_model, read_checkpoint, resolve_checkpoint
from ..errors import CheckpointError, ConfigError, RsDistillError
from ..config import load_run_config
from ..models import ModelAdapter
from ..reports.runs_table import failed, read_run
from ..runs.folder import SPLIT, RunDir


@dataclass
class LoadedRun:
    dir: Path
    name: str
    config: RunConfig
    metrics: dict[str, Any]
    model: ModelAdapter
    record: dict[str, Any]  # the checkpoint's record: file, arch, class_names, image_size
    data: DataModule

    @property
    def method(self) -> str:
        return self.config.method.name

    @property
    def class_names(self) -> list[str]:
        return list(self.data.class_names)


@dataclass
class SplitOutputs:
    labels: np.ndarray  # N
    logits: np.ndarray  # N x C
    features: np.ndarray  # N x D, the pooled embedding fed to the classifier


class RunLoader:
    """Loads runs against one dataset folder (``data_root``, else each run's own), decoding each
    distinct (split, image size) once."""

    def __init__(self, data_root: str | Path | None, device: torch.device, batch_size: int = 128):
        self.data_root, self.device, self.batch_size = data_root, device, batch_size
        self._indexes: dict[tuple[str, str], FolderIndex] = {}
        self._data: dict[tuple, DataModule] = {}
        self._teachers: dict[str, tuple[ModelAdapter, dict[str, Any]]] = {}
        self._outputs: dict[tuple, SplitOutputs] = {}

    def load(self, run_dir: Path, name: str) -> LoadedRun:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise RsDistillError(f"run directory '{run_dir}' does not exist")
        info = read_run(run_dir)
        if failed(info["metrics"]):
            raise RsDistillError(f"run '{run_dir}' failed ({info['metrics'].get('reason')}): it has no model to analyse")
        cfg = load_run_config(run_dir)
        model, record = load_model(run_dir)
        model.to(self.device)
        data_cfg = cfg.data.model_copy()
        if self.data_root:
            data_cfg.root = str(self.data_root)
        if not data_cfg.root:
            raise ConfigError(f"analyze: run '{run_dir}' records no dataset folder: give --data DIR")
        data_cfg.split_file = None
        data_cfg.image_size = int(record.get("image_size") or data_cfg.image_size)
        key = (data_cfg.preset, str(Path(data_cfg.root).resolve()))
        if key not in self._indexes:
            self._indexes[key] = scan_dataset(data_cfg.preset, data_cfg.root)
        index = self._indexes[key]
        split_file = RunDir(run_dir).split
        if not split_file.is_file():
            raise RsDistillError(f"run '{run_dir}' has no {SPLIT}: its test split is unknown")
        check_fingerprint(run_dir, index)
        split = load_split(split_file)
        check_split_matches(split, index, split_file)
        if list(record["class_names"]) != index.classes:
            raise CheckpointError(f"checkpoint '{record['file']}' has classes ({', '.join(record['class_names'][:3])}, "
                                  f"...) that differ from the data's ({', '.join(index.classes[:3])}, ...)")
        # Only the test split is decoded (the few training images a figure shows: ``images``).
        dkey = (key, data_cfg.model_dump_json(), tuple(split.test))
        if dkey not in self._data:
            self._data[dkey] = DataModule(data_cfg, 0, split=split, index=index, parts=("test",))
        return LoadedRun(run_dir, name, cfg, info["metrics"], model, record, self._data[dkey])

    def teacher(self, checkpoint: str | Path) -> tuple[ModelAdapter, dict[str, Any]]:
        file = str(resolve_checkpoint(checkpoint).resolve())
        if file not in self._teachers:
            model, record = load_model(file)
            self._teachers[file] = (model.to(self.device), record)
        return self._teachers[file]

    def outputs(self, model: ModelAdapter, data: DataModule, part: str = "test") -> SplitOutputs:
        """Logits and pooled features of ``model`` on a split (computed once per model and data)."""
        key = (id(model), id(data), part)
        if key not in self._outputs:
            self._outputs[key] = predict(model, data.eval_loader(part, self.batch_size), self.device)
        return self._outputs[key]


def images(data: DataModule, paths: list[str]) -> list[torch.Tensor]:
    """Images of the dataset (relative paths) as the evaluation loader gives them (decoded at the
    run's size, evaluation transform): only these are decoded, not their whole split."""
    few = DataModule(data.cfg, 0, split=replace(data.split, train=[], val=[], test=list(paths)),
                     index=data.index, parts=("test",))
    dataset = few.eval_loader("test", max(1, len(paths))).dataset
    return [dataset[i]["image"] for i in range(len(paths))]


@torch.no_grad()
def predict(model: ModelAdapter, loader, device: torch.device) -> SplitOutputs:
    was_training = model.training
    model.eval()
    labels, logits, features = [], [], []
    try:
        for batch in loader:
            batch = move(batch, device, False)
            out = model(batch["image"])
            labels.append(batch["label"].cpu())
            logits.append(out.logits.float().cpu())
            features.append(out.features.pooled.float().cpu())
    finally:
        model.train(was_training)
    if not labels:
        raise RsDistillError("the test split is empty: nothing to analyse")
    return SplitOutputs(torch.cat(labels).numpy(), torch.cat(logits).numpy(), torch.cat(features).numpy())


def teacher_checkpoint(run: LoadedRun) -> str | None:
    """The teacher a distillation run learnt from (None for a run without one)."""
    if not registry.get(run.method).requires_teacher:
        return None
    return run.config.teacher.checkpoint or None


def same_checkpoint(a: str | Path, b: str | Path) -> bool:
    try:
        return resolve_checkpoint(a).resolve() == resolve_checkpoint(b).resolve()
    except RsDistillError:
        return False


def distiller_of(run: LoadedRun, teacher: ModelAdapter) -> Distiller:
    """The run's method, rebuilt around its model and ``teacher`` with the extra modules it trained
    (an ISDM scaler), from ``checkpoints/last.pt``: what recomputes its soft labels and margins."""
    cls = registry.get(run.method)
    distiller = cls(run.model, teacher, run.config.method, run.data.info)
    ckpt = read_checkpoint(RunDir(run.dir).last)
    extras = distiller.extra_modules()
    try:
        for k, sd in ckpt.get("extras", {}).items():
            if k in extras:
                extras[k].load_state_dict(sd)
    except RuntimeError as e:
        raise CheckpointError(f"'{run.dir / 'checkpoints' / 'last.pt'}': the method's modules do not load "
                              f"({str(e).splitlines()[0]})") from None
    distiller.to(run.model.input_mean.device)
    distiller.eval()
    return distiller


@torch.no_grad()
def soft_label_pair(distiller: Distiller, image: torch.Tensor, label: int) -> tuple[np.ndarray, np.ndarray]:
    """ISDM's teacher soft label p_t and scaled soft label q of one image (C x H x W in [0, 1])."""
    device = next(distiller.teacher.parameters()).device
    z = distiller.teacher_view(distiller.teacher_forward(image[None].to(device)).logits)
    parts = distiller.soft_targets(z, torch.tensor([label], device=device))
    return parts["p_t"][0].double().cpu().numpy(), parts["q"][0].double().cpu().numpy()
