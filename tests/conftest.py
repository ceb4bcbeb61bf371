"""Shared fixtures: tiny generated datasets and a tiny trained teacher (built once per session);
helpers that build a distiller for a tiny random pair and a fixed random batch."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from rsdistill.cli import main
from rsdistill.config import build_config
from rsdistill.data.info import DataInfo
from rsdistill.distillers import registry
from rsdistill.distillers.settings import RunContext
from rsdistill.models import build_model

from .browser import browser  # noqa: F401  (fixture: one headless chromium per test process)

# Several pytest-xdist workers on 2 cores: one thread each avoids oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

def pytest_collection_modifyitems(items):
    """Tests that run the CLI end to end take ``capsys`` (to read its output), the trained
    ``teacher_run`` or the generated ``scenes``: they are marked ``slow``, so that
    ``pytest -m "not slow"`` is the quick loop. ``make test`` runs everything."""
    for item in items:
        if {"capsys", "teacher_run", "scenes"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _seeded_torch():
    """Every test starts from the same global RNG state, whichever xdist worker runs it and after
    whichever other tests: a draw a test does not seed itself cannot make it flaky."""
    torch.manual_seed(0)


# Settings that make a CLI run take seconds: 16 px images, 1 epoch, no progress bar.
TINY = ["train.epochs=1", "data.image_size=16", "train.batch_size=16", "train.progress=false"]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="session")
def scenes(tmp_path_factory) -> Path:
    """4 synthetic scene classes x 12 images at 16 px."""
    from rsdistill.synth import generate_dataset

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


def interrupt_after_logging_epoch(monkeypatch, epoch: int) -> None:
    """Make the next run stop like a Ctrl-C after writing epoch ``epoch``'s metrics line and before
    its checkpoint: the worst moment for a resume. ``monkeypatch.undo()`` restores normal runs."""
    from rsdistill.engine.runlog import RunLog

    original = RunLog.epoch

    def crash(self, record, hists=None):
        original(self, record, hists)
        if record["epoch"] == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunLog, "epoch", crash)


def build_distiller(method: str, *, student: str = "resnet20", teacher: str = "resnet8x4", classes: int = 4,
                    size: int = 16, train_labels: torch.Tensor | None = None, copy_teacher: bool = False,
                    prepare_teacher: Callable[[torch.nn.Module], None] | None = None, seed: int = 0,
                    **overrides):
    """A distiller for a tiny random pair, its method section validated like the CLI's (``overrides``
    are method fields; shorthands such as ``kd+ls`` resolve), its run-dependent defaults resolved
    for the pair as a run would, except the warm-up: off (0) unless ``overrides`` set it.

    After ``torch.manual_seed(seed)`` the student is built, then the teacher; with ``copy_teacher``
    only the teacher is built and the student is a copy of it. ``prepare_teacher`` may change the
    teacher before the method is built. The data has ``classes`` classes, images of ``size`` px and
    a training split of ``train_labels`` (default: 8 labels cycling over the classes)."""
    if "warmup_epochs" not in overrides and registry.get(
            registry.ALIASES.get(method, (method,))[0]).requires_teacher:
        overrides = {**overrides, "warmup_epochs": 0}
    cfg = build_config({"method": {"name": method, **overrides}}).method
    cls = registry.get(cfg.name)
    cfg = cls.resolve_config(cfg, RunContext(student, teacher, classes, epochs=10))
    torch.manual_seed(seed)
    if copy_teacher:
        t = build_model(teacher, classes)
        s = copy.deepcopy(t)
    else:
        s, t = build_model(student, classes), build_model(teacher, classes)
    if prepare_teacher is not None:
        prepare_teacher(t)
    labels = torch.arange(8) % classes if train_labels is None else train_labels
    info = DataInfo([f"c{i}" for i in range(classes)], size, labels,
                    [f"c{int(y)}/{i}.png" for i, y in enumerate(labels)])
    return cls(s, t, cfg, info)


def fixed_batch(n: int = 8, size: int = 16, classes: int = 4, seed: int = 0, *, random_labels: bool = False,
                strong: bool = False) -> dict[str, torch.Tensor]:
    """A fixed random batch from its own generator seeded with ``seed``: ``image`` in [0, 1], then
    ``image_strong`` (a second view) when ``strong``; ``label`` cycling over the classes, or drawn
    from the same generator after the images with ``random_labels``; ``index`` 0..n-1."""
    g = torch.Generator().manual_seed(seed)
    b = {"image": torch.rand(n, 3, size, size, generator=g)}
    if strong:
        b["image_strong"] = torch.rand(n, 3, size, size, generator=g)
    b["label"] = torch.randint(0, classes, (n,), generator=g) if random_labels else torch.arange(n) % classes
    b["index"] = torch.arange(n)
    return b


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
