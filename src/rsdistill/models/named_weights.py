"""Pretrained weights by name: ``model.weights`` (and a teacher's weights) ``imagenet`` or
``torchgeo:<Enum.MEMBER>`` besides a file.

- ``imagenet``: torchvision's default weights for the architecture (``ResNet18_Weights.DEFAULT``
  ...), or timm's default pretrained tag for ``timm:NAME``; the model then normalises its input
  with the weights' own mean and std (ImageNet's).
- ``torchgeo:ResNet18_Weights.SENTINEL2_RGB_SECO`` (any weights enum of ``torchgeo.models``): RS
  weights, for the model they were made for (``resnet18``/``resnet50`` or ``timm:NAME``).

Files are read from the libraries' own caches: torchvision's and torchgeo's under the torch hub
folder (``$TORCH_HOME/hub/checkpoints/<file>``, ``torch.hub.get_dir()``), timm's in the Hugging
Face cache (``$HF_HOME/hub``). A file not there is downloaded where the network allows; with
``RSDISTILL_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``), or when the download fails, the error names the
file expected and the folder to put it in. Nothing is downloaded at import.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor

from ..errors import CheckpointError, ConfigError

log = logging.getLogger("rsdistill")

IMAGENET = "imagenet"
TORCHGEO = "torchgeo:"
TORCHGEO_HINT = "pip install 'rsdistill[torchgeo]'"


def is_named_weights(value: str | None) -> bool:
    return bool(value) and (value == IMAGENET or str(value).startswith(TORCHGEO))


@dataclass(frozen=True)
class NamedWeights:
    """A state dict with what it expects of the input: its bands (3 for RGB) and, where the weights
    say, the normalisation they were trained with (None: the data's own statistics apply)."""

    state: dict[str, Tensor]
    channels: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    source: str


def offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("RSDISTILL_OFFLINE", "HF_HUB_OFFLINE"))


