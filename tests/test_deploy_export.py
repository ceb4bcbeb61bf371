"""Export formats: each reloads and predicts what the trained model predicts; the ONNX file carries
its classes, input size and normalisation; safetensors rebuilds with plain torchvision."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rsdistill.deploy.export import export, onnx_metadata
from rsdistill.deploy.formats import OnnxPredictor, open_model
from rsdistill.deploy.predict import find_images, read_images
from rsdistill.engine.checkpoint import model_record, save_checkpoint
from rsdistill.models import build_model


def scene_batch(scenes, size: int) -> np.ndarray:
    paths, _ = find_images([str(scenes)])
    images, ok, failed = read_images(paths[::4], size)
    assert not failed and len(ok) == 12
    return images


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_each_export_format_reloads_and_predicts_the_same_classes(teacher_run, scenes, tmp_path, fmt):
    out = tmp_path / {"onnx": "m.onnx", "torchscript": "m.pt", "safetensors": "m.safetensors"}[fmt]
    meta = export(teacher_run, out, fmt)
    assert meta["format"] == fmt and (tmp_path / f"{out.name}.json").is_file()
    reference, exported = open_model(teacher_run), open_model(out)
    assert exported.info.classes == reference.info.classes == json.loads(
        (teacher_run / "split.json").read_text())["classes"]
    assert exported.info.image_size == reference.info.image_size == 16
    x = scene_batch(scenes, 16)
    want, got = reference(x), exported(x)
    assert got.shape == want.shape == (12, 4)
    assert (got.argmax(1) == want.argmax(1)).all()
    assert np.abs(got - want).max() < 1e-4


def test_onnx_matches_pytorch_within_1e_4_under_onnxruntime(teacher_run, tmp_path):
    export(teacher_run, tmp_path / "m.onnx")
    session = OnnxPredictor(tmp_path / "m.onnx")
    torch_model = open_model(teacher_run)
    # Another batch size and input size than the export's example: the axes are dynamic.
    x = np.random.default_rng(1).random((5, 3, 24, 24), dtype=np.float32)
    assert np.abs(session(x) - torch_model(x)).max() < 1e-4


def test_onnx_file_holds_class_names_input_size_and_normalisation(teacher_run, tmp_path):
    export(teacher_run, tmp_path / "m.onnx")
    meta = onnx_metadata(tmp_path / "m.onnx")
    model = open_model(teacher_run)
    assert json.loads(meta["classes"]) == model.info.classes
    assert int(meta["input_size"]) == 16
    assert json.loads(meta["mean"]) == pytest.approx(model.net.adapter.input_mean.flatten().tolist())
    assert json.loads(meta["std"]) == pytest.approx(model.net.adapter.input_std.flatten().tolist())
    assert "inside the model" in meta["normalisation"] and "[0, 1]" in meta["input"]
    # A deployed user reads the same through onnxruntime alone, without the sidecar JSON.
    (tmp_path / "m.onnx.json").unlink()
    assert OnnxPredictor(tmp_path / "m.onnx").info == model.info


def test_safetensors_config_rebuilds_the_model_with_plain_torchvision(tmp_path):
    import torchvision
    from safetensors.torch import load_file

    torch.manual_seed(0)
    model = build_model("shufflenet_v2_x0_5", 3)
    model.set_normalization([0.4, 0.5, 0.3], [0.2, 0.25, 0.3])
    model.eval()
    save_checkpoint(tmp_path / "ckpt.pt", {"model": model_record(model, ["a", "b", "c"], 32)})
    export(tmp_path / "ckpt.pt", tmp_path / "m.safetensors")
    config = json.loads((tmp_path / "m.safetensors.json").read_text())
    tv = config["rebuild"]["torchvision"]
    assert tv["builder"] == "torchvision.models.shufflenet_v2_x0_5"
    net = getattr(torchvision.models, tv["builder"].rsplit(".", 1)[1])(**tv["kwargs"])
    net.load_state_dict(load_file(tmp_path / "m.safetensors"))  # strict: torchvision's own keys
    net.eval()
    mean = torch.tensor(config["input"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["input"]["std"]).view(1, 3, 1, 1)
    x = torch.rand(2, 3, config["input"]["trained_size"], config["input"]["trained_size"])
    with torch.no_grad():
        assert torch.allclose(net((x - mean) / std), model.logits(x), atol=1e-5)
    assert config["classes"] == ["a", "b", "c"]
