"""Method names -> Distiller classes, each with its typed config.

Every module in this package is imported once (see ``__init__``), and each method registers itself
with :func:`register`, so adding a method is adding a file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..errors import ConfigError
from ..section import format_validation_error, suggest
from .settings import MethodConfig

if TYPE_CHECKING:
    from .base import Distiller

METHODS: dict[str, type[Distiller]] = {}
# Shorthand names (e.g. "kd+ls") -> (method name, config overrides).
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {}


def register(name: str):
    def deco(cls: type[Distiller]) -> type[Distiller]:
        if name in METHODS:
            raise RuntimeError(f"method '{name}' registered twice")
        cls.method_name = name
        METHODS[name] = cls
        return cls

    return deco


def register_alias(alias: str, method: str, **overrides: Any) -> None:
    ALIASES[alias] = (method, overrides)


def _ensure_loaded() -> None:
    from . import load_all

    load_all()


def get(name: str) -> type[Distiller]:
    _ensure_loaded()
    if name not in METHODS:
        hint = suggest(name, list(METHODS) + list(ALIASES))
        raise ConfigError(f"method.name: unknown method '{name}'{hint}; see `rsdistill methods`")
    return METHODS[name]


def method_config(values: dict[str, Any]) -> MethodConfig:
    """Validate a ``method`` section with the config class of the method it names (shorthands such
    as ``kd+ls`` resolve to their method); errors name the field as ``method.<field>``."""
    _ensure_loaded()
    values = dict(values)
    name = values.get("name", "ce")
    if name in ALIASES:
        base, overrides = ALIASES[name]
        values = {**overrides, **values, "name": base}
        name = base
    cls = get(name)
    try:
        return cls.Config.model_validate(values)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, cls.Config, prefix=("method",))) from None


def names(include_internal: bool = False) -> list[str]:
    _ensure_loaded()
    return [n for n, c in METHODS.items() if include_internal or c.requires_teacher]
