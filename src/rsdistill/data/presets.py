"""The published datasets: where their images are and how many there should be (the RS scene
sets here; CIFAR-100 and ImageNet, which have their own layouts, in ``cifar`` and ``imagenet``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .folders import FolderIndex, scan_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    num_classes: int
    # Sub-folders (relative to the given root) that may hold the class folders, most specific first.
    layouts: tuple[str, ...]
    per_class: dict[str, int] = field(default_factory=dict)
    default_per_class: int = 0

    def expected(self, cls: str) -> int:
        return self.per_class.get(cls, self.default_per_class)


# Xia et al. 2017, "AID: A Benchmark Data Set for Performance Evaluation of Aerial Scene
# Classification", Table 1.
AID_COUNTS = {
    "Airport": 360, "BareLand": 310, "BaseballField": 220, "Beach": 400, "Bridge": 360,
    "Center": 260, "Church": 240, "Commercial": 350, "DenseResidential": 410, "Desert": 300,
    "Farmland": 370, "Forest": 250, "Industrial": 390, "Meadow": 280, "MediumResidential": 290,
    "Mountain": 340, "Park": 350, "Parking": 390, "Playground": 370, "Pond": 420, "Port": 380,
    "RailwayStation": 260, "Resort": 290, "River": 410, "School": 300, "SparseResidential": 300,
    "Square": 330, "Stadium": 290, "StorageTanks": 360, "Viaduct": 420,
}

PRESETS: dict[str, Preset] = {
    "ucm": Preset("ucm", "UC Merced Land-Use", 21, ("UCMerced_LandUse/Images", "Images", "."),
                  default_per_class=100),
    "aid": Preset("aid", "AID", 30, ("AID", "."), per_class=AID_COUNTS),
    "nwpu": Preset("nwpu", "NWPU-RESISC45", 45, ("NWPU-RESISC45", "."), default_per_class=700),
}


def locate(preset: str, root: str | Path) -> Path:
    """The folder holding the class folders, for a root given with or without the top folder."""
    root = Path(root)
    if preset == "folder":
        return root
    if not root.is_dir():
        raise DataError(f"data folder '{root}' does not exist")
    spec = PRESETS[preset]
    for sub in spec.layouts:
        candidate = root / sub
        if candidate.is_dir() and sum(1 for p in candidate.iterdir() if p.is_dir()) >= 2:
            return candidate
    tried = ", ".join(str(root / s) for s in spec.layouts)
    raise DataError(f"{spec.title}: no class folders found (looked in {tried})")


def scan_dataset(preset: str, root: str | Path) -> FolderIndex:
    # The datasets with their own file layout and published split (data.cifar, data.imagenet).
    if preset == "cifar100":
        from .cifar import scan_cifar100

        return scan_cifar100(root)
    if preset == "imagenet":
        from .imagenet import scan_imagenet

        return scan_imagenet(root)
    index = scan_folder(locate(preset, root))
    if preset != "folder":
        check_against_preset(PRESETS[preset], index)
    return index


def check_against_preset(spec: Preset, index: FolderIndex) -> None:
    if len(index.classes) != spec.num_classes:
        raise DataError(
            f"{spec.title}: expected {spec.num_classes} class folders in '{index.root}', "
            f"found {len(index.classes)} (use --set data.preset=folder for a custom subset)"
        )
    off = [
        f"{c}: {n} (published {spec.expected(c)})"
        for c, n in index.counts().items()
        if spec.expected(c) and n != spec.expected(c)
    ]
    if off:
        log.warning("%s: %d class(es) differ from the published image counts: %s%s", spec.title,
                    len(off), "; ".join(off[:5]), " ..." if len(off) > 5 else "")
