"""Atomic file writes: a reader (or a crash) never sees a half-written file."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import RsDistillError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class WriteError(RsDistillError, OSError):
    """A file could not be written (read-only place, disk full, ...): one line naming the file."""


def write_error(path: str | Path, e: OSError) -> WriteError:
    reason = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        reason += " (the disk is full)"
    err = WriteError(f"cannot write '{path}': {reason}")
    err.errno = e.errno
    return err


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through ``write(file)`` to a temporary file beside ``path``, then rename over it.
    The file gets the permissions a plain ``open`` would give (0666 minus the umask): a temporary
    file is created owner-only, which would hide results in a lab's shared folder. An OS error
    (read-only folder, disk full) becomes a :class:`WriteError` naming ``path``; the old file, if
    any, is kept."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, WriteError):
            raise
        raise write_error(path, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")
