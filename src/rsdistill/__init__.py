"""rsdistill: knowledge distillation for remote-sensing scene classification.

The public API (stable; everything else is internal and may change between versions):

- runs, as the commands run them: :func:`train`, :func:`distill`, :func:`evaluate`,
  :func:`predict`, :func:`export`, :func:`suite`, :func:`report`, with their result objects;
- any method as a loss in your own loop: :func:`distillation_loss` (and :func:`teacher_logits_cache`);
- the typed run configuration :class:`RunConfig` and the error every user mistake raises,
  :class:`RsDistillError`;
- :func:`method_names` and :func:`model_names`: the names the config and the loss accept.

Names are imported on first use, so ``import rsdistill`` stays light (no torch until needed).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "train": "api", "distill": "api", "evaluate": "api", "predict": "api", "export": "api", "suite": "api",
    "report": "api", "build_run_config": "api", "RunResult": "api", "EvalResult": "api",
    "PredictResult": "api", "ExportResult": "api", "SuiteResult": "api",
    "distillation_loss": "loss", "DistillationLoss": "loss", "teacher_logits_cache": "loss",
    "RunConfig": "config", "RsDistillError": "errors",
}

__all__ = sorted([*_PUBLIC, "method_names", "model_names", "__version__"])

if TYPE_CHECKING:
    from .api import (
        EvalResult,
        ExportResult,
        PredictResult,
        RunResult,
        SuiteResult,
        build_run_config,
        distill,
        evaluate,
        export,
        predict,
        report,
        suite,
        train,
    )
    from .config import RunConfig
    from .errors import RsDistillError
    from .loss import DistillationLoss, distillation_loss, teacher_logits_cache


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value  # once imported, an ordinary attribute
        return value
    raise AttributeError(f"module 'rsdistill' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def method_names() -> list[str]:
    """The distillation methods' names (``rsdistill methods`` lists their settings)."""
    from .distillers import registry

    return registry.names()


def model_names() -> list[str]:
    """The model names of the registry (``rsdistill models``); ``timm:NAME`` takes any timm model."""
    from .models import model_names as names

    return list(names())
