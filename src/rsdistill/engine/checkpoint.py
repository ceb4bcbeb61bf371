"""Checkpoints: written atomically, read with ``weights_only=True``.

``last.pt`` holds everything a resumed run needs (student, the method's extra modules, optimizer,
scheduler, the epoch, the best figures); ``best.pt`` the same model fields. The student is stored
under ``model`` on its own, so evaluation and export never see the method's extra modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, load_failure
from ..io import atomic_write
from ..models import ModelAdapter, build_model
from ..runs.folder import CHECKPOINTS, RunDir

FORMAT = "rsdistill-checkpoint"
VERSION = 1


def model_record(model: ModelAdapter, class_names: list[str], image_size: int) -> dict[str, Any]:
    return {
        "arch": model.arch,
        "num_classes": model.num_classes,
        "class_names": list(class_names),
        "image_size": image_size,
        # The image bands the model reads, in order (data.bands resolved); None: R, G, B.
        "bands": list(model.bands) if model.bands is not None else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "version": VERSION, **payload}
    atomic_write(path, lambda f: torch.save(payload, f))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, foreign or tampered files alike
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {load_failure(e)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model" not in ckpt:
        raise CheckpointError(f"checkpoint '{path}' is not an rsdistill checkpoint (a torchvision or timm "
                              "weights file as a teacher: --set teacher.model=NAME)")
    return ckpt


def is_rsdistill_checkpoint(path: Path) -> bool:
    """Whether a file is one of our checkpoints (a foreign weights file is not), judged by its
    contents without failing on a file of another kind."""
    try:
        read_checkpoint(path)
    except CheckpointError:
        return False
    return True


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory -> its final model: ``best.pt`` when it was selected on a validation split,
    else ``last.pt`` (a model is never picked on the test split silently); a file -> itself."""
    path = Path(path)
    if path.is_dir():
        file = RunDir(path).final_checkpoint()
        if not file.is_file():
            raise CheckpointError(f"run directory '{path}' has no {CHECKPOINTS}/{file.name}")
        return file
    if not path.exists():
        raise CheckpointError(f"checkpoint or run directory '{path}' does not exist")
    return path


def load_model(path: str | Path) -> tuple[ModelAdapter, dict[str, Any]]:
    """The model stored in a checkpoint (or a run directory), in eval mode, plus its record."""
    file = resolve_checkpoint(path)
    record = read_checkpoint(file)["model"]
    try:
        mean = record["state_dict"].get("input_mean")
        channels = int(mean.shape[1]) if mean is not None and mean.ndim == 4 else 3
        model = build_model(record["arch"], int(record["num_classes"]), channels=channels)
        model.load_state_dict(record["state_dict"])
        model.bands = list(record["bands"]) if record.get("bands") is not None else None
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint '{file}': model does not load ({str(e).splitlines()[0]})") from None
    model.eval()
    return model, {k: v for k, v in record.items() if k != "state_dict"} | {"file": str(file)}


def run_dir_of(checkpoint_file: Path) -> Path | None:
    """The run directory a checkpoint file belongs to (``RUN/checkpoints/x.pt``), if any."""
    parent = checkpoint_file.parent
    if parent.name == CHECKPOINTS and RunDir(parent.parent).config.is_file():
        return parent.parent
    return None
