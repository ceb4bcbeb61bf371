"""Running under ``torchrun``: one process per device, with PyTorch's DistributedDataParallel.

torchrun starts the processes and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (and the
rendezvous address); a run started without them, or with a world of 1, is a single process and
nothing here changes it. In a distributed run:

- the process group uses NCCL on CUDA (process ``r`` on ``cuda:LOCAL_RANK``) and gloo on the CPU;
- ``train.batch_size`` is the batch of all processes together: each takes ``batch_size / N``
  images of its own disjoint share of the epoch's permutation (``data.sampling``), which every
  process draws from the same epoch seed, so the schedule (steps per epoch, lr) is the single
  process's;
- the student and the method's extra trainable modules are wrapped together in one
  DistributedDataParallel (:func:`wrap_train_step`), which averages their gradients; buffers
  (BatchNorm statistics, memory banks) are each process's own during an epoch and process 0's
  are copied to the others at its end (:func:`broadcast_buffers`), so the evaluated, the saved and
  a resumed model are the same in every process;
- the training sums (losses, correct, seen) and the method's diagnostics are summed over the
  processes before they are logged (:func:`reduce_sums`); evaluation is sharded (every image once
  over the processes) and its counts and confusion matrix are summed (:func:`reduce_meter`): the
  figures are those of one process evaluating the same model;
- process 0 alone claims the run directory (its lock) and writes config, split, logs, metrics
  and checkpoints (:func:`on_main` tells the others whether it could); the others only compute.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..data.sampling import Shard, shard_length
from ..errors import ConfigError, RsDistillError
from .metrics import AccuracyMeter
from .seeding import resolve_device

log = logging.getLogger("rsdistill")

T = TypeVar("T")


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run: process ``rank`` of ``world_size``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world_size)


SINGLE = Distributed()


def from_env(environ: Mapping[str, str] = os.environ) -> Distributed:
    """The torchrun variables; none of them: a single process."""
    if "WORLD_SIZE" not in environ:
        return SINGLE
    values = {}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        raw = environ.get(name, "0")
        try:
            values[name] = int(raw)
        except ValueError:
            raise ConfigError(f"environment variable {name}={raw!r} is not a number (set by torchrun)") from None
    ctx = Distributed(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
    if ctx.world_size < 1 or not 0 <= ctx.rank < ctx.world_size:
        raise ConfigError(f"environment: RANK={ctx.rank} is not a process of WORLD_SIZE={ctx.world_size}")
    return ctx


def device_for(ctx: Distributed, name: str) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` for "auto" (with CUDA) and "cuda"; a single
    named GPU cannot be shared by the processes of a node."""
    if not ctx.enabled:
        return resolve_device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda:"):
        raise ConfigError(f"train.device: '{name}' names one GPU, but under torchrun each process uses "
                          "cuda:LOCAL_RANK: set train.device to cuda or auto")
    if name == "cuda":
        resolve_device("cuda")
        count = torch.cuda.device_count()
        if ctx.local_rank >= count:
            raise ConfigError(f"torchrun started process LOCAL_RANK={ctx.local_rank} but this node has {count} "
                              "GPU(s): use --nproc_per_node at most the GPU count")
        return torch.device("cuda", ctx.local_rank)
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"train.device: '{name}' cannot be used under torchrun (cuda, cpu or auto)")


def setup(ctx: Distributed, device_name: str) -> torch.device:
    """Join the process group (once per process) and return this process's device. Processes
    other than 0 log errors only: process 0 speaks for the run."""
    device = device_for(ctx, device_name)
    if not ctx.enabled:
        return device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
        atexit.register(shutdown)
    if dist.get_world_size() != ctx.world_size or dist.get_rank() != ctx.rank:
        raise ConfigError(f"the process group ({dist.get_rank()} of {dist.get_world_size()}) does not match "
                          f"RANK={ctx.rank} and WORLD_SIZE={ctx.world_size}")
    if not ctx.is_main:
        logging.getLogger("rsdistill").setLevel(logging.ERROR)
    return device


