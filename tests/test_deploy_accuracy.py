"""Test-split top-1 of exported models (``export --quantize int8`` reports it): the test images are
read by the data layer as the run read them, so a CIFAR-100 run (whose paths are rows of the
pickled files, not files) and an ImageNet-layout run (resize and centre crop) report the accuracy
the run itself measured."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from torchvision.transforms import v2

from rsdistill.cli import main
from rsdistill.data.decode import decode_image
from rsdistill.deploy.accuracy import run_test_split, top1
from rsdistill.deploy.export import export
from rsdistill.deploy.formats import OnnxPredictor, Predictor, open_model

from .conftest import run_cli
from .test_cifar_imagenet import (
    ONE_EPOCH,
    RECIPES,
    write_fake_cifar100,
    write_fake_imagenet,
)


class Recording(Predictor):
    """A predictor that keeps the batches it was given."""

    def __init__(self, inner: Predictor):
        self.inner, self.info, self.file, self.backend = inner, inner.info, inner.file, inner.backend
        self.seen: list[np.ndarray] = []

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.seen.append(images.copy())
        return self.inner(images)


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, run): resnet20 trained for one epoch on a fake CIFAR-100 (1 image per class)."""
    root = tmp_path_factory.mktemp("c100acc")
    data = write_fake_cifar100(root / "data", train_per_class=1, test_per_class=1)
    args = ["-q", "train", "--data", f"cifar100:{data}", "--config", RECIPES / "cifar100.yaml", "--model", "resnet20",
            "--out", root / "run", "--set", *ONE_EPOCH]
    assert main([str(a) for a in args]) == 0
    return data, root / "run"


def test_cifar100_test_split_is_read_from_the_pickled_rows(cifar_run, tmp_path):
    data, run = cifar_run
    test = run_test_split(run)
    assert len(test) == 100 and test.paths[3] == "test/class_03/00003" and test.labels[3] == "class_03"
    export(run, tmp_path / "m.onnx")
    onnx = Recording(OnnxPredictor(tmp_path / "m.onnx"))
    acc = top1(onnx, test, batch=32)
    # What the model was given is the test file's rows, in the split's order, in [0, 1].
    raw = pickle.loads((data / "test").read_bytes())
    rows = [int(p.rsplit("/", 1)[1]) for p in test.paths]
    want = raw["data"][rows].reshape(-1, 3, 32, 32).astype(np.float32) / 255
    np.testing.assert_allclose(np.concatenate(onnx.seen), want, atol=1e-6)
    labels = np.array(raw["fine_labels"])[rows]
    assert acc == pytest.approx(100 * np.mean(onnx.inner(want).argmax(1) == labels))
    # The run's own evaluation: the same model in PyTorch gives its number exactly, ONNX within
    # one image (float rounding may flip a near tie).
    measured = json.loads((run / "metrics.json").read_text())["top1"]
    assert top1(open_model(run), test) == pytest.approx(measured, abs=0.01)
    assert abs(acc - measured) <= 100 / len(test) + 0.01


def test_int8_export_of_a_cifar100_run_reports_its_test_top1_also_from_a_moved_copy(capsys, cifar_run, tmp_path):
    data, run = cifar_run
    moved = shutil.copytree(data, tmp_path / "elsewhere")
    code, out, err = run_cli(capsys, "export", "--checkpoint", run, "--out", tmp_path / "m.onnx", "--quantize", "int8",
                             "--data", f"cifar100:{moved}")
    assert code == 0, err
    acc = json.loads((tmp_path / "m.onnx.json").read_text())["quantization"]["test_top1"]
    measured = json.loads((run / "metrics.json").read_text())["top1"]
    assert acc["note"] is None and acc["images"] == 100
    assert abs(acc["fp32"] - measured) <= 1.01 and 0 <= acc["int8"] <= 100
    assert "test top-1 (100 images)" in out


def test_imagenet_layout_test_split_is_resized_and_centre_cropped_as_the_run_evaluated(capsys, tmp_path):
    data = write_fake_imagenet(tmp_path / "in")
    code, _, err = run_cli(capsys, "-q", "train", "--data", f"imagenet:{data}", "--config", RECIPES / "imagenet.yaml",
                           "--model", "resnet20", "--out", tmp_path / "run", "--set", *ONE_EPOCH,
                           "data.image_size=32", "data.workers=0", "train.batch_size=8")
    assert code == 0, err
    test = run_test_split(tmp_path / "run")
    assert len(test) == 6 and all(p.startswith("val/") for p in test.paths)
    export(tmp_path / "run", tmp_path / "m.onnx")
    onnx = Recording(OnnxPredictor(tmp_path / "m.onnx"))
    acc = top1(onnx, test)
    # Every image (48-96 px, not square) arrives as the run evaluated it: the shorter side resized
    # to 32 x 256/224 = 37 px, then the centre 32 x 32 (not the whole image squeezed to 32 x 32).
    first = decode_image(data / test.paths[0], None).float()
    want = v2.CenterCrop(32)(v2.Resize(37, antialias=True)(first)) / 255
    assert {x.shape[1:] for x in onnx.seen} == {(3, 32, 32)}
    np.testing.assert_allclose(onnx.seen[0][0], want.numpy(), atol=1 / 255)
    measured = json.loads((tmp_path / "run" / "metrics.json").read_text())["top1"]
    assert top1(open_model(tmp_path / "run"), test) == pytest.approx(measured, abs=0.01)
    assert abs(acc - measured) <= 100 / len(test) + 0.01
