"""Any timm model as teacher or student (``--model timm:NAME``): a small CNN (timm's
``test_efficientnet``) and a ViT-tiny-like transformer (``test_vit``), random weights, 64 px."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rsdistill.config import build_config
from rsdistill.deploy.export import export
from rsdistill.deploy.formats import open_model
from rsdistill.engine.checkpoint import model_record, save_checkpoint
from rsdistill.errors import CheckpointError, ConfigError
from rsdistill.models import build_model
from rsdistill.models.features import FeaturesUnavailable

from .conftest import build_distiller, fixed_batch, run_cli
from .test_deploy_export import scene_batch

timm = pytest.importorskip("timm", reason="timm is the optional extra rsdistill[timm] (make test installs it)")

CNN, VIT = "timm:test_efficientnet", "timm:test_vit"
SIZE = 64


def test_logits_are_the_timm_models_own_and_stages_come_from_forward_intermediates():
    x = torch.rand(2, 3, SIZE, SIZE)
    cnn, vit = build_model(CNN, 5).eval(), build_model(VIT, 5).eval()
    for model in (cnn, vit):
        out = model(x)
        assert torch.allclose(out.logits, model.net.model(model.normalize(x)), atol=1e-5)
        assert torch.allclose(out.logits, model.logits(x), atol=1e-5)
    stages = cnn(x).features.stages
    assert [tuple(f.shape[-2:]) for f in stages] == [(16, 16), (8, 8), (4, 4), (2, 2)]  # stem left out
    assert stages[-1].shape[1] == cnn.net.model.num_features == cnn(x).features.pooled.shape[1]
    v = vit(x).features
    assert [tuple(f.shape[1:]) for f in v.stages] == [(64, 4, 4)] * 4  # 4 of 6 blocks, as 4 x 4 patch maps
    assert v.classifier_weight.shape == (5, 64)
    assert vit.classifier is vit.net.model.get_classifier()


@pytest.mark.parametrize("student,teacher", [(VIT, CNN), (CNN, VIT)])
@pytest.mark.parametrize("method", ["kd", "fitnet"])
def test_a_logit_method_and_fitnet_train_timm_pairs(method, student, teacher):
    d = build_distiller(method, student=student, teacher=teacher, classes=5, size=SIZE)
    batch = fixed_batch(n=4, size=SIZE, classes=5)
    logits, losses = d.forward_train(batch)
    assert logits.shape == (4, 5)
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    assert all(p.grad is not None for p in d.student.parameters() if p.requires_grad and p.dim() > 1)
    if method == "fitnet":
        assert all(p.grad is not None for p in d.regressor.parameters())


def test_feature_methods_stop_with_one_line_where_a_model_has_no_stages(monkeypatch):
    from rsdistill.models.timm_models import TimmNet

    original = TimmNet.__init__

    def without_stages(self, name, model):
        original(self, name, model)
        self.stage_indices = None  # as for a timm model without forward_intermediates

    monkeypatch.setattr(TimmNet, "__init__", without_stages)
    kd = build_distiller("kd", student=VIT, teacher=CNN, classes=5, size=SIZE)
    assert torch.isfinite(sum(kd.forward_train(fixed_batch(n=2, size=SIZE, classes=5))[1].values()))
    with pytest.raises(FeaturesUnavailable, match="timm:test_vit does not expose its intermediate feature maps"):
        build_distiller("fitnet", student=VIT, teacher=CNN, classes=5, size=SIZE)


def test_ofd_and_class_activation_methods_refuse_timm_models_they_cannot_read():
    with pytest.raises(ConfigError, match="OFD needs the BatchNorm"):
        build_distiller("ofd", student="resnet20", teacher=CNN, classes=5, size=SIZE)
    # MobileNetV3's head pools, then transforms (conv_head): its classifier never sees the map.
    for method in ("cat", "sdd"):
        with pytest.raises(ConfigError, match="class activation maps .* undefined"):
            build_distiller(method, student="timm:mobilenetv3_small_050", teacher="resnet20", classes=5, size=SIZE)


def test_timm_names_are_checked_when_the_config_is_read(monkeypatch):
    assert build_config({"model": {"name": VIT}}).model.name == VIT
    with pytest.raises(ConfigError, match=r"model.name: timm has no model 'test_vitt' \(did you mean 'test_vit'\?\)"):
        build_config({"model": {"name": "timm:test_vitt"}})
    from rsdistill.models import timm_models

    monkeypatch.setattr(timm_models, "_import_timm", lambda: None)
    with pytest.raises(ConfigError, match=r"needs the optional timm package \(pip install 'rsdistill\[timm\]'\)"):
        build_config({"model": {"name": VIT}})


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_model_weights_loads_a_local_timm_checkpoint_keeping_a_new_classifier(tmp_path, suffix):
    source = timm.create_model("test_efficientnet", pretrained=False, num_classes=10)
    file = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(file))
    else:
        torch.save({"state_dict": source.state_dict(), "epoch": 3}, file)  # as timm's train script
    model = build_model(CNN, 5, weights=file).net.model
    assert torch.equal(model.conv_stem.weight, source.conv_stem.weight)
    assert model.get_classifier().weight.shape == (5, source.get_classifier().in_features)
    with pytest.raises(CheckpointError, match="does not fit timm:test_vit"):
        build_model(VIT, 5, weights=file)


def test_timm_teacher_student_runs_end_to_end_and_a_weights_file_can_be_the_teacher(capsys, scenes, tmp_path):
    tiny = ["train.epochs=1", f"data.image_size={SIZE}", "train.batch_size=16", "train.progress=false"]
    code, _, err = run_cli(capsys, "-q", "train", "--data", scenes, "--model", CNN, "--out", tmp_path / "t",
                           "--set", *tiny)
    assert code == 0, err
    code, _, err = run_cli(capsys, "-q", "distill", "--data", scenes, "--teacher", tmp_path / "t", "--student", VIT,
                           "--method", "fitnet", "--out", tmp_path / "fitnet", "--set", *tiny)
    assert code == 0, err
    code, out, err = run_cli(capsys, "eval", "--checkpoint", tmp_path / "fitnet")
    assert code == 0 and out.startswith("timm:test_vit on test"), err
    # The trained teacher's weights as a plain timm checkpoint: --teacher FILE + teacher.model.
    ckpt = torch.load(tmp_path / "t" / "checkpoints" / "last.pt", weights_only=True)["model"]["state_dict"]
    torch.save({k.removeprefix("net.model."): v for k, v in ckpt.items() if k.startswith("net.model.")},
               tmp_path / "teacher.pth")
    code, _, err = run_cli(capsys, "-q", "distill", "--data", scenes, "--teacher", tmp_path / "teacher.pth",
                           "--student", VIT, "--method", "kd", "--out", tmp_path / "kd",
                           "--set", *tiny, f"teacher.model={CNN}")
    assert code == 0, err
    metrics = json.loads((tmp_path / "kd" / "metrics.json").read_text())
    assert metrics["teacher"]["model"] == CNN and metrics["model"] == VIT
    code, _, err = run_cli(capsys, "-q", "distill", "--data", scenes, "--teacher", tmp_path / "teacher.pth",
                           "--student", VIT, "--out", tmp_path / "bad", "--set", *tiny, f"teacher.model={VIT}")
    assert code == 2 and "does not fit a timm:test_vit with 4 classes" in err


@pytest.mark.parametrize("name", [CNN, VIT])
def test_a_timm_checkpoint_exports_to_onnx_and_safetensors_and_reloads_predicting_the_same_classes(
        scenes, tmp_path, name):
    model = build_model(name, 4).eval()
    model.set_normalization([0.4, 0.5, 0.3], [0.2, 0.25, 0.3])
    classes = ["a", "b", "c", "d"]
    save_checkpoint(tmp_path / "ckpt.pt", {"model": model_record(model, classes, SIZE)})
    x = scene_batch(scenes, SIZE)
    want = open_model(tmp_path / "ckpt.pt")(x)
    for file in ("m.onnx", "m.safetensors"):
        meta = export(tmp_path / "ckpt.pt", tmp_path / file)
        exported = open_model(tmp_path / file)
        assert (exported.info.arch, exported.info.classes, exported.info.image_size) == (name, classes, SIZE)
        got = exported(x)
        assert got.shape == (12, 4) and (got.argmax(1) == want.argmax(1)).all()
        assert np.abs(got - want).max() < 1e-4
    # The transformer's ONNX graph holds its position embeddings resampled for the trained size
    # (ONNX has no antialiased bicubic resampling): it takes that size only, and says so.
    assert meta["input"]["sizes"] == "any"
    onnx_sizes = json.loads((tmp_path / "m.onnx.json").read_text())["input"]["sizes"]
    assert onnx_sizes == ("any" if name == CNN else f"{SIZE} x {SIZE} only")