def torch_hub_file(url: str) -> Path:
    """Where torch.hub (torchvision's and torchgeo's ``get_state_dict``) keeps the file of ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def fetch_url(url: str, option: str) -> Path:
    file = torch_hub_file(url)
    if file.is_file():
        return file
    missing = f"{option}: '{file.name}' is not in the torch hub cache; put it (from {url}) in '{file.parent}'"
    if offline():
        raise CheckpointError(f"{missing} (no download: RSDISTILL_OFFLINE/HF_HUB_OFFLINE is set)")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s to %s", url, file)
        torch.hub.download_url_to_file(url, str(file), progress=False)
    except Exception as e:  # noqa: BLE001 - no network, a proxy, a full disk: the same advice
        raise CheckpointError(f"{missing} (the download failed: {str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return file


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface" / "hub"


def fetch_hf(repo: str, filename: str, option: str) -> Path:
    from huggingface_hub import hf_hub_download

    cache = hf_cache_dir()
    try:
        return Path(hf_hub_download(repo, filename, cache_dir=cache, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached: downloaded below where allowed
        pass
    folder = cache / f"models--{repo.replace('/', '--')}"
    missing = (f"{option}: '{filename}' of {repo} is not in the Hugging Face cache; put it in "
               f"'{folder}/snapshots/<revision>/' with the revision in '{folder}/refs/main' "
               f"(`hf download {repo} {filename} --cache-dir {cache}` does both)")
    if offline():
        raise CheckpointError(f"{missing} (no download: RSDISTILL_OFFLINE/HF_HUB_OFFLINE is set)")
    try:
        return Path(hf_hub_download(repo, filename, cache_dir=cache))
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{missing} (the download failed: {str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _load(file: Path, option: str) -> dict[str, Tensor]:
    from .weights_file import read_state_dict

    return read_state_dict(file, option)


def resolve(name: str, arch: str, num_classes: int, option: str = "model.weights") -> NamedWeights:
    """The weights ``name`` (``imagenet`` or ``torchgeo:...``) for the model ``arch``."""
    if name == IMAGENET:
        from .timm_models import is_timm_name

        return timm_imagenet(arch, num_classes, option) if is_timm_name(arch) else torchvision_imagenet(arch, option)
    return torchgeo_weights(name[len(TORCHGEO):], arch, option)


def torchvision_imagenet(arch: str, option: str) -> NamedWeights:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError):  # rsdistill's CIFAR-style models are not torchvision's
        raise ConfigError(f"{option}=imagenet: torchvision has no ImageNet weights for '{arch}' (a CIFAR-style "
                          "model); use a torchvision model (resnet18, mobilenet_v2, ...) or timm:NAME") from None
    file = fetch_url(weights.url, f"{option}=imagenet")
    preprocess = weights.transforms()
    return NamedWeights(_load(file, option), 3, tuple(preprocess.mean), tuple(preprocess.std),
                        f"torchvision {type(weights).__name__}.{weights.name}")


def timm_imagenet(arch: str, num_classes: int, option: str) -> NamedWeights:
    """timm's default pretrained tag of the model (``timm:NAME.TAG`` names another), through timm's
    own loader (its key conversions and classifier handling) from the cached file."""
    import timm
    from timm.models import get_pretrained_cfg

    base = arch.split(":", 1)[1]
    cfg = get_pretrained_cfg(base)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ConfigError(f"{option}=imagenet: timm has no pretrained weights for '{base}'")
    if cfg.hf_hub_id:
        file = fetch_hf(cfg.hf_hub_id, cfg.hf_hub_filename or "model.safetensors", f"{option}=imagenet")
    else:
        file = fetch_url(cfg.url, f"{option}=imagenet")
    try:
        model = timm.create_model(base, pretrained=True, num_classes=num_classes,
                                  pretrained_cfg_overlay={"file": str(file)})
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{option}=imagenet: '{file}' does not fit timm's {base} "
                              f"({str(e).splitlines()[0]})") from None
    return NamedWeights(model.state_dict(), 3, tuple(cfg.mean), tuple(cfg.std), f"timm {base} ({cfg.hf_hub_id or cfg.url})")


def torchgeo_weights(spec: str, arch: str, option: str) -> NamedWeights:
    """``Enum.MEMBER`` of ``torchgeo.models`` (e.g. ``ResNet18_Weights.SENTINEL2_RGB_SECO``)."""
    try:
        import torchgeo.models as tgm
    except ImportError:
        raise ConfigError(f"{option}=torchgeo:{spec} needs the optional torchgeo package ({TORCHGEO_HINT})") from None
    enum_name, _, member = spec.partition(".")
    enum = getattr(tgm, enum_name, None)
    weights = getattr(enum, member, None) if enum is not None and member else None
    if weights is None:
        from ..section import suggest

        enums = [n for n in dir(tgm) if n.endswith("_Weights")]
        known = suggest(enum_name, enums) if enum is None else suggest(member, [w.name for w in enum])
        raise ConfigError(f"{option}: torchgeo has no weights '{spec}'{known} (give Enum.MEMBER, e.g. "
                          "ResNet18_Weights.SENTINEL2_RGB_SECO)")
    meta = dict(weights.meta)
    made_for = str(meta.get("model", ""))
    if made_for and arch not in (made_for, f"timm:{made_for}"):
        raise ConfigError(f"{option}: torchgeo's {spec} are weights of {made_for}, not of {arch} "
                          f"(use --model {made_for} or timm:{made_for})")
    file = fetch_url(weights.url, f"{option}=torchgeo:{spec}")
    # torchgeo's transforms work on raw reflectances (e.g. divided by 10000); rsdistill's inputs are
    # each band stretched to [0, 1], so the model keeps the training split's statistics.
    return NamedWeights(_load(file, option), int(meta.get("in_chans", 3)), None, None, f"torchgeo {spec}")
