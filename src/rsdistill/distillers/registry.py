"""Method names -> Distiller classes, each with its typed config.

Every module in this package is imported once (see ``__init__``), and each method registers itself
with :func:`register`, so adding a method is adding a file.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..config import Section
from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import Distiller

METHODS: dict[str, type[Distiller]] = {}
# Shorthand names (e.g. "kd+ls") -> (method name, config overrides).
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {}


class MethodConfig(Section):
    """Base of every method's config. Each method declares its own fields, its CE weight included
    (``ce_weight``, or the article's ``alpha`` for ISDM), with the defaults it documents."""

    name: str


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
        close = difflib.get_close_matches(name, list(METHODS) + list(ALIASES), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"method.name: unknown method '{name}'{hint}; see `rsdistill methods`")
    return METHODS[name]


def method_config(values: dict[str, Any]) -> MethodConfig:
    """Validate a ``method`` section with the config class of the method it names."""
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
        from ..config import format_validation_error

        raise ConfigError(format_validation_error(e, {"method": values}, prefix=("method",))) from None


def names(include_internal: bool = False) -> list[str]:
    _ensure_loaded()
    return [n for n, c in METHODS.items() if include_internal or c.requires_teacher]
