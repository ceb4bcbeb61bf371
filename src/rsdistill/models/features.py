"""What a model returns to the rest of the project: the logits and a typed feature bundle."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Features:
    """Intermediate representations of one forward pass.

    ``stages`` are the outputs of the network's resolution stages (4 for ImageNet-style ResNets,
    3 for CIFAR-style ResNets and WRNs), shallow to deep, after their final activation;
    ``preact`` are the same tensors before that activation (what OFD and ReviewKD distil).
    ``stem`` is the input of the first stage. ``pooled`` is the embedding fed to the classifier.
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