def describe(ctx: Distributed, num_train: int, batch_size: int) -> str:
    """One line for the run's log: how the work is shared out."""
    return (f"distributed: {ctx.world_size} processes ({dist.get_backend()} backend); each trains on "
            f"{shard_length(num_train, ctx.shard)} of the {num_train} training images per epoch, "
            f"{batch_size // ctx.world_size} of each batch of {batch_size}")


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    """Where collective tensors must live: NCCL moves CUDA tensors only."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def check_batch_size(ctx: Distributed, batch_size: int) -> None:
    """``train.batch_size`` is shared out evenly: each process takes ``batch_size / N``."""
    if ctx.enabled and batch_size % ctx.world_size:
        raise ConfigError(f"train.batch_size: {batch_size} is the batch of all {ctx.world_size} processes "
                          f"together and must be a multiple of {ctx.world_size}")


# --------------------------------------------------------------------------- coordination


def on_main(ctx: Distributed, fn: Callable[[], T], what: str) -> T | None:
    """Run ``fn`` on process 0 only (claiming the run directory, writing files); the others wait
    and learn whether it worked. An error there stops every process with its message, instead of
    leaving the others waiting for a process that has gone. Returns ``fn``'s result on process 0."""
    if not ctx.enabled:
        return fn()
    result, error, failure = None, None, None
    if ctx.is_main:
        try:
            result = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below, after the others are told
            failure, error = e, str(e) or type(e).__name__
    box = [error]
    dist.broadcast_object_list(box, src=0)
    if failure is not None:
        raise failure
    if box[0] is not None:
        raise RsDistillError(f"{what} failed in process 0: {box[0]}")
    return result


def barrier(ctx: Distributed) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_object(ctx: Distributed, obj: Any) -> Any:
    """Process 0's ``obj`` in every process."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_tensor(ctx: Distributed, t: Tensor) -> Tensor:
    """Process 0's ``t`` (same shape and dtype everywhere) in every process, in place."""
    if ctx.enabled:
        buf = t.to(_comm_device())
        dist.broadcast(buf, src=0)
        if buf is not t:
            t.copy_(buf)
    return t


def all_reduce_sum(ctx: Distributed, t: Tensor) -> Tensor:
    """The sum of ``t`` over the processes, in place."""
    if ctx.enabled:
        buf = t.to(_comm_device())
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        if buf is not t:
            t.copy_(buf)
    return t


def reduce_sums(ctx: Distributed, sums: Mapping[str, tuple[Any, Any]]) -> dict[str, tuple[float, float]]:
    """``{name: (total, count)}`` summed over the processes (float64). A name that only some
    processes logged counts as (0, 0) in the others."""
    local = {k: (float(t), float(c)) for k, (t, c) in sums.items()}
    if not ctx.enabled:
        return local
    gathered: list[list[str] | None] = [None] * ctx.world_size
    dist.all_gather_object(gathered, sorted(local))
    names = sorted({n for part in gathered for n in (part or [])})
    vec = torch.tensor([local.get(n, (0.0, 0.0)) for n in names], dtype=torch.float64).reshape(-1, 2)
    all_reduce_sum(ctx, vec)
    return {n: (float(t), float(c)) for n, (t, c) in zip(names, vec.tolist())}


def reduce_meter(ctx: Distributed, meter: AccuracyMeter) -> AccuracyMeter:
    """A sharded evaluation's meter summed over the processes: counts and the confusion matrix are
    integers, so the result is exactly the single-process one (the loss up to summation order)."""
    if not ctx.enabled:
        return meter
    counts = torch.tensor([meter.n, meter.top1, meter.top5], dtype=torch.int64)
    loss = torch.tensor([meter.loss_sum], dtype=torch.float64)
    all_reduce_sum(ctx, counts)
    all_reduce_sum(ctx, loss)
    all_reduce_sum(ctx, meter.confusion)
    meter.n, meter.top1, meter.top5 = (int(v) for v in counts.tolist())
    meter.loss_sum = float(loss)
    return meter


def broadcast_buffers(ctx: Distributed, modules: Mapping[str, nn.Module]) -> None:
    """Process 0's buffers (BatchNorm statistics, memory banks) copied into every process."""
    if not ctx.enabled:
        return
    for module in modules.values():
        for buf in module.buffers():
            broadcast_tensor(ctx, buf)


# --------------------------------------------------------------------------- training


class TrainStep(nn.Module):
    """The distiller's training forward as a module, so that DistributedDataParallel wraps the
    student and the method's extra modules together (the frozen teacher has no gradients: DDP
    leaves it alone)."""

    def __init__(self, distiller: nn.Module):
        super().__init__()
        self.distiller = distiller

    def forward(self, batch: dict[str, Any]) -> Any:
        return self.distiller.forward_train(batch)


def wrap_train_step(ctx: Distributed, distiller: nn.Module, device: torch.device) -> Callable[[dict[str, Any]], Any]:
    """``batch -> (logits, losses)``: the distiller's ``forward_train`` itself in one process; in
    several, through DistributedDataParallel (gradients averaged over the processes during the
    backward pass). Buffers are synchronised when it is built, not at every step (see the module's
    docstring). Every
    trainable parameter of every method gets a gradient at each step, so DDP need not search for
    unused ones."""
    if not ctx.enabled:
        return distiller.forward_train
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(TrainStep(distiller), device_ids=[device.index] if device.type == "cuda" else None,
                                   forward_sync_buffers=False)
