"""The deployable forms of a model and how to run each: a run directory or checkpoint (PyTorch), an
exported ONNX file (onnxruntime), a TorchScript file, or safetensors weights with their JSON config.

Every form answers the same two questions, so that prediction and evaluation need not know which
one they hold: what the model expects (:class:`ModelInfo`: class names, input size, normalisation,
how TIFFs are decoded) and its logits for a batch of RGB images in [0, 1] (:class:`Predictor`).
An ONNX file carries its :class:`ModelInfo` inside, as metadata properties; the other exported
files carry it in the JSON sidecar ``<file>.json`` written beside them.
"""

from __future__ import annotations

import json
import warnings
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.decode import DecodeOptions
from ..engine.checkpoint import load_model, run_dir_of
from ..errors import CheckpointError
from ..models import LogitsOnly, ModelAdapter, build_model
from ..runs.folder import RunDir

INPUT_FORMAT = ("float32 N x C x H x W in [0, 1], resized to input_size x input_size; C = channels: R, G, B "
                "(bands null) or the image bands listed in bands, in that order")
NORMALISATION = "inside the model: (x - mean) / std per channel, x in [0, 1]"


@dataclass(frozen=True)
class ModelInfo:
    """What a deployed model expects and returns."""

    arch: str
    classes: list[str]
    image_size: int
    mean: list[float]
    std: list[float]
    # How TIFFs beyond 8-bit RGB were decoded in training (``data.tiff_stretch``, ``data.bands``):
    # ``bands`` are the image bands the model reads, in order (None: R, G, B).
    tiff_stretch: str = "per_image"
    bands: list[int] | None = None
    extra: dict[str, str] = field(default_factory=dict)
    channels: int = 3  # input channels: 3 (RGB) or len(bands)

    @property
    def decode_options(self) -> DecodeOptions:
        return DecodeOptions(self.tiff_stretch, tuple(self.bands) if self.bands is not None else None)

    def to_metadata(self) -> dict[str, str]:
        """ONNX metadata properties (string -> string; structured values as JSON)."""
        return {
            "model": self.arch,
            "classes": json.dumps(self.classes),
            "input_size": str(self.image_size),
            "input": INPUT_FORMAT,
            "mean": json.dumps(self.mean),
            "std": json.dumps(self.std),
            "normalisation": NORMALISATION,
            "tiff_stretch": self.tiff_stretch,
            "bands": json.dumps(self.bands),
            "channels": str(self.channels),
            **self.extra,
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str], source: str | Path) -> ModelInfo:
        try:
            known = {"model", "classes", "input_size", "input", "mean", "std", "normalisation",
                     "tiff_stretch", "bands", "channels"}
            return cls(meta["model"], json.loads(meta["classes"]), int(meta["input_size"]),
                       json.loads(meta["mean"]), json.loads(meta["std"]), meta.get("tiff_stretch", "per_image"),
                       json.loads(meta.get("bands", "null")), {k: v for k, v in meta.items() if k not in known},
                       int(meta.get("channels", len(json.loads(meta["mean"])))))
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"'{source}' has no rsdistill metadata ({e}); export it with `rsdistill export`") from None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "extra"}


def info_of(model: ModelAdapter, record: dict[str, Any], image_size: int | None = None) -> ModelInfo:
    """The :class:`ModelInfo` of a model loaded from a checkpoint (its run's decoding options; the
    bands it reads from the checkpoint, or from its run's config for checkpoints of earlier versions)."""
    stretch, bands = "per_image", None
    run_dir = run_dir_of(Path(record["file"])) if record.get("file") else None
    if run_dir is not None:
        # a damaged config only loses the TIFF options; the model itself is in the checkpoint
        data = RunDir(run_dir).read_config().get({}).get("data")
        if isinstance(data, dict):
            stretch, bands = data.get("tiff_stretch") or stretch, data.get("bands")
    if "bands" in record:
        bands = record["bands"]
    return ModelInfo(
        record["arch"], list(record["class_names"]), int(image_size or record.get("image_size") or 224),
        [round(float(v), 8) for v in model.input_mean.flatten()], [round(float(v), 8) for v in model.input_std.flatten()],
        stretch, list(bands) if bands is not None else None, channels=model.in_channels,
    )


