"""The typed config: the article's defaults, layering, --set parsing and errors that name fields."""

from __future__ import annotations

import pytest
import yaml

from rsdistill.config import RunConfig, build_config, load_yaml, parse_set
from rsdistill.distillers import registry
from rsdistill.distillers.settings import RunContext
from rsdistill.errors import ConfigError


def test_defaults_are_the_articles_settings():
    cfg = RunConfig().resolve()
    t = cfg.train
    assert (t.lr, t.momentum, t.weight_decay, t.batch_size, t.test_batch_size, t.epochs) == (
        0.1, 0.9, 5e-4, 64, 128, 200)
    assert t.milestones == [60, 120, 160] and t.lr_decay == 0.1
    kd = resolved_method(build_config({"method": {"name": "kd"}}))
    assert (kd.T, kd.ce_weight, kd.kd_weight, kd.warmup_epochs) == (4.0, 1.0, 4.0, 20)


def resolved_method(cfg: RunConfig):
    """The method section as a run resolves it (ResNet34 -> ResNet18, 30 classes)."""
    ctx = RunContext("resnet18", "resnet34", 30, epochs=cfg.train.epochs)
    return registry.get(cfg.method.name).resolve_config(cfg.method, ctx)


def test_milestones_and_warmup_scale_with_the_epochs_unless_given():
    cfg = build_config({"train": {"epochs": 50}, "method": {"name": "kd"}})
    assert cfg.resolve().train.milestones == [15, 30, 40]
    assert resolved_method(cfg).warmup_epochs == 5
    assert resolved_method(build_config({"train": {"epochs": 50}, "method": {"name": "kd", "warmup_epochs": 2}})
                           ).warmup_epochs == 2
    given = build_config({"train": {"epochs": 50, "milestones": [10, 20]}}).resolve()
    assert given.train.milestones == [10, 20]


@pytest.mark.parametrize("name", registry.names())
def test_every_method_resolves_its_warmup_from_the_epochs_logit_methods_to_a_tenth(name):
    warmup = resolved_method(build_config({"train": {"epochs": 50}, "method": {"name": name}})).warmup_epochs
    logit_methods = {"kd", "dkd", "isdm", "mlld", "sdd", "reviewkd"}
    assert warmup == (5 if name in logit_methods else 0)


def test_set_parses_dotted_keys_and_yaml_values():
    tree = parse_set(["train.epochs=3", "data.image_size=32", "data.train_ratio=0.5",
                      "train.milestones=[1, 2]", "train.amp=true", "method.name=kd"])
    assert tree == {"train": {"epochs": 3, "milestones": [1, 2], "amp": True},
                    "data": {"image_size": 32, "train_ratio": 0.5}, "method": {"name": "kd"}}
    cfg = build_config(tree)
    assert cfg.train.epochs == 3 and cfg.data.train_ratio == 0.5


@pytest.mark.parametrize("item", ["train.epochs", "=3", "train..epochs=2"])
def test_malformed_set_items_are_rejected(item):
    with pytest.raises(ConfigError, match="--set"):
        parse_set([item])


def test_unknown_field_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown field 'train\.epoch'.*did you mean 'epochs'"):
        build_config({"train": {"epoch": 2}})


@pytest.mark.parametrize(
    ("layer", "field"),
    [
        ({"data": {"train_ratio": 1.5}}, "data.train_ratio"),
        ({"data": {"train_ratio": 0.0}}, "data.train_ratio"),
        ({"data": {"train_ratio": 0.8, "val_ratio": 0.3}}, "data"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"train": {"lr": "fast"}}, "train.lr"),
        ({"train": {"epochs": 10, "milestones": [5, 3]}}, "train"),
        ({"model": {"name": "resnet19"}}, "model.name"),
        ({"train": {"device": "gpu0"}}, "train.device"),
    ],
)
def test_invalid_values_name_the_field(layer, field):
    with pytest.raises(ConfigError) as e:
        build_config(layer)
    assert field in str(e.value)
    assert "\n" not in str(e.value)


def test_method_fields_are_validated_by_the_methods_own_config():
    with pytest.raises(ConfigError, match=r"method\.T"):
        build_config({"method": {"name": "kd", "T": -1}})
    with pytest.raises(ConfigError, match=r"unknown method 'kdd'.*did you mean 'kd'"):
        build_config({"method": {"name": "kdd"}})
    with pytest.raises(ConfigError, match=r"unknown field 'method\.kd_weight'"):
        build_config({"method": {"name": "ce", "kd_weight": 2}})


