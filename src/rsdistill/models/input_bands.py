"""Models of N input bands (multispectral imagery, ``data.bands``).

torchvision and CIFAR networks get their first convolution rebuilt for N input channels (timm
models take ``in_chans`` at creation). RGB-pretrained weights of that convolution are adapted
(:func:`adapt_rgb_filters`): the filters of the bands that are R, G and B keep their pretrained
values; every other band's filter starts as the mean of the three, times 3/N, so that the other
bands together weigh about as much as R, G and B (timm's ``adapt_input_conv`` scales the RGB
filters it repeats over N channels by 3/N likewise; here R, G and B keep theirs unscaled).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models import ShuffleNetV2


def first_conv(net: nn.Module) -> tuple[str, nn.Conv2d]:
    """The name and module of the convolution reading the image (the first one of the network)."""
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise TypeError(f"{type(net).__name__} has no convolution")


def set_input_channels(net: nn.Module, channels: int) -> None:
    """Rebuild ``net``'s first convolution for ``channels`` input bands (a no-op at its own count),
    initialised as the network initialises its convolutions."""
    name, conv = first_conv(net)
    if conv.in_channels == channels:
        return
    new = nn.Conv2d(channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
    if not isinstance(net, ShuffleNetV2):  # torchvision's ShuffleNetV2 keeps PyTorch's default init
        nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
        if new.bias is not None:
            nn.init.zeros_(new.bias)
    parent_name, _, attr = name.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    setattr(parent, attr, new)


def adapt_rgb_filters(weight: Tensor, channels: int, rgb: Sequence[int | None] = (0, 1, 2)) -> Tensor:
    """An RGB convolution's weight (out x 3 x k x k) for ``channels`` input bands. ``rgb[j]``: the
    model's channel holding R, G, B (j = 0, 1, 2), None where the model does not read that band."""
    mean = weight.mean(dim=1)
    out = (mean * (3.0 / channels)).unsqueeze(1).repeat(1, channels, 1, 1)
    for j, position in enumerate(rgb):
        if position is not None and position < channels:
            out[:, position] = weight[:, j]
    return out.contiguous()


def adapt_state_dict(state: dict[str, Tensor], own: dict[str, Tensor], rgb: Sequence[int | None]) -> dict[str, Tensor]:
    """``state`` (RGB weights) with the first convolution's weight adapted where ``own`` (the
    model's state dict) reads another number of bands: the only 4-d weight with 3 input channels
    where the model has N."""
    out = dict(state)
    for key, value in state.items():
        mine = own.get(key)
        if (mine is not None and value.ndim == 4 and mine.ndim == 4 and value.shape[1] == 3
                and mine.shape[1] != 3 and value.shape[0] == mine.shape[0] and value.shape[2:] == mine.shape[2:]):
            with torch.no_grad():
                out[key] = adapt_rgb_filters(value, mine.shape[1], rgb)
    return out


def rgb_positions(model_bands: Sequence[int] | None, rgb_bands: Sequence[int] | None) -> tuple[int | None, ...]:
    """Where R, G, B are among a model's bands: ``rgb_bands`` (image band indices, data.rgb_bands)
    looked up in ``model_bands``; by default the model's first three bands."""
    if model_bands is None or rgb_bands is None:
        return (0, 1, 2)
    bands = list(model_bands)
    return tuple(bands.index(b) if b in bands else None for b in rgb_bands)
