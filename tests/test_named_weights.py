"""Pretrained weights by name (``model.weights=imagenet``, ``torchgeo:<Enum.MEMBER>``): read from the
libraries' own caches under the exact names they use, never downloaded in a test (every test runs
with RSDISTILL_OFFLINE=1 and fresh TORCH_HOME / HF_HOME folders)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

from rsdistill.errors import CheckpointError
from rsdistill.models import build_model
from rsdistill.models.named_weights import torch_hub_file
from rsdistill.models.pretrained import teacher_from_weights

from .conftest import TINY, run_cli

IMAGENET_MEAN = (0.485, 0.456, 0.406)


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("RSDISTILL_OFFLINE", "1")
    return tmp_path


def place_torchvision_weights(arch: str, net: torch.nn.Module | None = None) -> tuple[Path, dict]:
    """A random state dict saved where torchvision's default weights of ``arch`` are cached."""
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    file = torch_hub_file(weights.url)
    assert file.parent == Path(torch.hub.get_dir()) / "checkpoints"
    file.parent.mkdir(parents=True, exist_ok=True)
    state = (net or getattr(torchvision.models, arch)(weights=None)).state_dict()
    torch.save(state, file)
    return file, state


def test_imagenet_weights_load_from_the_torch_hub_cache_with_imagenet_normalisation():
    file, state = place_torchvision_weights("resnet18")
    assert file.name == "resnet18-f37072fd.pth"
    model = build_model("resnet18", 5, "imagenet")
    assert torch.equal(model.net.layer2[0].conv1.weight, state["layer2.0.conv1.weight"])
    assert model.net.fc.out_features == 5  # a new classifier for the data's classes
    assert model.weights_statistics == {0: (0.485, 0.229), 1: (0.456, 0.224), 2: (0.406, 0.225)}
    # 4 bands: R, G, B keep the pretrained filters, the 4th starts from their mean
    four = build_model("resnet18", 5, "imagenet", channels=4)
    assert torch.equal(four.net.conv1.weight[:, :3], state["conv1.weight"])
    assert set(four.weights_statistics) == {0, 1, 2}


def test_without_network_or_cached_file_one_line_names_the_file_and_the_folder():
    with pytest.raises(CheckpointError) as e:
        build_model("mobilenet_v2", 5, "imagenet")
    msg = str(e.value)
    assert "\n" not in msg and "mobilenet_v2-" in msg and str(Path(torch.hub.get_dir()) / "checkpoints") in msg


def test_weights_of_another_architecture_or_a_teacher_of_another_class_count_are_clear_errors():
    place_torchvision_weights("resnet34", torchvision.models.resnet18(weights=None))  # resnet18's, misnamed
    with pytest.raises(CheckpointError, match="does not fit"):
        build_model("resnet34", 5, "imagenet")
    place_torchvision_weights("resnet18")
    with pytest.raises(CheckpointError, match=r"1000.*\b5\b|classes"):
        teacher_from_weights("imagenet", "resnet18", 5)
    teacher = teacher_from_weights("imagenet", "resnet18", 1000)  # ImageNet's own classes: fits
    assert tuple(round(v, 3) for v in teacher.input_mean.flatten().tolist()) == IMAGENET_MEAN


def test_timm_imagenet_weights_load_from_the_hugging_face_cache(caches):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file
    from timm.models import get_pretrained_cfg

    repo = get_pretrained_cfg("resnet10t").hf_hub_id  # timm's default tag, e.g. timm/resnet10t.c3_in1k
    snapshot = caches / "hf" / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abcd")
    state = timm.create_model("resnet10t", pretrained=False).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    model = build_model("timm:resnet10t", 3, "imagenet")
    assert torch.equal(model.net.model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert model.net.model.fc.out_features == 3
    with pytest.raises(CheckpointError, match=r"resnet18.*Hugging Face cache.*models--timm--resnet18"):
        build_model("timm:resnet18", 3, "imagenet")


def test_torchgeo_weights_load_from_the_torch_hub_cache():
    tgm = pytest.importorskip("torchgeo.models")
    weights = tgm.ResNet18_Weights.SENTINEL2_ALL_MOCO
    bands = int(weights.meta["in_chans"])
    file = torch_hub_file(weights.url)
    file.parent.mkdir(parents=True)
    net = torchvision.models.resnet18(weights=None)
    net.conv1 = torch.nn.Conv2d(bands, 64, 7, 2, 3, bias=False)
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}  # a backbone
    torch.save(state, file)
    model = build_model("resnet18", 4, f"torchgeo:{weights}", channels=bands)
    assert torch.equal(model.net.conv1.weight, state["conv1.weight"]) and model.weights_statistics == {}
    with pytest.raises(Exception, match="13 bands|bands"):
        build_model("resnet18", 4, f"torchgeo:{weights}", channels=4)
    with pytest.raises(Exception, match="resnet50"):
        build_model("resnet50", 4, f"torchgeo:{weights}", channels=bands)
    with pytest.raises(Exception, match="SENTINEL2"):
        build_model("resnet18", 4, "torchgeo:ResNet18_Weights.SENTINEL9", channels=bands)


@pytest.mark.slow
def test_a_run_from_imagenet_weights_keeps_their_normalisation_and_records_the_name(scenes, tmp_path, capsys):
    place_torchvision_weights("resnet18")
    out = tmp_path / "ft"
    code, _, err = run_cli(capsys, "-q", "train", "--data", scenes, "--model", "resnet18", "--out", out,
                           "--set", *TINY, "model.weights=imagenet")
    assert code == 0, err
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["weights"] == "imagenet"
    record = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert tuple(round(v, 3) for v in record["state_dict"]["input_mean"].flatten().tolist()) == IMAGENET_MEAN
    assert json.loads((out / "metrics.json").read_text())["status"] == "finished"
