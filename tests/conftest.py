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
