"""The teacher's logits on every view of the view bank, computed once before training.

With ``data.view_bank: K`` every training image has K fixed views, so the teacher's output for a
training step is a table look-up by (image index, view) instead of a forward pass: a logit method
then costs about what the student trained alone costs. Methods that need the teacher's features
declare it (``Distiller.teacher_outputs``) and run the teacher live.

The cache is keyed by everything its values depend on: the teacher's weights (and input
normalisation), the training split, the decoded training images, the bank (K, the seed, the image
size, the crop padding and the orientations). A cache file whose key differs is rebuilt, never
reused; a damaged one too.

Whether a run uses the cache at all is decided here too (:func:`run_teacher_cache`): a run asks for
its teacher's outputs and gets either the cache or None (the teacher then runs live).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..data.datamodule import DataModule, cache_directory
from ..data.sampling import Shard
from ..errors import load_failure
from ..io import atomic_write
from ..models import ModelAdapter
from .batch import move
from .distributed import SINGLE, Distributed, all_reduce_sum, broadcast_object, broadcast_tensor

if TYPE_CHECKING:
    from ..config import RunConfig

log = logging.getLogger("rsdistill")

# What the cache can stand in for: a method whose teacher signal is within this set uses it.
CACHEABLE = frozenset({"logits"})
CACHE_FORMAT = 1


def tensor_digest(tensors: list[tuple[str, Tensor]]) -> str:
    h = hashlib.sha256()
    for name, t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        # reshaped to 1-d: 0-d tensors (BN batch counters) cannot be viewed as bytes
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:24]


def model_digest(model: ModelAdapter) -> str:
    """The teacher's weights, BN statistics and input normalisation (and the channels of the
    decoded bands it reads, where the images hold more bands than it reads)."""
    tensors = sorted(model.state_dict().items())
    if model.read_channels is not None:
        tensors.append(("read_channels", model.read_channels))
    return tensor_digest(tensors)


@dataclass(frozen=True)
class CacheKey:
    teacher: str  # digest of the teacher's state dict
    split: str  # digest of the training split's file list
    images: str  # digest of the decoded training images
    bank: str  # fingerprint of the view bank (every view's crop and orientation)
    views: int
    seed: int
    image_size: int
    format: int = CACHE_FORMAT

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]


def cache_key(teacher: ModelAdapter, data: DataModule) -> CacheKey:
    bank = data.view_bank
    if bank is None:
        raise ValueError("the teacher-output cache needs data.view_bank > 0")
    paths = "\n".join(data.split.train).encode()
    return CacheKey(
        teacher=model_digest(teacher),
        split=hashlib.sha256(paths).hexdigest()[:24],
        # Streamed images (too many to hold) are keyed by their files instead of their pixels.
        images=data.streamed_train_key() or tensor_digest([("train", data.train_images_tensor())]),
        bank=bank.fingerprint(),
        views=bank.views,
        seed=data.seed,
        image_size=data.cfg.image_size,
    )


class TeacherOutputCache:
    """``logits[i, k]``: the teacher's logits on view k of training image i (float32)."""

    def __init__(self, logits: Tensor, key: CacheKey):
        self.logits, self.key = logits, key

    def to(self, device: torch.device) -> TeacherOutputCache:
        self.logits = self.logits.to(device)
        return self

    def lookup(self, index: Tensor, view: Tensor) -> Tensor:
        return self.logits[index.to(self.logits.device), view.to(self.logits.device)]


def compute_teacher_logits(teacher: ModelAdapter, data: DataModule, device: torch.device,
                           batch_size: int = 256, shard: Shard = Shard()) -> Tensor:
    """The teacher's logits on every view of the bank; with ``shard``, on this process's views only
    (items ``rank, rank + world, ...`` in (image, view) order), the others left at zero."""
    bank = data.view_bank
    assert bank is not None
    was_training = teacher.training
    teacher.eval()
    # Allocated outside inference mode: an ordinary tensor that collectives may write into.
    out = torch.zeros(bank.num_images, bank.views, teacher.num_classes)
    for batch in data.bank_views_loader(batch_size, shard):
        b = move(batch, device)
        with torch.inference_mode():
            logits = teacher.logits(b["image"]).float().cpu()
        out[batch["index"], batch["view"]] = logits
    teacher.train(was_training)
    return out


