"""Wide ResNets (Zagoruyko & Komodakis 2016) in the CIFAR form used by CRD/DKD: wrn_16_2,
wrn_40_2. Pre-activation blocks, so a stage's "pre-ReLU" feature is the BN output that the
next block (or the final BN) applies its ReLU to; adaptive pooling makes any input size work."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .features import Features, Output


class WideBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if in_planes != planes or stride != 1:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_from_bn(x, self.bn1(x))

    def forward_from_bn(self, x: Tensor, bn_x: Tensor) -> Tensor:
        """The block given its first BN's output, which the network may already have computed."""
        act = F.relu(bn_x)
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        # As in the reference WRN: the projection shortcut starts from the activated input.
        return out + (x if self.shortcut is None else self.shortcut(act))


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WRN depth must be 6n+4")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        blocks, in_planes = [], widths[0]
        for i, planes in enumerate(widths[1:]):
            stride = 1 if i == 0 else 2
            blocks.append(
                nn.Sequential(*[WideBlock(in_planes if j == 0 else planes, planes, stride if j == 0 else 1)
                                for j in range(n)])
            )
            in_planes = planes
        self.block1, self.block2, self.block3 = blocks
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def bn_before_relu(self) -> list[nn.BatchNorm2d]:
        return [self.block2[0].bn1, self.block3[0].bn1, self.bn]

    def forward_features(self, x: Tensor) -> Output:
        stem = self.conv1(x)
        stages = [self.block1, self.block2, self.block3]
        bns = self.bn_before_relu()
        preact: list[Tensor] = []
        x, bn_x = stem, self.block1[0].bn1(stem)
        # Each BN runs once (a second call would update its running statistics twice): the BN
        # that follows a stage gives both that stage's pre-ReLU feature and the next block's input.
        for stage, bn in zip(stages, bns):
            x = stage[0].forward_from_bn(x, bn_x)
            for block in list(stage)[1:]:
                x = block(x)
            bn_x = bn(x)
            preact.append(bn_x)
        post = [F.relu(p) for p in preact]
        pooled = F.adaptive_avg_pool2d(post[-1], 1).flatten(1)
        return Output(self.fc(pooled), Features(stem, preact, post, pooled, self.fc.weight))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x).logits


def wrn_16_2(num_classes: int) -> WideResNet:
    return WideResNet(16, 2, num_classes)


def wrn_40_2(num_classes: int) -> WideResNet:
    return WideResNet(40, 2, num_classes)
