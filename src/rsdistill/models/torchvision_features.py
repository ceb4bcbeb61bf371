"""Feature bundles for unmodified torchvision models.

The torchvision modules are used as they are; only the last block of each stage is stepped through
here so that its output before the final ReLU (which torchvision applies in place) is available.
``tests/test_models.py`` checks that the logits equal the model's own ``forward``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import MobileNetV2, ResNet, ShuffleNetV2
from torchvision.models.resnet import BasicBlock, Bottleneck

from .features import Features, Output


def _block_preact(block: nn.Module, x: Tensor) -> Tensor:
    identity = x if block.downsample is None else block.downsample(x)
    out = F.relu(block.bn1(block.conv1(x)))
    if isinstance(block, Bottleneck):
        out = F.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    elif isinstance(block, BasicBlock):
        out = block.bn2(block.conv2(out))
    else:  # pragma: no cover - torchvision ResNets only have these two blocks
        raise TypeError(f"unsupported ResNet block {type(block).__name__}")
    return out + identity


def resnet_features(net: ResNet, x: Tensor) -> Output:
    stem = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    preact, post, x = [], [], stem
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        blocks = list(layer)
        for block in blocks[:-1]:
            x = block(x)
        pre = _block_preact(blocks[-1], x)
        x = F.relu(pre)
        preact.append(pre)
        post.append(x)
    pooled = net.avgpool(x).flatten(1)
    return Output(net.fc(pooled), Features(stem, preact, post, pooled, net.fc.weight))


def resnet_bn_before_relu(net: ResNet) -> list[nn.BatchNorm2d]:
    last = [layer[-1] for layer in (net.layer1, net.layer2, net.layer3, net.layer4)]
    return [b.bn3 if isinstance(b, Bottleneck) else b.bn2 for b in last]


# Indices (into MobileNetV2.features) that end a resolution stage: /4, /8, /16, /32.
MOBILENET_STAGE_ENDS = (3, 6, 13, 18)
MOBILENET_STEM_END = 1


def mobilenet_features(net: MobileNetV2, x: Tensor) -> Output:
    feats = list(net.features)
    preact, post, stem = [], [], None
    for i, layer in enumerate(feats):
        if i == len(feats) - 1:
            # Conv-BN-ReLU6: keep the BN output as the pre-activation feature.
            pre = layer[1](layer[0](x))
            x = layer[2](pre)
        else:
            x = layer(x)
            pre = x  # inverted residuals end linearly: no activation to strip
        if i == MOBILENET_STEM_END:
            stem = x
        if i in MOBILENET_STAGE_ENDS:
            preact.append(pre)
            post.append(x)
    pooled = F.adaptive_avg_pool2d(x, 1).flatten(1)
    linear = net.classifier[-1]
    return Output(net.classifier(pooled), Features(stem, preact, post, pooled, linear.weight))


def mobilenet_bn_before_relu(net: MobileNetV2) -> list[nn.BatchNorm2d]:
    feats = list(net.features)
    return [feats[i][1] if i == len(feats) - 1 else feats[i].conv[-1] for i in MOBILENET_STAGE_ENDS]


def shufflenet_features(net: ShuffleNetV2, x: Tensor) -> Output:
    """Stages /8, /16, /32 (their units end in a channel shuffle of two halves, one of which was
    never activated: pre- and post-activation coincide, as for MobileNetV2) and conv5 (/32,
    Conv-BN-ReLU: its BN output is the pre-activation feature)."""
    stem = net.maxpool(net.conv1(x))
    preact, post, x = [], [], stem
    for stage in (net.stage2, net.stage3, net.stage4):
        x = stage(x)
        preact.append(x)
        post.append(x)
    pre = net.conv5[1](net.conv5[0](x))
    x = net.conv5[2](pre)
    preact.append(pre)
    post.append(x)
    pooled = x.mean([2, 3])
    return Output(net.fc(pooled), Features(stem, preact, post, pooled, net.fc.weight))


def shufflenet_bn_before_relu(net: ShuffleNetV2) -> list[nn.BatchNorm2d]:
    """Undefined: half of each stage's output channels never pass a BatchNorm, so no BN describes
    the stage's pre-activation distribution (OFD needs one for its teacher)."""
    raise TypeError("ShuffleNetV2's stages end in a channel shuffle, not a BN + ReLU: it cannot be "
                    "an OFD teacher (use it as the student)")
