"""Reading the YAML a user writes (``--config`` files, ``--set`` values, a run's ``config.yaml``).

Stricter than ``yaml.safe_load`` where it would silently change what was written: a key given
twice in one mapping is an error (PyYAML keeps the last one), and every error is one line that
keeps the file, line and column. A config file must be a UTF-8 text file.

A file may start from another of its folder (``extends: _base.yaml``, :func:`load_extending`): run
configs and suite files alike. Imports nothing of the package but ``errors``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys."""


def _mapping_without_duplicates(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: later keys override on purpose
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: SafeLoader's own error names it
            break
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                key_node.start_mark)
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def describe_error(e: yaml.YAMLError) -> str:
    """A PyYAML error as one line that keeps where it happened: ``line L, column C: problem``."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    context = getattr(e, "context", None)
    what = f"{context}: {problem}" if context and context not in problem else problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark is not None else what


def loads(text: str, source: str) -> Any:
    """Parse ``text`` strictly; errors are :class:`ConfigError` naming ``source``, line and column."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: invalid YAML at {describe_error(e)}") from None


def read_text(path: str | Path, what: str = "config file") -> str:
    """A text file's content as UTF-8, with one-line errors naming the file: missing, a folder,
    unreadable, or not UTF-8 (with the line of the first bad byte)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{what} '{p}' is a folder, not a file")
    if not p.exists():
        raise ConfigError(f"{what} '{p}' does not exist")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{what} '{p}' cannot be read: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{what} '{p}' is not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line}); "
                          "save it as UTF-8") from None


def load_file(path: str | Path, what: str = "config file") -> Any:
    return loads(read_text(path, what), f"{what} '{path}'")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: mappings merge key by key, anything else is replaced whole."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_extending(path: Path, read: Callable[[Path], dict[str, Any]], what: str,
                   seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The mapping ``read`` gives for ``path``, on top of the file its ``extends:`` names (and that
    file's own base): mappings merge key by key, this file winning; lists and values are replaced
    whole. A base lives in the file's folder, so that relative paths in either read the same; by
    convention a fragment that is no ``what`` of its own starts with ``_``."""
    raw = read(path)
    base_name = raw.pop("extends", None)
    if base_name is None:
        return raw
    if not isinstance(base_name, str) or Path(base_name).name != base_name:
        raise ConfigError(f"{path}: extends: give the name of a {what} in the same folder, not {base_name!r} "
                          "(relative paths in both are read from this folder)")
    base = path.parent / base_name
    if base.resolve() in [p.resolve() for p in (*seen, path)]:
        raise ConfigError(f"{path}: extends: '{base_name}' extends this file again (a loop)")
    if not base.is_file():
        raise ConfigError(f"{path}: extends: '{base}' does not exist")
    return deep_merge(load_extending(base, read, what, (*seen, path)), raw)
