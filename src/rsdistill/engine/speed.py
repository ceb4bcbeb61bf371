"""The speed options of a run (``train.amp``, ``amp_dtype``, ``compile``, ``optimizer_impl``) and
where each one applies. ``channels_last`` is applied by the trainer, pinned memory and
non-blocking copies by the data layer and ``engine.batch`` (on CUDA), cudnn's autotuner by
``seeding.configure_determinism`` (on CUDA, unless ``--deterministic``)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..config import TrainConfig
from ..distillers.base import Distiller

log = logging.getLogger("rsdistill")


def amp_dtype(train: TrainConfig, device: torch.device) -> torch.dtype:
    """The autocast dtype of ``train.amp``: bfloat16 needs no gradient scaler (float32's range)
    and is preferred wherever the device has it; float16 where it does not."""
    if train.amp_dtype == "bfloat16":
        return torch.bfloat16
    if train.amp_dtype == "float16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def needs_grad_scaler(train: TrainConfig, device: torch.device) -> bool:
    """float16's narrow range makes small gradients underflow: only it takes a scaler."""
    return train.amp and amp_dtype(train, device) == torch.float16


def optimizer_options(train: TrainConfig) -> dict[str, Any]:
    """SGD's implementation switches for ``train.optimizer_impl`` (torch picks for "auto").

    "auto" stays the default although the fused kernel is faster (3.4 against 8.6 ms per ResNet18
    step on a 2-core CPU): it rounds differently, and over a run the difference grows into other
    numbers, so a run's stored config would no longer reproduce it. "fused" is opt-in."""
    return {"auto": {}, "foreach": {"foreach": True}, "fused": {"fused": True},
            "for_loop": {"foreach": False}}[train.optimizer_impl]


def compile_models(distiller: Distiller, backend: str = "inductor") -> list[str]:
    """``torch.compile`` the student and the teacher in place (``nn.Module.compile``): their
    modules, names and state dicts stay the same, so checkpoints keep their plain keys. Both the
    adapter (the feature path) and its network (``logits``, the evaluation path) are compiled;
    compilation itself happens at the first call. Returns what was compiled."""
    done = []
    for name in ("student", "teacher"):
        model = getattr(distiller, name, None)
        if model is None:
            continue
        model.compile(backend=backend)
        model.net.compile(backend=backend)
        done.append(name)
    return done


def apply_compile(distiller: Distiller, train: TrainConfig, device: torch.device) -> bool:
    """``train.compile`` where it pays: on CUDA. On the CPU it is ignored with a warning (compiling
    takes minutes there and needs a C++ toolchain, for little gain on these models)."""
    if not train.compile:
        return False
    if device.type != "cuda":
        log.warning("train.compile: ignored on %s (it applies on CUDA only)", device)
        return False
    compiled = compile_models(distiller)
    log.info("train.compile: %s compiled with torch.compile (at the first step)", " and ".join(compiled))
    return True
