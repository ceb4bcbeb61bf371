"""The Python API: what each command does, as a function that returns a result object.

``rsdistill.train``, ``distill``, ``evaluate``, ``predict``, ``export``, ``suite`` and ``report``
run exactly what the commands of the same names run (the command line parses its flags and calls
them); errors are :class:`rsdistill.RsDistillError` with the one line the command prints.

A run's settings are given as a typed :class:`rsdistill.RunConfig`, a dict of the same sections,
or YAML files (a path, or a list of paths and dicts layered in order, later ones winning), and are
merged as the command merges ``--config`` files, its flags and ``--set`` overrides: config, then
the keyword arguments, then ``set``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from .config import RunConfig
from .errors import RsDistillError

__all__ = [
    "ConfigLike", "RunResult", "EvalResult", "PredictResult", "ExportResult", "SuiteResult",
    "build_run_config", "train", "distill", "evaluate", "predict", "export", "suite", "report",
]

log = logging.getLogger("rsdistill")

#: A run's settings: a typed config, a dict of its sections, a YAML file, or a list of these
#: (layered in order, later ones winning, as repeated ``--config`` files are).
ConfigLike = Union[RunConfig, Mapping[str, Any], str, Path, Sequence[Union[RunConfig, Mapping[str, Any], str, Path]]]

#: ``set``: dotted overrides, as ``--set`` takes them (``["train.epochs=2"]``) or as a dict
#: (``{"train.epochs": 2}``).
Overrides = Union[Sequence[str], Mapping[str, Any], None]


@dataclass(frozen=True)
class RunResult:
    """A finished (or resumed to its end) training or distillation run."""

    run_dir: Path
    metrics: dict[str, Any]  # metrics.json: top1, top5, best_top1, best_epoch, epochs, seconds...
    config: RunConfig  # the resolved config.yaml of the run

    @property
    def top1(self) -> float:
        """Last-epoch test top-1 (%)."""
        return float(self.metrics["top1"])

    @property
    def top5(self) -> float:
        return float(self.metrics["top5"])

    @property
    def checkpoint(self) -> Path:
        """The last epoch's checkpoint (what ``eval RUN`` and ``export RUN`` use)."""
        return self.run_dir / "checkpoints" / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "best.pt"


@dataclass(frozen=True)
class EvalResult:
    """A stored model's accuracy on one part of a split (what eval.json holds)."""

    metrics: dict[str, Any]  # top1, top5, per_class, images, part, checkpoint, model...
    out: Path | None = None  # the folder with eval.json, per-class CSV and confusion matrix

    @property
    def top1(self) -> float:
        return float(self.metrics["top1"])

    @property
    def top5(self) -> float:
        return float(self.metrics["top5"])

    @property
    def per_class(self) -> dict[str, float]:
        return dict(self.metrics["per_class"])


@dataclass(frozen=True)
class PredictResult:
    """Every input's top-k classes, in order; inputs that failed carry their error."""

    predictions: list[Any]  # rsdistill.deploy.predict.Prediction: file, top [(class, prob)], error
    model: str  # the file the predictions came from
    out: Path | None = None

    @property
    def failed(self) -> list[Any]:
        return [p for p in self.predictions if p.error]


@dataclass(frozen=True)
class ExportResult:
    """An exported model file and its metadata (the JSON written beside it)."""

    path: Path
    metadata: dict[str, Any]


@dataclass(frozen=True)
class SuiteResult:
    """A suite's cells (finished and failed, with why) and its report page."""

    out: Path
    finished: list[str]
    failed: dict[str, str] = field(default_factory=dict)
    report: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def results(self) -> Path:
        """results.json: every number of the report."""
        return self.out / "results.json"


# ----------------------------------------------------------------------------- configuration
def _layers(config: ConfigLike | None) -> list[dict[str, Any]]:
    from .config import load_yaml

    if config is None:
        return []
    items = [config] if isinstance(config, (RunConfig, Mapping, str, Path)) else list(config)
    layers = []
    for item in items:
        if isinstance(item, RunConfig):
            layers.append(item.model_dump(exclude_unset=True))  # what was set, as a YAML file says it
        elif isinstance(item, Mapping):
            layers.append(dict(item))
        elif isinstance(item, (str, Path)):
            layers.append(load_yaml(item))
        else:
            raise RsDistillError(f"config: expected a RunConfig, a dict or a YAML file, not {type(item).__name__}")
    return layers


