"""Shared fixtures: tiny generated datasets and a tiny trained teacher (built once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from rsdistill.cli import main

# Several pytest-xdist workers on 2 cores: one thread each avoids oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

# Settings that make a CLI run take seconds: 16 px images, 1 epoch, no progress bar.
TINY = ["train.epochs=1", "data.image_size=16", "train.batch_size=16", "train.progress=false"]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="session")
def scenes(tmp_path_factory) -> Path:
    """4 synthetic scene classes x 12 images at 16 px."""
    from rsdistill.data.synth import generate_dataset

    out = tmp_path_factory.mktemp("data") / "scenes"
    generate_dataset(out, classes=4, per_class=12, size=16, seed=0)
    return out


@pytest.fixture(scope="session")
def teacher_run(scenes, tmp_path_factory) -> Path:
    """A CIFAR-style resnet8x4 teacher trained for 2 epochs on ``scenes``."""
    out = tmp_path_factory.mktemp("runs") / "teacher"
    code = main(["-q", "train", "--data", str(scenes), "--model", "resnet8x4", "--out", str(out),
                 "--set", *TINY, "train.epochs=2"])
    assert code == 0
    return out


def calibrate_teacher(distiller, size: int, n: int = 8) -> None:
    """Give a random teacher BatchNorm statistics of real activations (a trained teacher has them;
    fresh running statistics make a random network's eval-mode activations explode)."""
    teacher = distiller.teacher
    teacher.train()
    with torch.no_grad():
        for i in range(3):
            teacher(torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(100 + i)))
    teacher.eval()


def losses_over_sgd_steps(distiller, batch, optimizer, steps: int = 3) -> list[float]:
    """The total loss at each of ``steps`` SGD steps on one fixed batch. The method's state that is
    not a parameter (memory banks, normalisers) is restored before every step, so the loss is one
    fixed function of the parameters and falling means the gradient step helps."""
    with torch.no_grad():  # lets a method initialise state it sets lazily (e.g. CRD's Z) first
        torch.manual_seed(0)
        distiller.forward_train(batch)
    state = {k: {n: b.clone() for n, b in m.named_buffers()} for k, m in distiller.extra_modules().items()}
    seen = []
    for _ in range(steps):
        for k, m in distiller.extra_modules().items():
            for n, b in m.named_buffers():
                b.copy_(state[k][n])
        torch.manual_seed(0)  # methods that sample (negatives, views) see the same draw
        _, losses = distiller.forward_train(batch)
        loss = sum(losses.values())
        assert torch.isfinite(loss), losses
        seen.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return seen
