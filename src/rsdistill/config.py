"""Typed run configuration.

The defaults are the article's settings (SGD, momentum 0.9, lr 0.1, weight decay 5e-4, batch 64 /
test 128, 200 epochs, lr x0.1 at 60/120/160). A run's config is built in layers — defaults, then a
YAML file (``--config``), then the command's flags, then ``--set key=value`` overrides — and the
resolved result (milestones and warm-up filled in) is written to the run directory as
``config.yaml``, so every result can be traced to what produced it.

Each distillation method owns its typed config (next to the method, see ``distillers/``); the
``method`` section here is validated by the config class of the method it names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from .distillers import registry
from . import yamlfile
from .yamlfile import deep_merge  # noqa: F401 - also the merge of config layers elsewhere (api, suites)
from .errors import ConfigError
# The data section lives with the data (data/config.py); its names are re-exported here, beside
# the other sections, for the code and users that import them from rsdistill.config.
from .data.config import (DEFAULT_IMAGE_SIZE, NATIVE_IMAGE_SIZE, PRESETS, DataConfig, Preset,  # noqa: F401
                          split_data_argument)
from .section import Section, format_validation_error, suggest

# Fractions of the epochs at which the article's schedule (60/120/160 of 200) decays the lr.
MILESTONE_FRACTIONS = (0.3, 0.6, 0.8)
# The fields that name files or folders: stored absolute in a run's config.yaml.
PATH_FIELDS = ("data.root", "data.split_file", "teacher.checkpoint", "teacher.alone_run", "model.weights")


class ModelConfig(Section):
    name: str = "resnet18"
    # A local state-dict file, or weights by name: "imagenet" (torchvision's default weights of the
    # architecture, timm's default pretrained tag for timm:NAME) or "torchgeo:<Enum.MEMBER>" (e.g.
    # torchgeo:ResNet18_Weights.SENTINEL2_RGB_SECO), read from the torch hub / Hugging Face caches
    # and downloaded where the network allows. The input normalisation becomes the weights' own.
    weights: str | None = None

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from .models.registry import MODELS, is_timm_name

        if is_timm_name(name):  # timm:NAME: timm must be installed and know NAME
            from .models.timm_models import timm_name_problem

            problem = timm_name_problem(name)
            if problem:
                raise ValueError(problem)
            return name
        if name not in MODELS:
            raise ValueError(f"unknown model '{name}'{suggest(name, MODELS)}; see `rsdistill models`")
        return name


class TeacherConfig(Section):
    # A run directory or a checkpoint file; empty for CE training.
    checkpoint: str | None = None
    # The architecture the teacher must have (checked against the checkpoint); None: any.
    model: str | None = None
    # With data.view_bank: compute the teacher's logits on every view once, before training, for
    # methods whose teacher signal is its logits (the others run the teacher live). Kept in
    # memory, and under the disk cache with data.cache=disk.
    cache: bool = True
    # A run of the student trained alone on this run's split: with a validation split, its last
    # validation top-1 is shown beside the teacher's before epoch 1, and a teacher less than
    # ALONE_LEAD points ahead of it is warned about (it can cost the student accuracy).
    alone_run: str | None = None


class TrainConfig(Section):
    epochs: int = Field(200, ge=1)
    lr: float = Field(0.1, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(5e-4, ge=0.0)
    nesterov: bool = False
    batch_size: int = Field(64, ge=1)
    test_batch_size: int = Field(128, ge=1)
    # Evaluate the test (and validation) split every N epochs and always at the last epoch: a large
    # test split (AID 2:8: 8,000 images against 2,000 for training) otherwise costs more per epoch
    # than the training steps. Evaluation draws no random numbers, so the trained weights do not
    # depend on it; best.pt is then chosen among the evaluated epochs.
    eval_every: int = Field(1, ge=1)
    # None: 0.3/0.6/0.8 of the epochs (60/120/160 for 200), resolved when the run starts.
    milestones: list[int] | None = None
    lr_decay: float = Field(0.1, gt=0.0, le=1.0)
    # Linear lr warm-up over this many epochs, per iteration (0: none, the article's schedule).
    lr_warmup_epochs: float = Field(0.0, ge=0.0)
    device: str = "auto"
    # CPU threads of this run (torch's intra-op threads). 0: OMP_NUM_THREADS where set, else the
    # usable cores divided among the rsdistill runs working on this machine (engine/threads.py).
    threads: int = Field(0, ge=0)
    # Mixed precision: autocast in amp_dtype; "auto" is bfloat16 where the device supports it (the
    # CPU, recent GPUs), else float16, which alone takes a gradient scaler.
    amp: bool = False
    amp_dtype: Literal["auto", "bfloat16", "float16"] = "auto"
    channels_last: bool = False
    # torch.compile of the student and the teacher (CUDA only: ignored with a warning on the CPU,
    # where compiling costs more than it saves on these runs). Checkpoints keep the plain keys.
    compile: bool = False
    # The SGD implementation: "auto" is torch's choice (foreach on CUDA, a loop on the CPU);
    # "foreach" and "fused" update all parameters in a few kernels (the same update up to
    # rounding: faster, but not bit for bit the numbers of an "auto" run).
    optimizer_impl: Literal["auto", "foreach", "fused", "for_loop"] = "auto"
    deterministic: bool = False
    progress: bool = True

    @field_validator("device")
    @classmethod
    def _device_name(cls, device: str) -> str:
        if re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
            return device
        raise ValueError("is not a device: auto, cpu, cuda, cuda:N (N a number) or mps")

    @model_validator(mode="after")
    def _milestones_inside_the_run(self) -> TrainConfig:
        m = self.milestones
        if m is not None:
            if any(b <= a for a, b in zip(m, m[1:])) or any(not 0 < e < self.epochs for e in m):
                raise ValueError(
                    f"milestones must be increasing epochs between 1 and epochs-1={self.epochs - 1} "
                    f"(got {m})"
                )
        return self

    def resolved_milestones(self) -> list[int]:
        if self.milestones is not None:
            return list(self.milestones)
        scaled = sorted({max(1, round(f * self.epochs)) for f in MILESTONE_FRACTIONS})
        return [e for e in scaled if e < self.epochs]


class RunConfig(Section):
    # numpy's seeds stop at 2^32 - 1: a larger seed would be reduced silently.
    seed: int = Field(0, ge=0, le=2**32 - 1)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    teacher: TeacherConfig = TeacherConfig()
    method: SerializeAsAny[Any] = Field(None, validate_default=True)
    train: TrainConfig = TrainConfig()

    @field_validator("method", mode="before")
    @classmethod
    def _method_config(cls, value: Any) -> Any:
        if value is None:
            value = {"name": "ce"}
        if isinstance(value, registry.MethodConfig):
            return value
        if not isinstance(value, dict):
            raise ValueError("must be a mapping with a 'name' (e.g. {name: kd, T: 4})")
        return registry.method_config(dict(value))

    def resolve(self) -> RunConfig:
        """Fill what depends on other train fields (the milestones) so config.yaml is explicit. The
        method's run-dependent defaults (warm-up, per-pair weights) need the models and the data:
        ``Distiller.resolve_config`` fills them when the run starts."""
        cfg = self.model_copy(deep=True)
        cfg.train.milestones = cfg.train.resolved_milestones()
        return cfg

    def with_absolute_paths(self) -> RunConfig:
        """The paths made absolute (from the working folder), so that a run's config.yaml works
        from any working folder (eval, --resume, a student naming the run as its teacher)."""
        from .models.named_weights import is_named_weights

        cfg = self.model_copy(deep=True)
        for dotted in PATH_FIELDS:
            section, name = dotted.split(".")
            value = getattr(getattr(cfg, section), name)
            if value and not is_named_weights(value):  # imagenet, torchgeo:... are names, not paths
                setattr(getattr(cfg, section), name, os.path.abspath(os.path.expanduser(value)))
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------- building a config


def split_set_item(item: str, example: str = "train.epochs=2") -> tuple[list[str], Any]:
    """One ``--set key=value``: the dotted key's parts and the value parsed as YAML (None if empty)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value (e.g. {example})")
    key, raw = item.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise ConfigError(f"--set {item!r}: empty part in key {key!r}")
    try:
        return path, (yamlfile.loads(raw, f"--set {item!r}") if raw.strip() else None)
    except ConfigError as e:
        raise ConfigError(f"{e} (the value is read as YAML)") from None


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["train.epochs=2", "data.image_size=32"]`` -> nested dict; values are parsed as YAML."""
    tree: dict[str, Any] = {}
    for item in items:
        path, value = split_set_item(item)
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is a value, not a section")
        node[path[-1]] = value
    return tree


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's layer, on top of the file its ``extends:`` names (same folder; mappings
    merged, lists replaced)."""
    return yamlfile.load_extending(Path(path), _read_layer, "config file")


