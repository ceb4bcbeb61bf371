"""Export a trained model for deployment: ONNX (checked with onnxruntime), TorchScript, or
safetensors weights with a JSON config that rebuilds the model.

Only the model is exported (with its input normalisation): a method's training-time modules (ISDM's
scaler, connectors, memory banks) are never part of it. The ONNX and TorchScript graphs take RGB
images in [0, 1], N x C x H x W (C: 3 for RGB, else the bands the model reads; any N, H, W; a timm transformer's ONNX graph only its trained H and
W, see :func:`traced_form`), and return logits. The ONNX file also holds the class
names, input size and normalisation as metadata properties; every format gets a JSON sidecar
``<file>.json`` with the same facts. safetensors holds the plain network's weights (torchvision
key names where the architecture is torchvision's): normalisation is then the caller's job, with
the mean and std of the sidecar.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..engine.checkpoint import load_model
from ..errors import RsDistillError
from ..io import atomic_write, atomic_write_json
from ..models import MODELS, LogitsOnly, count_parameters
from ..models.timm_models import TimmNet
from .formats import ModelInfo, info_of, rebuild_from_safetensors, sidecar_of

FORMATS = ("onnx", "torchscript", "safetensors")


def format_of(out: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise RsDistillError(f"export: unknown format '{fmt}' ({', '.join(FORMATS)})")
        return fmt
    suffix = out.suffix.lower()
    return "torchscript" if suffix in (".pt", ".ts") else "safetensors" if suffix == ".safetensors" else "onnx"


def export(checkpoint: str | Path, out: str | Path, fmt: str | None = None, image_size: int | None = None,
           opset: int = 17, check: bool = True) -> dict[str, Any]:
    out = Path(out)
    fmt = format_of(out, fmt)
    model, record = load_model(checkpoint)
    info = info_of(model, record, image_size)
    net = LogitsOnly(model).eval()
    size = info.image_size
    if fmt == "onnx":
        data = with_metadata(onnx_bytes(net, size, opset, model.in_channels), info)
        atomic_write(out, lambda f: f.write(data))
    elif fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
            scripted = torch.jit.trace(net, torch.rand(2, model.in_channels, size, size))
            atomic_write(out, lambda f: torch.jit.save(scripted, f))
    else:
        _write_safetensors(out, model, info)
    max_diff = _check(out, fmt, net, info) if check else None
    meta = {
        "format": fmt,
        "file": out.name,
        "model": record["arch"],
        "checkpoint": record["file"],
        "classes": record["class_names"],
        "input": {"layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0],
                  "channels": "RGB" if info.bands is None else f"image bands {info.bands}",
                  "bands": info.bands,
                  "trained_size": size, "mean": info.mean, "std": info.std,
                  "sizes": f"{size} x {size} only" if fmt == "onnx" and fixed_size_only(net) else "any",
                  "normalisation": "by the caller: (x - mean) / std" if fmt == "safetensors" else "inside the model"},
        "parameters": count_parameters(model),
        "max_abs_diff_vs_pytorch": max_diff,
        "model_info": info.to_json(),
    }
    if fmt == "safetensors":
        meta["rebuild"] = rebuild_recipe(out.name, info)
    atomic_write_json(sidecar_of(out), meta)
    return meta


def onnx_bytes(net: torch.nn.Module, size: int, opset: int = 17, channels: int = 3) -> bytes:
    """The model as ONNX, with dynamic batch, height and width (height and width fixed to ``size``
    for the models :func:`traced_form` fixes)."""
    net, any_size = traced_form(net, size)
    image_axes = {0: "batch", 2: "height", 3: "width"} if any_size else {0: "batch"}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                net, torch.rand(2, channels, size, size), buf, input_names=["image"], output_names=["logits"],
                opset_version=opset, dynamic_axes={"image": image_axes, "logits": {0: "batch"}}, dynamo=False,
            )
        except torch.onnx.errors.OnnxExporterError as e:
            raise RsDistillError(f"export: the model cannot be written as ONNX opset {opset}: "
                                 f"{str(e).splitlines()[0]}") from None
    return buf.getvalue()


def fixed_size_only(net: torch.nn.Module) -> bool:
    """The ONNX graph of ``net`` (a :class:`LogitsOnly`) takes only its trained size (see :func:`traced_form`)."""
    inner = getattr(getattr(net, "adapter", None), "net", None)
    return isinstance(inner, TimmNet) and inner.resamples_position_embedding()


def traced_form(net: torch.nn.Module, size: int) -> tuple[torch.nn.Module, bool]:
    """What the ONNX exporter traces for ``net`` (a :class:`LogitsOnly`), and whether that graph
    takes any height and width. A timm transformer that resamples its position embeddings at
    every call (antialiased bicubic interpolation, which ONNX lacks) is traced as a copy with them
    resampled once, for ``size`` x ``size`` images: the same logits at that size, only that size."""
    if not fixed_size_only(net):
        return net, True
    fixed = copy.deepcopy(net)
    fixed.adapter.net.fix_input_size(size)
    return fixed.eval(), False


def with_metadata(model_bytes: bytes, info: ModelInfo) -> bytes:
    """The ONNX model with ``info`` as its metadata properties (replacing any earlier ones), so the
    file alone tells a deployed user the classes, input size and normalisation."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    del model.metadata_props[:]
    for key, value in info.to_metadata().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "rsdistill"
    return model.SerializeToString()