def _overrides(set: Overrides) -> dict[str, Any]:
    from .config import parse_set

    if not set:
        return {}
    if isinstance(set, Mapping):
        tree: dict[str, Any] = {}
        for key, value in set.items():
            *parents, last = str(key).split(".")
            node = tree
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        return tree
    if isinstance(set, str):
        set = [set]
    return parse_set(list(set))


def _source(config: ConfigLike | None) -> str:
    items = [] if config is None else [config] if isinstance(config, (RunConfig, Mapping, str, Path)) else list(config)
    files = [str(i) for i in items if isinstance(i, (str, Path))]
    return ", ".join(files) or ("config" if items else "command line")


def split_data_argument(data: str, preset: str | None) -> tuple[str | None, str]:
    """``LAYOUT:DIR`` -> (LAYOUT, DIR); a plain DIR -> (None, DIR). A layout that contradicts
    ``preset`` is an error."""
    from .config import split_data_argument as split

    layout, root = split(data)
    if layout and preset and layout != preset:
        raise RsDistillError(f"--data {data} names layout '{layout}' but --preset is '{preset}'")
    return layout, root


def build_run_config(command: str, config: ConfigLike | None = None, *, data: str | Path | None = None,
                     preset: str | None = None, split_file: str | Path | None = None, seed: int | None = None,
                     deterministic: bool = False, device: str | None = None, threads: int | None = None,
                     model: str | None = None, teacher: str | Path | None = None, method: str | None = None,
                     set: Overrides = None) -> RunConfig:
    """The validated config of a ``train`` or ``distill`` run, merged as the command merges it:
    ``config`` layers, then the keyword arguments (``model`` is the student for ``distill``), then
    ``set``. ``data`` is a folder or ``LAYOUT:DIR``."""
    from .config import build_config, deep_merge

    if command not in ("train", "distill"):
        raise ValueError(f"command must be 'train' or 'distill', not {command!r}")
    file_layer: dict[str, Any] = {}
    for layer in _layers(config):
        file_layer = deep_merge(file_layer, layer)
    flags: dict[str, Any] = {}
    data_section: dict[str, Any] = {}
    if data:
        data_section["preset"], data_section["root"] = split_data_argument(str(data), preset)
    if preset:
        data_section["preset"] = preset
    if data_section.get("preset") is None:
        data_section.pop("preset", None)
    if split_file:
        data_section["split_file"] = str(split_file)
    if data_section:
        flags["data"] = data_section
    if seed is not None:
        flags["seed"] = seed
    train_section: dict[str, Any] = {}
    if deterministic:
        train_section["deterministic"] = True
    if device:
        train_section["device"] = device
    if threads is not None:
        train_section["threads"] = threads
    if train_section:
        flags["train"] = train_section
    if command == "train":
        if model:
            flags["model"] = {"name": model}
        flags["method"] = {"name": "ce"}
    else:
        if model:
            flags["model"] = {"name": model}
        if teacher:
            flags["teacher"] = {"checkpoint": str(teacher)}
        if method:
            flags["method"] = {"name": method}
        elif "method" not in file_layer:
            flags["method"] = {"name": "kd"}
    cfg = build_config(file_layer, flags, _overrides(set), source=_source(config))
    if command == "train" and cfg.method.name != "ce":
        raise RsDistillError("train: trains with cross-entropy only; use `rsdistill distill --method ...`")
    if command == "distill" and cfg.method.name == "ce":
        raise RsDistillError("distill: method 'ce' has no teacher; use `rsdistill train`")
    return cfg


def download_dataset(cfg: RunConfig) -> None:
    """Fetch the run's dataset before anything else (CIFAR-100, torchgeo's datasets; needs internet)."""
    if cfg.data.preset.startswith("torchgeo:"):
        from .data.torchgeo_sets import download

        download(cfg.data.preset, cfg.data.root)
        return
    if cfg.data.preset != "cifar100":
        raise RsDistillError(f"--download: only CIFAR-100 (--data cifar100:DIR) and torchgeo's datasets "
                             f"(--data torchgeo:NAME:DIR) can be downloaded, not '{cfg.data.preset}'")
    from .data.cifar import download_cifar100

    download_cifar100(cfg.data.root)


