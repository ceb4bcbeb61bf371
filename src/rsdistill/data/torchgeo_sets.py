"""torchgeo's scene-classification datasets: ``--data torchgeo:<name>:DIR`` (the optional
``rsdistill[torchgeo]`` extra).

torchgeo's own dataset classes find the files (their layout under DIR, as torchgeo downloads and
extracts them), download them with ``--download`` (checking the archives' MD5 sums) and give the
published train/val/test splits (their split files); rsdistill lists what they found as a dataset
index, so that the images are decoded, cached, augmented and split as for a folder (the same TIFF
stretch and ``data.bands``; the decoded cache, the bank of views and the teacher-output cache work
unchanged). ``data.published_split: false`` takes a ratio split (``data.train_ratio``) instead.

- ``ucmerced``: UC Merced Land-Use, 21 classes x 100 RGB 256 px TIFFs.
- ``eurosat``: EuroSAT, 10 classes, 27 000 Sentinel-2 images of 13 bands at 64 px (B01 ... B12,
  B8A: the file order); reads every band unless ``data.bands`` chooses.
- ``eurosat_rgb``: the same files, bands B04, B03, B02 (indices 3, 2, 1) by default.
- ``resisc45``: NWPU-RESISC45, 45 classes x 700 RGB 256 px JPEGs.
- ``patternnet``: PatternNet, 38 classes x 800 RGB 256 px JPEGs; no published split (ratio split).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ConfigError, DataError
from .folders import FolderIndex

INSTALL_HINT = "pip install 'rsdistill[torchgeo]'"
PREFIX = "torchgeo:"


@dataclass(frozen=True)
class TorchgeoSet:
    cls: str  # the class in torchgeo.datasets
    title: str
    has_splits: bool
    native_size: int
    bands: tuple[int, ...] | str | None = None  # what the model reads without data.bands


SETS: dict[str, TorchgeoSet] = {
    "ucmerced": TorchgeoSet("UCMerced", "UC Merced Land-Use", True, 256),
    "eurosat": TorchgeoSet("EuroSAT", "EuroSAT (13 bands)", True, 64, "all"),
    "eurosat_rgb": TorchgeoSet("EuroSAT", "EuroSAT (RGB: B04, B03, B02)", True, 64, (3, 2, 1)),
    "resisc45": TorchgeoSet("RESISC45", "NWPU-RESISC45", True, 256),
    "patternnet": TorchgeoSet("PatternNet", "PatternNet", False, 256),
}
PRESET_NAMES = tuple(f"{PREFIX}{name}" for name in SETS)


def spec_of(preset: str) -> TorchgeoSet:
    return SETS[preset.removeprefix(PREFIX)]


def _dataset_class(spec: TorchgeoSet):
    try:
        import torchgeo.datasets as tgd
    except ImportError:
        raise ConfigError(f"--data torchgeo:...: needs the optional torchgeo package ({INSTALL_HINT})") from None
    return tgd, getattr(tgd, spec.cls)


def _open(spec: TorchgeoSet, root: Path, split: str | None, download: bool):
    tgd, cls = _dataset_class(spec)
    kwargs = {"split": split} if split else {}
    try:
        return cls(root=str(root), download=download, checksum=download, **kwargs)
    except tgd.DatasetNotFoundError:
        raise DataError(f"{spec.title} (torchgeo) is not in '{root}': put it there as torchgeo lays it out, "
                        f"or add --download") from None
    except (OSError, RuntimeError) as e:  # a failed download or checksum, an unreadable file
        raise DataError(f"{spec.title} (torchgeo) in '{root}': {str(e).splitlines()[0]}") from None


def scan_torchgeo(preset: str, root: str | Path, download: bool = False) -> FolderIndex:
    """The images torchgeo's class finds under ``root``, with its published split as ``parts``."""
    spec = spec_of(preset)
    root = Path(root)
    if not download and not root.is_dir():
        raise DataError(f"data folder '{root}' does not exist")
    splits = ("train", "val", "test") if spec.has_splits else (None,)
    datasets = {s: _open(spec, root, s, download) for s in splits}
    first = next(iter(datasets.values()))
    # The folder holding the class folders (torchgeo's base_dir or directory, under root).
    image_root = root / (getattr(first, "base_dir", None) or first.directory)
    classes = list(first.classes)
    parts: dict[str, list[str]] = {}
    labelled: dict[str, int] = {}
    for split, ds in datasets.items():
        rel = [Path(p).relative_to(image_root).as_posix() for p, _ in ds.samples]
        labelled.update({r: y for r, (_, y) in zip(rel, ds.samples)})
        if split:
            parts[split] = sorted(rel)
    if not labelled:
        raise DataError(f"{spec.title} (torchgeo): no images under '{image_root}'")
    paths = sorted(labelled)
    return FolderIndex(image_root, classes, paths, [labelled[p] for p in paths], parts or None,
                       default_bands=spec.bands)


def download(preset: str, root: str | Path) -> None:
    """``--download``: fetch (and check) the dataset into ``root`` with torchgeo."""
    Path(root).mkdir(parents=True, exist_ok=True)
    scan_torchgeo(preset, root, download=True)


def without_parts(index: FolderIndex) -> FolderIndex:
    """The index for a ratio split (``data.published_split: false``)."""
    return replace(index, parts=None)
