"""Side-by-side cost measurements; prints ratios and writes them to Markdown and to
``benchmarks/results/summary.json`` (the figures docs/benchmarks.md quotes).

    python benchmarks/run.py --quick    # under 3 minutes on 2 cores: benchmarks/results.md
    python benchmarks/run.py            # larger sizes and more steps: benchmarks/results-full.md
    python benchmarks/run.py --device cuda   # the training sections on a GPU
    python benchmarks/run.py --smoke --out X.md --summary X.json   # every path in seconds, no numbers

``--sections`` runs some of the sections below (named pipeline, cache, overhead, overhead224, speed,
methods); ``--out`` and ``--summary`` write the tables and the summary elsewhere. Both are written
after every section, so a run stopped part-way keeps what it measured (``sections_done``).

1. Input pipeline: one training epoch of batches decoded on every access (``data.cache=off``)
   against the decoded cache (``data.cache=memory``), from 150 px PNG scenes to the training size
   (``cache_speedup``).
2. Teacher-output cache: the training epoch of the toolkit's trainer, ResNet34 -> ResNet18, 64 px,
   30 classes, on a bank of 8 views per image: the student alone, KD with the teacher's logits read
   from the cache, KD with the teacher run live (``teacher_cache_speedup`` = live / cached, and
   the cached run over the student alone), and the one-off cost of filling the cache.
3. Framework overhead and peer: images/s of the trainer's KD epoch against a bare PyTorch loop
   doing the same teacher forward and student forward/backward/step on tensors already in memory
   (``overhead_ratio``, 1.0 = no overhead; ``overhead_ratio_no_augmentation`` with the trainer's
   augmentation off), and against torchdistill's ``DistillationBox`` doing the same KD job
   (``peer_ratio`` = our images/s over torchdistill's, both augmenting every image with the same
   transform; ``peer_ratio_no_augmentation``, neither augmenting; see ``peer_torchdistill.py``),
   with the time the trainer's steps waited for data (``data_wait_share``). The epochs alternate,
   in a rotating order, after a warm-up. At 64 px, and with ``make bench`` also at 224 px
   (``at_224px``).
4. Method cost: wall time and peak memory of a training step (student forward/backward + teacher
   forward + the method's losses) for every registered method, relative to KD
   (``isdm_over_kd``), each method in a fresh process so that the peak memory (RSS, or allocated
   GPU memory on CUDA) is its own.
5. Speed options (``speed_options``): the trainer's KD epoch with each option of issue 9 part 3
   switched on alone, against the defaults: ``train.channels_last``, ``train.optimizer_impl``
   foreach / fused, ``data.gpu_augment``; on CUDA also ``train.amp`` (bfloat16, and float16 with
   its gradient scaler), ``train.compile`` and cudnn's autotuner off; and, as micro-benchmarks, the
   teacher's forward under ``torch.inference_mode`` against ``torch.no_grad`` and a batch's copy to
   the device from pinned against pageable memory (CUDA). Options that do not apply on the CPU are
   listed as skipped. ``--device cuda`` runs sections 2 to 5 on the GPU (the summary records
   the device's name).
Numbers are ratios measured in the same process, one after another; absolute times depend on the
machine and are printed for reference only. ``peer_ratio`` is null, with the reason, unless
torchdistill is importable from ``--peer-deps`` (default ``.bench-deps/``, where ``make bench`` and
``make bench-quick`` install it with ``--no-deps``) or the environment: it is not a dependency of
the project.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import peer_torchdistill as peer  # benchmarks/ (this script's folder) is on sys.path
import torch
from torch.utils.data import TensorDataset

from rsdistill.analysis.curves import steps_per_epoch
from rsdistill.config import DataConfig, build_config
from rsdistill.data.datamodule import DataModule
from rsdistill.data.info import DataInfo
from rsdistill.data.transforms import train_transform
from rsdistill.distillers import registry
from rsdistill.distillers.settings import RunContext
from rsdistill.engine.seeding import configure_determinism, resolve_device
from rsdistill.engine.speed import optimizer_options
from rsdistill.engine.teacher_cache import load_or_build
from rsdistill.engine.trainer import Trainer, build_optimizer
from rsdistill.experiments.suite.cell import peak_rss_mb
from rsdistill.models import build_model
from rsdistill.reports.tables import Table
from rsdistill.synth import generate_dataset

CPU = torch.device("cpu")


def bench_pipeline(root: Path, size: int, repeats: int) -> Table:
    times = {}
    for cache in ("off", "memory"):
        t0 = time.perf_counter()
        dm = DataModule(DataConfig(root=str(root), image_size=size, cache=cache, workers=0), seed=0)
        setup = time.perf_counter() - t0
        epochs = []
        for r in range(repeats):
            t0 = time.perf_counter()
            for _ in dm.train_loader(64, epoch_seed=r):
                pass
            epochs.append(time.perf_counter() - t0)
        times[cache] = (setup, statistics.median(epochs), len(dm.split.train))
    table = Table(["input pipeline", "set-up (s)", "epoch (s)", "images/s", "epoch speed-up"],
                  title=f"One training epoch, 150 px PNG -> {size} px, batch 64, no workers")
    base = times["off"][1]
    for cache, (setup, epoch, n) in times.items():
        label = "decode on access (cache=off)" if cache == "off" else "decoded cache (cache=memory)"
        table.add(label, round(setup, 2), round(epoch, 3), round(n / epoch), f"{base / epoch:.1f}x")
    return table


def method_step_cost(name: str, size: int, batch: int, steps: int, classes: int, device: str,
                     threads: int) -> dict[str, float | int | None]:
    """One method's training step (student forward/backward + teacher forward + its losses + SGD),
    run in a fresh process so that its peak memory is its own: the median step time after a
    warm-up step, the process's peak RSS and, on CUDA, the peak of allocated GPU memory."""
    torch.set_num_threads(threads)
    dev = torch.device(device)
    info = DataInfo([f"c{i}" for i in range(classes)], size, torch.arange(512) % classes,
                    [f"c{i % classes}/{i}.png" for i in range(512)])
    g = torch.Generator().manual_seed(0)
    data = {"image": torch.rand(batch, 3, size, size, generator=g), "label": torch.arange(batch) % classes,
            "index": torch.arange(batch)}
    data["image_strong"] = torch.rand(batch, 3, size, size, generator=g)
    data = {k: v.to(dev) for k, v in data.items()}
    cls = registry.get(name)
    cfg = build_config({"method": {"name": name}, "train": {"epochs": 100}}).resolve()
    method_cfg = cls.resolve_config(cfg.method, RunContext("resnet18", "resnet34", classes, 100))
    torch.manual_seed(0)
    teacher = build_model("resnet34", classes) if cls.requires_teacher else None
    d = cls(build_model("resnet18", classes), teacher, method_cfg, info).to(dev)
    d.set_epoch(50)
    d.train()
    opt = build_optimizer(d, cfg)
    for g_ in opt.param_groups:
        g_["lr"] = 1e-3
    ts = []
    for i in range(steps + 1):
        synchronize(dev)
        t0 = time.perf_counter()
        _, losses = d.forward_train(data)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        synchronize(dev)
        if i:  # the first step warms up allocators and caches
            ts.append(time.perf_counter() - t0)
    cuda = round(torch.cuda.max_memory_allocated(dev) / 2**20) if dev.type == "cuda" else None
    return {"seconds": statistics.median(ts), "peak_rss_mib": round(peak_rss_mb()), "peak_cuda_mib": cuda}


