"""What only a GPU can check (issue 25): the CUDA paths of a run, on CUDA.

Every test here is marked ``cuda`` and takes the ``device`` fixture: CUDA, or a skip that says so
where there is none. ``scripts/gpu_check.sh`` runs them on a GPU (``pytest -m cuda``); its dry run
runs the same code on the CPU (``RSDISTILL_CUDA_TESTS_DEVICE=cpu``) so that it cannot rot while no
GPU is at hand. On the CPU the CUDA-only parts are what a CPU run does instead (``train.compile``
is ignored there, with a warning), so there the tests check the code, not CUDA.
"""

from __future__ import annotations

import contextlib
import json
import math
import os

import numpy as np
import pytest
import torch

from rsdistill.config import DataConfig, TrainConfig, build_config
from rsdistill.data.datamodule import DataModule
from rsdistill.data.device_augment import crop_flip_rotate
from rsdistill.distillers import registry
from rsdistill.engine.batch import move
from rsdistill.engine.checkpoint import load_model, read_checkpoint
from rsdistill.engine.speed import amp_dtype, needs_grad_scaler
from rsdistill.engine.teacher_cache import load_or_build
from rsdistill.engine.trainer import build_optimizer

from .conftest import TINY, build_distiller, calibrate_teacher, fixed_batch, interrupt_after_logging_epoch, run_cli

# cuBLAS reads it when it starts, so before any test of the process touches CUDA: without it
# --deterministic cannot make cuBLAS's matrix products reproducible.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

