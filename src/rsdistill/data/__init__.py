"""Data: folder datasets and presets, splits, the decoded cache, transforms, synthetic scenes."""

from .datamodule import DataInfo, DataModule
from .folders import FolderIndex, scan_folder
from .presets import PRESETS, scan_dataset
from .splits import Split, load_split, save_split, stratified_split

__all__ = ["PRESETS", "DataInfo", "DataModule", "FolderIndex", "Split", "load_split", "save_split",
           "scan_dataset", "scan_folder", "stratified_split"]
