"""torchgeo's scene-classification datasets (``--data torchgeo:<name>:DIR``) on small fake files laid
out exactly as torchgeo's classes expect them (as its own tests do), and the folder presets of the
other RS scene sets. The torchgeo tests skip where the optional torchgeo package is not installed
(it is not part of the test install: see docs/pretrained_torchgeo_multispectral.md)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from rsdistill.config import build_config, split_data_argument
from rsdistill.data.presets import PRESETS, scan_dataset
from rsdistill.errors import DataError

from .conftest import TINY, run_cli

EUROSAT_DIR = "ds/images/remote_sensing/otherDatasets/sentinel_2/tif"
SPLIT_FILES = {"ucmerced": "uc_merced-{}.txt", "eurosat": "eurosat-{}.txt", "resisc45": "resisc45-{}.txt"}


def fake_set(root: Path, name: str, classes=("Forest", "River", "SeaLake"), per_class: int = 6) -> Path:
    """``per_class`` images per class where torchgeo's class looks for them, with split files
    giving 4 / 1 / 1 of each class to train / val / test."""
    folder, suffix = {"ucmerced": ("UCMerced_LandUse/Images", ".tif"), "eurosat": (EUROSAT_DIR, ".tif"),
                      "resisc45": ("NWPU-RESISC45", ".jpg"), "patternnet": ("PatternNet/images", ".jpg")}[name]
    rng = np.random.default_rng(0)
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for c in classes:
        (root / folder / c).mkdir(parents=True)
        for i in range(per_class):
            file = f"{c}_{i}{suffix}"
            if name == "eurosat":  # 13 bands of 16-bit reflectances, band-sequential
                tifffile.imwrite(root / folder / c / file, rng.integers(0, 4000, (13, 20, 20), dtype=np.uint16),
                                 photometric="minisblack", planarconfig="separate")
            else:
                Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / folder / c / file)
            parts["train" if i < per_class - 2 else "val" if i == per_class - 2 else "test"].append(file)
    if name in SPLIT_FILES:
        for part, files in parts.items():
            # EuroSAT's split files name the RGB archive's .jpg files
            listed = [f.replace(".tif", ".jpg") if name == "eurosat" else f for f in files]
            (root / SPLIT_FILES[name].format(part)).write_text("\n".join(listed) + "\n")
    return root


def test_torchgeo_data_argument_names_the_dataset():
    assert split_data_argument("torchgeo:eurosat:/data/eurosat") == ("torchgeo:eurosat", "/data/eurosat")
    assert split_data_argument("torchgeo:ucmerced:rel/dir") == ("torchgeo:ucmerced", "rel/dir")
    cfg = build_config({"data": {"preset": "torchgeo:eurosat"}})
    assert cfg.data.image_size == 64 and "native" in cfg.data.image_size_from


@pytest.mark.parametrize("name", ["ucmerced", "eurosat", "resisc45", "patternnet"])
def test_torchgeo_datasets_are_listed_with_their_published_split(tmp_path, name):
    pytest.importorskip("torchgeo.datasets")
    root = fake_set(tmp_path / name, name)
    index = scan_dataset(f"torchgeo:{name}", root)
    assert index.classes == ["Forest", "River", "SeaLake"] and len(index) == 18
    assert (index.root / index.paths[0]).is_file()
    if name == "patternnet":  # no published split: a ratio split, as for folders
        assert index.parts is None
    else:
        assert [len(index.parts[p]) for p in ("train", "val", "test")] == [12, 3, 3]
    assert index.default_bands == ("all" if name == "eurosat" else None)


def test_a_missing_torchgeo_dataset_is_one_line_naming_the_folder(tmp_path):
    pytest.importorskip("torchgeo.datasets")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"EuroSAT.*torchgeo.*empty.*--download"):
        scan_dataset("torchgeo:eurosat", tmp_path / "empty")


@pytest.mark.slow
def test_eurosat_trains_on_every_band_with_the_published_split_or_a_ratio_split(tmp_path, capsys):
    pytest.importorskip("torchgeo.datasets")
    root = fake_set(tmp_path / "eurosat", "eurosat")
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "-q", "train", "--data", f"torchgeo:eurosat:{root}", "--model", "resnet8x4",
                           "--out", out, "--set", *TINY, "data.view_bank=2")
    assert code == 0, err
    split = json.loads((out / "split.json").read_text())
    assert [len(split[p]) for p in ("train", "val", "test")] == [12, 3, 3]
    record = __import__("torch").load(out / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert record["bands"] == list(range(13))
    ratio = tmp_path / "ratio"
    code, _, err = run_cli(capsys, "-q", "train", "--data", f"torchgeo:eurosat_rgb:{root}", "--model", "resnet8x4",
                           "--out", ratio, "--set", *TINY, "data.published_split=false", "data.train_ratio=0.5")
    assert code == 0, err
    split = json.loads((ratio / "split.json").read_text())
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (9, 0, 9)
    rgb = __import__("torch").load(ratio / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert rgb["bands"] == [3, 2, 1]


# --- folder presets of the other RS scene sets ---------------------------------------------------


@pytest.mark.parametrize(("preset", "classes", "per_class"), [
    ("whu_rs19", 19, None), ("rsscn7", 7, 400), ("optimal31", 31, 60), ("siri_whu", 12, 200),
    ("patternnet", 38, 800), ("eurosat", 10, None)])
def test_rs_scene_set_presets_check_the_published_class_count(preset, classes, per_class):
    spec = PRESETS[preset]
    assert spec.num_classes == classes
    if per_class:
        assert spec.default_per_class == per_class
    if preset == "eurosat":
        assert sum(spec.per_class.values()) == 27000 and len(spec.per_class) == 10
    if preset == "whu_rs19":
        assert spec.total == 1005


def test_a_preset_warns_where_counts_differ_and_stops_where_the_class_count_does(tmp_path, caplog):
    root = tmp_path / "RSSCN7"
    for c in ("aGrass", "bField", "cIndustry", "dRiverLake", "eForest", "fResident", "gParking"):
        (root / c).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / c / "x.jpg")
    with caplog.at_level(logging.WARNING):
        index = scan_dataset("rsscn7", tmp_path)
    assert len(index.classes) == 7 and "published 400" in caplog.text
    with pytest.raises(DataError, match="expected 31 class folders"):
        scan_dataset("optimal31", root)
