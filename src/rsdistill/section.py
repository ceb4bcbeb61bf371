"""The base of every typed config section and the one-line wording of its validation errors.

Imports nothing from the package, so that the run config (``config``), the method configs
(``distillers``) and the data layer can all build on it without importing each other.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class Section(BaseModel):
    """A config section: unknown keys are errors, values are validated on assignment too, and no
    float field takes inf or nan (``.inf`` or ``1e400`` in YAML: no setting means that)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True,
                              allow_inf_nan=False)


def suggest(word: str, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def format_validation_error(e: ValidationError, model: type[BaseModel], prefix: tuple[str, ...] = ()) -> str:
    """The first error of ``e`` (raised validating ``model``) as one line naming the dotted field,
    ``prefix`` first (e.g. ``method.T: ...``); an unknown field gets a "did you mean" hint."""
    err = e.errors()[0]
    loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
    field = ".".join([*prefix, *loc])
    if err["type"] == "extra_forbidden":
        return f"unknown field '{field}'{suggest(loc[-1], _fields_at(model, loc[:-1]))}"
    msg = err["msg"].removeprefix("Value error, ")
    if "input" in err and err["type"] != "missing" and not isinstance(err["input"], dict) \
            and not _names_value(msg, err["input"]):
        return f"{field}: {msg} (got {err['input']!r})" if field else msg
    return f"{field}: {msg}" if field else msg


def _names_value(msg: str, value: Any) -> bool:
    """Whether a validator's own message names the value already (``(got ...)``, or a quoted name)."""
    return "(got " in msg or (isinstance(value, str) and f"'{value}'" in msg)


def _fields_at(model: Any, path: list[str]) -> list[str]:
    """The field names of the section at ``path`` below ``model`` (empty where it is not a model)."""
    for part in path:
        ann = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        model = ann.annotation if ann is not None else None
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [*model.model_fields, *(f.alias for f in model.model_fields.values() if f.alias)]
    return []