def bench_methods(size: int, batch: int, steps: int, classes: int = 30, device: torch.device = CPU,
                  names: tuple[str, ...] | None = None) -> tuple[Table, dict[str, float]]:
    """Every registered method's step (or those of ``names``) against KD and the student alone,
    each in a fresh process."""
    costs = {}
    spawn = multiprocessing.get_context("spawn")  # a clean process: no memory of earlier methods
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn, max_tasks_per_child=1) as pool:
        for name in ["ce", *(names or registry.names())]:
            costs[name] = pool.submit(method_step_cost, name, size, batch, steps, classes, str(device),
                                      torch.get_num_threads()).result()
            print(f"  {name:10s} {1000 * costs[name]['seconds']:8.1f} ms/step, peak RSS "
                  f"{costs[name]['peak_rss_mib']} MiB", flush=True)
    memory = "peak GPU memory allocated (MiB)" if device.type == "cuda" else "peak RSS of its process (MiB)"
    key = "peak_cuda_mib" if device.type == "cuda" else "peak_rss_mib"
    table = Table(["method", "ms / step", "vs KD", "vs student alone (ce)", memory, "memory vs ce (MiB)"],
                  title=f"Training step on {device_name(device)}, resnet34 -> resnet18, {size} px, batch {batch}, "
                        f"{classes} classes (each method in a fresh process)")
    seconds = {name: c["seconds"] for name, c in costs.items()}
    for name, c in costs.items():
        table.add(name, round(1000 * c["seconds"], 1), f"{c['seconds'] / seconds['kd']:.2f}x",
                  f"{c['seconds'] / seconds['ce']:.2f}x", c[key], f"{c[key] - costs['ce'][key]:+d}")
    return table, seconds


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work: a GPU step is timed when it has run, not when queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def epoch_seconds(trainer: Trainer, epochs: int) -> float:
    """Median wall time of the trainer's training epoch (after one warm-up epoch)."""
    return interleaved_seconds({"epoch": lambda e: trainer.train_epoch(e + 1)}, epochs, trainer.device)["epoch"]