@contextlib.contextmanager
def build_lock(file: Path | None):
    """Held while one process reads or fills a cache file: runs started side by side on the same
    teacher and seed fill it once, the others wait and read it."""
    if file is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # no flock (Windows): each process builds its own
        yield
        return
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file.with_name(file.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load_or_build(teacher: ModelAdapter, data: DataModule, device: torch.device,
                  directory: Path | None, batch_size: int = 256,
                  ctx: Distributed = SINGLE) -> TeacherOutputCache:
    """The cache for this teacher and data: read from ``directory`` when a file with the same key
    is there, else computed (and written there when ``directory`` is given). In a distributed run
    see :func:`load_or_build_distributed`."""
    key = cache_key(teacher, data)
    file = directory / f"teacher-logits-{key.digest()}.pt" if directory is not None else None
    if ctx.enabled:
        return load_or_build_distributed(teacher, data, device, file, key, batch_size, ctx)
    with build_lock(file):
        cached = _read(file, key, (len(data.split.train), key.views, teacher.num_classes))
        if cached is not None:
            return TeacherOutputCache(cached, key)
        t0 = time.perf_counter()
        logits = compute_teacher_logits(teacher, data, device, batch_size)
        log.info("teacher outputs: %d views x %d images computed in %.1fs", key.views, logits.shape[0],
                 time.perf_counter() - t0)
        if file is not None:
            atomic_write(file, lambda f: torch.save({"key": asdict(key), "logits": logits}, f))
    return TeacherOutputCache(logits, key)


def load_or_build_distributed(teacher: ModelAdapter, data: DataModule, device: torch.device, file: Path | None,
                              key: CacheKey, batch_size: int, ctx: Distributed) -> TeacherOutputCache:
    """The cache filled by all the processes together: each runs the teacher on its share of the
    views (1/N of them), and the shares are summed (every view is computed by exactly one process,
    the others hold zeros there). Every process keeps the whole table (images x views x classes:
    10 MB for AID with 8 views), because each epoch deals the images out to the processes afresh.
    Process 0 alone takes the file lock, reads or writes the file, and sends a hit to the others:
    the file need not be on storage every node sees."""
    shape = (len(data.split.train), key.views, teacher.num_classes)
    with build_lock(file) if ctx.is_main else contextlib.nullcontext():
        cached = _read(file, key, shape) if ctx.is_main else None
        if broadcast_object(ctx, cached is not None):
            logits = cached if cached is not None else torch.empty(shape)
            return TeacherOutputCache(broadcast_tensor(ctx, logits), key)
        t0 = time.perf_counter()
        logits = all_reduce_sum(ctx, compute_teacher_logits(teacher, data, device, batch_size, ctx.shard))
        log.info("teacher outputs: %d views x %d images computed by %d processes in %.1fs", key.views,
                 logits.shape[0], ctx.world_size, time.perf_counter() - t0)
        if file is not None and ctx.is_main:
            atomic_write(file, lambda f: torch.save({"key": asdict(key), "logits": logits}, f))
    return TeacherOutputCache(logits, key)


def uses_teacher_cache(cfg: RunConfig, method_cls: type) -> bool:
    """A bank of views, the cache not switched off, and a method that uses only the teacher's
    logits (the others need its features and run it live) on the bank's views only (a second,
    strongly augmented view is drawn live at every step)."""
    return (bool(cfg.data.view_bank) and cfg.teacher.cache and method_cls.teacher_outputs <= CACHEABLE
            and "two_views" not in method_cls.needs)


def run_teacher_cache(cfg: RunConfig, method_cls: type, teacher: ModelAdapter | None, data: DataModule,
                      device: torch.device, ctx: Distributed = SINGLE) -> TeacherOutputCache | None:
    """The cache a run of ``method_cls`` with ``cfg`` uses, read or built; None where the run has no
    teacher or runs it live (:func:`uses_teacher_cache`)."""
    if teacher is None or not uses_teacher_cache(cfg, method_cls):
        return None
    return load_or_build(teacher, data, device, cache_directory(cfg.data), cfg.train.test_batch_size, ctx)


def _read(file: Path | None, key: CacheKey, shape: tuple[int, int, int]) -> Tensor | None:
    if file is None or not file.is_file():
        return None
    try:
        stored = torch.load(file, map_location="cpu", weights_only=True)
        logits = stored["logits"]
        if stored.get("key") == asdict(key) and tuple(logits.shape) == shape:
            log.info("teacher outputs: cache hit %s", file)
            return logits.float()
        log.warning("teacher-output cache '%s' does not match this teacher and data; rebuilding", file)
    except Exception as e:  # noqa: BLE001 - a damaged cache is rebuilt, not fatal
        log.warning("teacher-output cache '%s' unreadable (%s); rebuilding", file, load_failure(e))
    return None
