"""CIFAR-style ResNets (He et al. 2016, as used by CRD/DKD/mdistiller): resnet20, resnet56,
resnet8x4, resnet32x4. A 3x3 stem without max-pooling, three stages of basic blocks and adaptive
average pooling, so any input size works (32 px is the native one)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .features import Features, Output


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward_preact(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return out + (x if self.downsample is None else self.downsample(x))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.forward_preact(x))


class Stage(nn.Sequential):
    def forward_preact(self, x: Tensor) -> Tensor:
        blocks = list(self)
        for block in blocks[:-1]:
            x = block(x)
        return blocks[-1].forward_preact(x)


class CifarResNet(nn.Module):
    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError("CIFAR ResNet depth must be 6n+2")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages, in_planes = [], widths[0]
        for i, planes in enumerate(widths[1:]):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(in_planes, planes, stride)]
            blocks += [BasicBlock(planes, planes) for _ in range(n - 1)]
            stages.append(Stage(*blocks))
            in_planes = planes
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def stages(self) -> list[Stage]:
        return [self.layer1, self.layer2, self.layer3]

    def forward_features(self, x: Tensor) -> Output:
        stem = F.relu(self.bn1(self.conv1(x)))
        preact, post, x = [], [], stem
        for stage in self.stages:
            pre = stage.forward_preact(x)
            x = F.relu(pre)
            preact.append(pre)
            post.append(x)
        pooled = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return Output(self.fc(pooled), Features(stem, preact, post, pooled, self.fc.weight))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x).logits

    def bn_before_relu(self) -> list[nn.BatchNorm2d]:
        return [stage[-1].bn2 for stage in self.stages]


def resnet20(num_classes: int) -> CifarResNet:
    return CifarResNet(20, (16, 16, 32, 64), num_classes)


def resnet56(num_classes: int) -> CifarResNet:
    return CifarResNet(56, (16, 16, 32, 64), num_classes)


def resnet8x4(num_classes: int) -> CifarResNet:
    return CifarResNet(8, (32, 64, 128, 256), num_classes)


def resnet32x4(num_classes: int) -> CifarResNet:
    return CifarResNet(32, (32, 64, 128, 256), num_classes)