def build_trainer(root: Path, method: str, cache: bool, size: int, epochs: int, run_dir: Path,
                  device: torch.device = CPU, data: dict | None = None, train: dict | None = None) -> Trainer:
    """The toolkit's trainer for one benchmark; ``data`` and ``train`` override config fields."""
    cfg = build_config({"data": {"root": str(root), "image_size": size, "view_bank": 8, "rs_aug": True,
                                 **(data or {})},
                        "method": {"name": method}, "model": {"name": "resnet18"},
                        "train": {"epochs": 100, "progress": False, **(train or {})}}).resolve()
    data = DataModule(cfg.data, seed=0, device=str(device))
    cls = registry.get(method)
    torch.manual_seed(0)
    teacher = build_model("resnet34", data.info.num_classes) if cls.requires_teacher else None
    if teacher is not None:
        teacher.set_normalization(data.mean, data.std)
    method_cfg = cls.resolve_config(cfg.method, RunContext("resnet18", "resnet34", data.info.num_classes, 100))
    student = build_model("resnet18", data.info.num_classes)
    student.set_normalization(data.mean, data.std)
    d = cls(student, teacher, method_cfg, data.info)
    d.set_epoch(50)
    teacher_cache = load_or_build(teacher, data, device, None) if cache and teacher is not None else None
    return Trainer(cfg, d, data, run_dir, device, teacher_cache)