# ----------------------------------------------------------------------------- runs
def _run(command: str, config: ConfigLike | None, out: str | Path | None, resume: str | Path | None,
         overwrite: bool, download: bool, data: str | Path | None, **flags: Any) -> RunResult:
    from .experiments.single import load_run_config, run

    if resume and overwrite:
        raise RsDistillError("--overwrite starts a run over; it does not go with --resume")
    if resume:
        # data with resume: the run's dataset has moved there (its fingerprint is checked).
        data_root = split_data_argument(str(data), None)[1] if data else None
        metrics = run(None, resume, resume=True, data_root=data_root, changes=resume_changes(config, **flags))
        run_dir = Path(resume)
    else:
        if not out:
            raise RsDistillError(f"{command}: --out RUN is required")
        cfg = build_run_config(command, config, data=data, **flags)
        if download:
            download_dataset(cfg)
        metrics = run(cfg, out, overwrite=overwrite)
        run_dir = Path(out)
    return RunResult(run_dir, metrics, load_run_config(run_dir))


def resume_changes(config: ConfigLike | None = None, *, set: Overrides = None, preset: str | None = None,
                   seed: int | None = None, split_file: str | Path | None = None, device: str | None = None,
                   threads: int | None = None, deterministic: bool = False, model: str | None = None,
                   teacher: str | Path | None = None, method: str | None = None) -> dict[str, Any]:
    """What a resume asks for beyond the run's own settings, as one config layer (``run`` refuses
    the fields a resume may not change and applies the others: threads, device)."""
    from .config import deep_merge

    layer: dict[str, Any] = {}
    for item in _layers(config):
        layer = deep_merge(layer, item)
    options = {("seed",): seed, ("data", "preset"): preset, ("data", "split_file"): split_file,
               ("train", "device"): device, ("train", "threads"): threads,
               ("train", "deterministic"): True if deterministic else None, ("model", "name"): model,
               ("teacher", "checkpoint"): str(teacher) if teacher is not None else None, ("method", "name"): method}
    flags: dict[str, Any] = {}
    for path, value in options.items():
        if value is not None:
            node = flags
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
    return deep_merge(deep_merge(layer, flags), _overrides(set))


def train(config: ConfigLike | None = None, *, out: str | Path | None = None, data: str | Path | None = None,
          model: str | None = None, preset: str | None = None, seed: int | None = None,
          set: Overrides = None, split_file: str | Path | None = None, device: str | None = None,
          threads: int | None = None, deterministic: bool = False, resume: str | Path | None = None,
          overwrite: bool = False, download: bool = False) -> RunResult:
    """Train a model with cross-entropy (a teacher, or a student alone) into the new run folder
    ``out``; ``rsdistill train``. With ``resume=RUN``, continue that interrupted run instead (its
    own config; ``data`` then gives its dataset's new place)."""
    return _run("train", config, out, resume, overwrite, download, data, model=model, preset=preset, seed=seed,
                set=set, split_file=split_file, device=device, threads=threads, deterministic=deterministic)


def distill(config: ConfigLike | None = None, *, out: str | Path | None = None, data: str | Path | None = None,
            teacher: str | Path | None = None, student: str | None = None, method: str | None = None,
            preset: str | None = None, seed: int | None = None, set: Overrides = None,
            split_file: str | Path | None = None, device: str | None = None, threads: int | None = None,
            deterministic: bool = False, resume: str | Path | None = None, overwrite: bool = False,
            download: bool = False) -> RunResult:
    """Distil ``teacher`` (a run folder or checkpoint) into a ``student`` model with ``method``
    (default ``kd``; see ``rsdistill.method_names()``) into the new run folder ``out``; ``rsdistill distill``."""
    return _run("distill", config, out, resume, overwrite, download, data, model=student, teacher=teacher,
                method=method, preset=preset, seed=seed, set=set, split_file=split_file, device=device,
                threads=threads, deterministic=deterministic)


def evaluate(run: str | Path, *, data: str | Path | None = None, preset: str | None = None,
             split_file: str | Path | None = None, part: str = "test", image_size: int | None = None,
             device: str = "auto", out: str | Path | None = None) -> EvalResult:
    """Top-1/top-5 and per-class accuracy of a run's model (a run folder or a checkpoint) on a part
    of its split (``test``, ``val``, ``train``); ``rsdistill eval``. ``data`` (a folder or
    ``LAYOUT:DIR``) defaults to the run's dataset; ``out`` also writes eval.json and per-class files."""
    from .experiments.evaluate import evaluate as evaluate_run

    layout, data_root = split_data_argument(str(data), preset) if data else (None, None)
    result = evaluate_run(run, data_root, preset=preset or layout, split_file=str(split_file) if split_file else None,
                          part=part, image_size=image_size, device=device, out=out)
    return EvalResult(result, Path(out) if out is not None else None)


