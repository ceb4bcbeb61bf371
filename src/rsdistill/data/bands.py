"""Which image bands a run decodes, and which of them each model reads.

A model reads the bands of its ``data.bands`` (None: R, G, B). A distillation run whose teacher
read other bands (a 13-band teacher, an RGB student: cross-modal distillation) decodes the student's
bands followed by the teacher's others, once; each model then picks its own channels from every
batch (``ModelAdapter.read_channels``), so the loaders, the bank of views and the teacher-output
cache work on one tensor of images whatever the two models read.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .decode import band_count
from .folders import FolderIndex

RGB = (0, 1, 2)


def resolve_bands(bands, index: FolderIndex) -> tuple[int, ...] | None:
    """``data.bands`` (else the layout's default) as a tuple of band indices (``"all"``: every
    band of the first image), or None (RGB). Datasets whose files are the pixels (CIFAR-100) are
    RGB only."""
    if bands is None:
        bands = index.default_bands  # the layout's own (torchgeo's EuroSAT: every band)
    if bands is None:
        return None
    if index.store is not None:
        raise ConfigError("data.bands: this dataset's images are RGB arrays, not image files; leave data.bands unset")
    if isinstance(bands, str):
        if not index.paths:
            raise ConfigError("data.bands=all: the dataset has no images to count the bands of")
        return tuple(range(band_count(index.root / index.paths[0])))
    return tuple(int(b) for b in bands)


@dataclass(frozen=True)
class BandPlan:
    """The bands decoded (None: RGB as read) and the channels of them each model reads (None: all)."""

    decoded: tuple[int, ...] | None
    student: tuple[int, ...] | None
    teacher: tuple[int, ...] | None

    @property
    def channels(self) -> int:
        return 3 if self.decoded is None else len(self.decoded)


def plan_bands(student: tuple[int, ...] | None, teacher: tuple[int, ...] | None,
               image_bands: int | None = None, rgb: tuple[int, ...] | None = None) -> BandPlan:
    """The student's bands first, then the teacher's others. RGB (None) beside a band list means
    bands 0, 1, 2 of images of at most 3 bands (``image_bands``), else the bands ``rgb``
    (``data.rgb_bands``) names as R, G, B."""
    if student == teacher:
        return BandPlan(student, None, None)
    if student is None or teacher is None:
        many = image_bands is not None and image_bands > 3
        if many and student is None:
            raise ConfigError(f"the student reads RGB (data.bands unset) and the teacher bands {list(teacher)} of "
                              f"{image_bands}-band images: give the student's bands with data.bands (e.g. "
                              "[3,2,1] for Sentinel-2's R, G, B, or all)")
        if many and rgb is None:
            raise ConfigError(f"the teacher reads R, G, B and the images have {image_bands} bands: name the "
                              "bands that are R, G, B with data.rgb_bands (e.g. [3,2,1] for Sentinel-2)")
        rgb_bands = tuple(rgb) if many and rgb is not None else RGB
        student, teacher = student or rgb_bands, teacher or rgb_bands
    decoded = tuple(student) + tuple(b for b in teacher if b not in student)
    teacher_channels = tuple(decoded.index(b) for b in teacher)
    student_channels = tuple(range(len(student))) if len(decoded) > len(student) else None
    return BandPlan(decoded, student_channels, teacher_channels)
