"""Reading a folder dataset: a root with one sub-folder per class (torchvision ImageFolder layout)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torchvision.datasets.folder import find_classes, has_file_allowed_extension

from ..errors import DataError

IMAGE_EXTENSIONS = (".tif", ".tiff", ".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class FolderIndex:
    """Every image of a dataset folder: paths relative to ``root`` (POSIX), sorted, with labels."""

    root: Path
    classes: list[str]
    paths: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(self.classes, 0)
        for y in self.labels:
            out[self.classes[y]] += 1
        return out


def scan_folder(root: str | Path) -> FolderIndex:
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder '{root}' does not exist")
    if not root.is_dir():
        raise DataError(f"data folder '{root}' is not a directory")
    try:
        classes, _ = find_classes(str(root))
    except FileNotFoundError:
        raise DataError(f"data folder '{root}' has no class sub-folders") from None
    classes = [c for c in classes if not c.startswith(".")]
    if len(classes) < 2:
        raise DataError(f"data folder '{root}' has {len(classes)} class folder(s); at least 2 are needed")
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(
            p.relative_to(root).as_posix()
            for p in (root / name).rglob("*")
            if p.is_file() and not p.name.startswith(".") and has_file_allowed_extension(p.name, IMAGE_EXTENSIONS)
        )
        if not found:
            raise DataError(
                f"class folder '{root / name}' has no images ({', '.join(IMAGE_EXTENSIONS)})"
            )
        paths += found
        labels += [label] * len(found)
    return FolderIndex(root, classes, paths, labels)
