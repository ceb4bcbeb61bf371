"""Export a trained model for deployment: ONNX (checked with onnxruntime) or TorchScript.

Only the model is exported (with its input normalisation): a method's training-time modules (ISDM's
scaler, connectors, memory banks) are never part of it. The exported graph takes RGB images in
[0, 1], N x 3 x H x W (any N, H, W), and returns logits; a JSON sidecar names the classes.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..engine.checkpoint import load_model
from ..errors import RsDistillError
from ..io import atomic_write, atomic_write_json
from ..models import LogitsOnly


def export(checkpoint: str | Path, out: str | Path, fmt: str | None = None, image_size: int | None = None,
           opset: int = 17, check: bool = True) -> dict[str, Any]:
    out = Path(out)
    fmt = fmt or ("torchscript" if out.suffix in (".pt", ".ts") else "onnx")
    model, record = load_model(checkpoint)
    net = LogitsOnly(model).eval()
    size = int(image_size or record.get("image_size") or 224)
    example = torch.rand(2, 3, size, size)
    if fmt == "onnx":
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net, example, buf, input_names=["image"], output_names=["logits"], opset_version=opset,
                dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}},
                dynamo=False,
            )
        atomic_write(out, lambda f: f.write(buf.getvalue()))
    elif fmt == "torchscript":
        scripted = torch.jit.trace(net, example)
        atomic_write(out, lambda f: torch.jit.save(scripted, f))
    else:
        raise RsDistillError(f"export: unknown format '{fmt}' (onnx, torchscript)")
    max_diff = _check(out, fmt, net, size) if check else None
    meta = {
        "format": fmt,
        "file": out.name,
        "model": record["arch"],
        "checkpoint": record["file"],
        "classes": record["class_names"],
        "input": {"layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0], "channels": "RGB",
                  "trained_size": size, "normalisation": "inside the model"},
        "parameters": sum(p.numel() for p in model.parameters()),
        "max_abs_diff_vs_pytorch": max_diff,
    }
    atomic_write_json(out.with_suffix(out.suffix + ".json"), meta)
    return meta


def _check(out: Path, fmt: str, net: torch.nn.Module, size: int) -> float:
    """Run the exported file on a fresh batch (another batch size) and compare with PyTorch."""
    x = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = net(x).numpy()
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = session.run(None, {"image": x.numpy()})[0]
    else:
        got = torch.jit.load(str(out)).eval()(x).detach().numpy()
    diff = float(np.abs(got - ref).max())
    if diff > 1e-3 * max(1.0, float(np.abs(ref).max())):
        raise RsDistillError(f"export: '{out}' disagrees with the PyTorch model (max |diff| {diff:.2e})")
    return diff


def class_names_of(meta_file: Path) -> list[str]:
    return json.loads(meta_file.read_text())["classes"]
