"""Reading a foreign weights file (torchvision, timm): a state dict, never executable code.

``.safetensors`` files are read with safetensors; anything else with ``torch.load(weights_only=
True)``. A training checkpoint wrapping the weights (``state_dict``, ``model``, ``state_dict_ema``,
as timm's and torchvision's reference scripts save them) is unwrapped, and DataParallel's
``module.`` prefix removed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..errors import CheckpointError, load_failure

WRAPPER_KEYS = ("state_dict_ema", "state_dict", "model")


def read_state_dict(path: str | Path, option: str = "model.weights") -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{option}: file '{path}' does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise CheckpointError(f"{option}: cannot read '{path}': {load_failure(e)}") from None
    for key in WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{option}: '{path}' is not a state dict (names -> tensors)")
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state
