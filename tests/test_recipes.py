"""The CIFAR-100 and ImageNet recipes (configs/recipes/) load, validate and say what the papers
say; per-pair settings resolve to the papers' values."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsdistill.config import build_config, load_yaml
from rsdistill.distillers import registry
from rsdistill.distillers.settings import RunContext

RECIPES = Path(__file__).parent.parent / "configs" / "recipes"


def recipe(*names: str):
    return build_config(*(load_yaml(RECIPES / n) for n in names), source=" + ".join(names)).resolve()


def test_every_recipe_file_validates_alone_and_layered_on_its_dataset_recipe():
    files = sorted(RECIPES.rglob("*.yaml"))
    assert len(files) >= 12
    for file in files:
        build_config(load_yaml(file), source=str(file))
    for dataset in ("cifar100", "imagenet"):
        methods = sorted((RECIPES / dataset).glob("*.yaml"))
        assert {"kd.yaml", "dkd.yaml", "reviewkd.yaml"} <= {m.name for m in methods}
        for m in methods:
            cfg = recipe(f"{dataset}.yaml", f"{dataset}/{m.name}")
            assert cfg.method.name == m.stem and cfg.data.preset == dataset


def test_cifar100_recipe_is_the_papers_schedule_and_augmentation():
    cfg = recipe("cifar100.yaml")
    t, d = cfg.train, cfg.data
    assert (t.epochs, t.lr, t.milestones, t.lr_decay, t.weight_decay, t.batch_size, t.momentum) == (
        240, 0.05, [150, 180, 210], 0.1, 5e-4, 64, 0.9)
    assert (d.image_size, round(d.crop_padding * d.image_size), d.padding_mode, d.hflip, d.augment) == (
        32, 4, "zeros", True, "pad_crop")
    assert recipe("cifar100.yaml", "cifar100_light_student.yaml").train.lr == 0.01


def test_imagenet_recipe_is_the_papers_schedule_and_augmentation():
    cfg = recipe("imagenet.yaml")
    t, d = cfg.train, cfg.data
    assert (t.epochs, t.lr, t.milestones, t.weight_decay, t.batch_size) == (100, 0.1, [30, 60, 90], 1e-4, 256)
    assert (d.image_size, d.augment, d.cache, d.hflip) == (224, "imagenet", "off", True)


def test_method_recipes_hold_the_papers_settings():
    kd = recipe("cifar100.yaml", "cifar100/kd.yaml").method
    assert (kd.T, kd.ce_weight, kd.kd_weight, kd.warmup_epochs) == (4.0, 0.1, 0.9, 0)
    kd = recipe("imagenet.yaml", "imagenet/kd.yaml").method
    assert (kd.T, kd.ce_weight, kd.kd_weight) == (1.0, 0.5, 0.5)
    dkd = recipe("imagenet.yaml", "imagenet/dkd.yaml").method
    assert (dkd.T, dkd.alpha, dkd.warmup_epochs, dkd.beta) == (1.0, 1.0, 1, None)  # beta: per pair


@pytest.mark.parametrize("teacher,student,classes,beta", [
    ("resnet32x4", "resnet8x4", 100, 8.0), ("resnet56", "resnet20", 100, 2.0), ("wrn_40_2", "wrn_16_2", 100, 6.0),
    ("resnet34", "resnet18", 1000, 0.5), ("resnet50", "mobilenet_v2", 1000, 2.0)])
def test_dkd_beta_is_the_papers_value_for_each_pair_of_tables_8_and_9(teacher, student, classes, beta):
    cfg = recipe("cifar100.yaml" if classes == 100 else "imagenet.yaml",
                 "cifar100/dkd.yaml" if classes == 100 else "imagenet/dkd.yaml").method
    resolved = registry.get("dkd").resolve_config(cfg, RunContext(student, teacher, classes, epochs=240))
    assert resolved.beta == beta


@pytest.mark.parametrize("teacher,student,weight", [
    ("resnet32x4", "resnet8x4", 5.0), ("resnet56", "resnet20", 0.6), ("wrn_40_2", "wrn_16_2", 5.0),
    ("resnet34", "resnet18", 1.0), ("resnet50", "mobilenet_v2", 8.0)])
def test_reviewkd_weight_is_the_official_value_for_each_pair(teacher, student, weight):
    cfg = build_config({"method": {"name": "reviewkd"}}).method
    assert registry.get("reviewkd").resolve_config(cfg, RunContext(student, teacher, 100, 240)).weight == weight


def test_finetune_recipe_starts_from_imagenet_weights_with_a_lower_lr_and_a_shorter_schedule():
    cfg, scratch = recipe("finetune.yaml"), build_config().resolve()
    assert cfg.model.weights == "imagenet"
    assert cfg.train.lr == scratch.train.lr / 10 and cfg.train.epochs < scratch.train.epochs
    assert cfg.train.milestones == [18, 24] and cfg.train.lr_warmup_epochs == 1
    # a name, not a path: config.yaml keeps it as it is
    assert cfg.with_absolute_paths().model.weights == "imagenet"
