"""Images that cannot be read: every one is found and named, and ``data.skip_bad_images`` leaves
them out of the split instead of stopping the run.

Decoding (``decode.decode_all``) goes on past a bad image and raises :class:`UnreadableImages`
with all of them at the end; :func:`decode_parts` gathers those of every split part, then either
stops with one error naming them or drops them from the split and keeps the rest.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from ..errors import DataError

log = logging.getLogger("rsdistill")

# How many bad images the one-line error names; beyond that each is logged on its own line.
NAMED_IN_ERROR = 10
HINT = "fix or remove them, or leave them out with --set data.skip_bad_images=true"


class UnreadableImages(DataError):
    """``failures``: (path relative to the dataset root, why) for each image that cannot be read,
    of ``total`` images; ``images``: the decoded tensor with those rows black (None when the
    images were only checked)."""

    def __init__(self, failures: list[tuple[str, str]], total: int, images: Any = None):
        self.failures, self.total, self.images = failures, total, images
        shown = "; ".join(why.removeprefix("cannot read image ") for _, why in failures[:NAMED_IN_ERROR])
        more = (f"; and {len(failures) - NAMED_IN_ERROR} more (each logged above)"
                if len(failures) > NAMED_IN_ERROR else "")
        super().__init__(f"{len(failures)} of {total} images cannot be read: {shown}{more}; {HINT}")

    def log_each(self) -> None:
        """Every bad image on a line of its own (the one-line error names the first ones only)."""
        if len(self.failures) > NAMED_IN_ERROR:
            for _, why in self.failures:
                log.error("%s", why)


def decode_parts(split: Any, parts: tuple[str, ...], load: Callable[[list[str]], Any],
                 skip: bool) -> tuple[Any, dict[str, Any], list[dict[str, str]]]:
    """``load(paths)`` for each part of ``split`` in ``parts`` -> (split, {part: images}, skipped).

    Every part is decoded before a bad image stops anything, so the error names all of them.
    With ``skip`` the bad images are dropped from the split (all its parts) and listed in
    ``skipped`` as {"path", "reason"} (the caller lists them in the run's log and metrics); the
    parts keep the rows that decoded."""
    images: dict[str, Any] = {}
    bad: dict[str, UnreadableImages] = {}
    for part in parts:
        try:
            images[part] = load(list(getattr(split, part)))
        except UnreadableImages as e:
            bad[part] = e
    if not bad:
        return split, images, []
    failures = [f for e in bad.values() for f in e.failures]
    total = sum(len(getattr(split, part)) for part in parts)
    if not skip:
        error = UnreadableImages(failures, total)
        error.log_each()
        raise error
    dropped = {path for path, _ in failures}
    for part, e in bad.items():
        paths = list(getattr(split, part))
        keep = [i for i, p in enumerate(paths) if p not in dropped]
        if not keep:
            raise DataError(f"every image of the {part} split cannot be read ({e.failures[0][1]}, ...)")
        # The rows that decoded, where the loader kept them; else decoded again without the bad ones.
        images[part] = e.images[keep] if e.images is not None else load([paths[i] for i in keep])
    split = dataclasses.replace(split, **{part: [p for p in getattr(split, part) if p not in dropped]
                                          for part in ("train", "val", "test")})
    return split, images, [{"path": path, "reason": why} for path, why in failures]
