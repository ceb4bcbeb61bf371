"""One interface over every architecture: ``adapter(x) -> Output(logits, Features)``.

The adapter also owns the input normalisation (mean/std of the training split, as buffers), so a
checkpoint carries the statistics its model was trained with: a teacher and a student trained on
different splits each see the inputs they expect, and an exported model takes images in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models import MobileNetV2, ResNet, ShuffleNetV2

from .features import Output
from .torchvision_features import (
    mobilenet_bn_before_relu,
    mobilenet_features,
    resnet_bn_before_relu,
    resnet_features,
    shufflenet_bn_before_relu,
    shufflenet_features,
)


class ModelAdapter(nn.Module):
    def __init__(
        self,
        arch: str,
        net: nn.Module,
        num_classes: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        channels: int = 3,
    ):
        super().__init__()
        self.arch = arch
        self.num_classes = num_classes
        self.net = net
        mean = [0.5] * channels if mean is None else mean
        std = [0.25] * channels if std is None else std
        self.register_buffer("input_mean", torch.tensor(mean, dtype=torch.float32).view(1, channels, 1, 1))
        self.register_buffer("input_std", torch.tensor(std, dtype=torch.float32).view(1, channels, 1, 1))
        # Which channels of a batch the model reads, when the batch holds more bands than the model
        # (a distillation run decoding both models' bands, data/bands.py); not part of the
        # checkpoint: a stored or exported model takes its own bands.
        self.register_buffer("read_channels", None, persistent=False)
        # The image bands the model reads (data.bands resolved; None: R, G, B), for its record.
        self.bands: list[int] | None = None
        # Pretrained weights' own normalisation (channel -> (mean, std)), which the run keeps
        # instead of the training split's statistics for those channels.
        self.weights_statistics: dict[int, tuple[float, float]] = {}

    @property
    def in_channels(self) -> int:
        return int(self.input_mean.shape[1])

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.input_mean.copy_(torch.tensor(mean).view(1, -1, 1, 1))
        self.input_std.copy_(torch.tensor(std).view(1, -1, 1, 1))

    def set_read_channels(self, channels: Sequence[int] | None) -> None:
        device = self.input_mean.device
        self.read_channels = None if channels is None else torch.tensor(list(channels), dtype=torch.long, device=device)

    def normalize(self, x: Tensor) -> Tensor:
        if self.read_channels is not None:
            x = x.index_select(1, self.read_channels)
        return (x - self.input_mean.to(x.dtype)) / self.input_std.to(x.dtype)

    def forward(self, x: Tensor) -> Output:
        """``x``: images in [0, 1], N x C x H x W (C: the model's bands), any H and W."""
        x = self.normalize(x)
        net = self.net
        if hasattr(net, "forward_features"):
            return net.forward_features(x)
        if isinstance(net, ResNet):
            return resnet_features(net, x)
        if isinstance(net, MobileNetV2):
            return mobilenet_features(net, x)
        if isinstance(net, ShuffleNetV2):
            return shufflenet_features(net, x)
        raise TypeError(f"no feature extractor for {type(net).__name__}")

    def logits(self, x: Tensor) -> Tensor:
        """The plain forward (no feature bundle): what evaluation and export use."""
        return self.net(self.normalize(x))

    @property
    def classifier(self) -> nn.Linear:
        net = self.net
        if isinstance(net, MobileNetV2):
            return net.classifier[-1]
        if hasattr(net, "classifier_layer"):  # timm models
            return net.classifier_layer
        return net.fc

    def bn_before_relu(self) -> list[nn.BatchNorm2d]:
        """Per stage, the BatchNorm whose output (plus any residual) the stage's ReLU receives."""
        net = self.net
        if isinstance(net, ResNet):
            return resnet_bn_before_relu(net)
        if isinstance(net, MobileNetV2):
            return mobilenet_bn_before_relu(net)
        if isinstance(net, ShuffleNetV2):
            return shufflenet_bn_before_relu(net)
        return net.bn_before_relu()


class LogitsOnly(nn.Module):
    """The deployable form of an adapter: images in [0, 1] -> logits (for export and profiling)."""

    def __init__(self, adapter: ModelAdapter):
        super().__init__()
        self.adapter = adapter

    def forward(self, x: Tensor) -> Tensor:
        return self.adapter.logits(x)