def onnx_metadata(path: str | Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _write_safetensors(out: Path, model, info: ModelInfo) -> None:
    from safetensors.torch import save

    # The plain network's state dict: torchvision key names, loadable with strict=True.
    state = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    data = save(state, metadata=info.to_metadata())
    atomic_write(out, lambda f: f.write(data))


def rebuild_recipe(file: str, info: ModelInfo) -> dict[str, Any]:
    """How to rebuild the model from the safetensors file, with rsdistill or plain torchvision."""
    recipe: dict[str, Any] = {
        "rsdistill": f"from rsdistill.deploy.formats import load_safetensors; model, info = load_safetensors('{file}')"
                     "  # model(x).logits or model.logits(x), x in [0, 1]",
        "torchvision": None,
    }
    spec = MODELS.get(info.arch)
    if spec is not None and spec.family == "imagenet":
        recipe["torchvision"] = {
            "builder": f"torchvision.models.{info.arch}",
            "kwargs": {"weights": None, "num_classes": len(info.classes)},
            # A model of other than 3 bands: torchvision's first convolution must be rebuilt likewise.
            **({"first_conv_in_channels": info.channels} if info.channels != 3 else {}),
            "code": (f"import torchvision; from safetensors.torch import load_file; "
                     f"net = torchvision.models.{info.arch}(weights=None, num_classes={len(info.classes)}); "
                     f"net.load_state_dict(load_file('{file}')); net.eval()"
                     f"  # input: (x - mean) / std, x in [0, 1], N x {info.channels} x S x S"),
        }
    return recipe


def _check(out: Path, fmt: str, net: torch.nn.Module, info: ModelInfo) -> float:
    """Run the exported file on a fresh batch (another batch size) and compare with PyTorch."""
    size = info.image_size
    x = torch.rand(3, info.channels, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = net(x).numpy()
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = session.run(None, {"image": x.numpy()})[0]
    elif fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            got = torch.jit.load(str(out)).eval()(x).detach().numpy()
    else:
        with torch.no_grad():
            got = LogitsOnly(rebuild_from_safetensors(out, info))(x).numpy()
    diff = float(np.abs(got - ref).max())
    if diff > 1e-3 * max(1.0, float(np.abs(ref).max())):
        raise RsDistillError(f"export: '{out}' disagrees with the PyTorch model (max |diff| {diff:.2e})")
    return diff

