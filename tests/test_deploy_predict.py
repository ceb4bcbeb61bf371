"""`rsdistill predict`: files, folders and globs; any image mode; a corrupt file reported by name while
the rest are predicted (non-zero exit); the same predictions from a run directory and its ONNX export."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image

from rsdistill.deploy.predict import find_images, predict

from .conftest import run_cli


def test_inputs_are_files_folders_searched_recursively_and_globs(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/1.png", "a/deep/2.jpg", "a/notes.txt", "a/.hidden.png", "b.tif"):
        (tmp_path / name).write_bytes(b"x")
    found, missing = find_images([str(tmp_path / "a"), str(tmp_path / "*.tif"), str(tmp_path / "a" / "1.png"),
                                  str(tmp_path / "nothere.png"), str(tmp_path / "*.jpeg")])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/1.png", "a/deep/2.jpg", "b.tif"]
    assert [m.file for m in missing] == [str(tmp_path / "nothere.png"), str(tmp_path / "*.jpeg")]
    assert all(m.error for m in missing)


def test_predict_names_a_corrupt_file_predicts_the_rest_and_exits_non_zero(capsys, teacher_run, scenes, tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    beach = sorted((scenes / "beach").iterdir())[0]
    shutil.copy(beach, folder / "colour.png")
    Image.open(beach).convert("L").resize((40, 30)).save(folder / "sub" / "grey.png")  # grey, another size
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)  # a truncated PNG
    out = tmp_path / "preds.csv"
    code, text, err = run_cli(capsys, "predict", teacher_run, folder, "--top-k", "2", "--out", out)
    assert code == 1
    assert "broken.png" in err and "1 of 3 inputs failed" in err
    rows = {r["file"].rsplit("/", 1)[1]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {"colour.png", "grey.png", "broken.png"}
    assert "broken.png" in rows["broken.png"]["error"] and rows["broken.png"]["class_1"] == ""
    classes = json.loads((teacher_run / "split.json").read_text())["classes"]
    for name in ("colour.png", "grey.png"):
        r = rows[name]
        assert r["error"] == "" and r["class_1"] in classes and r["class_2"] in classes
        assert 1.0 >= float(r["prob_1"]) >= float(r["prob_2"]) >= 0.0
        assert f"{name}: {r['class_1']}" in text  # the console has them too


def test_predict_agrees_between_a_run_directory_and_its_onnx_export(capsys, teacher_run, scenes, tmp_path):
    assert run_cli(capsys, "export", "--checkpoint", teacher_run, "--out", tmp_path / "m.onnx")[0] == 0
    results = {}
    for name, model in (("run", teacher_run), ("onnx", tmp_path / "m.onnx")):
        code, _, err = run_cli(capsys, "predict", model, scenes, "--top-k", "4", "--batch", "20",
                               "--out", tmp_path / f"{name}.json")
        assert code == 0, err
        results[name] = json.loads((tmp_path / f"{name}.json").read_text())["predictions"]
    assert len(results["run"]) == len(results["onnx"]) == 48
    for a, b in zip(results["run"], results["onnx"]):
        assert a["file"] == b["file"]
        assert [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]]
        assert [t["prob"] for t in a["top"]] == pytest.approx([t["prob"] for t in b["top"]], abs=1e-4)


def test_predict_reads_16_bit_tiffs_and_needs_bands_for_multiband_ones(teacher_run, tmp_path):
    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "pan16.tif", (rng.random((24, 24)) * 4000).astype(np.uint16))
    tifffile.imwrite(tmp_path / "ms5.tif", (rng.random((5, 24, 24)) * 4000).astype(np.uint16),
                     photometric="minisblack", planarconfig="separate")
    _, preds = predict(teacher_run, [str(tmp_path / "pan16.tif"), str(tmp_path / "ms5.tif")], k=1)
    assert preds[0].error is None and len(preds[0].top) == 1
    assert "ms5.tif" in preds[1].error and "5 bands" in preds[1].error and "--bands" in preds[1].error
    _, preds = predict(teacher_run, [str(tmp_path / "ms5.tif")], k=1, bands=[3, 2, 1])
    assert preds[0].error is None
