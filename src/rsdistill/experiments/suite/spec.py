"""The suite file: what a grid of runs names, as a typed schema whose errors name the field.

A suite names the datasets (a folder with its preset, or synthetic scenes to generate), the splits
and seeds, the teacher and the student, the methods (each with optional overrides), the sweeps (a
field and its values) and the shared settings (protocol config files and overrides); see
``configs/suites/`` and :mod:`.suite_plan`, which expands it into cells.

Config file paths are relative to the suite file. ``set`` mappings take run-config fields, dotted
(``train.epochs: 2``) or nested (``train: {epochs: 2}``); the fields the suite itself gives (the seed,
the dataset's root, preset and split, the models, the method, the teacher) are refused there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from ... import yamlfile
from ...config import Preset, build_config, deep_merge, split_set_item
from ...errors import ConfigError
from ...section import Section, format_validation_error, suggest

# Run-config fields that the suite's own structure sets in every cell.
STRUCTURAL = {
    "seed": "seeds",
    "data.root": "datasets.<name>.root",
    "data.preset": "datasets.<name>.preset",
    "data.train_ratio": "splits",
    "data.val_ratio": "splits",
    "data.split_file": "the teacher (students use its split)",
    "model.name": "teacher.model / student.model",
    "method.name": "methods[].method",
    "teacher.checkpoint": "the teacher (trained by the suite, or teacher.run)",
    "teacher.model": "teacher.model",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")
SPLIT = re.compile(r"^(\d+):(\d+)(?::(\d+))?$")
# The dataset's own train/test split (CIFAR-100's train and test files, ImageNet's train/ and val/),
# the one the papers report: the only split of the presets that have one.
PUBLISHED = "published"
PUBLISHED_PRESETS = ("cifar100", "imagenet")
# Datasets with a published split that may also be split by ratios (data.published_split).
BOTH_SPLITS_PRESETS = ("torchgeo:ucmerced", "torchgeo:eurosat", "torchgeo:eurosat_rgb", "torchgeo:resisc45")


def nested(mapping: dict[str, Any]) -> dict[str, Any]:
    """``{"train.epochs": 2, "data": {"rs_aug": True}}`` -> ``{"train": {"epochs": 2}, "data": {...}}``."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            value = nested(value)
        for part in reversed(str(key).split(".")):
            value = {part: value}
        out = deep_merge(out, value)
    return out


