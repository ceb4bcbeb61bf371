"""Side-by-side cost measurements; prints ratios and writes them to a Markdown file.

    python benchmarks/run.py --quick    # about a minute: writes benchmarks/results.md
    python benchmarks/run.py            # larger sizes and more steps: benchmarks/results-full.md

1. Input pipeline: one training epoch of batches decoded on every access (``data.cache=off``)
   against the decoded cache (``data.cache=memory``), from 150 px PNG scenes to the training size.
2. Method cost: wall time of a training step (student forward/backward + teacher forward + the
   method's losses) for every registered method, relative to KD, ResNet34 -> ResNet18.
Numbers are ratios measured in the same process, one after another; absolute times depend on the
machine and are printed for reference only.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from rsdistill.config import DataConfig, build_config
from rsdistill.data.datamodule import DataInfo, DataModule
from rsdistill.data.synth import generate_dataset
from rsdistill.distillers import registry
from rsdistill.engine.trainer import build_optimizer
from rsdistill.models import build_model
from rsdistill.reports.tables import Table


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


def bench_methods(size: int, batch: int, steps: int, classes: int = 30) -> Table:
    info = DataInfo([f"c{i}" for i in range(classes)], size, torch.arange(512) % classes,
                    [f"c{i % classes}/{i}.png" for i in range(512)])
    g = torch.Generator().manual_seed(0)
    data = {"image": torch.rand(batch, 3, size, size, generator=g), "label": torch.arange(batch) % classes,
            "index": torch.arange(batch)}
    data["image_strong"] = torch.rand(batch, 3, size, size, generator=g)
    results = {}
    for name in ["ce", *registry.names()]:
        cls = registry.get(name)
        cfg = build_config({"method": {"name": name}, "train": {"epochs": 100}}).resolve()
        torch.manual_seed(0)
        teacher = build_model("resnet34", classes) if cls.requires_teacher else None
        d = cls(build_model("resnet18", classes), teacher, cfg.method, info)
        d.set_epoch(50)
        d.train()
        opt = build_optimizer(d, cfg)
        for g_ in opt.param_groups:
            g_["lr"] = 1e-3
        ts = []
        for i in range(steps + 1):
            t0 = time.perf_counter()
            _, losses = d.forward_train(data)
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:  # the first step warms up allocators and caches
                ts.append(time.perf_counter() - t0)
        results[name] = statistics.median(ts)
        print(f"  {name:10s} {1000 * results[name]:8.1f} ms/step", flush=True)
    table = Table(["method", "ms / step", "vs KD", "vs student alone (ce)"],
                  title=f"Training step, resnet34 -> resnet18, {size} px, batch {batch}, {classes} classes")
    for name, t in results.items():
        table.add(name, round(1000 * t, 1), f"{t / results['kd']:.2f}x", f"{t / results['ce']:.2f}x")
    return table


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    quick = args.quick
    out = args.out or Path(__file__).parent / ("results.md" if quick else "results-full.md")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "scenes"
        generate_dataset(root, classes=6, per_class=40 if quick else 150, size=150, seed=0)
        print("input pipeline ...", flush=True)
        pipe = bench_pipeline(root, 64, repeats=2 if quick else 3)
    print(pipe.to_markdown())
    print("method cost ...", flush=True)
    methods = bench_methods(size=32 if quick else 64, batch=16 if quick else 64, steps=3 if quick else 8)
    print(methods.to_markdown())
    header = (f"# Benchmarks ({'quick' if quick else 'full'})\n\n"
              f"`python benchmarks/run.py{' --quick' if quick else ''}` on {platform.machine()}, "
              f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
              f"{time.strftime('%Y-%m-%d')}. Ratios are measured side by side in one process.\n\n")
    out.write_text(header + pipe.to_markdown() + "\n" + methods.to_markdown())
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
