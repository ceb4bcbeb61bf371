"""The speed options (issue 9, part 3): augmentation on the device, the teacher under
inference_mode, the optimizer's implementation, mixed precision and torch.compile; and the time a
step waits for data. Each option must leave the run's meaning unchanged; none is timed here
(benchmarks/run.py measures them)."""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from rsdistill.config import DataConfig, TrainConfig, build_config
from rsdistill.data.datamodule import DataModule
from rsdistill.data.device_augment import DeviceBatches, RandomViews, crop_flip_rotate
from rsdistill.data.transforms import train_transform
from rsdistill.distillers import registry
from rsdistill.engine.checkpoint import model_record, read_checkpoint
from rsdistill.engine.speed import amp_dtype, apply_compile, compile_models, needs_grad_scaler, optimizer_options
from rsdistill.engine.trainer import Trainer, build_optimizer
from rsdistill.models import build_model

from .conftest import TINY, build_distiller, calibrate_teacher, fixed_batch, run_cli

CPU = torch.device("cpu")


# ---------------------------------------------------------------------- augmentation on the device
def scene_data(scenes, **data) -> DataModule:
    return DataModule(DataConfig(root=str(scenes), image_size=16, **data), seed=0)


def test_device_batches_show_exactly_the_banks_views_in_the_loaders_order(scenes):
    cpu = scene_data(scenes, view_bank=4, rs_aug=True)
    dev = scene_data(scenes, view_bank=4, rs_aug=True, gpu_augment=True)
    loader = dev.train_loader(16, epoch_seed=5)
    assert isinstance(loader, DeviceBatches) and dev.augments_on_device()
    batches = list(zip(cpu.train_loader(16, epoch_seed=5), loader, strict=True))
    assert len(batches) == 3 == len(loader)
    for a, b in batches:
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k  # same images, same pixels, same labels and views


def all_views(img: torch.Tensor, pad: int, padding_mode: str) -> set[bytes]:
    """Every view the augmentation can produce: each crop offset, then the 8 orientations."""
    size = img.shape[-1]
    x = img.float()[None] / 255
    views = set()
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            for flip in (False, True):
                for rot in range(4):
                    t = torch.tensor([top]), torch.tensor([left])
                    v = crop_flip_rotate(x, size, pad, *t, hflip=torch.tensor([flip]), rot=torch.tensor([rot]),
                                         padding_mode=padding_mode)
                    views.add(key(v[0]))
    return views


def key(view: torch.Tensor) -> bytes:
    return (view * 255).round().to(torch.uint8).numpy().tobytes()


@pytest.mark.parametrize("padding_mode", ["reflect", "zeros"])
def test_random_device_views_have_the_distribution_of_the_cpu_transform(padding_mode):
    """Both paths, on one image with distinct pixels, over 2880 draws each (seeded): the same 72
    views (3 x 3 crop offsets x 8 orientations, none coinciding), each about equally often."""
    size, pad, n = 8, 1, 2880
    img = torch.randperm(256)[: 3 * size * size].to(torch.uint8).view(3, size, size)
    cfg = DataConfig(image_size=size, crop_padding=pad / size, hflip=True, rs_aug=True, padding_mode=padding_mode)
    expected = all_views(img, pad, padding_mode)
    assert len(expected) == 72
    cpu_transform = train_transform(cfg)
    torch.manual_seed(0)
    cpu = Counter(key(cpu_transform(img)) for _ in range(n))
    device_views = RandomViews(size, pad, True, True, CPU, seed=0, padding_mode=padding_mode)
    dev = Counter(key(v) for v in device_views(img.expand(n, -1, -1, -1).contiguous(), torch.arange(n)))
    for counts in (cpu, dev):
        assert set(counts) == expected
        # chi-square against the uniform distribution: 71 degrees of freedom, p = 0.001 at 112.3
        chi2 = sum((c - n / 72) ** 2 / (n / 72) for c in counts.values())
        assert chi2 < 112.3