DEVICE_VARIABLE = "RSDISTILL_CUDA_TESTS_DEVICE"
CPU = torch.device("cpu")
pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def device() -> torch.device:
    name = os.environ.get(DEVICE_VARIABLE, "cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"needs CUDA, which this machine lacks (scripts/gpu_check.sh runs these tests on a GPU; "
                    f"{DEVICE_VARIABLE}=cpu runs their code on the CPU)")
    return torch.device(name)


@contextlib.contextmanager
def tf32_off():
    """float32 as float32 (cudnn's convolutions use TF32 by default): two computations on CUDA,
    or CUDA and the CPU, then agree to float32's rounding, not TF32's 10-bit mantissa."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture
def exact_float32():
    with tf32_off():
        yield


def train_lines(run) -> list[dict[str, float]]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


# The runs' mixed precision on the device: float16 (with its gradient scaler) on CUDA; on the CPU,
# where float16's convolutions are emulated (a minute for a few steps), bfloat16.
def half(device: torch.device) -> str:
    return "float16" if device.type == "cuda" else "bfloat16"


# ---------------------------------------------------------------------- every method, every precision
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
# On the CPU (the dry run) the test's code is checked on two methods, in float32 and bfloat16
# (test_speed_options covers every method in bfloat16 on the CPU).
CPU_METHODS = ("kd", "isdm")


@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("name", ["ce", *registry.names()])
def test_every_method_trains_on_cuda_in_each_precision(device, name, precision):
    """Steps on one batch as the trainer takes them (autocast in the precision, float16 with its
    gradient scaler): finite losses at every step, finite gradients for the student and every extra
    module wherever a step is taken (float16's scaler skips a step whose scaled gradients overflow,
    and halves its scale), at least one step taken, and finite weights that moved."""
    if device.type == "cpu" and (precision == "float16" or name not in CPU_METHODS):
        pytest.skip(f"on the CPU only {', '.join(CPU_METHODS)} in float32 and bfloat16 (float16 is emulated there)")
    amp = PRECISIONS[precision] is not None
    train = TrainConfig(amp=amp, amp_dtype=precision if amp else "auto", lr=0.01)
    d = build_distiller(name, classes=5, train_labels=torch.arange(16) % 5)
    if d.teacher is not None:
        calibrate_teacher(d, 16)
    d.to(device).train()
    batch = move(fixed_batch(16, classes=5, strong="two_views" in d.needs), device)
    optimizer = build_optimizer(d, build_config({"train": train.model_dump()}))
    scaler = torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(train, device))
    assert scaler.is_enabled() == (precision == "float16")
    params = [p for p in (*d.student.parameters(), *(p for m in d.extra_modules().values() for p in m.parameters()))
              if p.requires_grad]
    before = [p.detach().clone() for p in params]
    taken = 0
    # float16's scaler starts at 2^16 and halves at each overflow: 8 steps leave room for a few
    for _ in range(8 if scaler.is_enabled() else 4):
        with torch.autocast(device.type, dtype=amp_dtype(train, device), enabled=amp):
            _, losses = d.forward_train(batch)
            total = sum(losses.values())
        assert all(torch.isfinite(v.float()) for v in losses.values()), losses
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.unscale_(optimizer)
        finite = all(p.grad is None or torch.isfinite(p.grad).all() for p in params)
        assert finite or scaler.is_enabled(), "non-finite gradients without a scaler"
        scale = scaler.get_scale() if scaler.is_enabled() else None
        scaler.step(optimizer)
        scaler.update()
        if finite:
            taken += 1
            assert all(p.grad is not None for p in d.student.parameters())
        else:
            assert scaler.get_scale() < scale  # the step was skipped and the scale lowered
    assert taken > 0
    assert all(torch.isfinite(p).all() for p in params)
    assert any(not torch.equal(p.detach(), b) for p, b in zip(params, before))


# ---------------------------------------------------------------------- compile and channels_last
@pytest.fixture(scope="module")
def eager_run(scenes, device, tmp_path_factory):
    """A tiny run trained on the device with the defaults (the reference of the layout and compile
    runs, and the model the ONNX export test exports)."""
    from rsdistill.cli import main

    out = tmp_path_factory.mktemp("cuda") / "eager"
    with tf32_off():
        code = main(["-q", "train", "--data", str(scenes), "--model", "resnet20", "--out", str(out), "--device",
                     device.type, *COMPARED])
    assert code == 0
    return out


# Runs compared with the eager run: deterministic, float32 as float32, a learning rate at which two
# epochs on 40 images do not amplify the kernels' rounding into other numbers, and batches of one
# size (compiled code is specialised to its shapes: another batch size is another compilation).
COMPARED = ("--deterministic", "--set", *TINY, "train.epochs=2", "train.lr=0.01", "train.batch_size=20")


def train_on_device(capsys, scenes, device, out, *settings: str) -> list[dict[str, float]]:
    with tf32_off():
        code, _, err = run_cli(capsys, "-q", "train", "--data", scenes, "--model", "resnet20", "--out", out,
                               "--device", device.type, *COMPARED, *settings)
    assert code == 0, err
    return train_lines(out)


def assert_same_training(a: list[dict[str, float]], b: list[dict[str, float]]) -> None:
    """The same training up to the kernels' rounding: the training losses within 0.1 %, the test
    losses within 1 % (evaluated with BatchNorm's running statistics of a few steps, which magnify
    the rounding: layouts differed by 0.2 % on the CPU)."""
    assert [x["epoch"] for x in a] == [x["epoch"] for x in b] == [1, 2]
    for x, y in zip(a, b):
        for key, rel in (("train/loss", 1e-3), ("test/loss", 1e-2)):
            assert math.isfinite(y[key])
            assert y[key] == pytest.approx(x[key], rel=rel), key


def test_train_compile_on_cuda_trains_as_the_eager_run_with_plain_checkpoint_keys(capsys, scenes, device, eager_run,
                                                                                  tmp_path):
    """The compiled student (its training and its evaluation path) gives the eager run's losses up
    to the kernels' rounding (compiled kernels fuse and reorder float sums), and its checkpoint
    holds the eager run's plain keys, so it loads into an uncompiled model."""
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    lines = train_on_device(capsys, scenes, device, tmp_path / "compiled", "train.compile=true")
    assert_same_training(train_lines(eager_run), lines)
    compiled_graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert compiled_graphs > 0 if device.type == "cuda" else compiled_graphs == 0  # ignored on the CPU
    keys = read_checkpoint(tmp_path / "compiled" / "checkpoints" / "last.pt")["model"]["state_dict"].keys()
    assert keys == read_checkpoint(eager_run / "checkpoints" / "last.pt")["model"]["state_dict"].keys()
    model, _ = load_model(tmp_path / "compiled")
    assert model.logits(torch.rand(2, 3, 16, 16)).shape == (2, 4)


def test_channels_last_on_cuda_trains_as_the_default_layout(capsys, scenes, device, eager_run, tmp_path):
    lines = train_on_device(capsys, scenes, device, tmp_path / "cl", "train.channels_last=true")
    assert_same_training(train_lines(eager_run), lines)
    # the layout itself: a convolution's weights and output in channels-last on the device
    model, _ = load_model(tmp_path / "cl")
    model = model.to(device, memory_format=torch.channels_last).eval()
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(4, 3, 16, 16, device=device)
    with tf32_off(), torch.inference_mode():
        y_last = model.logits(x.contiguous(memory_format=torch.channels_last))
        y_default = model.to(memory_format=torch.contiguous_format).logits(x)
    assert torch.allclose(y_last, y_default, rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------------- augmentation on the device
def test_gpu_augment_on_cuda_shows_the_cpu_paths_views_pixel_for_pixel(scenes, device):
    """With a bank: the batches of the CUDA path are those of the CPU loader, in the same order,
    bit for bit (images, labels, indices, views)."""
    cfg = {"root": str(scenes), "image_size": 16, "view_bank": 4, "rs_aug": True}
    cpu = DataModule(DataConfig(**cfg), seed=0)
    dev = DataModule(DataConfig(**cfg, gpu_augment=True), seed=0, device=str(device))
    assert dev.augments_on_device()
    for epoch_seed in (5, 6):
        batches = list(zip(cpu.train_loader(16, epoch_seed), dev.train_loader(16, epoch_seed), strict=True))
        assert len(batches) == 3
        for a, b in batches:
            assert b["image"].device.type == device.type
            assert a.keys() == b.keys()
            for k in a:
                assert torch.equal(a[k], b[k].cpu()), k


@pytest.mark.parametrize("padding_mode", ["reflect", "zeros"])
def test_device_crops_flips_and_rotations_on_cuda_are_the_cpus_pixel_for_pixel(device, padding_mode):
    """Fresh augmentation (no bank): the same drawn crop offsets, flips and rotations give the
    same uint8 pixels on CUDA as on the CPU."""
    g = torch.Generator().manual_seed(0)
    n, size, pad = 64, 24, 3
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    top, left = torch.randint(0, 2 * pad + 1, (2, n), generator=g)
    hflip, vflip = torch.randint(0, 2, (2, n), generator=g).bool()
    rot = torch.randint(0, 4, (n,), generator=g)
    args = (size, pad, top, left, hflip, vflip, rot)
    on_cpu = crop_flip_rotate(x, *args, padding_mode=padding_mode)
    on_device = crop_flip_rotate(x.to(device), *(a.to(device) if torch.is_tensor(a) else a for a in args),
                                 padding_mode=padding_mode)
    assert on_device.device.type == device.type and on_device.dtype == torch.uint8
    assert torch.equal(on_device.cpu(), on_cpu)


# ---------------------------------------------------------------------- the teacher-output cache
def test_the_teacher_output_cache_filled_on_cuda_holds_the_cpu_logits(scenes, teacher_run, device, tmp_path,
                                                                      exact_float32):
    """Filled on the device: the CPU's logits to float32's rounding, under the same key; written
    to disk and read back unchanged; looked up on the device."""
    data = DataModule(DataConfig(root=str(scenes), image_size=16, view_bank=4, rs_aug=True), seed=0,
                      device=str(device))
    teacher, _ = load_model(teacher_run)
    on_cpu = load_or_build(teacher.cpu(), data, CPU, None)
    on_device = load_or_build(teacher.to(device), data, device, tmp_path)
    assert on_device.key == on_cpu.key
    assert on_device.logits.device.type == "cpu"  # the table itself is kept in host memory
    assert torch.allclose(on_device.logits, on_cpu.logits, rtol=1e-4, atol=1e-4)
    assert len(list(tmp_path.glob("teacher-logits-*.pt"))) == 1
    again = load_or_build(teacher, data, device, tmp_path)  # a cache hit: the stored values
    assert torch.equal(again.logits, on_device.logits)
    index, view = torch.tensor([0, 3, 5]), torch.tensor([1, 0, 3])
    looked_up = on_device.to(device).lookup(index.to(device), view.to(device))
    assert looked_up.device.type == device.type
    assert torch.equal(looked_up.cpu(), on_cpu.logits[index, view])


# ---------------------------------------------------------------------- resuming
def test_a_resumed_cuda_run_ends_with_the_numbers_of_an_uninterrupted_one(capsys, scenes, teacher_run, tmp_path,
                                                                          monkeypatch, device):
    """ISDM on the device under --deterministic, in float16 with its gradient scaler (on CUDA), the
    teacher's logits cached on the device's bank of views and the views cut on the device: stopped
    after epoch 2 (before its checkpoint) and resumed, it logs every number of the uninterrupted run."""
    args = ["distill", "--data", scenes, "--teacher", teacher_run, "--student", "resnet20", "--method", "isdm",
            "--device", device.type, "--deterministic", "--set", *TINY, "train.epochs=3", "data.view_bank=4",
            "data.rs_aug=true", "data.gpu_augment=true", "train.amp=true", f"train.amp_dtype={half(device)}"]
    code, _, err = run_cli(capsys, "-q", *args, "--out", tmp_path / "full")
    assert code == 0, err
    interrupt_after_logging_epoch(monkeypatch, 2)
    code, _, err = run_cli(capsys, "-q", *args, "--out", tmp_path / "cut")
    assert code == 130 and "--resume" in err
    monkeypatch.undo()
    code, _, err = run_cli(capsys, "-q", "train", "--resume", tmp_path / "cut")
    assert code == 0, err
    full, cut = train_lines(tmp_path / "full"), train_lines(tmp_path / "cut")
    assert [x["epoch"] for x in cut] == [1, 2, 3]
    for key in ("train/loss", "train/top1", "test/loss", "test/top1", "test/top5", "lr"):
        assert [x[key] for x in cut] == [x[key] for x in full], key
    scaler = read_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["train_state"]["grad_scaler"]
    assert bool(scaler) == (half(device) == "float16") and (not scaler or scaler["scale"] > 0)
    mf, mc = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("full", "cut"))
    for key in ("top1", "top5", "best_top1", "epochs"):
        assert mf[key] == mc[key], key


# ---------------------------------------------------------------------- profile and export
def test_profile_measures_the_pair_on_cuda(capsys, tmp_path, device):
    stem = tmp_path / "prof"
    code, text, err = run_cli(capsys, "profile", "resnet18", "--teacher", "resnet34", "--size", "32", "--classes",
                              "30", "--batches", "1", "4", "--repeats", "3", "--warmup", "1", "--device",
                              device.type, "--out", stem)
    assert code == 0, err
    record = json.loads(stem.with_suffix(".json").read_text())
    for cost in (record["student"], record["teacher"]):
        latency = cost["latency_ms"]["pytorch"][device.type]
        assert set(latency) == {"1", "4"} and all(ms > 0 for ms in latency.values())
    assert record["ratios_teacher_over_student"]["params"] > 1
    assert stem.with_suffix(".md").is_file()


def test_a_cuda_trained_run_exports_to_onnx_with_its_outputs(eager_run, tmp_path, device, exact_float32):
    """The checkpoint written from the device exports like any other: onnxruntime gives the
    PyTorch model's outputs, on the CPU and on the device."""
    pytest.importorskip("onnxruntime")
    from rsdistill.deploy.export import export
    from rsdistill.deploy.formats import OnnxPredictor, open_model

    meta = export(eager_run, tmp_path / "m.onnx")
    assert meta["format"] == "onnx"
    session = OnnxPredictor(tmp_path / "m.onnx")
    x = np.random.default_rng(1).random((5, 3, 16, 16), dtype=np.float32)
    want = open_model(eager_run)(x)
    assert np.abs(session(x) - want).max() < 1e-4
    model, _ = load_model(eager_run)
    with torch.inference_mode():
        on_device = model.to(device).eval().logits(torch.from_numpy(x).to(device)).cpu().numpy()
    assert np.abs(on_device - want).max() < 1e-4
