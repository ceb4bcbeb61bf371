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
    total: int = 0  # the published image count, where only that is published (0: not checked)

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

# Helber et al. 2019, "EuroSAT: A Novel Dataset and Deep Learning Benchmark for Land Use and Land
# Cover Classification", Fig. 3 (27 000 images); the class folders of both archives.
EUROSAT_COUNTS = {
    "AnnualCrop": 3000, "Forest": 3000, "HerbaceousVegetation": 3000, "Highway": 2500, "Industrial": 2500,
    "Pasture": 2000, "PermanentCrop": 2500, "Residential": 3000, "River": 2500, "SeaLake": 3000,
}

PRESETS: dict[str, Preset] = {
    "ucm": Preset("ucm", "UC Merced Land-Use", 21, ("UCMerced_LandUse/Images", "Images", "."),
                  default_per_class=100),
    "aid": Preset("aid", "AID", 30, ("AID", "."), per_class=AID_COUNTS),
    "nwpu": Preset("nwpu", "NWPU-RESISC45", 45, ("NWPU-RESISC45", "."), default_per_class=700),
    # Dai & Yang 2010 / Xia et al. 2010: 1005 images of 600 px in 19 classes, about 50 each (the
    # per-class counts are not published in the papers: only the total is checked).
    "whu_rs19": Preset("whu_rs19", "WHU-RS19", 19, ("WHU-RS19", "RSDataset", "."), total=1005),
    # Zou et al. 2015: 7 classes x 400 images of 400 px.
    "rsscn7": Preset("rsscn7", "RSSCN7", 7, ("RSSCN7", "."), default_per_class=400),
    # Wang et al. 2019 (ARCNet): 31 classes x 60 images of 256 px.
    "optimal31": Preset("optimal31", "OPTIMAL-31", 31, ("OPTIMAL-31/Images", "OPTIMAL-31", "Images", "."),
                        default_per_class=60),
    # Zhao et al. 2016: 12 classes x 200 images of 200 px (Google Earth, Wuhan).
    "siri_whu": Preset("siri_whu", "SIRI-WHU", 12, ("SIRI-WHU/12class_tif", "12class_tif", "SIRI-WHU", "."),
                       default_per_class=200),
    # Zhou et al. 2018: 38 classes x 800 images of 256 px.
    "patternnet": Preset("patternnet", "PatternNet", 38, ("PatternNet/images", "images", "PatternNet", "."),
                         default_per_class=800),
    # The RGB JPEG archive (2750/<class>) or the 13-band TIFF one (ds/images/.../tif/<class>).
    "eurosat": Preset("eurosat", "EuroSAT", 10, (
        "2750", "EuroSAT/2750", "EuroSAT_RGB", "EuroSAT_MS",
        "ds/images/remote_sensing/otherDatasets/sentinel_2/tif", "EuroSAT", "."), per_class=EUROSAT_COUNTS),
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
    if preset.startswith("torchgeo:"):
        from .torchgeo_sets import scan_torchgeo

        return scan_torchgeo(preset, root)
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
    if spec.total and len(index) != spec.total:
        log.warning("%s: %d images in '%s', the published set has %d", spec.title, len(index), index.root,
                    spec.total)
    if off:
        log.warning("%s: %d class(es) differ from the published image counts: %s%s", spec.title,
                    len(off), "; ".join(off[:5]), " ..." if len(off) > 5 else "")
