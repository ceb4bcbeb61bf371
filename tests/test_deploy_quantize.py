"""`rsdistill export --quantize int8`: onnxruntime's dynamic and static (calibrated) quantisation; the
int8 model runs, keeps its metadata, is smaller, and its test top-1 is reported beside the float one's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rsdistill.deploy.export import onnx_metadata
from rsdistill.deploy.formats import OnnxPredictor

from .conftest import run_cli


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_int8_export_runs_and_reports_its_test_accuracy_and_size(capsys, teacher_run, scenes, tmp_path, mode):
    out = tmp_path / "m.onnx"
    extra = ["--calibration", scenes] if mode == "static" else []
    code, text, err = run_cli(capsys, "export", "--checkpoint", teacher_run, "--out", out, "--quantize", "int8", *extra)
    assert code == 0, err
    q = json.loads((tmp_path / "m.onnx.json").read_text())["quantization"]
    tests = len(json.loads((teacher_run / "split.json").read_text())["test"])
    assert q["mode"] == mode and q["calibration_images"] == (48 if mode == "static" else 0)
    acc = q["test_top1"]
    assert acc["images"] == tests and 0 <= acc["fp32"] <= 100 and 0 <= acc["int8"] <= 100
    assert f"test top-1 ({tests} images): {acc['fp32']:.2f}% float -> {acc['int8']:.2f}% int8" in text
    # int8 weights: well under half the float file (4 bytes -> 1 per weight, plus scales)
    assert q["bytes"]["int8"] == out.stat().st_size < 0.5 * (tmp_path / "m.fp32.onnx").stat().st_size
    assert "MB int8" in text
    int8 = OnnxPredictor(out)
    assert "int8" in onnx_metadata(out)["quantization"]
    assert int8.info.classes == OnnxPredictor(tmp_path / "m.fp32.onnx").info.classes
    logits = int8(np.random.default_rng(0).random((3, 3, 16, 16), dtype=np.float32))
    assert logits.shape == (3, 4) and np.isfinite(logits).all()


def test_int8_is_onnx_only(capsys, teacher_run, tmp_path):
    code, _, err = run_cli(capsys, "export", "--checkpoint", teacher_run, "--out", tmp_path / "m.pt",
                           "--format", "torchscript", "--quantize", "int8")
    assert code == 2 and "ONNX" in err
    assert not list(tmp_path.iterdir())
