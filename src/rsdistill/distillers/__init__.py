"""Distillation methods, one per module, behind the :class:`Distiller` contract."""

from __future__ import annotations

import importlib
import pkgutil

_LOADED = False
_INFRASTRUCTURE = {"base", "registry", "losses", "settings"}


def load_all() -> None:
    """Import every method module once, so each registers itself (adding a method = adding a file)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in _INFRASTRUCTURE and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