def _read_layer(p: Path) -> dict[str, Any]:
    data = yamlfile.load_file(p)  # one-line errors: missing, a folder, not UTF-8, line and column
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{p}': expected a mapping of sections at the top level")
    return data


def build_config(*layers: dict[str, Any], source: str = "config") -> RunConfig:
    """Merge layers (later wins) into a validated RunConfig; errors name the dotted field."""
    merged: dict[str, Any] = {}
    for layer in layers:
        method = layer.get("method")
        old_name = (merged.get("method") or {}).get("name")
        if isinstance(method, dict) and method.get("name") not in (None, old_name):
            # Switching method in a later layer must not inherit the earlier method's fields.
            merged.pop("method", None)
        merged = deep_merge(merged, layer)
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(f"{source}: {format_validation_error(e, RunConfig)}") from None


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The config a run folder was made with (its ``config.yaml``); one-line errors for a folder
    that is no run and for a damaged file."""
    from .runs.folder import CONFIG, MARKER, RunDir

    run = RunDir(run_dir)
    if not run.config.is_file():
        raise ConfigError(f"'{run_dir}' is not a run directory (no {CONFIG}) and cannot be resumed")
    if not run.is_run():
        raise ConfigError(f"'{run_dir}' is not an rsdistill run folder (no {MARKER}, and its {CONFIG} "
                          "is not one a run wrote): rsdistill never writes into a folder of yours")
    raw = yamlfile.load_file(run.config, "run config")  # one line with the line and column when damaged
    return build_config(raw, source=str(run.config))
