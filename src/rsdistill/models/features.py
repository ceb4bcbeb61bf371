"""What a model returns to the rest of the project: the logits and a typed feature bundle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError


class FeaturesUnavailable(ConfigError):
    """A method asked a model for a feature it does not expose (e.g. the stages of a timm model
    without ``forward_intermediates``)."""


class Unavailable:
    """Stands in the feature bundle for a part the model cannot provide: any use of it (an
    attribute, its length, an item, iteration) raises :class:`FeaturesUnavailable` with the
    reason, so a feature method stops with one line when it is built, not with a shape error."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason

    def _fail(self, *args: Any, **kwargs: Any):
        raise FeaturesUnavailable(self.reason)

    def __getattr__(self, name: str):
        if name.startswith("__"):  # copy, pickle and friends probe dunders: not a use
            raise AttributeError(name)
        self._fail()

    __len__ = __iter__ = __getitem__ = __call__ = _fail

    def __repr__(self) -> str:
        return f"Unavailable({self.reason!r})"


@dataclass
class Features:
    """Intermediate representations of one forward pass.

    ``stages`` are the outputs of the network's resolution stages (4 for ImageNet-style ResNets,
    3 for CIFAR-style ResNets and WRNs), shallow to deep, after their final activation;
    ``preact`` are the same tensors before that activation (what OFD and ReviewKD distil).
    ``stem`` is the input of the first stage. ``pooled`` is the embedding fed to the classifier.
    A part a model cannot provide is an :class:`Unavailable`.
    """

    stem: Tensor
    preact: list[Tensor]
    stages: list[Tensor]
    pooled: Tensor
    classifier_weight: Tensor

    @property
    def last_map(self) -> Tensor:
        """The deepest feature map (N x C x h x w), the input of the global pooling."""
        return self.stages[-1]


@dataclass
class Output:
    logits: Tensor
    features: Features


def pool_flat(x: Tensor) -> Tensor:
    return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)