def predict(model: str | Path, images: str | Path | Sequence[str | Path], *, top_k: int = 5, batch: int = 32,
            device: str = "cpu", bands: Sequence[int] | None = None, tiff_stretch: str | None = None,
            out: str | Path | None = None, progress: bool = False) -> PredictResult:
    """Top-k classes of images (files, folders searched recursively, globs) with a run folder, a
    checkpoint or an exported model (.onnx, .safetensors, TorchScript); ``rsdistill predict``.
    ``out`` (FILE.csv or FILE.json) also writes the predictions."""
    from .deploy.predict import check_output, write_predictions
    from .deploy.predict import predict as predict_images

    inputs = [str(images)] if isinstance(images, (str, Path)) else [str(i) for i in images]
    if out:
        check_output(out)
    predictor, predictions = predict_images(model, inputs, top_k, batch, device,
                                            list(bands) if bands is not None else None, tiff_stretch, progress=progress)
    if out:
        write_predictions(out, predictions, min(top_k, len(predictor.info.classes)), predictor.file)
    return PredictResult(predictions, str(predictor.file), Path(out) if out else None)


def export(run: str | Path, out: str | Path, *, format: str | None = None, image_size: int | None = None,
           quantize: str | None = None, calibration: str | Path | None = None,
           data: str | Path | None = None) -> ExportResult:
    """Export a run's model (a run folder or checkpoint) without its training-time modules to
    ``out``: ONNX (.onnx), TorchScript (.pt) or safetensors, the format following the suffix unless
    ``format`` says; ``quantize="int8"`` writes an int8 ONNX (static with ``calibration`` images)
    and keeps the float model beside it; ``rsdistill export``."""
    if quantize is not None:
        if quantize != "int8":
            raise RsDistillError(f"export: --quantize takes int8 (got {quantize})")
        if format not in (None, "onnx"):
            raise RsDistillError(f"export: --quantize int8 writes ONNX, not {format}")
        from .deploy.quantize import export_int8

        meta = export_int8(run, out, image_size, calibration, data)
    else:
        if calibration or data:
            raise RsDistillError("export: --calibration and --data go with --quantize int8")
        from .deploy.export import export as export_model

        meta = export_model(run, out, format, image_size)
    return ExportResult(Path(out), meta)


def suite(suite_file: str | Path, out: str | Path, *, jobs: int = 1, set: Sequence[str] | Mapping[str, Any] = (),
          nproc_per_cell: int = 1, verbose: bool = True, command: list[str] | None = None) -> SuiteResult:
    """Run a suite file's grid of methods x splits x seeds into the folder ``out`` (each cell its
    own process; finished cells of an earlier call are kept) and write its report; ``rsdistill
    suite``. ``set`` overrides fields of the suite file: ``["seeds=[0]"]`` or ``{"seeds": [0]}``."""
    from .experiments.suite.scheduler import run_suite

    set = suite_overrides(set)
    if command is None:
        command = ["rsdistill", "suite", str(suite_file), "--out", str(out), "--jobs", str(jobs)]
        if nproc_per_cell != 1:
            command += ["--nproc-per-cell", str(nproc_per_cell)]
        command += ["--set", *set] if set else []
    outcome = run_suite(suite_file, out, jobs=jobs, overrides=list(set), command=command, verbose=verbose,
                        nproc_per_cell=nproc_per_cell)
    return SuiteResult(Path(out), list(outcome.finished), dict(outcome.failed), outcome.report)


def suite_overrides(set: Sequence[str] | Mapping[str, Any]) -> list[str]:
    """``{"seeds": [0]}`` -> ``["seeds=[0]"]``: a mapping's values written so that YAML reads them
    back as they are (JSON is YAML: "8:2" stays a string); a list is taken as it is."""
    import json

    if isinstance(set, Mapping):
        return [f"{key}={json.dumps(value)}" for key, value in set.items()]
    return [set] if isinstance(set, str) else list(set)


def report(folder: str | Path, *, epoch: str = "last") -> Path:
    """Write a suite folder's tables, figures, results.json and report.html (``epoch``: the last
    epoch's accuracy or the ``best`` one's); returns report.html; ``rsdistill report``."""
    from .experiments.suite.report import write_report

    if epoch not in ("last", "best"):
        raise RsDistillError(f"report: epoch is 'last' or 'best' (got {epoch!r})")
    return write_report(Path(folder), epoch)