def _dotted(tree: dict[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for k, v in tree.items():
        keys += _dotted(v, f"{prefix}{k}.") if isinstance(v, dict) and v else [f"{prefix}{k}"]
    return keys


def _check_overrides(value: dict[str, Any]) -> dict[str, Any]:
    tree = nested(value)
    for key in _dotted(tree):
        if key in STRUCTURAL:
            raise ValueError(f"'{key}' is given by the suite ({STRUCTURAL[key]}), not by set")
    return tree


def split_ratios(split: str) -> tuple[float, float] | None:
    """``"8:2"`` -> (0.8, 0.0); ``"6:2:2"`` (train:val:test) -> (0.6, 0.2); ``"published"`` -> None
    (the dataset's own split; its validation share, if any, comes from data.val_ratio)."""
    if split == PUBLISHED:
        return None
    m = SPLIT.match(split)
    parts = [int(p) for p in m.groups() if p is not None]
    total = sum(parts)
    return parts[0] / total, (parts[1] / total if len(parts) == 3 else 0.0)


def split_slug(split: str) -> str:
    return split.replace(":", "_")


class WithOverrides(Section):
    """A part of the suite with its own run-config overrides (``set``)."""

    overrides: dict[str, Any] = Field(default_factory=dict, alias="set")

    @field_validator("overrides")
    @classmethod
    def _overrides_tree(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_overrides(value)


class SynthSpec(Section):
    """Synthetic scenes generated into ``OUT/data/<dataset>`` (see ``rsdistill synth``)."""

    classes: int = Field(12, ge=2)
    per_class: int = Field(100, ge=1)
    size: int = Field(64, ge=16, le=1024)
    seed: int = Field(0, ge=0)
    bands: int = Field(3, ge=3, le=64, description="3: RGB PNGs; N > 3: N-band TIFFs (rsdistill synth --bands)")
    mix: float = Field(0.0, ge=0.0, le=1.0, description="share of mixed scenes (rsdistill synth --mix)")


class DatasetSpec(WithOverrides):
    # A folder of class sub-folders; $VARS and ~ are expanded, a relative path is taken from the
    # suite file's folder.
    root: str | None = None
    preset: Preset = "folder"
    synth: SynthSpec | None = None
    config: list[str] = []

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if (self.root is None) == (self.synth is None):
            raise ValueError("give either root (a dataset folder) or synth (synthetic scenes to generate)")
        return self


class RoleSpec(WithOverrides):
    """The student (or, see :class:`TeacherSpec`, the teacher): its model and its own settings."""

    model: str
    config: list[str] = []

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str | None) -> str | None:
        from ...models.registry import MODELS
        from ...models.timm_models import is_timm_name

        if name is not None and name not in MODELS and not is_timm_name(name):
            raise ValueError(f"unknown model '{name}'{suggest(name, MODELS)}; see `rsdistill models` "
                             "(or timm:NAME for a timm model)")
        return name


class TeacherSpec(RoleSpec):
    model: str | None = None
    # A finished teacher run to reuse instead of training one; may name {dataset}, {split} (as
    # 8_2) and {seed}. Relative paths are taken from the suite file's folder.
    run: str | None = None
    # One teacher per (dataset, split) trained at this seed, whose split every seed's students
    # use; None: one teacher per (dataset, split, seed).
    seed: int | None = Field(None, ge=0)
    # A local weights file for ``model`` (e.g. torchvision's resnet34-b627a593.pth for ImageNet, or
    # a timm checkpoint): the teacher is not trained, its classes are taken to be the data's in
    # order. Relative paths are taken from the suite file's folder.
    weights: str | None = None

    @field_validator("run")
    @classmethod
    def _placeholders(cls, run: str | None) -> str | None:
        try:
            run is None or run.format(dataset="d", split="s", seed=0)
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"'{run}' may name {{dataset}}, {{split}} and {{seed}} only") from None
        return run

    @model_validator(mode="after")
    def _model_or_run(self) -> TeacherSpec:
        if self.model is None and self.run is None:
            raise ValueError("give the teacher's model (trained by the suite) or run (a finished teacher run)")
        if self.run is not None and (self.config or self.overrides):
            raise ValueError("a reused teacher run (teacher.run) takes no config or set")
        if self.weights is not None:
            if self.run is not None or self.model is None:
                raise ValueError("teacher.weights is a weights file for teacher.model: give model and weights, "
                                 "not run")
            if self.config or self.overrides or self.seed is not None:
                raise ValueError("a teacher from a weights file (teacher.weights) is not trained: it takes no "
                                 "config, set or seed")
        return self


class MethodSpec(WithOverrides):
    """One row of the tables: a method (its name in ``rsdistill methods``; ``ce``: the student
    alone) with optional overrides. ``name`` names the row and its folder."""

    name: str
    method: str | None = None
    label: str | None = None
    # The method's own config files (e.g. ../recipes/cifar100/dkd.yaml: the paper's settings for the
    # recipe), layered after the student's; relative to the suite file.
    config: list[str] = []
    # Only at these of the suite's seeds (e.g. the costly baselines at one seed; a row given none
    # of them, after --set seeds=..., is left out); default: all.
    seeds: list[int] | None = None

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if not NAME.match(name) or name == "teacher":
            raise ValueError(f"'{name}' cannot name a row: letters, digits and _ . + = - only, not 'teacher'")
        return name

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str | None) -> str | None:
        if method is not None:
            _check_method(method)
        return method

    @model_validator(mode="after")
    def _method_from_name(self) -> MethodSpec:
        if self.method is None:
            _check_method(self.name)
            self.method = self.name
        return self

    @property
    def row_label(self) -> str:
        return self.label or self.name

    def runs_at(self, seeds: list[int]) -> list[int]:
        """The suite's ``seeds`` this row runs at."""
        return [k for k in seeds if self.seeds is None or k in self.seeds]


def _check_method(name: str) -> None:
    from ...distillers import registry

    if name == "ce" or name in registry.ALIASES:
        return
    try:
        registry.get(name)
    except ConfigError as e:
        raise ValueError(str(e).removeprefix("method.name: ")) from None


class SweepSpec(WithOverrides):
    """One row per value of ``field`` (a run-config field, e.g. ``method.gamma``) for ``method``:
    the name of a ``methods`` entry (its overrides apply) or a method's name."""

    method: str
    field: str
    values: list[Any] = Field(min_length=1)
    name: str | None = None  # the rows' name before "=value"; default <method>.<field's last part>

    @field_validator("field")
    @classmethod
    def _not_structural(cls, field: str) -> str:
        if field in STRUCTURAL:
            raise ValueError(f"'{field}' is given by the suite ({STRUCTURAL[field]}); it cannot be swept")
        if "." not in field and field != "seed":
            raise ValueError(f"'{field}' is not a dotted run-config field (e.g. method.gamma, train.lr)")
        return field

    @property
    def prefix(self) -> str:
        return self.name or f"{self.method}.{self.field.rsplit('.', 1)[-1]}"


