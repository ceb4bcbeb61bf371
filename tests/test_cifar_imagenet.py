"""CIFAR-100 and ImageNet layouts (``--data cifar100:DIR``, ``--data imagenet:DIR``), their
augmentations, and the decoded cache's size limit. The CIFAR-100 files are written by the tests in
the real pickle format; nothing is downloaded."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from rsdistill.config import DataConfig, build_config, split_data_argument
from rsdistill.data.datamodule import DataModule, LazyImages
from rsdistill.data.fingerprint import fingerprint
from rsdistill.data.presets import scan_dataset
from rsdistill.data.splits import published_split
from rsdistill.errors import DataError

from .conftest import run_cli

RECIPES = Path(__file__).parent.parent / "configs" / "recipes"
# One epoch, no decay, no progress bar: the recipes' schedules made CI-sized.
ONE_EPOCH = ["train.epochs=1", "train.milestones=[]", "train.progress=false"]


def write_fake_cifar100(folder: Path, train_per_class: int = 2, test_per_class: int = 1, seed: int = 0) -> Path:
    """``train``, ``test`` and ``meta`` as the python version of CIFAR-100 has them: pickled dicts
    (protocol 2, as the Python 2 originals) of ``data`` (N x 3072 uint8, R then G then B planes),
    ``fine_labels``, ``coarse_labels``, ``filenames``, ``batch_label``; ``meta`` with the 100
    fine and 20 coarse label names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for part, per in (("train", train_per_class), ("test", test_per_class)):
        labels = [y for y in range(100) for _ in range(per)]
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        record = {"filenames": [f"img_{i}.png" for i in range(len(labels))], "batch_label": f"{part} batch",
                  "fine_labels": labels, "coarse_labels": [y // 5 for y in labels], "data": data}
        (folder / part).write_bytes(pickle.dumps(record, protocol=2))
    meta = {"fine_label_names": [f"class_{i:02d}" for i in range(100)],
            "coarse_label_names": [f"super_{i:02d}" for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory) -> Path:
    """A fake CIFAR-100 where torchvision's downloader puts it: DIR/cifar-100-python/."""
    root = tmp_path_factory.mktemp("cifar")
    write_fake_cifar100(root / "cifar-100-python")
    return root


def write_fake_imagenet(root: Path, classes=("n01440764", "n01443537", "n01484850"), train: int = 5,
                        val: int = 2, seed: int = 0) -> Path:
    """train/<wnid>/ and val/<wnid>/ with JPEGs and PNGs of assorted sizes (48-96 px)."""
    rng = np.random.default_rng(seed)
    for part, n in (("train", train), ("val", val)):
        for c, wnid in enumerate(classes):
            folder = root / part / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = (int(v) for v in rng.integers(48, 97, 2))
                pixels = np.clip(rng.normal(60 + 60 * c, 30, (h, w, 3)), 0, 255).astype(np.uint8)
                ext = "JPEG" if i % 2 == 0 else "png"
                Image.fromarray(pixels).save(folder / f"{wnid}_{i}.{ext}", format="JPEG" if ext == "JPEG" else "PNG")
    return root


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory) -> Path:
    return write_fake_imagenet(tmp_path_factory.mktemp("imagenet"))


# --------------------------------------------------------------------------- CIFAR-100


def test_cifar100_reader_reads_the_python_files_and_their_published_split(cifar_dir):
    index = scan_dataset("cifar100", cifar_dir)  # the folder above cifar-100-python works too
    assert index.root == cifar_dir / "cifar-100-python"
    assert len(index.classes) == 100 and index.classes[0] == "class_00"
    assert len(index.parts["train"]) == 200 and len(index.parts["test"]) == 100
    assert index.parts["train"][3] == "train/class_01/00003"
    raw = pickle.loads((index.root / "train").read_bytes())
    row = torch.from_numpy(raw["data"][3].reshape(3, 32, 32))
    images = index.store.load(["test/class_00/00000", "train/class_01/00003"], 32)
    assert images.dtype == torch.uint8 and torch.equal(images[1], row)  # R, G, B planes, row by row
    assert index.store.load(["train/class_01/00003"], 16).shape == (1, 3, 16, 16)
    split = published_split(index, 0.0, seed=0)
    assert split.class_depth == 1 and split.label_of("train/class_01/00003") == 1
    assert sorted(split.test) == sorted(index.parts["test"]) and not split.val
    assert fingerprint(index)["bytes"] == sum((index.root / f).stat().st_size for f in ("train", "test", "meta"))


def test_cifar_files_are_unpickled_without_running_code(tmp_path):
    folder = write_fake_cifar100(tmp_path / "c", train_per_class=1)
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "train").write_bytes(pickle.dumps({"data": Exploit()}, protocol=2))
    with pytest.raises(DataError, match=r"cannot read CIFAR file '.*train'.*refusing"):
        scan_dataset("cifar100", folder)
    assert not marker.exists()


def test_missing_cifar_files_are_named_with_the_download_hint(tmp_path):
    (tmp_path / "train").write_bytes(b"")
    with pytest.raises(DataError, match="lacks test, meta .*--download"):
        scan_dataset("cifar100", tmp_path)


def test_data_argument_names_a_layout_only_before_a_known_layout_name():
    assert split_data_argument("cifar100:/data/c100") == ("cifar100", "/data/c100")
    assert split_data_argument("imagenet:rel/dir") == ("imagenet", "rel/dir")
    assert split_data_argument("/data/AID") == (None, "/data/AID")
    assert split_data_argument("C:/data") == (None, "C:/data")  # not a layout: a path with a colon


def test_download_is_only_for_cifar100_and_torchgeo_and_conflicting_layouts_are_errors(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--data", f"imagenet:{tmp_path}", "--download", "--out", tmp_path / "r")
    assert code == 2 and "only CIFAR-100" in err and "torchgeo" in err and "not 'imagenet'" in err
    code, _, err = run_cli(capsys, "train", "--data", f"cifar100:{tmp_path}", "--preset", "aid", "--out", tmp_path / "r")
    assert code == 2 and "names layout 'cifar100' but --preset is 'aid'" in err
    assert not (tmp_path / "r").exists()


def test_cifar100_trains_and_distils_end_to_end(capsys, tmp_path, monkeypatch):
    """--download goes through torchvision's downloader (replaced here: tests never download),
    then the recipe trains a teacher and DKD distils it on a bank of views with zero padding."""
    import torchvision.datasets

    calls = []

    class FakeDownloader:
        def __init__(self, root, train=True, download=False):
            calls.append(download)
            write_fake_cifar100(Path(root) / "cifar-100-python")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", FakeDownloader)
    data = tmp_path / "c100"
    recipe = ["--config", RECIPES / "cifar100.yaml"]
    code, _, err = run_cli(capsys, "-q", "train", "--data", f"cifar100:{data}", "--download", *recipe,
                           "--model", "resnet20", "--out", tmp_path / "t", "--set", *ONE_EPOCH)
    assert code == 0, err
    assert calls == [True]
    code, out, err = run_cli(capsys, "-q", "distill", "--data", f"cifar100:{data}", *recipe, "--config",
                             RECIPES / "cifar100" / "dkd.yaml", "--teacher", tmp_path / "t", "--student", "resnet20",
                             "--out", tmp_path / "s", "--set", *ONE_EPOCH, "data.view_bank=2")
    assert code == 0, err
    cfg = yaml.safe_load((tmp_path / "s" / "config.yaml").read_text())
    assert cfg["data"]["preset"] == "cifar100" and cfg["data"]["padding_mode"] == "zeros"
    assert cfg["method"]["beta"] == 8.0 and cfg["method"]["T"] == 4.0  # resolved for the pair
    split = json.loads((tmp_path / "s" / "split.json").read_text())
    assert split["counts"] == {"train": 200, "val": 0, "test": 100} and split["class_depth"] == 1
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["teacher"]["model"] == "resnet20"


# --------------------------------------------------------------------------- ImageNet layout


def test_imagenet_layout_uses_val_as_the_test_split_and_can_carve_a_validation_split(imagenet_dir):
    index = scan_dataset("imagenet", imagenet_dir)
    assert index.classes == ["n01440764", "n01443537", "n01484850"] and index.class_depth == 1
    assert len(index.parts["train"]) == 15 and all(p.startswith("val/") for p in index.parts["test"])
    split = published_split(index, 0.4, seed=3)
    assert len(split.val) == 6 and len(split.train) == 9 and len(split.test) == 6
    assert split == published_split(index, 0.4, seed=3)
    assert {split.label_of(p) for p in split.val} == {0, 1, 2}


def test_imagenet_val_must_be_sorted_into_the_train_class_folders(tmp_path):
    root = write_fake_imagenet(tmp_path / "a", train=1, val=1)
    for f in (root / "val" / "n01440764").iterdir():
        f.rename(root / "val" / f.name)
    (root / "val" / "n01440764").rmdir()
    with pytest.raises(DataError, match="holds 1 images directly .*sort the validation images"):
        scan_dataset("imagenet", root)
    root = write_fake_imagenet(tmp_path / "b", train=1, val=1)
    (root / "val" / "n01443537").rename(root / "val" / "n09999999")
    with pytest.raises(DataError, match="'n01443537' is in train/ only"):
        scan_dataset("imagenet", root)
    (tmp_path / "c").mkdir()
    with pytest.raises(DataError, match="'.*c/train' is missing"):
        scan_dataset("imagenet", tmp_path / "c")


def test_imagenet_augmentation_crops_the_full_image_and_evaluates_a_centre_crop(imagenet_dir):
    from torchvision.transforms import v2

    from rsdistill.data.decode import decode_image

    cfg = DataConfig(root=str(imagenet_dir), preset="imagenet", image_size=32, augment="imagenet", cache="off")
    data = DataModule(cfg)
    images = data._images_of["test"]
    assert isinstance(images, LazyImages) and images.size is None  # decoded at full resolution
    first = Image.open(imagenet_dir / data.split.test[0])
    assert tuple(images[0].shape[1:]) == (first.height, first.width)
    batch = next(iter(data.train_loader(4, epoch_seed=0)))
    assert batch["image"].shape == (4, 3, 32, 32)
    test = next(iter(data.eval_loader("test", 2)))["image"][0]
    full = decode_image(imagenet_dir / data.split.test[0], None)
    expected = v2.CenterCrop(32)(v2.Resize(37, antialias=True)(full)).float() / 255  # 37 = 32 * 256 / 224
    assert torch.allclose(test, expected)


def test_imagenet_augmentation_needs_the_files_not_the_decoded_cache():
    with pytest.raises(Exception, match="augment=imagenet crops from the full-resolution files"):
        build_config({"data": {"augment": "imagenet"}})
    with pytest.raises(Exception, match="view_bank .* cannot be used with augment=imagenet"):
        build_config({"data": {"augment": "imagenet", "cache": "off", "view_bank": 4}})


def test_imagenet_layout_trains_and_distils_end_to_end_at_64px(capsys, imagenet_dir, tmp_path):
    recipe = ["--config", RECIPES / "imagenet.yaml"]
    tiny = [*ONE_EPOCH, "data.image_size=64", "data.workers=0", "train.batch_size=8"]
    code, _, err = run_cli(capsys, "-q", "train", "--data", f"imagenet:{imagenet_dir}", *recipe, "--model", "resnet20",
                           "--out", tmp_path / "t", "--set", *tiny)
    assert code == 0, err
    code, _, err = run_cli(capsys, "-q", "distill", "--data", f"imagenet:{imagenet_dir}", *recipe, "--config",
                           RECIPES / "imagenet" / "kd.yaml", "--teacher", tmp_path / "t", "--student", "resnet20",
                           "--out", tmp_path / "s", "--set", *tiny)
    assert code == 0, err
    cfg = yaml.safe_load((tmp_path / "s" / "config.yaml").read_text())
    assert cfg["data"]["augment"] == "imagenet" and cfg["method"]["T"] == 1.0
    split = json.loads((tmp_path / "s" / "split.json").read_text())
    assert split["counts"] == {"train": 15, "val": 0, "test": 6}
    assert all(p.startswith("val/") for p in split["test"])
    code, out, err = run_cli(capsys, "eval", "--checkpoint", tmp_path / "s", "--data", f"imagenet:{imagenet_dir}")
    assert code == 0 and "on test (6 images)" in out, err


# --------------------------------------------------------------------------- the decoded cache's limit


def test_sets_over_the_decoded_cache_limit_are_streamed_from_the_files(scenes, caplog):
    base = dict(root=str(scenes), image_size=16)
    cached = DataModule(DataConfig(**base))
    with caplog.at_level(logging.WARNING):
        streamed = DataModule(DataConfig(**base, cache_max_gb=1e-6))
    assert "over the decoded cache's limit" in caplog.text
    assert isinstance(streamed._images_of["train"], LazyImages) and not isinstance(cached._images_of["train"], LazyImages)
    assert streamed.streamed_train_key() is not None and cached.streamed_train_key() is None
    a = next(iter(cached.eval_loader("test", 64)))["image"]
    b = next(iter(streamed.eval_loader("test", 64)))["image"]
    assert torch.equal(a, b)
    assert cached.mean == pytest.approx(streamed.mean, abs=1e-6)  # under 500 images: all of them


def test_teacher_cache_key_of_streamed_images_does_not_decode_them_all(scenes, monkeypatch):
    from rsdistill.engine.teacher_cache import cache_key
    from rsdistill.models import build_model

    data = DataModule(DataConfig(root=str(scenes), image_size=16, cache_max_gb=1e-6, view_bank=2))
    monkeypatch.setattr(DataModule, "train_images_tensor", lambda self: pytest.fail("decoded every image"))
    key = cache_key(build_model("resnet20", 4), data)
    assert key.images.startswith("files:")