def bench_teacher_cache(root: Path, size: int, epochs: int, device: torch.device = CPU) -> tuple[Table, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        alone = epoch_seconds(build_trainer(root, "ce", False, size, epochs, Path(tmp), device), epochs)
        t0 = time.perf_counter()
        cached_trainer = build_trainer(root, "kd", True, size, epochs, Path(tmp), device)
        fill = time.perf_counter() - t0
        cached = epoch_seconds(cached_trainer, epochs)
        live = epoch_seconds(build_trainer(root, "kd", False, size, epochs, Path(tmp), device), epochs)
        n = cached_trainer.data.info.num_train
    table = Table(["training epoch", "s / epoch", "images/s", "vs student alone"],
                  title=f"Teacher-output cache: resnet34 -> resnet18, {size} px, {n} images, bank of 8 views "
                        f"(filling the cache once: {fill:.1f} s, about {fill / cached:.1f} cached epochs)")
    for label, t in (("student alone (CE)", alone), ("KD, teacher logits from the cache", cached),
                     ("KD, teacher run live", live)):
        table.add(label, round(t, 2), round(n / t), f"{t / alone:.2f}x")
    return table, {"alone_s": alone, "cached_s": cached, "live_s": live, "fill_s": fill}


def interleaved_seconds(epochs: dict[str, Callable[[int], None]], repeats: int,
                        device: torch.device) -> dict[str, float]:
    """Median wall time of each epoch function over ``repeats`` rounds after one warm-up round.
    The functions alternate within a round, in an order rotated each round, so that background
    load on the machine falls on all of them alike."""
    names = list(epochs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats + 1):
        for name in names[r % len(names):] + names[:r % len(names)]:
            synchronize(device)
            t0 = time.perf_counter()
            epochs[name](r)
            synchronize(device)
            if r:  # the first round warms up allocators and caches
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


# The trainer's data settings without augmentation: no crop padding, no flips (the images as decoded).
NO_AUGMENTATION = {"view_bank": 0, "crop_padding": 0.0, "hflip": False, "rs_aug": False}


def bench_overhead(root: Path, size: int, epochs: int, device: torch.device = CPU,
                   peer_dir: Path = peer.DEPS_DIR) -> tuple[Table, dict]:
    """The trainer's KD epoch (live teacher) against a bare loop over the same number of images
    already in memory, and against torchdistill's ``DistillationBox`` doing the same job (the peer,
    where installed), epochs interleaved. Two same-job pairs: both toolkits augmenting every image
    afresh with the same transform from the same decoded images (``peer_ratio``), and neither
    augmenting (the peer reading ready tensors; ``peer_ratio_no_augmentation``)."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(root, "kd", False, size, epochs, Path(tmp) / "aug", device, {"view_bank": 0})
        plain = build_trainer(root, "kd", False, size, epochs, Path(tmp) / "plain", device, NO_AUGMENTATION)
        n, batch, classes = trainer.data.info.num_train, trainer.batch_size, trainer.data.info.num_classes
        t, kd = trainer.cfg.train, trainer.distiller.cfg
        torch.manual_seed(0)
        student = build_model("resnet18", classes).net.to(device)
        teacher = build_model("resnet34", classes).net.eval().to(device)
        # the trainer's SGD implementation: the ratio is the framework's overhead alone
        sgd = optimizer_options(t)
        opt = torch.optim.SGD(student.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, **sgd)
        images = torch.rand(n, 3, size, size)
        labels = torch.randint(0, classes, (n,))
        x_all, y_all = images.to(device), labels.to(device)

        def bare_epoch(_: int) -> None:
            for i in range(0, n, batch):
                x, y = x_all[i:i + batch], y_all[i:i + batch]
                with torch.no_grad():
                    zt = teacher(x)
                zs = student(x)
                kl = torch.nn.functional.kl_div(torch.log_softmax(zs / kd.T, 1), torch.softmax(zt / kd.T, 1),
                                                reduction="batchmean") * kd.T ** 2
                loss = kd.ce_weight * torch.nn.functional.cross_entropy(zs, y) + kd.kd_weight * kl
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        waits: dict[str, list[float]] = {"ours": [], "ours_plain": []}

        def epoch_of(tr: Trainer, name: str) -> Callable[[int], None]:
            return lambda e: waits[name].append(tr.train_epoch(e + 1)["time/data_wait_s"])

        runs: dict[str, Callable[[int], None]] = {"ours": epoch_of(trainer, "ours"),
                                                  "ours_plain": epoch_of(plain, "ours_plain"), "bare": bare_epoch}
        job = peer.KDJob("resnet34", "resnet18", classes, batch, kd.T, kd.ce_weight, kd.kd_weight,
                         t.lr, t.momentum, t.weight_decay, t.nesterov)
        augmented = peer.AugmentedImages(trainer.data.train_images_tensor(), trainer.data.labels("train"),
                                         train_transform(trainer.cfg.data))
        try:
            runs["peer"], peer_name = peer.kd_epoch(job, augmented, device, epochs + 1, peer_dir)
            runs["peer_plain"], _ = peer.kd_epoch(job, TensorDataset(images, labels), device, epochs + 1, peer_dir)
            peer_note = PEER_FAIRNESS.format(threads=torch.get_num_threads(), peer=peer_name,
                                             ce=kd.ce_weight, kd=kd.kd_weight, T=kd.T)
        except peer.PeerUnavailable as e:
            peer_name, peer_note = None, str(e)
        print(f"  peer: {peer_name or peer_note}", flush=True)
        times = interleaved_seconds(runs, epochs, device)
    # the warm-up round's epoch left out, as in the times
    wait = {name: statistics.median(w[1:]) for name, w in waits.items()}
    steps = steps_per_epoch(n, batch)
    bare = times["bare"]
    table = Table(["KD epoch, resnet34 -> resnet18", "s / epoch", "images/s", "vs bare loop (throughput)",
                   "waiting for data (ms / step)"],
                  title=f"Framework overhead and peer at {size} px, {n} images, batch {batch}, {classes} classes "
                        f"(epochs interleaved, median of {epochs})")
    table.add("bare PyTorch loop (tensors in memory)", round(bare, 2), round(n / bare), "1.00", "")
    rows = [("ours", "rsdistill trainer, augmenting (its defaults)"),
            ("peer", f"{peer_name} DistillationBox, augmenting (the same transform)"),
            ("ours_plain", "rsdistill trainer, no augmentation"),
            ("peer_plain", f"{peer_name} DistillationBox, tensors in memory")]
    for key, label in rows:
        if key in times:
            table.add(label, round(times[key], 2), round(n / times[key]), f"{bare / times[key]:.2f}",
                      f"{1000 * wait[key] / steps:.1f}" if key in wait else "")
    if "peer" in times:
        table.notes.append(f"`peer_ratio` (our images/s over {peer_name}'s, both augmenting): "
                           f"{times['peer'] / times['ours']:.2f}; neither augmenting: "
                           f"{times['peer_plain'] / times['ours_plain']:.2f}")
    table.notes.append("Waiting for data: the time the trainer's steps spent getting their batch (augmentation from "
                       "the decoded cache, collation, the copy to the device), as `time/data_wait_s` in a run's "
                       "metrics.")
    table.notes.append(f"Peer ({peer_name or 'torchdistill'}): {peer_note}")
    return table, {"ours_s": times["ours"], "ours_plain_s": times["ours_plain"], "bare_s": bare,
                   "peer_s": times.get("peer"), "peer_plain_s": times.get("peer_plain"), "images": n,
                   "peer": peer_name, "peer_note": peer_note, "data_wait_share": wait["ours"] / times["ours"]}


PEER_FAIRNESS = (
    "measured in this process with the same torch threads ({threads}), epochs interleaved with ours. "
    "Same job: torchvision ResNet34 -> ResNet18, same class count, batch and image size; student in train "
    "mode, teacher in eval mode (torchdistill runs its frozen teacher under torch.no_grad, rsdistill under "
    "torch.inference_mode); its KDLoss with alpha = our ce_weight, beta = our kd_weight and our T "
    "({ce:g} x CE + {kd:g} x T^2 x KL at T {T:g}, batch mean); the same SGD (lr, momentum, weight decay) on "
    "the student alone, in torch's default implementation on both sides (a loop on the CPU; rsdistill's "
    "'train.optimizer_impl=fused' speed option is faster but rounds differently). Augmenting, {peer} reads the "
    "same decoded uint8 images through the DataLoader it builds (shuffled, no workers) from a Dataset "
    "applying rsdistill's training transform per image (random crop, flips, RS augmentation), as "
    "rsdistill's loader does; without augmentation it reads the bare loop's float tensors, and rsdistill "
    "its decoded images with crop padding 0 and no flips. Per step {peer} also builds its I/O dicts and "
    "runs its loss wrappers; it is run without its example scripts' metric logging (a loss.item() per "
    "step). rsdistill per step also normalises inside the models, sets the lr, checks that the loss is "
    "finite (each step on the CPU), sums the losses and top-1 and times its wait for data. On a GPU both "
    "copy each batch from pinned memory."
)


# The options measured one at a time: (label, data overrides, train overrides, where it applies).
SPEED_OPTIONS = [
    ("defaults", {}, {}, "any"),
    ("train.channels_last", {}, {"channels_last": True}, "any"),
    ("train.optimizer_impl=foreach", {}, {"optimizer_impl": "foreach"}, "any"),
    ("train.optimizer_impl=fused", {}, {"optimizer_impl": "fused"}, "any"),
    ("data.gpu_augment", {"gpu_augment": True}, {}, "any"),
    ("train.amp (bfloat16)", {}, {"amp": True, "amp_dtype": "bfloat16"}, "cuda"),
    ("train.amp (float16 + grad scaler)", {}, {"amp": True, "amp_dtype": "float16"}, "cuda"),
    ("train.compile", {}, {"compile": True}, "cuda"),
    ("cudnn.benchmark off", {}, {}, "cuda"),
]


def teacher_forward_ms(size: int, batch: int, device: torch.device, repeats: int) -> dict[str, float]:
    """The teacher's forward (ResNet34) under torch.no_grad and under torch.inference_mode."""
    teacher = build_model("resnet34", 30).eval().to(device)
    x = torch.rand(batch, 3, size, size, device=device)
    out = {}
    for name, mode in (("no_grad", torch.no_grad), ("inference_mode", torch.inference_mode)):
        times = []
        for i in range(repeats + 1):
            synchronize(device)
            t0 = time.perf_counter()
            with mode():
                teacher(x)
            synchronize(device)
            if i:
                times.append(time.perf_counter() - t0)
        out[name] = 1000 * statistics.median(times)
    return out


def copy_ms(size: int, batch: int, device: torch.device, repeats: int) -> dict[str, float]:
    """A uint8 batch's copy to the GPU from pageable and from pinned memory."""
    pageable = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    out = {}
    for name, x in (("pageable", pageable), ("pinned", pageable.pin_memory())):
        times = []
        for i in range(repeats + 1):
            synchronize(device)
            t0 = time.perf_counter()
            x.to(device, non_blocking=True)
            synchronize(device)
            if i:
                times.append(time.perf_counter() - t0)
        out[name] = 1000 * statistics.median(times)
    return out


def bench_speed_options(root: Path, size: int, epochs: int, device: torch.device) -> tuple[Table, dict]:
    """The trainer's KD epoch (live teacher, fresh augmentation) with each option alone."""
    times: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, data, train, where in SPEED_OPTIONS:
            if where == "cuda" and device.type != "cuda":
                times[label] = None
                print(f"  {label:36s} skipped: applies on CUDA only", flush=True)
                continue
            trainer = build_trainer(root, "kd", False, size, epochs, Path(tmp), device,
                                    {"view_bank": 0, **data}, train)
            autotune = torch.backends.cudnn.benchmark
            if label == "cudnn.benchmark off":
                torch.backends.cudnn.benchmark = False
            try:
                times[label] = epoch_seconds(trainer, epochs)
            finally:
                torch.backends.cudnn.benchmark = autotune
            print(f"  {label:36s} {times[label]:8.2f} s/epoch", flush=True)
        n = trainer.data.info.num_train
    base = times["defaults"]
    table = Table(["option (alone)", "s / epoch", "images/s", "speed-up vs defaults"],
                  title=f"Speed options on {device_name(device)}: KD epoch, resnet34 -> resnet18, {size} px, "
                        f"{n} images, batch 64, teacher live")
    for label, t in times.items():
        if t is None:
            table.add(label, "skipped (CUDA only)", "", "")
        else:
            table.add(label, round(t, 2), round(n / t), f"{base / t:.2f}x")
    fwd = teacher_forward_ms(size, 64, device, repeats=3)
    table.add("teacher forward, no_grad (ms / batch)", round(fwd["no_grad"], 1), "", "1.00x")
    table.add("teacher forward, inference_mode (ms / batch)", round(fwd["inference_mode"], 1), "",
              f"{fwd['no_grad'] / fwd['inference_mode']:.2f}x")
    ratios = {label: (round(base / t, 3) if t else None) for label, t in times.items() if label != "defaults"}
    ratios["teacher inference_mode vs no_grad"] = round(fwd["no_grad"] / fwd["inference_mode"], 3)
    if device.type == "cuda":
        copies = copy_ms(size, 64, device, repeats=10)
        table.add("batch copy to the GPU, pageable (ms)", round(copies["pageable"], 3), "", "1.00x")
        table.add("batch copy to the GPU, pinned (ms)", round(copies["pinned"], 3), "",
                  f"{copies['pageable'] / copies['pinned']:.2f}x")
        ratios["pinned vs pageable copy"] = round(copies["pageable"] / copies["pinned"], 3)
    return table, ratios


def overhead_figures(o: dict) -> dict[str, float | None]:
    """The summary's figures from one ``bench_overhead`` measurement."""
    return {
        "overhead_ratio": ratio(o["bare_s"], o["ours_s"]),
        # the same without augmentation (the bare loop does none)
        "overhead_ratio_no_augmentation": ratio(o["bare_s"], o["ours_plain_s"]),
        # our images/s over torchdistill's on the same KD job (> 1: we are faster): both augmenting
        # every image with the same transform, and neither augmenting
        "peer_ratio": ratio(o["peer_s"], o["ours_s"]),
        "peer_ratio_no_augmentation": ratio(o["peer_plain_s"], o["ours_plain_s"]),
        # the share of our (augmenting) KD epoch its steps spent waiting for their batch
        "data_wait_share": round(o["data_wait_share"], 3),
    }


def ratio(slower_s: float | None, faster_s: float) -> float | None:
    return round(slower_s / faster_s, 2) if slower_s else None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return f"the CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


SECTIONS = ("pipeline", "cache", "overhead", "overhead224", "speed", "methods")
# The sizes of each mode: the AID-like set's image size and images per class, the pipeline set's
# images per class, the rounds and epochs timed, the speed options' image size, and the method
# steps' image size, batch and steps.
MODES = {
    "full": {"size": 64, "per_class": 40, "pipeline_per_class": 150, "repeats": 3, "epochs": 2, "overhead_rounds": 6,
             "speed_size": 64, "method_size": 64, "method_batch": 64, "method_steps": 8},
    "quick": {"size": 64, "per_class": 8, "pipeline_per_class": 40, "repeats": 2, "epochs": 1, "overhead_rounds": 3,
              "speed_size": 32, "method_size": 32, "method_batch": 16, "method_steps": 3},
    # every code path at the smallest sizes, for the GPU check's dry run (scripts/gpu_check.sh):
    # its numbers mean nothing
    "smoke": {"size": 16, "per_class": 2, "pipeline_per_class": 6, "repeats": 1, "epochs": 1, "overhead_rounds": 1,
              "speed_size": 16, "method_size": 16, "method_batch": 4, "method_steps": 1},
}
SMOKE_METHODS = ("kd", "isdm")  # the smoke run's method section: the two its summary needs


def main() -> int:
    ap = argparse.ArgumentParser()
    mode_arg = ap.add_mutually_exclusive_group()
    mode_arg.add_argument("--quick", action="store_true")
    mode_arg.add_argument("--smoke", action="store_true",
                          help="every section at the smallest sizes, in seconds (checks the code, measures nothing)")
    ap.add_argument("--out", type=Path, help="the Markdown tables (default benchmarks/results.md, -full.md)")
    ap.add_argument("--summary", type=Path, help="the summary's JSON (default benchmarks/results/summary.json)")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS,
                    help="the sections to run (default: all; overhead224 in the full mode only)")
    ap.add_argument("--device", default="cpu", help="where sections 2 to 5 train: cpu, cuda, cuda:N")
    ap.add_argument("--peer-deps", type=Path, default=peer.DEPS_DIR,
                    help="folder holding torchdistill (make bench installs it there with --no-deps)")
    args = ap.parse_args()
    kind = "smoke" if args.smoke else "quick" if args.quick else "full"
    size = MODES[kind]
    sections = set(args.sections or [s for s in SECTIONS if s != "overhead224" or kind == "full"])
    device = resolve_device(args.device)
    configure_determinism(False, device)  # cudnn's autotuner on CUDA, as a run has it
    if kind == "smoke" and not (args.out and args.summary):
        ap.error("--smoke needs --out and --summary: its numbers must not replace the results")
    out = args.out or Path(__file__).parent / ("results-full.md" if kind == "full" else "results.md")
    summary_file = args.summary or Path(__file__).parent / "results" / "summary.json"
    command = " ".join(["python benchmarks/run.py", *sys.argv[1:]])
    summary: dict = {
        "kind": kind,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "device": device_name(device),
        "command": command,
        "sections": [s for s in SECTIONS if s in sections],
    }
    tables: list[Table] = []

    def save(finished: str | None = None) -> None:
        """Written after every section: a run stopped part-way keeps what it measured."""
        summary["sections_done"] = [*summary.get("sections_done", []), *([finished] if finished else [])]
        header = (f"# Benchmarks ({kind})\n\n"
                  f"`{command}` on {platform.machine()}, {torch.get_num_threads()} torch threads, "
                  f"torch {torch.__version__}, {device_name(device)}, {time.strftime('%Y-%m-%d')}. "
                  f"Ratios are measured side by side in one process.\n\n")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(header + "\n".join(t.to_markdown() for t in tables))
        summary_file.parent.mkdir(parents=True, exist_ok=True)
        summary_file.write_text(json.dumps(summary, indent=2) + "\n")

    def section(name: str, table: Table) -> None:
        print(table.to_markdown(), flush=True)
        tables.append(table)
        save(name)

    save()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if "pipeline" in sections:
            root = Path(tmp) / "scenes"
            generate_dataset(root, classes=6, per_class=size["pipeline_per_class"], size=150, seed=0)
            print("input pipeline ...", flush=True)
            pipe = bench_pipeline(root, 64, repeats=size["repeats"])
            summary["cache_speedup"] = round(pipe.rows[0][2] / pipe.rows[1][2], 2)
            section("pipeline", pipe)
        aid = Path(tmp) / "aid_like"
        # AID-sized in classes; the image count is cut to keep the quick run short.
        generate_dataset(aid, classes=23, per_class=size["per_class"], size=size["size"], seed=0)
        if "cache" in sections:
            print("teacher-output cache ...", flush=True)
            cache_table, cache = bench_teacher_cache(aid, size["size"], epochs=size["epochs"], device=device)
            summary.update({"teacher_cache_speedup": round(cache["live_s"] / cache["cached_s"], 2),
                            "kd_cached_over_alone": round(cache["cached_s"] / cache["alone_s"], 2),
                            "kd_live_over_alone": round(cache["live_s"] / cache["alone_s"], 2)})
            section("cache", cache_table)
        if "overhead" in sections:
            print("framework overhead ...", flush=True)
            # the peer ratios are the noisiest of the figures (a few per cent from run to run): more rounds
            overhead_table, overhead = bench_overhead(aid, size["size"], epochs=size["overhead_rounds"], device=device,
                                                      peer_dir=args.peer_deps)
            # at 64 px; the same figures at 224 px under "at_224px"
            summary.update(overhead_figures(overhead))
            summary.update({
                "peer": overhead["peer"],
                "peer_images_per_s": (
                    {"rsdistill": round(overhead["images"] / overhead["ours_s"], 1),
                     "torchdistill": round(overhead["images"] / overhead["peer_s"], 1),
                     "rsdistill, no augmentation": round(overhead["images"] / overhead["ours_plain_s"], 1),
                     "torchdistill, no augmentation": round(overhead["images"] / overhead["peer_plain_s"], 1)}
                    if overhead["peer_s"] else None),
                "peer_ratio_note": overhead["peer_note"]})
            section("overhead", overhead_table)
        if "overhead224" in sections:  # ImageNet's size: about 12 times the work per image, so fewer images and rounds
            print("framework overhead at 224 px ...", flush=True)
            aid224 = Path(tmp) / "aid_like_224"
            generate_dataset(aid224, classes=23, per_class=6, size=224, seed=0)
            table_224, overhead_224 = bench_overhead(aid224, 224, epochs=3, device=device, peer_dir=args.peer_deps)
            summary["at_224px"] = overhead_figures(overhead_224)
            section("overhead224", table_224)
        if "speed" in sections:
            print("speed options ...", flush=True)
            speed_table, speed = bench_speed_options(aid, size["speed_size"], epochs=size["epochs"], device=device)
            summary["speed_options"] = speed
            section("speed", speed_table)
    if "methods" in sections:
        print("method cost ...", flush=True)
        methods, step = bench_methods(size=size["method_size"], batch=size["method_batch"],
                                      steps=size["method_steps"], device=device,
                                      names=SMOKE_METHODS if kind == "smoke" else None)
        summary["isdm_over_kd"] = round(step["isdm"] / step["kd"], 2)
        section("methods", methods)
    print(json.dumps(summary, indent=2))
    print(f"written to {out} and {summary_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
