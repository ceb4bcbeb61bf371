"""The peer of issue 9: torchdistill doing the same KD job as ``rsdistill distill --method kd``.

torchdistill is never a dependency of the package or of its tests. ``make bench`` and
``make bench-quick`` install ``torchdistill==1.1.5`` with ``--no-deps`` into ``.bench-deps/``
(git-ignored; the project's pinned torch and torchvision stay as they are) and this module imports
it from there. Where it cannot be imported, :class:`PeerUnavailable` carries the reason and the
benchmark reports ``peer_ratio`` as null with it.

The job runs through torchdistill's own training machinery: a ``DistillationBox`` from
``torchdistill.core.distillation.get_distillation_box``, configured by a ``train_config`` dict
built here (what its YAML files hold), whose data loader, ``KDLoss`` (in a ``WeightedSumLoss``)
and optimizer torchdistill builds itself; an epoch is its ``pre_epoch_process``, then
``forward_process`` / ``post_forward_process`` per batch (as its example scripts' training loop,
without their metric logging), then ``post_epoch_process``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch.utils.data import Dataset, RandomSampler

PEER_VERSION = "1.1.5"
DEPS_DIR = Path(__file__).resolve().parent.parent / ".bench-deps"


class PeerUnavailable(Exception):
    """torchdistill cannot be used here; the message says why (it goes into the summary)."""


@dataclass(frozen=True)
class KDJob:
    """What both sides train: the models, the KD loss and the optimizer (ours at its defaults)."""

    teacher: str  # a torchvision model name
    student: str
    num_classes: int
    batch_size: int
    T: float
    ce_weight: float
    kd_weight: float
    lr: float
    momentum: float
    weight_decay: float
    nesterov: bool


def import_torchdistill(deps_dir: Path = DEPS_DIR):
    """torchdistill's package and ``get_distillation_box``, from ``deps_dir`` first."""
    if deps_dir.is_dir() and str(deps_dir) not in sys.path:
        # only torchdistill lives there (installed with --no-deps): nothing of the venv is shadowed
        sys.path.insert(0, str(deps_dir))
    try:
        import torchdistill
        from torchdistill.core.distillation import get_distillation_box
    except Exception as e:  # not installed, or not working with this torch: the benchmark goes on
        raise PeerUnavailable(
            f"not measured: torchdistill is not importable ({type(e).__name__}: {e}); `make bench` "
            f"installs torchdistill=={PEER_VERSION} into {deps_dir.name}/") from None
    return torchdistill, get_distillation_box


def train_config(job: KDJob, epochs: int, device: torch.device = torch.device("cpu")) -> dict:
    """torchdistill's ``train_config`` for the KD job: CE x ``ce_weight`` + ``kd_weight`` x T^2 x
    KL (its ``KDLoss``: alpha x CE + beta x T^2 x KL), SGD on the student alone (the teacher is
    frozen, so torchdistill runs it under ``torch.no_grad``), shuffled batches, no scheduler."""
    logits = {"student_module_path": ".", "student_module_io": "output",
              "teacher_module_path": ".", "teacher_module_io": "output"}
    return {
        "num_epochs": epochs,
        "train_data_loader": {
            "dataset_id": "train", "requires_supp": True,
            "sampler": {"class_or_func": RandomSampler, "kwargs": {}},
            # pinned host memory for a GPU, as rsdistill's loader has it
            "kwargs": {"batch_size": job.batch_size, "num_workers": 0, "drop_last": False,
                       "pin_memory": device.type == "cuda"},
        },
        # forward_batch_only: model(images), what both sides' networks take
        "teacher": {"forward_proc": "forward_batch_only", "requires_grad": False},
        "student": {"forward_proc": "forward_batch_only"},
        "optimizer": {"key": "SGD", "kwargs": {"lr": job.lr, "momentum": job.momentum,
                                              "weight_decay": job.weight_decay, "nesterov": job.nesterov}},
        "criterion": {"key": "WeightedSumLoss", "kwargs": {"sub_terms": {"kd": {
            "criterion": {"key": "KDLoss", "kwargs": {**logits, "temperature": job.T, "alpha": job.ce_weight,
                                                      "beta": job.kd_weight, "reduction": "batchmean"}},
            "weight": 1.0,
        }}}},
    }


class AugmentedImages(Dataset):
    """(image, label) pairs as a torchdistill user would feed them: a uint8 image augmented by a
    torchvision transform at every access (rsdistill's own training transform, so that both sides
    draw the same kind of views from the same decoded images)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), int(self.labels[i])


def kd_epoch(job: KDJob, dataset: Dataset, device: torch.device, epochs: int,
             deps_dir: Path = DEPS_DIR) -> tuple[Callable[[int], None], str]:
    """A function running one torchdistill training epoch over ``dataset`` (``(image, label)``
    items at the training size: a ``TensorDataset`` of ready tensors, or :class:`AugmentedImages`),
    and the peer's name and version. Raises :class:`PeerUnavailable`."""
    torchdistill, get_distillation_box = import_torchdistill(deps_dir)
    torch.manual_seed(0)
    teacher = getattr(torchvision.models, job.teacher)(weights=None, num_classes=job.num_classes).eval()
    student = getattr(torchvision.models, job.student)(weights=None, num_classes=job.num_classes)
    try:
        box = get_distillation_box(teacher, student, {"train": dataset},
                                   train_config(job, epochs, device), device, None, False, 1)
    except Exception as e:  # an API change in another torchdistill version
        raise PeerUnavailable(f"not measured: torchdistill {torchdistill.__version__} rejected the "
                              f"KD train_config ({type(e).__name__}: {e})") from None

    def epoch(e: int) -> None:
        box.pre_epoch_process(epoch=e)  # student.train(); the teacher stays in eval
        for x, y, supp in box.train_data_loader:
            x, y = x.to(device), y.to(device)
            loss = box.forward_process(x, y, supp)
            box.post_forward_process(loss=loss)  # backward, optimizer step, zero_grad
        box.post_epoch_process()

    return epoch, f"torchdistill {torchdistill.__version__}"
