"""The model registry and the adapter's feature bundle."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rsdistill.errors import CheckpointError
from rsdistill.models import MODELS, build_model, count_parameters
from rsdistill.models.registry import load_backbone_weights

STAGES = {"imagenet": 4, "cifar": 3}


@pytest.mark.parametrize("name", list(MODELS))
def test_adapter_logits_equal_the_models_own_forward_and_the_bundle_is_complete(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        own = model.net(model.normalize(x))
    assert torch.allclose(out.logits, own, atol=1e-5)
    f = out.features
    assert len(f.stages) == len(f.preact) == STAGES[MODELS[name].family]
    assert f.last_map is f.stages[-1]
    assert f.pooled.shape == (2, model.classifier.in_features)
    assert f.classifier_weight is model.classifier.weight
    assert torch.allclose(model.classifier(f.pooled), out.logits, atol=1e-5)
    # stage maps shrink (or keep) resolution going deeper, and the stem comes first
    sizes = [t.shape[-1] for t in [f.stem, *f.stages]]
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet8x4", "resnet20", "wrn_16_2"])
def test_post_relu_stage_features_are_relu_of_the_pre_relu_ones(name):
    model = build_model(name, 3).eval()
    with torch.no_grad():
        f = model(torch.rand(2, 3, 32, 32)).features
    for pre, post in zip(f.preact, f.stages):
        assert torch.allclose(F.relu(pre), post)
        assert (pre < 0).any()  # genuinely before the activation


@pytest.mark.parametrize("size", [20, 45, 96, 256])
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "shufflenet_v2_x0_5", "resnet8x4", "wrn_16_2"])
def test_any_input_size_works(name, size):
    model = build_model(name, 7).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, size, size)).logits.shape == (1, 7)


def test_wrn_feature_pass_runs_each_batchnorm_once():
    """A BN called twice in training mode would update its running statistics twice."""
    model = build_model("wrn_16_2", 3).train()
    calls = []
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.register_forward_hook(lambda mod, i, o: calls.append(mod))
    model(torch.rand(2, 3, 16, 16))
    assert len(calls) == len(set(map(id, calls)))


def test_normalisation_is_part_of_the_model_and_saved_with_it():
    a = build_model("resnet20", 3)
    a.set_normalization([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    b = build_model("resnet20", 3)
    b.load_state_dict(a.state_dict())
    assert torch.allclose(b.input_mean.flatten(), torch.tensor([0.1, 0.2, 0.3]))


def test_bn_before_relu_gives_one_batchnorm_per_stage():
    for name in ("resnet18", "resnet50", "resnet20", "wrn_16_2", "mobilenet_v2"):
        model = build_model(name, 3)
        bns = model.bn_before_relu()
        assert len(bns) == STAGES[MODELS[name].family]
        with torch.no_grad():
            f = model.eval()(torch.rand(1, 3, 32, 32)).features
        assert [bn.num_features for bn in bns] == [t.shape[1] for t in f.preact]


def test_local_weights_file_loads_and_a_new_class_count_keeps_the_fresh_classifier(tmp_path):
    src = build_model("resnet18", 1000)
    torch.save(src.net.state_dict(), tmp_path / "imagenet.pth")
    model = build_model("resnet18", 21, weights=tmp_path / "imagenet.pth")
    assert torch.equal(model.net.conv1.weight, src.net.conv1.weight)
    assert model.classifier.out_features == 21


def test_weights_for_another_architecture_are_a_clear_error(tmp_path):
    torch.save(build_model("resnet20", 10).net.state_dict(), tmp_path / "r20.pth")
    with pytest.raises(CheckpointError, match="r20.pth' does not fit"):
        build_model("resnet18", 10, weights=tmp_path / "r20.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_backbone_weights(build_model("resnet18", 2).net, tmp_path / "none.pth")


def test_student_is_smaller_than_teacher():
    assert count_parameters(build_model("resnet18", 30)) < 0.6 * count_parameters(build_model("resnet34", 30))


def test_shufflenet_has_no_bn_before_relu_and_says_why():
    with pytest.raises(TypeError, match="channel shuffle"):
        build_model("shufflenet_v2_x0_5", 3).bn_before_relu()


def test_an_unknown_model_name_is_a_config_error_naming_the_field():
    from rsdistill.errors import ConfigError

    with pytest.raises(ConfigError, match="model.name: unknown model 'resnet19'"):
        build_model("resnet19", 3)