class SuiteSpec(WithOverrides):
    name: str = "suite"
    description: str = ""
    datasets: dict[str, DatasetSpec] = Field(min_length=1)
    splits: list[str] = Field(["8:2"], min_length=1)
    seeds: list[int] = Field([0], min_length=1)
    config: list[str] = []
    teacher: TeacherSpec
    student: RoleSpec
    methods: list[MethodSpec] = Field(min_length=1)
    sweeps: list[SweepSpec] = []

    @field_validator("datasets")
    @classmethod
    def _dataset_names(cls, datasets: dict[str, DatasetSpec]) -> dict[str, DatasetSpec]:
        for name in datasets:
            if not NAME.match(name):
                raise ValueError(f"'{name}' cannot name a dataset: letters, digits and _ . + = - only")
        return datasets

    @field_validator("splits")
    @classmethod
    def _split_format(cls, splits: list[str]) -> list[str]:
        for s in splits:
            if s == PUBLISHED:
                continue
            m = SPLIT.match(str(s))
            if not m or 0 in [int(p) for p in m.groups() if p is not None]:
                raise ValueError(f"'{s}' is not a split: train:test (e.g. '8:2'), train:val:test (e.g. '6:2:2') "
                                 f"or '{PUBLISHED}' (the dataset's own split: CIFAR-100, ImageNet)")
        if len(set(splits)) != len(splits):
            raise ValueError(f"a split is listed twice ({splits})")
        return splits

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError(f"seeds must be distinct and >= 0 (got {seeds})")
        return seeds

    @field_validator("methods", mode="before")
    @classmethod
    def _method_shorthand(cls, methods: Any) -> Any:
        # "- kd" is "- {name: kd}"
        if isinstance(methods, list):
            return [{"name": m} if isinstance(m, str) else m for m in methods]
        return methods

    @model_validator(mode="after")
    def _splits_fit_datasets(self) -> SuiteSpec:
        # A ratio split of CIFAR-100 or ImageNet would be silently ignored (their split is fixed),
        # and a folder has no published split to use.
        for name, ds in self.datasets.items():
            published = ds.preset in PUBLISHED_PRESETS
            if ds.preset in BOTH_SPLITS_PRESETS:  # torchgeo's: published, or ratios of all the images
                continue
            wrong = [s for s in self.splits if (s == PUBLISHED) != published]
            if wrong:
                raise ValueError(
                    f"datasets.{name} (preset {ds.preset}) " + (
                        f"has its own train/test split: use splits: [{PUBLISHED}], not {wrong[0]}" if published
                        else f"has no published split: give train:test ratios (e.g. '8:2'), not '{PUBLISHED}'"))
        return self

    @model_validator(mode="after")
    def _unique_rows(self) -> SuiteSpec:
        rows = [m.name for m in self.methods] + [row for s in self.sweeps for row, _ in sweep_rows(s)]
        twice = sorted({r for r in rows if rows.count(r) > 1})
        if twice:
            raise ValueError(f"row name(s) {', '.join(twice)} used twice (give methods or sweeps distinct names)")
        names = {m.name for m in self.methods}
        for s in self.sweeps:
            if s.method not in names:
                _check_method(s.method)
        return self


