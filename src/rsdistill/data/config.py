"""The data section of the run config (``data.*``) and the dataset layouts it names.

It lives with the data so that the data package needs nothing above it; ``rsdistill.config``
re-exports it with the other sections.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from ..section import Section


# Dataset layouts: "folder" (any class-folder dataset), the RS benchmarks (class count checked),
# and the standard CIFAR-100 python files and ImageNet train/ + val/ class folders (fixed splits).
# torchgeo's datasets are "torchgeo:<name>" (data/torchgeo_sets.py).
Preset = Literal["folder", "ucm", "aid", "nwpu", "whu_rs19", "rsscn7", "optimal31", "siri_whu", "patternnet",
                 "eurosat", "cifar100", "imagenet", "torchgeo:ucmerced", "torchgeo:eurosat", "torchgeo:eurosat_rgb",
                 "torchgeo:resisc45", "torchgeo:patternnet"]
PRESETS: tuple[str, ...] = get_args(Preset)
# The training size a layout brings when data.image_size is not given: its images' own where
# they are small (CIFAR-100's 32 px, EuroSAT's 64 px), ImageNet's standard 224 px; every other
# layout (folders, the RS scene sets of 200-600 px) 224 px as before.
DEFAULT_IMAGE_SIZE = 224
NATIVE_IMAGE_SIZE = {"cifar100": 32, "eurosat": 64, "torchgeo:eurosat": 64, "torchgeo:eurosat_rgb": 64,
                     "imagenet": 224}


def split_data_argument(value: str) -> tuple[str | None, str]:
    """``--data NAME:DIR`` -> (NAME, DIR) for a known layout NAME (``torchgeo:eurosat:DIR`` ->
    ("torchgeo:eurosat", DIR)); a plain ``DIR`` -> (None, DIR)."""
    name, sep, rest = value.partition(":")
    if name == "torchgeo" and sep:
        sub, sep2, rest2 = rest.partition(":")
        if sep2 and rest2 and f"torchgeo:{sub}" in PRESETS:
            return f"torchgeo:{sub}", rest2
    if sep and rest and name in PRESETS:
        return name, rest
    return None, value


class DataConfig(Section):
    root: str | None = None
    preset: Preset = "folder"
    # None: the layout's native size (NATIVE_IMAGE_SIZE), else 224; image_size_from records which.
    image_size: int | None = Field(None, ge=8, le=4096)
    image_size_from: str | None = None
    train_ratio: float = Field(0.8, gt=0.0, lt=1.0)
    val_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    split_file: str | None = None
    # Datasets with a published split (torchgeo's): true uses it (its validation part too), false
    # a ratio split (train_ratio, val_ratio) as for folders. CIFAR-100 and ImageNet keep theirs.
    published_split: bool = True
    # Random crop with reflection padding of this fraction of the side (1/8: 4 px at 32 px).
    crop_padding: float = Field(0.125, ge=0.0, le=0.5)
    hflip: bool = True
    # Aerial images have no canonical orientation: vertical flips and 90-degree rotations.
    rs_aug: bool = False
    # K > 0: a fixed bank of K augmented views per training image, drawn from the run's seed (crop
    # box and orientation; with rs_aug the 8 orientations of D4); each epoch shows one view per
    # image. Lets a teacher's outputs be computed once per view (teacher.cache). 0: fresh
    # augmentation at every step.
    view_bank: int = Field(0, ge=0)
    # "pad_crop": a random crop of the padded image (crop_padding, padding_mode) and flips, on the
    # decoded images (RS scenes, CIFAR); "imagenet": RandomResizedCrop to image_size and flips for
    # training, resize to image_size * 256/224 and a centre crop for evaluation, cut from the
    # full-resolution files at every access (needs cache: off).
    augment: Literal["pad_crop", "imagenet"] = "pad_crop"
    # What the crop's padding holds: the mirrored image ("reflect") or black ("zeros", the
    # standard CIFAR recipe).
    padding_mode: Literal["reflect", "zeros"] = "reflect"
    # "memory": decode once per run; "disk": also keep the decoded tensors under cache_dir
    # (default ~/.cache/rsdistill) so the next run skips decoding; "off": decode on every access.
    cache: Literal["memory", "disk", "off"] = "memory"
    cache_dir: str | None = None
    # The most the decoded cache may hold (GB of uint8 pixels, all splits together); a larger set
    # is decoded from the files at every access instead (a warning says so). None: half of the
    # machine's memory.
    cache_max_gb: float | None = Field(None, gt=0)
    # TIFFs of more than 8 bits (16-bit, float): "per_image" stretches each band of each image
    # linearly from its 2nd to its 98th percentile onto 0-255 (clipping the rest); "none" takes
    # 8-bit images only and names any other file as an error. 8-bit TIFFs and the other formats
    # are read as they are with either value.
    tiff_stretch: Literal["per_image", "none"] = "per_image"
    # The image bands the model reads, in order (indices from 0): None reads every image as RGB
    # (grey repeated; an image of more than 3 bands is then an error naming it); a list of N
    # indices gives the model N input channels (e.g. [3, 2, 1]: a near-infrared false-colour
    # composite of B, G, R, NIR bands; [3, 2, 1, 7] adds NIR as a 4th channel); "all" every band of
    # the images (all must have the same count). RGB and grey files count as 3 bands (R, G, B).
    bands: list[int] | Literal["all"] | None = None
    # Which of the image's bands are R, G and B (indices from 0), for RGB-pretrained weights in a
    # model of other than 3 bands: their filters of the first convolution keep the pretrained
    # values, the other bands' start from the mean of the three. None: the model's first 3 bands.
    rgb_bands: list[int] | None = None
    # Loader processes; -1 picks 0 on the CPU (the images are already decoded) and 4 on CUDA.
    workers: int = Field(-1, ge=-1)
    # Crop, flip and rotate training batches on the training device (batched tensor operations on
    # the decoded uint8 images, data/device_augment.py) instead of per image on the CPU: same
    # distribution of views (exactly the bank's views with view_bank). Needs the decoded cache
    # (cache memory or disk); a method with a second, RandAugment view keeps the CPU path.
    gpu_augment: bool = False
    # Images that cannot be read stop the run, every one of them named. True: they are left out
    # (of every split) and listed in the run's train.log and metrics.json ("skipped_images").
    skip_bad_images: bool = False

    @field_validator("cache", mode="before")
    @classmethod
    def _off_is_not_false(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted `off` as false: `data.cache: off` means the value "off".
        return "off" if value is False else value

    @field_validator("bands")
    @classmethod
    def _band_list(cls, bands: list[int] | str | None) -> list[int] | str | None:
        if isinstance(bands, list) and (not bands or min(bands) < 0 or len(set(bands)) != len(bands)):
            raise ValueError(f"must be 'all' or a list of distinct band indices from 0 (got {bands})")
        return bands

    @field_validator("rgb_bands")
    @classmethod
    def _three_rgb_bands(cls, bands: list[int] | None) -> list[int] | None:
        if bands is not None and (len(bands) != 3 or min(bands) < 0):
            raise ValueError(f"must be the 3 band indices from 0 holding R, G, B (got {bands})")
        return bands

    @model_validator(mode="after")
    def _image_size_of_the_layout(self) -> DataConfig:
        if self.image_size is None:
            native = NATIVE_IMAGE_SIZE.get(self.preset)
            self.image_size = native or DEFAULT_IMAGE_SIZE
            self.image_size_from = (f"the {self.preset} layout's native size" if native
                                    else "the default (data.image_size not given)")
        elif self.image_size_from is None:
            self.image_size_from = "data.image_size"
        return self

    @model_validator(mode="after")
    def _ratios_leave_a_test_split(self) -> DataConfig:
        if self.train_ratio + self.val_ratio >= 1.0:
            raise ValueError(
                f"train_ratio + val_ratio must be < 1 to leave a test split "
                f"(got {self.train_ratio} + {self.val_ratio})"
            )
        return self

    @model_validator(mode="after")
    def _imagenet_augment_reads_the_files(self) -> DataConfig:
        # RandomResizedCrop cuts from the full image: neither the decoded cache (images at the
        # training size) nor a bank of padded crops holds what it needs.
        if self.augment == "imagenet" and self.cache != "off":
            raise ValueError("augment=imagenet crops from the full-resolution files at every access: "
                             "set data.cache=off")
        if self.augment == "imagenet" and self.view_bank:
            raise ValueError("view_bank holds padded crops of the decoded images; it cannot be used "
                             "with augment=imagenet (set data.view_bank=0)")
        return self
