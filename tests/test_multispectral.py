"""Multispectral imagery: any number of bands (``data.bands``), models of N input channels, RGB
weights adapted to them, teacher and student reading different bands (cross-modal distillation),
synthetic N-band scenes, and N-band export and prediction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from rsdistill.cli import main
from rsdistill.data.bands import plan_bands
from rsdistill.data.decode import DecodeOptions, band_count, decode_image
from rsdistill.errors import ConfigError
from rsdistill.models import build_model
from rsdistill.models.input_bands import adapt_rgb_filters, first_conv
from rsdistill.synth import generate_dataset, render_scene

from .conftest import TINY, run_cli

BANDS = 13


@pytest.fixture(scope="module")
def ms_scenes(tmp_path_factory) -> Path:
    """4 classes x 8 synthetic 13-band scenes at 16 px."""
    out = tmp_path_factory.mktemp("ms") / "scenes13"
    generate_dataset(out, classes=4, per_class=8, size=16, seed=0, bands=BANDS)
    return out


@pytest.fixture(scope="module")
def ms_teacher(ms_scenes, tmp_path_factory) -> Path:
    """A 13-band resnet8x4 teacher (1 epoch)."""
    out = tmp_path_factory.mktemp("ms_runs") / "t13"
    assert main(["-q", "train", "--data", str(ms_scenes), "--model", "resnet8x4", "--out", str(out),
                 "--set", *TINY, "data.bands=all"]) == 0
    return out


# --- synthetic scenes --------------------------------------------------------------------------


def test_synth_bands_writes_16_bit_tiffs_whose_rgb_is_the_png_scene_and_extra_bands_follow_the_class(ms_scenes):
    manifest = json.loads((ms_scenes / "synth.json").read_text())
    assert manifest["bands"] == BANDS and manifest["band_names"][:4] == ["R", "G", "B", "X3"]
    first = ms_scenes / "water" / "water_0000.tif"
    data = tifffile.imread(first)
    assert data.shape == (BANDS, 16, 16) and data.dtype == np.uint16 and band_count(first) == BANDS
    rgb = render_scene("water", 16, np.random.default_rng(np.random.SeedSequence([0, 0, 0])))
    assert np.array_equal(np.rint(rgb.astype(np.float32) / 255 * 10000).astype(np.uint16),
                          np.moveaxis(data[:3], 0, -1))

    # An extra band's spatial pattern (its 2-D spectrum, which the per-image stretch keeps) is
    # closer between two images of a class than between images of two classes.
    def spectrum(path: Path) -> np.ndarray:
        band = tifffile.imread(path)[3].astype(np.float64)
        return np.abs(np.fft.fft2(band - band.mean())).ravel()

    same = np.corrcoef(spectrum(first), spectrum(ms_scenes / "water" / "water_0001.tif"))[0, 1]
    other = np.corrcoef(spectrum(first), spectrum(ms_scenes / "forest" / "forest_0001.tif"))[0, 1]
    assert same > other


def test_synth_cli_takes_bands(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "synth", tmp_path / "s", "--classes", "2", "--per-class", "1",
                           "--size", "16", "--bands", "5")
    assert code == 0 and "5 bands" in out
    assert tifffile.imread(tmp_path / "s" / "water" / "water_0000.tif").shape == (5, 16, 16)


# --- decoding ----------------------------------------------------------------------------------


def test_data_bands_reads_any_number_of_bands_in_order_each_stretched_on_its_own(ms_scenes):
    file = ms_scenes / "forest" / "forest_0002.tif"
    every = decode_image(file, 16, DecodeOptions(bands="all"))
    assert every.shape == (BANDS, 16, 16) and every.dtype == torch.uint8
    some = decode_image(file, 16, DecodeOptions(bands=(7, 0, 12, 3)))
    assert torch.equal(some, every[[7, 0, 12, 3]])
    for band in every:  # per band: 2nd to 98th percentile onto 0..255
        assert int(band.min()) == 0 and int(band.max()) == 255
    assert decode_image(file, 8, DecodeOptions(bands=(1, 2, 3, 4, 5))).shape == (5, 8, 8)


def test_data_bands_chooses_among_r_g_b_of_ordinary_images(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    out = decode_image(tmp_path / "x.png", None, DecodeOptions(bands=(2, 1, 0, 1)))
    assert np.array_equal(out.numpy(), np.moveaxis(rgb[..., [2, 1, 0, 1]], -1, 0))


# --- models ------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2", "shufflenet_v2_x0_5", "resnet8x4", "wrn_16_2"])
def test_models_take_n_input_bands(arch):
    model = build_model(arch, 5, channels=BANDS).eval()
    assert first_conv(model.net)[1].in_channels == BANDS and model.in_channels == BANDS
    assert model(torch.rand(2, BANDS, 32, 32)).logits.shape == (2, 5)


def test_timm_models_take_n_input_bands():
    pytest.importorskip("timm")
    model = build_model("timm:resnet10t", 5, channels=4).eval()
    assert model(torch.rand(2, 4, 32, 32)).logits.shape == (2, 5)


def test_rgb_weights_keep_the_r_g_b_filters_and_start_the_others_from_their_mean_times_3_over_n(tmp_path):
    rgb = build_model("resnet18", 10).net
    torch.save(rgb.state_dict(), tmp_path / "rgb.pt")
    w = rgb.conv1.weight.detach()
    # model bands [3, 2, 1, 7, 11] of Sentinel-2-like images whose R, G, B are bands 3, 2, 1
    model = build_model("resnet18", 10, tmp_path / "rgb.pt", channels=5, rgb=(0, 1, 2))
    got = model.net.conv1.weight.detach()
    assert torch.equal(got[:, :3], w)
    assert torch.allclose(got[:, 3], w.mean(1) * 3 / 5) and torch.allclose(got[:, 4], w.mean(1) * 3 / 5)
    # R, G, B elsewhere among the model's bands
    moved = adapt_rgb_filters(w, 5, rgb=(4, None, 0))
    assert torch.equal(moved[:, 4], w[:, 0]) and torch.equal(moved[:, 0], w[:, 2])
    assert torch.allclose(moved[:, 1], w.mean(1) * 3 / 5)
    assert torch.equal(model.net.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)


# --- teacher and student on different bands -----------------------------------------------------


def test_band_plan_decodes_the_students_bands_then_the_teachers_others():
    plan = plan_bands((3, 2, 1), tuple(range(BANDS)))
    assert plan.decoded == (3, 2, 1, 0, 4, 5, 6, 7, 8, 9, 10, 11, 12)
    assert plan.student == (0, 1, 2) and [plan.decoded[i] for i in plan.teacher] == list(range(BANDS))
    assert plan_bands(None, None).decoded is None
    same = plan_bands((1, 2), (1, 2))
    assert (same.decoded, same.student, same.teacher) == ((1, 2), None, None)
    # an RGB teacher (e.g. from ImageNet-class weights) beside a multispectral student reads the
    # bands data.rgb_bands names as R, G, B
    rgb_teacher = plan_bands((0, 1, 2, 5), None, image_bands=6, rgb=(2, 1, 0))
    assert rgb_teacher.decoded == (0, 1, 2, 5) and rgb_teacher.teacher == (2, 1, 0)
    assert plan_bands((2, 1, 0, 1), None, image_bands=3).teacher == (2, 1, 0)
    with pytest.raises(ConfigError, match="data.rgb_bands"):
        plan_bands((0, 1, 2, 5), None, image_bands=6)
    with pytest.raises(ConfigError, match="data.bands"):
        plan_bands(None, tuple(range(BANDS)), image_bands=BANDS)


def test_a_teacher_reads_its_own_bands_from_a_batch_of_more_bands():
    teacher = build_model("resnet8x4", 4, channels=BANDS).eval()
    x = torch.rand(2, BANDS, 16, 16)
    plan = plan_bands((3, 2, 1), tuple(range(BANDS)))
    batch = x[:, list(plan.decoded)]  # what the run decodes: the student's bands first
    own = teacher.logits(x)
    teacher.set_read_channels(plan.teacher)
    assert torch.allclose(teacher.logits(batch), own)
    assert "read_channels" not in teacher.state_dict()  # a stored model takes its own bands


@pytest.mark.slow
def test_13_band_teacher_distils_rgb_and_13_band_students_which_export_and_predict(ms_scenes, ms_teacher, tmp_path):
    teacher_top1 = json.loads((ms_teacher / "metrics.json").read_text())["top1"]
    runs = {
        # a logit method with the teacher-output cache (teacher run once on every view of the bank)
        "kd_rgb": ["--method", "kd", "--set", *TINY, "data.bands=[3,2,1]", "data.view_bank=2"],
        "isdm_rgb": ["--method", "isdm", "--set", *TINY, "data.bands=[0,1,2]"],
        "fitnet_rgb": ["--method", "fitnet", "--set", *TINY, "data.bands=[0,1,2]"],
        "isdm_13": ["--method", "isdm", "--set", *TINY, "data.bands=all"],
    }
    for name, args in runs.items():
        out = tmp_path / name
        assert main(["-q", "distill", "--data", str(ms_scenes), "--teacher", str(ms_teacher),
                     "--student", "resnet8x4", "--out", str(out), *args]) == 0, name
        metrics = json.loads((out / "metrics.json").read_text())
        # the teacher, reading its 13 bands out of the decoded ones, scores as in its own run
        assert metrics["teacher"]["top1"] == teacher_top1, name
    assert "teacher outputs" in (tmp_path / "kd_rgb" / "train.log").read_text()

    rgb = torch.load(tmp_path / "kd_rgb" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert rgb["bands"] == [3, 2, 1] and rgb["state_dict"]["input_mean"].shape == (1, 3, 1, 1)
    full = torch.load(tmp_path / "isdm_13" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert full["bands"] == list(range(BANDS)) and full["state_dict"]["input_mean"].shape == (1, BANDS, 1, 1)

    from rsdistill.deploy.export import export, onnx_metadata
    from rsdistill.deploy.predict import predict

    image = str(ms_scenes / "beach" / "beach_0000.tif")
    for name, channels in (("kd_rgb", 3), ("isdm_13", BANDS)):
        onnx_file = tmp_path / f"{name}.onnx"
        meta = export(tmp_path / name, onnx_file)
        assert meta["input"]["bands"] == (rgb if channels == 3 else full)["bands"]
        assert json.loads(onnx_metadata(onnx_file)["bands"]) == meta["input"]["bands"]
        assert onnx_metadata(onnx_file)["channels"] == str(channels)
        _, from_onnx = predict(onnx_file, [image], k=1)
        _, from_run = predict(tmp_path / name, [image], k=1)
        assert from_onnx[0].error is None and from_onnx[0].top[0][0] == from_run[0].top[0][0]


def _one_line_error(capsys, *args) -> str:
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.slow
def test_band_lists_that_do_not_fit_the_images_are_one_line_errors(ms_scenes, ms_teacher, tmp_path, capsys):
    err = _one_line_error(capsys, "train", "--data", ms_scenes, "--model", "resnet8x4", "--out", tmp_path / "a",
                          "--set", *TINY, "data.bands=[0,1,13]")
    assert "13 bands" in err and "band 13" in err and ".tif" in err
    assert not (tmp_path / "a").exists()
    err = _one_line_error(capsys, "train", "--data", ms_scenes, "--model", "resnet8x4", "--out", tmp_path / "b",
                          "--set", *TINY)
    assert "13 bands" in err and "data.bands" in err
    # an RGB student of 13-band images must say which bands are its R, G, B
    err = _one_line_error(capsys, "distill", "--data", ms_scenes, "--teacher", ms_teacher, "--student", "resnet8x4",
                          "--method", "kd", "--out", tmp_path / "c", "--set", *TINY)
    assert "data.bands" in err
    # a 13-band teacher on 5-band images
    five = tmp_path / "five"
    generate_dataset(five, classes=4, per_class=8, size=16, seed=0, bands=5)
    err = _one_line_error(capsys, "distill", "--data", five, "--teacher", ms_teacher, "--student", "resnet8x4",
                          "--method", "kd", "--out", tmp_path / "d", "--set", *TINY, "data.bands=[0,1,2]")
    assert "teacher reads bands" in err and "5 bands" in err
    err = _one_line_error(capsys, "distill", "--data", ms_scenes, "--teacher", ms_teacher, "--student", "resnet8x4",
                          "--method", "mlld", "--out", tmp_path / "e", "--set", *TINY, "data.bands=all")
    assert "3-band" in err
