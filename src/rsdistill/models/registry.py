"""Model names -> builders. Random initialisation, a local weights file, or weights by name
(``imagenet``, ``torchgeo:...``: read from the libraries' caches, see ``named_weights``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from ..errors import CheckpointError, ConfigError, load_failure
from . import cifar_resnet, wrn
from .adapter import ModelAdapter
from .input_bands import adapt_state_dict, set_input_channels
from .named_weights import is_named_weights
from .timm_models import build_timm, is_timm_name, load_timm_weights

log = logging.getLogger("rsdistill")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[int], nn.Module]
    family: str  # "imagenet": torchvision layout (stride-4 stem); "cifar": 3x3 stem, no max-pool
    description: str


def model_family(arch: str) -> str:
    """``cifar`` or ``imagenet`` for a registered model; an unknown one (e.g. a model restored
    from a checkpoint of a later version) is taken to be ImageNet-style."""
    spec = MODELS.get(arch)
    return spec.family if spec is not None else "imagenet"


def _tv(name: str) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)

    return build


MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec("resnet18", _tv("resnet18"), "imagenet", "torchvision ResNet-18 (11.7 M params at 1000 classes)"),
        ModelSpec("resnet34", _tv("resnet34"), "imagenet", "torchvision ResNet-34 (21.8 M)"),
        ModelSpec("resnet50", _tv("resnet50"), "imagenet", "torchvision ResNet-50 (25.6 M)"),
        ModelSpec("mobilenet_v2", _tv("mobilenet_v2"), "imagenet", "torchvision MobileNetV2 (3.5 M)"),
        ModelSpec("shufflenet_v2_x0_5", _tv("shufflenet_v2_x0_5"), "imagenet",
                  "torchvision ShuffleNetV2 x0.5 (1.4 M; 0.37 M at 30 classes): an on-board-sized student"),
        ModelSpec("shufflenet_v2_x1_0", _tv("shufflenet_v2_x1_0"), "imagenet", "torchvision ShuffleNetV2 x1.0 (2.3 M)"),
        ModelSpec("resnet20", cifar_resnet.resnet20, "cifar", "CIFAR ResNet-20 (0.27 M)"),
        ModelSpec("resnet56", cifar_resnet.resnet56, "cifar", "CIFAR ResNet-56 (0.86 M)"),
        ModelSpec("resnet8x4", cifar_resnet.resnet8x4, "cifar", "CIFAR ResNet-8x4 (1.2 M)"),
        ModelSpec("resnet32x4", cifar_resnet.resnet32x4, "cifar", "CIFAR ResNet-32x4 (7.4 M)"),
        ModelSpec("wrn_16_2", wrn.wrn_16_2, "cifar", "Wide ResNet-16-2 (0.7 M)"),
        ModelSpec("wrn_40_2", wrn.wrn_40_2, "cifar", "Wide ResNet-40-2 (2.2 M)"),
    ]
}


def model_names() -> list[str]:
    return list(MODELS)


def build_model(name: str, num_classes: int, weights: str | Path | None = None, channels: int = 3,
                rgb: Sequence[int | None] = (0, 1, 2)) -> ModelAdapter:
    """The model ``name`` for ``num_classes`` classes and ``channels`` input bands, from
    ``weights`` (a local file, or ``imagenet`` / ``torchgeo:...``, see ``named_weights``) or freshly
    initialised. ``rgb``: the channels holding R, G, B, whose first-convolution filters keep RGB
    weights (the others are adapted, see ``input_bands``). Named weights that carry their own
    normalisation leave it in ``adapter.weights_statistics`` (channel -> (mean, std))."""
    named = resolve_named(str(weights), name, num_classes, channels) if is_named_weights(str(weights)) else None
    state, source = (named.state, named.source) if named else (None, str(weights))
    if is_timm_name(name):
        net = build_timm(name, num_classes, channels)
        if weights is not None:
            load_timm_weights(net, Path(weights) if state is None else state, rgb=rgb, source=source)
        model = ModelAdapter(name, net, num_classes, channels=channels)
    else:
        if name not in MODELS:
            raise ConfigError(f"model.name: unknown model '{name}' (known: {', '.join(MODELS)}, timm:NAME)")
        net = MODELS[name].build(num_classes)
        set_input_channels(net, channels)
        if weights is not None:
            load_backbone_weights(net, Path(weights) if state is None else state, rgb, source)
        model = ModelAdapter(name, net, num_classes, channels=channels)
    if named is not None and named.mean is not None:
        model.weights_statistics = {pos: (named.mean[j], named.std[j]) for j, pos in enumerate(rgb)
                                    if pos is not None and pos < channels}
    return model


def resolve_named(weights: str, name: str, num_classes: int, channels: int):
    from .named_weights import resolve

    named = resolve(weights, name, num_classes)
    if named.channels not in (3, channels):
        raise ConfigError(f"model.weights={weights}: these weights read {named.channels} bands, the model "
                          f"{channels} (choose data.bands to match them)")
    log.info("model.weights=%s: %s", weights, named.source)
    return named


def load_backbone_weights(net: nn.Module, path: Path | dict, rgb: Sequence[int | None] = (0, 1, 2),
                          source: str | None = None) -> None:
    """Load a plain state dict (e.g. torchvision ImageNet weights saved locally, or one already
    read) into ``net``.

    The classifier is kept from ``net`` when its shape differs (a new class count); RGB weights of
    the first convolution are adapted to a model of other bands (``input_bands``); any other
    mismatch is an error naming the file.
    """
    if isinstance(path, dict):
        state = path
    else:
        if not path.is_file():
            raise CheckpointError(f"model.weights: file '{path}' does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
            raise CheckpointError(f"model.weights: cannot read '{path}': {load_failure(e)}") from None
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            inner = state["model"]
            state = inner.get("state_dict", inner)
            state = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")} or state
    own = net.state_dict()
    state = adapt_state_dict(state, own, rgb)
    kept = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    dropped = [k for k in state if k not in kept]
    classifier_keys = {"fc.weight", "fc.bias", "classifier.1.weight", "classifier.1.bias"}
    if [k for k in dropped if k not in classifier_keys] or [
        k for k in own if k not in kept and k not in classifier_keys
    ]:
        bad = sorted(set(dropped) ^ set(k for k in own if k not in kept))[:3]
        raise CheckpointError(f"model.weights: '{source or path}' does not fit this architecture (e.g. keys {bad})")
    net.load_state_dict(kept, strict=False)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