class Predictor(ABC):
    """Logits of a model for images in [0, 1]: ``predictor(x)`` with ``x`` N x C x S x S float32."""

    info: ModelInfo
    backend: str
    file: str

    @abstractmethod
    def __call__(self, images: np.ndarray) -> np.ndarray: ...


class TorchPredictor(Predictor):
    backend = "pytorch"

    def __init__(self, model: ModelAdapter, info: ModelInfo, file: str, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.net = LogitsOnly(model).to(self.device).eval()
        self.info, self.file = info, file

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.net(torch.from_numpy(images).to(self.device)).float().cpu().numpy()


class TorchScriptPredictor(TorchPredictor):
    backend = "torchscript"

    def __init__(self, path: Path, info: ModelInfo, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
            try:
                self.net = torch.jit.load(str(path), map_location=self.device).eval()
            except Exception as e:  # noqa: BLE001 - truncated or foreign files: torch's own error types vary
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise CheckpointError(f"'{path}' is not a TorchScript file that can be loaded (truncated, or "
                                      f"another kind of file?): {reason}") from None
        self.info, self.file = info, str(path)


class OnnxPredictor(Predictor):
    """An ONNX file under onnxruntime: the runtime a deployed user needs, without PyTorch."""

    backend = "onnxruntime"

    def __init__(self, path: Path, device: str = "cpu", threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for any bad file
            raise CheckpointError(f"ONNX file '{path}' cannot be loaded: {str(e).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.info = ModelInfo.from_metadata(meta, path) if "classes" in meta else _info_from_sidecar(path)
        self.file = str(path)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(images, dtype=np.float32)})[0]


def sidecar_of(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_of(path)
    if not side.is_file():
        raise CheckpointError(f"'{path}' has no '{side.name}' beside it (written by `rsdistill export`)")
    try:
        return json.loads(side.read_text())
    except ValueError as e:
        raise CheckpointError(f"'{side}' is not valid JSON: {e}") from None


def _info_from_sidecar(path: Path) -> ModelInfo:
    meta = read_sidecar(path)
    try:
        model = meta.get("model_info") or {}
        if model:
            return ModelInfo(**model)
        # Exports of earlier versions: classes and the training size only.
        return ModelInfo(meta["model"], meta["classes"], int(meta["input"]["trained_size"]),
                         [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"'{sidecar_of(path)}' does not describe the model ({e})") from None


def load_safetensors(path: str | Path) -> tuple[ModelAdapter, ModelInfo]:
    """Rebuild an rsdistill model from ``model.safetensors`` and its ``model.safetensors.json``."""
    path = Path(path)
    info = _info_from_sidecar(path)
    return rebuild_from_safetensors(path, info), info


def rebuild_from_safetensors(path: Path, info: ModelInfo) -> ModelAdapter:
    """The model described by ``info`` with the weights of ``path``, in eval mode."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - truncated or foreign files alike
        raise CheckpointError(f"safetensors file '{path}' cannot be read: {str(e).splitlines()[0]}") from None
    model = build_model(info.arch, len(info.classes), channels=info.channels)
    try:
        model.net.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"'{path}' does not fit model '{info.arch}' ({str(e).splitlines()[0]})") from None
    model.set_normalization(info.mean, info.std)
    return model.eval()


def open_model(path: str | Path, device: str | torch.device = "cpu", image_size: int | None = None) -> Predictor:
    """A predictor for a run directory, an rsdistill checkpoint, or an exported file
    (``.onnx``, ``.safetensors``, or a TorchScript file with its ``.json`` sidecar)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".onnx":
        predictor = OnnxPredictor(path, str(device))
        predictor.info = _resized(predictor.info, image_size)
        return predictor
    if path.is_file() and path.suffix.lower() == ".safetensors":
        model, info = load_safetensors(path)
        return TorchPredictor(model, _resized(info, image_size), str(path), device)
    if path.is_file() and sidecar_of(path).is_file() and read_sidecar(path).get("format") == "torchscript":
        return TorchScriptPredictor(path, _resized(_info_from_sidecar(path), image_size), device)
    model, record = load_model(path)
    return TorchPredictor(model, info_of(model, record, image_size), record["file"], device)


def _resized(info: ModelInfo, image_size: int | None) -> ModelInfo:
    if not image_size:
        return info
    return ModelInfo(**{**asdict(info), "image_size": int(image_size)})
