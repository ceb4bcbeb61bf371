"""The configuration files rsdistill ships (the repository's ``configs/``: run configs, protocols,
recipes, suite files), found where rsdistill is installed from.

A checkout or an editable install (``make``, ``pip install -e``) reads them in place; a wheel
carries a copy under ``<prefix>/share/rsdistill/configs`` (pyproject.toml's data-files), with the
same sub-folders, so that the suite files' relative paths (``../protocols/aid64.yaml``) resolve
in either."""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import ConfigError

# src/rsdistill/shipped.py -> the repository's configs/
CHECKOUT = Path(__file__).resolve().parents[2] / "configs"
INSTALLED = Path(sys.prefix) / "share" / "rsdistill" / "configs"


def configs_dir() -> Path:
    """The shipped ``configs/`` folder: the checkout's, else the installed copy."""
    for place in (CHECKOUT, INSTALLED):
        if (place / "suites").is_dir():
            return place
    raise ConfigError(f"rsdistill's configs/ folder is missing (looked in '{CHECKOUT}' and '{INSTALLED}'): "
                      "reinstall rsdistill")


def shipped_config(relative: str) -> Path:
    """A file of the shipped ``configs/``, e.g. ``shipped_config("suites/ablation.yaml")``."""
    path = configs_dir() / relative
    if not path.is_file():
        raise ConfigError(f"rsdistill's shipped config '{relative}' is missing from '{path.parent}': reinstall rsdistill")
    return path
