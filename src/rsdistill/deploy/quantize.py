"""int8 ONNX export with onnxruntime's quantisation tools, and what it costs in accuracy.

Dynamic quantisation (the default) stores int8 weights and quantises activations on the fly;
static quantisation (with a calibration folder) also fixes the activations' ranges from those
images (QDQ format, per-channel weights), which usually runs faster and loses less on CNNs.
The float model is kept beside the int8 one (``model.fp32.onnx``) and both are evaluated on the
run's test split, so the report says what int8 bought (size) and cost (top-1).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from ..engine.checkpoint import resolve_checkpoint, run_dir_of
from ..errors import RsDistillError
from ..io import atomic_write, atomic_write_json
from .accuracy import run_test_split, top1
from .export import export, with_metadata
from .formats import ModelInfo, OnnxPredictor, sidecar_of
from .predict import find_images, read_images

log = logging.getLogger("rsdistill")


def fp32_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.fp32{out.suffix}")


def export_int8(checkpoint: str | Path, out: str | Path, image_size: int | None = None,
                calibration: str | Path | None = None, data_root: str | Path | None = None,
                opset: int = 17) -> dict[str, Any]:
    """Export ``checkpoint`` as float ONNX (``<out stem>.fp32.onnx``), quantise it to ``out`` and
    report both files' sizes and test top-1 (None, with the reason, where the run's test split is
    not at hand)."""
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise RsDistillError(f"export: --quantize int8 writes ONNX; --out '{out}' must end in .onnx")
    if calibration is not None and not Path(calibration).is_dir():
        raise RsDistillError(f"export: calibration folder '{calibration}' does not exist")
    if calibration is not None and not find_images([str(calibration)])[0]:
        raise RsDistillError(f"export: calibration folder '{calibration}' has no images")
    fp32 = fp32_path(out)
    fp32_meta = export(checkpoint, fp32, "onnx", image_size, opset)
    reference = OnnxPredictor(fp32)
    info = reference.info
    mode = "static" if calibration is not None else "dynamic"
    calibration_images = quantize_onnx(fp32, out, info, Path(calibration) if calibration else None)

    int8 = OnnxPredictor(out)
    x = np.random.default_rng(0).random((4, info.channels, info.image_size, info.image_size), dtype=np.float32)
    max_diff = float(np.abs(int8(x) - reference(x)).max())
    accuracy: dict[str, Any] = {"fp32": None, "int8": None, "images": 0, "note": None}
    run_dir = run_dir_of(resolve_checkpoint(checkpoint))
    try:
        if run_dir is None:
            raise RsDistillError(f"'{checkpoint}' is not in a run directory: no test split to evaluate on")
        test = run_test_split(run_dir, data_root)
        accuracy.update(fp32=round(top1(reference, test), 2), int8=round(top1(int8, test), 2), images=len(test.paths))
    except RsDistillError as e:
        accuracy["note"] = f"top-1 not measured: {e}"
        log.warning("%s", accuracy["note"])
    meta = {
        **fp32_meta,
        "file": out.name,
        "max_abs_diff_vs_pytorch": None,
        "quantization": {
            "type": "int8", "mode": mode, "tool": "onnxruntime.quantization",
            "calibration": str(calibration) if calibration else None, "calibration_images": calibration_images,
            "float_model": fp32.name, "max_abs_diff_vs_float": max_diff,
            "bytes": {"fp32": fp32.stat().st_size, "int8": out.stat().st_size},
            "test_top1": accuracy,
        },
    }
    atomic_write_json(sidecar_of(out), meta)
    return meta


def quantize_onnx(fp32: Path, out: Path, info: ModelInfo, calibration: Path | None = None) -> int:
    """Quantise ``fp32`` to ``out`` (dynamic, or static from the images of ``calibration``) and
    store ``info`` in it; returns the number of calibration images used."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    used = 0
    with tempfile.TemporaryDirectory(prefix="rsdistill-quant-") as tmp:
        pre, quantized = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        # The pre-processing onnxruntime recommends: shape inference and graph fusions (Conv+BN).
        quant_pre_process(str(fp32), str(pre))
        if calibration is None:
            quantize_dynamic(str(pre), str(quantized), weight_type=QuantType.QInt8)
        else:
            reader = _CalibrationReader(calibration, info)
            quantize_static(str(pre), str(quantized), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
            used = reader.used
        data = with_metadata(quantized.read_bytes(), _with_quantization(info, calibration))
    atomic_write(out, lambda f: f.write(data))
    return used


def _with_quantization(info: ModelInfo, calibration: Path | None) -> ModelInfo:
    mode = f"static, calibrated on '{calibration.name}'" if calibration else "dynamic"
    return ModelInfo(info.arch, info.classes, info.image_size, info.mean, info.std, info.tiff_stretch, info.bands,
                     {**info.extra, "quantization": f"int8 {mode} (onnxruntime.quantization)"}, info.channels)


class _CalibrationReader(CalibrationDataReader):
    """Batches of the calibration folder's images, read as ``predict`` reads them."""

    def __init__(self, folder: Path, info: ModelInfo, batch: int = 16):
        paths, _ = find_images([str(folder)])
        if not paths:
            raise RsDistillError(f"export: calibration folder '{folder}' has no images")
        self.paths, self.info, self.batch, self.used, self.start = paths, info, batch, 0, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        while self.start < len(self.paths):
            chunk = self.paths[self.start:self.start + self.batch]
            self.start += self.batch
            images, ok, failed = read_images(chunk, self.info.image_size, self.info.decode_options)
            for f in failed:
                log.warning("calibration: skipped %s", f.error)
            if ok:
                self.used += len(ok)
                return {"image": images}
        return None

    def rewind(self) -> None:
        self.start = 0
