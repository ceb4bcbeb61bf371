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


def error_line(result: tuple[int, str, str]) -> str:
    code, _, err = result
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_a_missing_or_an_empty_folder_is_the_same_error_naming_it(capsys, teacher_run, tmp_path):
    (tmp_path / "empty").mkdir()
    for folder, why in ((tmp_path / "missing", "does not exist"), (tmp_path / "empty", "holds no images")):
        line = error_line(run_cli(capsys, "predict", teacher_run, folder))
        assert str(folder) in line and why in line


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_a_torchscript_file_that_cannot_be_loaded_is_one_line_naming_it(capsys, teacher_run, scenes, tmp_path,
                                                                         damage):
    model = tmp_path / "model.pt"
    code, _, err = run_cli(capsys, "export", "--checkpoint", teacher_run, "--out", model, "--format", "torchscript")
    assert code == 0, err
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a model at all" * 10)
    line = error_line(run_cli(capsys, "predict", model, sorted((scenes / "beach").iterdir())[0]))
    assert f"'{model}'" in line and "TorchScript" in line


def test_the_csv_has_as_many_columns_as_the_model_has_classes(capsys, teacher_run, scenes, tmp_path):
    out = tmp_path / "p.csv"
    code, _, err = run_cli(capsys, "predict", teacher_run, sorted((scenes / "beach").iterdir())[0],
                           "--top-k", "5", "--out", out)  # the teacher knows 4 classes
    assert code == 0, err
    header = out.read_text().splitlines()[0].split(",")
    assert header[-2:] == ["class_4", "prob_4"]


def test_a_file_of_python_objects_is_refused_without_advising_to_unpickle_it(capsys, scenes, tmp_path):
    import argparse

    import torch

    bad = tmp_path / "objects.pt"
    torch.save({"format": "rsdistill", "model": argparse.Namespace(a=1)}, bad)  # not on torch's allow-list
    for args in (["eval", "--data", scenes, "--checkpoint", bad], ["profile", bad]):
        line = error_line(run_cli(capsys, *args))
        assert str(bad) in line and "weights_only" not in line and "Python objects" in line, args


def test_profile_of_an_exported_file_says_what_profile_measures(capsys, tmp_path):
    exported = tmp_path / "x.onnx"
    exported.write_bytes(b"onnx bytes")
    line = error_line(run_cli(capsys, "profile", exported))
    assert "exported file" in line and "Weights only" not in line
