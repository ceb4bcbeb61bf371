"""`rsdistill profile`: parameters, FLOPs, file size and latency, student beside teacher."""

from __future__ import annotations

import json

import pytest
import torch

from rsdistill.deploy.profile import count_flops
from rsdistill.models import build_model

from .conftest import run_cli


def test_resnet18_flops_at_224_px_are_within_2_percent_of_the_published_1_82_gmacs():
    with torch.device("meta"):  # shapes only: counting FLOPs needs no weights and no arithmetic
        model = build_model("resnet18", 1000)
    macs = count_flops(model, 224) / 2
    assert macs == pytest.approx(1.82e9, rel=0.02)


def test_profile_puts_the_smaller_student_beside_its_teacher_with_ratios(capsys, tmp_path):
    stem = tmp_path / "prof"
    code, text, err = run_cli(capsys, "profile", "resnet20", "--teacher", "resnet8x4", "--size", "16",
                              "--classes", "4", "--batches", "1", "2", "--repeats", "1", "--warmup", "0",
                              "--device", "cpu", "--out", stem)
    assert code == 0, err
    record = json.loads(stem.with_suffix(".json").read_text())
    s, t, r = record["student"], record["teacher"], record["ratios_teacher_over_student"]
    assert s["params"] < t["params"] and s["flops"] < t["flops"] and s["onnx_bytes"] < t["onnx_bytes"]
    assert r["params"] > 1 and r["flops"] > 1 and r["params"] == pytest.approx(t["params"] / s["params"], rel=1e-3)
    # a model's weights dominate its float ONNX file: 4 bytes per parameter, plus a little
    assert 4 * s["params"] < s["onnx_bytes"] < 4.5 * s["params"]
    for cost in (s, t):
        assert set(cost["latency_ms"]) == {"pytorch", "onnxruntime"}
        for runtime in cost["latency_ms"].values():
            assert set(runtime["cpu"]) == {"1", "2"} and all(ms > 0 for ms in runtime["cpu"].values())
    assert "teacher / student" in text and "latency onnxruntime CPU, batch 2" in text
    assert stem.with_suffix(".md").is_file()


def test_profile_names_an_unknown_model(capsys):
    code, _, err = run_cli(capsys, "profile", "no_such_net")
    assert code == 2 and "no_such_net" in err
