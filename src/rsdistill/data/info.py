"""What a model or a method may know about the data, without the data pipeline behind it."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass(frozen=True)
class DataInfo:
    """The class names, the input size and the training split's labels (and paths, relative to
    the data root) in loader index order."""

    class_names: list[str]
    image_size: int
    train_labels: Tensor
    train_paths: list[str] = field(default_factory=list)
    # Bands of the images in a batch (3 for RGB; more for multispectral data, see data.bands).
    channels: int = 3

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_train(self) -> int:
        return len(self.train_labels)
