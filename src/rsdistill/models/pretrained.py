"""A teacher from a local torchvision or timm weights file (e.g. ImageNet-1k ResNet-34 weights),
used as it is: ``--teacher FILE --set teacher.model=NAME``.

Unlike ``model.weights`` (a starting point: a classifier of another class count is replaced), a
teacher's classifier is its knowledge, so every weight must fit, the classifier included. The
input normalisation is the one the weights were trained with: ImageNet's mean and std for
torchvision, the model's ``pretrained_cfg`` for timm.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from .adapter import ModelAdapter
from .registry import build_model
from .timm_models import IMAGENET_MEAN, IMAGENET_STD, TimmNet
from .named_weights import is_named_weights, resolve
from .weights_file import read_state_dict


def teacher_from_weights(path: str | Path, arch: str, num_classes: int) -> ModelAdapter:
    """``path``: a weights file, or weights by name (``imagenet``, ``torchgeo:...``)."""
    model = build_model(arch, num_classes)
    net = model.net
    target = net.model if isinstance(net, TimmNet) else net
    if is_named_weights(str(path)):
        named = resolve(str(path), arch, 1000, option="teacher.checkpoint")
        if named.mean is None:  # torchgeo's weights are backbones: no classifier to teach with
            raise CheckpointError(f"teacher {path}: these weights have no classifier for the data's classes; "
                                  f"fine-tune a teacher first (rsdistill train --set model.weights={path})")
        state = {k.removeprefix("model."): v for k, v in named.state.items()} if isinstance(net, TimmNet) else named.state
    else:
        path = Path(path)
        state = read_state_dict(path, option="teacher.checkpoint")
    own = target.state_dict()
    wrong = sorted(set(state) ^ set(own)) or sorted(k for k in state if state[k].shape != own[k].shape)
    if wrong:
        k = wrong[0]
        detail = (f"key '{k}' has shape {tuple(state[k].shape)}, the model {tuple(own[k].shape)}"
                  if k in state and k in own else f"e.g. key '{k}' is in only one of them")
        raise CheckpointError(f"teacher '{path}' does not fit a {arch} with {num_classes} classes ({detail}); "
                              "a teacher's classifier must match the data's classes")
    target.load_state_dict(state)
    mean, std = net.input_statistics() if isinstance(net, TimmNet) else (IMAGENET_MEAN, IMAGENET_STD)
    model.set_normalization(mean, std)
    model.eval()
    return model