def value_text(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else f"{v:g}" if isinstance(v, float) else str(v)


def sweep_rows(s: SweepSpec) -> list[tuple[str, Any]]:
    """(row name, value) for each value of the sweep."""
    rows = []
    for v in s.values:
        row = f"{s.prefix}={value_text(v)}"
        if not NAME.match(row):
            raise ValueError(f"value {v!r} of sweep {s.prefix} cannot name a folder")
        rows.append((row, v))
    return rows


# --------------------------------------------------------------------------- loading


class SuiteFile:
    """A validated suite: the spec, the file it came from (relative paths start at its folder)
    and the raw mapping after ``--set`` (what ``suite.yaml`` in the output folder records)."""

    def __init__(self, spec: SuiteSpec, path: Path, raw: dict[str, Any]):
        self.spec, self.raw = spec, raw
        self.shown = str(path)  # as the user gave it: errors name the file so
        self.path = path.resolve()

    @property
    def folder(self) -> Path:
        return self.path.parent

    def resolve_path(self, value: str, field: str) -> Path:
        """``value`` with $VARS and ~ expanded, relative to the suite file's folder; an unset
        variable is an error naming the field."""
        expanded = os.path.expanduser(os.path.expandvars(value))
        missing = re.findall(r"\$\{?(\w+)\}?", expanded)
        if missing:
            raise ConfigError(f"{self.shown}: {field}: environment variable {missing[0]} is not set "
                              f"(set it, or give the path with --set {field}=PATH)")
        p = Path(expanded)
        return (p if p.is_absolute() else self.folder / p).resolve()

    def config_files(self, files: list[str], field: str) -> list[Path]:
        paths = [self.resolve_path(f, f"{field}.{i}") for i, f in enumerate(files)]
        for i, p in enumerate(paths):
            if not p.is_file():
                raise ConfigError(f"{self.shown}: {field}.{i}: config file '{p}' does not exist")
        return paths


def load_suite(path: str | Path, overrides: list[str] = ()) -> SuiteFile:
    """Read and validate a suite file; ``overrides`` are ``--set key=value`` items on the suite's
    own fields (e.g. ``seeds=[0]``, ``set.train.epochs=2``, ``datasets.aid.root=/data/AID``)."""
    path = Path(path)
    raw = read_with_bases(path)
    apply_overrides(raw, list(overrides))
    try:
        spec = SuiteSpec.model_validate(raw)
    except ValidationError as e:
        message = format_validation_error(e, SuiteSpec)
        first = e.errors()[0]
        if first["type"] == "extra_forbidden" and len(first["loc"]) == 1 and first["loc"][0] in (
                "data", "model", "train", "method", "teacher", "seed"):
            message += "; run-config fields for every cell go under set (e.g. --set set.train.epochs=2)"
        raise ConfigError(f"{path}: {message}") from None
    suite = SuiteFile(spec, path, raw)
    _check_override_fields(suite)
    return suite


def read_with_bases(path: Path) -> dict[str, Any]:
    """A suite file's mapping, on top of the file its ``extends:`` names (yamlfile.load_extending:
    mappings merged, lists replaced; a base in the same folder, so that relative paths in either
    read from there; a fragment that is no suite of its own starts with ``_``: ``_cpu_protocol.yaml``)."""
    return yamlfile.load_extending(path, _read_mapping, "suite file")


def _read_mapping(path: Path) -> dict[str, Any]:
    # one-line errors: missing, not UTF-8, a key given twice, the line and column of bad YAML
    raw = yamlfile.load_file(path, "suite file")
    if not isinstance(raw, dict):
        raise ConfigError(f"suite file '{path}': expected a mapping (datasets, splits, seeds, teacher, "
                          "student, methods, ...) at the top level")
    return raw


def apply_overrides(raw: dict[str, Any], items: list[str]) -> None:
    """``--set key=value`` on the suite file's fields, in place; a number in the key indexes a
    list (``methods.2.set.method.T=2``); values are parsed as YAML."""
    for item in items:
        parts, value = split_set_item(item, example="seeds=[0,1]")
        node: Any = raw
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"--set {item!r}: '{'.'.join(parts[:i])}' has {len(node)} item(s); "
                                      f"'{part}' is not one of their indices")
                index = int(part)
                if last:
                    node[index] = value
                elif isinstance(node[index], str) and parts[i - 1] == "methods":
                    node[index] = {"name": node[index]}  # "- kd" is "- {name: kd}"
                node = node[index]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise ConfigError(f"--set {item!r}: '{'.'.join(parts[:i])}' is a value, not a section")


def _check_override_fields(suite: SuiteFile) -> None:
    """Each ``set`` validated on its own, so that a wrong field is named where it was written
    (``methods.2.set``), not only in the cell that merges it."""
    s = suite.spec
    checks: list[tuple[str, dict[str, Any], str]] = [("set", s.overrides, "ce")]
    checks += [(f"datasets.{n}.set", d.overrides, "ce") for n, d in s.datasets.items()]
    checks += [("teacher.set", s.teacher.overrides, "ce"), ("student.set", s.student.overrides, "ce")]
    methods = {m.name: m.method for m in s.methods}
    checks += [(f"methods.{i}.set", m.overrides, m.method) for i, m in enumerate(s.methods)]
    for i, m in enumerate(s.methods):
        suite.config_files(m.config, f"methods.{i}.config")  # a missing file named where it is written
    for i, w in enumerate(s.sweeps):
        method = methods.get(w.method, w.method)
        checks.append((f"sweeps.{i}.set", w.overrides, method))
        checks += [(f"sweeps.{i}.values.{j}", nested({w.field: v}), method) for j, v in enumerate(w.values)]
    for field, tree, method in checks:
        if not tree:
            continue
        if method == "ce":  # method fields of shared settings are checked in each cell
            tree = {k: v for k, v in tree.items() if k != "method"}
        try:
            build_config({"method": {"name": method}}, tree, source="")
        except ConfigError as e:
            raise ConfigError(f"{suite.shown}: {field}: {str(e).removeprefix(': ')}") from None