@pytest.mark.parametrize("padding_mode", ["reflect", "zeros"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_device_views_apply_the_drawn_crop_and_flips_as_torchvision_does(padding_mode, dtype):
    """Pixel for pixel, in the dtype given (the decoded uint8 images are augmented before their
    conversion to float)."""
    x = torch.randint(0, 256, (5, 3, 12, 12), dtype=torch.uint8)
    top, left = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([4, 0, 2, 1, 3])
    hflip, vflip = torch.tensor([1, 0, 1, 0, 1]).bool(), torch.tensor([0, 0, 1, 1, 0]).bool()
    rot = torch.tensor([0, 1, 2, 3, 1])
    out = crop_flip_rotate(x.to(dtype), 12, 2, top, left, hflip, vflip, rot, padding_mode=padding_mode)
    assert out.dtype == dtype
    for i in range(5):
        pad_mode = "reflect" if padding_mode == "reflect" else "constant"
        v = TF.crop(TF.pad(x[i], [2], padding_mode=pad_mode), int(top[i]), int(left[i]), 12, 12)
        v = TF.horizontal_flip(v) if hflip[i] else v
        v = TF.vertical_flip(v) if vflip[i] else v
        v = torch.rot90(v, int(rot[i]), dims=(-2, -1))
        assert torch.equal(out[i], v.to(dtype)), i


def test_without_decoded_images_device_augmentation_falls_back_with_a_warning(scenes, caplog):
    data = scene_data(scenes, cache="off", gpu_augment=True)
    with caplog.at_level(logging.WARNING):
        loader = data.train_loader(16, epoch_seed=0)
    assert not isinstance(loader, DeviceBatches)
    assert "data.gpu_augment" in caplog.text and "data.cache=off" in caplog.text


def train_lines(run) -> list[dict[str, float]]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_bank_run_augmented_on_the_device_matches_the_cpu_path(capsys, scenes, teacher_run, tmp_path):
    """Same images in the same order: the same losses and accuracies, epoch by epoch."""
    runs = {}
    for on_device in ("false", "true"):
        out = tmp_path / on_device
        code, _, err = run_cli(capsys, "-q", "distill", "--data", scenes, "--teacher", teacher_run, "--student",
                               "resnet20", "--method", "kd", "--out", out, "--set", *TINY, "train.epochs=2",
                               "data.view_bank=4", "data.rs_aug=true", f"data.gpu_augment={on_device}")
        assert code == 0, err
        runs[on_device] = train_lines(out)
    for a, b in zip(runs["false"], runs["true"], strict=True):
        for k in ("train/loss", "train/top1", "test/top1", "test/loss"):
            assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-7), k


# ---------------------------------------------------------------------- the teacher under inference_mode
@pytest.mark.parametrize("method", ["kd", "fitnet", "at"])
def test_the_teacher_runs_in_inference_mode_and_the_losses_still_backpropagate(method):
    d = build_distiller(method)
    calibrate_teacher(d, 16)
    modes = []
    d.teacher.register_forward_hook(lambda *_: modes.append(torch.is_inference_mode_enabled()))
    d.teacher.net.register_forward_hook(lambda *_: modes.append(torch.is_inference_mode_enabled()))
    d.train()
    _, losses = d.forward_train(fixed_batch())
    sum(losses.values()).backward()  # inference tensors saved for backward would raise here
    assert modes and all(modes)
    assert all(p.grad is not None for p in d.student.parameters())


# ---------------------------------------------------------------------- optimizer, amp, compile
@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_foreach_and_fused_sgd_take_the_same_step_as_the_loop(impl):
    steps = {}
    for name in ("for_loop", impl):
        d = build_distiller("kd")
        cfg = build_config({"train": {"optimizer_impl": name}})
        opt = build_optimizer(d, cfg)
        for _ in range(2):
            opt.zero_grad()
            sum(d.forward_train(fixed_batch())[1].values()).backward()
            opt.step()
        steps[name] = [p.detach().clone() for p in d.student.parameters()]
    for a, b in zip(steps["for_loop"], steps[impl]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_by_default_sgd_is_torchs_own_choice_so_that_stored_configs_keep_their_numbers():
    d = build_distiller("kd")
    opt = build_optimizer(d, build_config({}))
    assert all(not g["fused"] and g["foreach"] is None for g in opt.param_groups)
    assert optimizer_options(TrainConfig()) == {}


def test_amp_uses_bfloat16_where_it_can_and_scales_gradients_only_for_float16():
    assert amp_dtype(TrainConfig(amp=True), CPU) == torch.bfloat16
    assert not needs_grad_scaler(TrainConfig(amp=True), CPU)
    assert amp_dtype(TrainConfig(amp=True, amp_dtype="float16"), CPU) == torch.float16
    assert needs_grad_scaler(TrainConfig(amp=True, amp_dtype="float16"), CPU)
    assert not needs_grad_scaler(TrainConfig(amp=False, amp_dtype="float16"), CPU)


def test_compiled_models_keep_their_checkpoint_keys_and_outputs():
    d = build_distiller("kd")
    d.eval()
    x = fixed_batch()["image"]
    before = model_record(d.student, ["a", "b", "c", "d"], 16)["state_dict"].keys()
    expected = d.student.logits(x)
    assert compile_models(d, backend="eager") == ["student", "teacher"]
    assert model_record(d.student, ["a", "b", "c", "d"], 16)["state_dict"].keys() == before
    assert d.teacher.state_dict().keys() == build_distiller("kd").teacher.state_dict().keys()
    assert torch.allclose(d.student.logits(x), expected, atol=1e-6)


def test_compile_is_ignored_on_the_cpu_with_a_warning(caplog):
    d = build_distiller("kd")
    with caplog.at_level(logging.WARNING):
        assert not apply_compile(d, TrainConfig(compile=True), CPU)
    assert "train.compile: ignored on cpu" in caplog.text
    assert d.student._compiled_call_impl is None


def test_a_run_takes_the_speed_options(capsys, scenes, tmp_path):
    code, _, err = run_cli(capsys, "-q", "train", "--data", scenes, "--model", "resnet20", "--out", tmp_path / "r",
                           "--set", *TINY, "train.channels_last=true", "train.optimizer_impl=foreach",
                           "data.gpu_augment=true", "data.rs_aug=true")
    assert code == 0, err


@pytest.mark.parametrize("name", registry.names())
def test_every_method_trains_under_bfloat16_autocast(name):
    """train.amp on the CPU (bfloat16): finite losses, and finite gradients for the student and
    every extra module (a method computing a term in float32 does so inside autocast)."""
    d = build_distiller(name, classes=5, train_labels=torch.arange(16) % 5)
    d.train()
    batch = fixed_batch(16, classes=5, strong="two_views" in d.needs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, losses = d.forward_train(batch)
        total = sum(losses.values())
    assert all(torch.isfinite(v.float()) for v in losses.values())
    total.backward()
    params = [*d.student.parameters(), *(p for m in d.extra_modules().values() for p in m.parameters())]
    grads = [p.grad for p in params if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("amp_dtype", ["bfloat16", "float16"])
def test_a_distillation_run_trains_in_mixed_precision(capsys, scenes, teacher_run, tmp_path, amp_dtype):
    """float16 takes the gradient scaler (its state is saved with the checkpoint); both finish."""
    out = tmp_path / amp_dtype
    code, _, err = run_cli(capsys, "-q", "distill", "--data", scenes, "--teacher", teacher_run, "--student",
                           "resnet20", "--method", "isdm", "--out", out, "--set", *TINY, "train.epochs=2",
                           "train.amp=true", f"train.amp_dtype={amp_dtype}")
    assert code == 0, err
    assert all(math.isfinite(line["train/loss"]) for line in train_lines(out))
    scaler = read_checkpoint(out / "checkpoints" / "last.pt")["train_state"]["grad_scaler"]
    assert bool(scaler) == (amp_dtype == "float16") and (not scaler or scaler["scale"] > 0)


# ---------------------------------------------------------------------- the data path's share of a step
class SlowLoader:
    """A loader whose every batch keeps the training step waiting ``delay`` seconds."""

    def __init__(self, loader, delay: float):
        self.loader, self.delay = loader, delay

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            time.sleep(self.delay)
            yield batch


def kd_trainer(scenes, tmp_path) -> Trainer:
    cfg = build_config({"data": {"root": str(scenes), "image_size": 16}, "method": {"name": "kd", "warmup_epochs": 0},
                        "train": {"epochs": 1, "batch_size": 16, "progress": False}}).resolve()
    data = DataModule(cfg.data, cfg.seed)
    torch.manual_seed(0)
    d = registry.get("kd")(build_model("resnet20", data.info.num_classes),
                           build_model("resnet8x4", data.info.num_classes), cfg.method, data.info)
    return Trainer(cfg, d, data, tmp_path, CPU)


def test_an_epoch_reports_how_long_its_steps_waited_for_data(scenes, tmp_path, monkeypatch):
    trainer = kd_trainer(scenes, tmp_path)
    t0 = time.perf_counter()
    quick = trainer.train_epoch(1)["time/data_wait_s"]
    epoch = time.perf_counter() - t0
    assert 0 < quick < epoch
    fast_loader = trainer.data.train_loader
    monkeypatch.setattr(trainer.data, "train_loader", lambda *a, **k: SlowLoader(fast_loader(*a, **k), 0.2))
    slow = trainer.train_epoch(2)["time/data_wait_s"]
    batches = len(fast_loader(16, 0))
    assert slow >= 0.2 * batches > quick


def test_a_runs_metrics_hold_the_data_waits_share_of_each_epochs_training_time(capsys, scenes, tmp_path):
    code, _, err = run_cli(capsys, "train", "--data", scenes, "--model", "resnet20", "--out", tmp_path / "r",
                           "--set", *TINY, "train.epochs=2")
    assert code == 0, err
    lines = train_lines(tmp_path / "r")
    for line in lines:
        assert 0 < line["time/data_wait_s"] < line["time/train_s"]
        assert line["time/data_wait_share"] == pytest.approx(line["time/data_wait_s"] / line["time/train_s"])
    assert "waiting for data" in err