def test_later_layers_win_and_a_new_method_does_not_inherit_fields(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("train: {epochs: 7, lr: 0.05}\nmethod: {name: kd, T: 2}\n")
    layers = [load_yaml(file), {"train": {"epochs": 3}}]
    cfg = build_config(*layers)
    assert (cfg.train.epochs, cfg.train.lr, cfg.method.T) == (3, 0.05, 2.0)
    switched = build_config(*layers, {"method": {"name": "ce"}})
    assert switched.method.name == "ce"


def test_bad_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_yaml(bad)


def test_resolved_config_round_trips_through_yaml():
    import yaml

    cfg = build_config({"method": {"name": "kd", "T": 3}, "train": {"epochs": 10}}).resolve()
    again = build_config(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


def test_every_shipped_config_file_is_valid_and_keeps_the_articles_schedule():
    from pathlib import Path

    files = sorted(f for f in (Path(__file__).parent.parent / "configs").glob("*.yaml")
                   if not f.name.startswith("_"))  # _article.yaml: a fragment the others extend
    assert len(files) >= 7
    for file in sorted((Path(__file__).parent.parent / "configs").glob("*/*.yaml")):
        if file.parent.name == "suites":
            continue  # suite files, not run configs: tests/test_suite.py validates them
        build_config(load_yaml(file), source=str(file))  # protocol and recipe layers: valid on their own
    for file in files:
        cfg = build_config(load_yaml(file), source=str(file)).resolve()
        if file.stem != "cpu_64px":
            assert cfg.train.milestones == [60, 120, 160], file
            assert cfg.data.preset in ("ucm", "aid", "nwpu")
            assert cfg.data.train_ratio == {"8_2": 0.8, "5_5": 0.5}[file.stem[-3:]]


# The article's settings: what every {aid,nwpu,ucm}_{8_2,5_5}.yaml held written out before they
# extended configs/_article.yaml; each must still read as exactly this, with its preset and split.
ARTICLE = {
    "data": {"image_size": 224, "val_ratio": 0.0, "crop_padding": 0.125, "hflip": True, "rs_aug": False,
             "cache": "disk"},
    "train": {"epochs": 200, "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0005, "batch_size": 64,
              "test_batch_size": 128, "lr_decay": 0.1},
}


@pytest.mark.parametrize("dataset", ["aid", "nwpu", "ucm"])
@pytest.mark.parametrize("split, ratio", [("8_2", 0.8), ("5_5", 0.5)])
def test_each_article_config_is_the_shared_settings_with_its_dataset_and_split(dataset, split, ratio):
    from pathlib import Path

    file = Path(__file__).parent.parent / "configs" / f"{dataset}_{split}.yaml"
    assert load_yaml(file) == {"data": {**ARTICLE["data"], "preset": dataset, "train_ratio": ratio},
                               "train": ARTICLE["train"]}


def test_a_config_file_extends_a_base_of_its_folder_mappings_merged_lists_replaced(tmp_path):
    (tmp_path / "_base.yaml").write_text("train: {epochs: 10, lr: 0.2, milestones: [3, 6]}\ndata: {image_size: 32}\n")
    (tmp_path / "mid.yaml").write_text("extends: _base.yaml\ntrain: {epochs: 20}\n")
    (tmp_path / "run.yaml").write_text("extends: mid.yaml\ntrain: {milestones: [5]}\n")
    assert load_yaml(tmp_path / "run.yaml") == {"train": {"epochs": 20, "lr": 0.2, "milestones": [5]},
                                                "data": {"image_size": 32}}
    for base, error in [("../_base.yaml", "same folder"), ("missing.yaml", "does not exist"), ("run.yaml", "a loop")]:
        (tmp_path / "run.yaml").write_text(f"extends: {base}\n")
        with pytest.raises(ConfigError, match=error) as e:
            load_yaml(tmp_path / "run.yaml")
        assert "run.yaml: extends:" in str(e.value)


def _float_fields(section: type, prefix: str):
    """(dotted name, the section's field) for every float field below ``section``."""
    import typing

    from pydantic import BaseModel

    for name, f in section.model_fields.items():
        args = typing.get_args(f.annotation) or (f.annotation,)
        if any(isinstance(a, type) and issubclass(a, BaseModel) for a in args):
            sub = next(a for a in args if isinstance(a, type) and issubclass(a, BaseModel))
            yield from _float_fields(sub, f"{prefix}{name}.")
        elif float in args:
            yield f"{prefix}{name}"


def _layer(dotted: str, value, method: str | None = None) -> dict:
    *sections, key = dotted.split(".")
    layer: dict = {key: value}
    for part in reversed(sections):
        layer = {part: layer}
    if method is not None:
        layer["method"]["name"] = method
    return layer


NON_FINITE = [float("inf"), float("-inf"), float("nan"), "1e400"]


def test_no_float_field_of_any_section_takes_a_non_finite_value():
    from rsdistill.config import RunConfig

    fields = [(f, None) for f in _float_fields(RunConfig, "") if not f.startswith("method.")]
    fields += [(f, name) for name in registry.names() for f in _float_fields(registry.get(name).Config, "method.")]
    assert len(fields) > 20 and any(f == "train.lr" for f, _ in fields)
    for field, method in fields:
        for value in NON_FINITE:
            with pytest.raises(ConfigError) as e:
                build_config(_layer(field, value, method))
            assert field in str(e.value) and "finite" in str(e.value), (field, value)


@pytest.mark.parametrize("layer", [{"model": {"name": "resnet999"}}, {"data": {"bands": [0, 0]}},
                                   {"train": {"epochs": 10, "milestones": [5, 3]}}])
def test_an_error_names_the_value_once(layer):
    with pytest.raises(ConfigError) as e:
        build_config(layer)
    value = "resnet999" if "model" in layer else "[0, 0]" if "data" in layer else "[5, 3]"
    assert str(e.value).count(value) == 1, str(e.value)
def test_a_layout_brings_its_native_image_size_and_config_yaml_says_where_it_came_from():
    from rsdistill.config import build_config

    sizes = {p: build_config({"data": {"preset": p}}).data for p in ("cifar100", "eurosat", "imagenet", "folder", "ucm")}
    assert {p: d.image_size for p, d in sizes.items()} == {"cifar100": 32, "eurosat": 64, "imagenet": 224,
                                                           "folder": 224, "ucm": 224}
    assert "cifar100 layout's native size" in sizes["cifar100"].image_size_from
    assert "default" in sizes["folder"].image_size_from
    given = build_config({"data": {"preset": "cifar100", "image_size": 64}})
    assert (given.data.image_size, given.data.image_size_from) == (64, "data.image_size")
    # config.yaml round-trips the value and its source
    again = build_config(yaml.safe_load(build_config({"data": {"preset": "cifar100"}}).to_yaml()))
    assert (again.data.image_size, again.data.image_size_from) == (32, sizes["cifar100"].image_size_from)
