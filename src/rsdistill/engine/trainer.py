"""One training loop for CE training and every distillation method.

Per epoch: set the method's epoch (warm-ups), draw this epoch's shuffle and augmentation from a
seed derived from (seed, epoch), step the optimizer over the named losses, step the lr schedule,
evaluate top-1/top-5 on the test (and validation) split, log, and checkpoint atomically. Because
nothing random is carried across epochs except what the checkpoint holds, a resumed run ends with
the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config import RunConfig
from ..data.datamodule import DataModule
from ..data.sampling import rank_seed, shard_length
from ..distillers.base import Distiller
from ..errors import TrainingDiverged
from ..models import LogitsOnly
from ..runs.folder import RunDir
from .batch import move
from .checkpoint import model_record, save_checkpoint
from .distributed import SINGLE, Distributed, broadcast_buffers, reduce_meter, reduce_sums, wrap_train_step
from .evaluate import evaluate
from .metrics import AccuracyMeter
from .runlog import RunLog
from .progress import eta_note
from .seeding import epoch_seed
from .speed import amp_dtype, apply_compile, needs_grad_scaler, optimizer_options
from .teacher_cache import TeacherOutputCache

log = logging.getLogger("rsdistill")

# Steps between checks that the loss is finite where a check costs a host sync (CUDA).
FINITE_CHECK_EVERY = 32


@dataclass
class TrainState:
    epoch: int = 0  # completed epochs
    best_top1: float = -1.0
    best_top5: float = 0.0
    best_epoch: int = 0
    seconds: float = 0.0
    last: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def build_optimizer(distiller: Distiller, cfg: RunConfig) -> torch.optim.Optimizer:
    t = cfg.train
    groups = [{"params": [p for p in distiller.student.parameters() if p.requires_grad],
               "weight_decay": t.weight_decay}]
    groups += distiller.extra_param_groups(t.weight_decay)
    return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=t.nesterov, **optimizer_options(t))


def lr_factor(step: int, steps_per_epoch: int, milestones: list[int], decay: float,
              warmup_epochs: float) -> float:
    """The lr multiplier at a 0-based iteration: x``decay`` at each milestone epoch (the article's
    step schedule), times a linear warm-up over the first ``warmup_epochs`` (0: none)."""
    epoch = step // steps_per_epoch
    factor = decay ** sum(epoch >= m for m in milestones)
    warm_steps = warmup_epochs * steps_per_epoch
    if warm_steps > 0:
        factor *= min(1.0, (step + 1) / warm_steps)
    return factor


class LrSchedule:
    """Sets every group's lr to ``base lr x lr_factor(iteration)`` directly, each iteration (so a
    warm-up is smooth). The lr is a pure function of the iteration, so a resumed run recomputes it
    from the completed epochs instead of restoring a scheduler's state."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: RunConfig, steps_per_epoch: int):
        t = cfg.train
        self.optimizer, self.steps_per_epoch = optimizer, steps_per_epoch
        self.milestones, self.decay, self.warmup = t.resolved_milestones(), t.lr_decay, t.lr_warmup_epochs
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.iteration = 0
        self.set_iteration(0)

    def factor(self, iteration: int) -> float:
        return lr_factor(iteration, self.steps_per_epoch, self.milestones, self.decay, self.warmup)

    def set_iteration(self, iteration: int) -> None:
        self.iteration = iteration
        f = self.factor(iteration)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def step(self) -> None:
        self.set_iteration(self.iteration + 1)

    def state_dict(self) -> dict[str, int]:
        return {"iteration": self.iteration}


class Trainer:
    def __init__(self, cfg: RunConfig, distiller: Distiller, data: DataModule, run_dir: Path,
                 device: torch.device, teacher_cache: TeacherOutputCache | None = None,
                 ctx: Distributed = SINGLE):
        """``ctx``: this process's place in a distributed run (engine.distributed); its checkpoints
        and logs are written by process 0 only."""
        self.cfg, self.distiller, self.data, self.run_dir, self.device = cfg, distiller, data, run_dir, device
        self.ctx = ctx
        self.teacher_cache: TeacherOutputCache | None = None
        self.set_teacher_cache(teacher_cache)
        self.rundir = RunDir(run_dir)
        if cfg.train.channels_last:
            distiller.to(memory_format=torch.channels_last)
        distiller.to(device)
        apply_compile(distiller, cfg.train, device)
        self.optimizer = build_optimizer(distiller, cfg)
        # train.batch_size is the batch of all processes together (checked to divide evenly).
        self.batch_size = cfg.train.batch_size // ctx.world_size
        self.steps_per_epoch = math.ceil(shard_length(data.info.num_train, ctx.shard) / self.batch_size)
        self.scheduler = LrSchedule(self.optimizer, cfg, self.steps_per_epoch)
        self.amp_dtype = amp_dtype(cfg.train, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(cfg.train, device))
        self._train_step = None  # built at the first epoch (DDP's construction is collective)
        self.state = TrainState()
        self.teacher_metrics: dict[str, float] | None = None
        # The last epoch's test pass: the run's final metrics, per-class accuracy and confusion.
        self.last_test: AccuracyMeter | None = None

    def _last_good_state(self) -> str:
        """Where the last good state is, for an error: only a checkpoint that exists (none before
        the first epoch has ended)."""
        last = self.rundir.last
        return f" — the last good state is in '{last}'" if last.is_file() else " (no epoch finished: nothing was kept)"

    def set_teacher_cache(self, cache: TeacherOutputCache | None) -> None:
        """Looked up for every batch by (index, view): the method reads it through
        ``Distiller.teacher_logits`` instead of running the teacher."""
        self.teacher_cache = cache.to(self.device) if cache is not None else None

    # ------------------------------------------------------------------ state
    def load_state(self, ckpt: dict[str, Any]) -> None:
        self.distiller.student.load_state_dict(ckpt["model"]["state_dict"])
        extras = self.distiller.extra_modules()
        for name, sd in ckpt.get("extras", {}).items():
            extras[name].load_state_dict(sd)
        ts = ckpt["train_state"]
        self.optimizer.load_state_dict(ts["optimizer"])
        if ts.get("grad_scaler"):
            self.scaler.load_state_dict(ts["grad_scaler"])
        self.state = TrainState(**ts["progress"])
        # Recomputed, not read back: checkpoints written by another scheduler resume too.
        self.scheduler.set_iteration(self.state.epoch * self.steps_per_epoch)
        self.teacher_metrics = ts.get("teacher_metrics")

    def _payload(self) -> dict[str, Any]:
        d = self.distiller
        return {
            "model": model_record(d.student, self.data.class_names, self.cfg.data.image_size),
            "method": self.cfg.method.name,
            "extras": {k: {n: t.detach().cpu() for n, t in m.state_dict().items()}
                       for k, m in d.extra_modules().items()},
            "train_state": {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "grad_scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                "progress": self.state.to_dict(),
                "teacher_metrics": self.teacher_metrics,
            },
            "config": self.cfg.to_dict(),
        }

    # ------------------------------------------------------------------ evaluation
    def _autocast(self):
        if not self.cfg.train.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def evaluate(self, model: nn.Module, part: str) -> AccuracyMeter:
        """``model``: images -> logits (the distiller's student, or a teacher's ``logits``). In a
        distributed run each process evaluates its share of the split and the counts are summed."""
        meter = evaluate(model, self.data.eval_loader(part, self.cfg.train.test_batch_size, self.ctx.shard),
                         self.data.info.num_classes, self.device,
                         channels_last=self.cfg.train.channels_last, autocast=self._autocast)
        return reduce_meter(self.ctx, meter)

    def evaluate_teacher(self) -> None:
        teacher = self.distiller.teacher
        if teacher is None or self.teacher_metrics is not None:
            return
        s = self.evaluate(LogitsOnly(teacher), "test").summary()
        self.teacher_metrics = {"top1": s["top1"], "top5": s["top5"]}
        log.info("teacher %s on the test split: top-1 %.2f%%  top-5 %.2f%%", teacher.arch, s["top1"], s["top5"])
        if self.data.has_val:
            # The split a user selects on: a teacher barely better than its student there can cost
            # the student accuracy (docs/isdm.md), so it is said before training starts.
            v = self.evaluate(LogitsOnly(teacher), "val").summary()
            self.teacher_metrics.update({"val_top1": v["top1"], "val_top5": v["top5"]})
            log.info("teacher %s on the validation split: top-1 %.2f%%  top-5 %.2f%% (a distilled student "
                     "rarely gains much unless its teacher is clearly above the student trained alone)",
                     teacher.arch, v["top1"], v["top5"])

    # ------------------------------------------------------------------ training
    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg, d = self.cfg, self.distiller
        d.set_epoch(epoch)
        d.train()
        seed = epoch_seed(cfg.seed, epoch)
        # augmentation drawn in this process (workers seed from the loader); each process its own
        torch.manual_seed(rank_seed(seed, self.ctx.rank))
        loader = self.data.train_loader(self.batch_size, seed, self.ctx.shard)
        if self._train_step is None:
            self._train_step = wrap_train_step(self.ctx, d, self.device)
        distributed = self.ctx.enabled
        sums: dict[str, Tensor | float] = defaultdict(float)
        correct: Tensor | int = 0
        seen = step = 0
        nonfinite: Tensor | None = None
        sync_is_costly = self.device.type != "cpu"
        bar = None
        if cfg.train.progress and self.ctx.is_main:
            from tqdm import tqdm

            # disable=None: only on a terminal (a redirected log gets the plain epoch lines)
            eta = eta_note(self.state.seconds, self.state.epoch, cfg.train.epochs)
            bar = tqdm(total=len(loader), desc=f"epoch {epoch}/{cfg.train.epochs}" + (f" ({eta})" if eta else ""),
                       leave=False, unit="batch", dynamic_ncols=True, disable=None)
        # The data path's share of the epoch: time blocked on the loader (decoding, augmentation,
        # collation), the copy to the device and the teacher-cache lookup, as the host sees it.
        data_wait = 0.0
        batches = iter(loader)
        while True:
            t_data = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            batch = move(batch, self.device, cfg.train.channels_last)
            if self.teacher_cache is not None:
                batch["teacher_logits"] = self.teacher_cache.lookup(batch["index"], batch["view"])
            data_wait += time.perf_counter() - t_data
            with self._autocast():
                logits, losses = self._train_step(batch)
            total = sum(losses.values())
            # One process stopping alone would leave the others waiting in the gradient exchange:
            # a distributed run checks the reduced sums at the epoch's end instead. On CUDA the
            # check is a host sync, so it is made every FINITE_CHECK_EVERY steps (and at the
            # epoch's last): the failed run stops a few steps later, its last.pt is the same.
            if not distributed:
                bad_step = ~torch.isfinite(total.detach())
                nonfinite = bad_step if nonfinite is None else nonfinite | bad_step
                if ((not sync_is_costly or (step + 1) % FINITE_CHECK_EVERY == 0 or step + 1 == len(loader))
                        and bool(nonfinite)):
                    bad = {k: float(v.detach()) for k, v in losses.items()}
                    raise TrainingDiverged(
                        f"epoch {epoch}: loss is not finite ({bad}); lower train.lr or the method's "
                        f"weights{self._last_good_state()}"
                    )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            n = len(batch["label"])
            # Summed as tensors: no device sync per batch except for the progress bar's refresh.
            for k, v in losses.items():
                sums[k] = sums[k] + v.detach() * n
            sums["loss"] = sums["loss"] + total.detach() * n
            correct = correct + (logits.detach().argmax(1) == batch["label"]).sum()
            seen += n
            step += 1
            if bar is not None:
                bar.update()
                if step % 10 == 1 or step == len(loader):
                    bar.set_postfix(loss=f"{float(sums['loss']) / seen:.3f}", acc=f"{100 * float(correct) / seen:.1f}")
        if bar is not None:
            bar.close()
        if distributed:
            totals = reduce_sums(self.ctx, {**{k: (v, seen) for k, v in sums.items()}, "/top1": (correct, seen)})
            if not math.isfinite(totals["loss"][0]):
                raise TrainingDiverged(
                    f"epoch {epoch}: loss is not finite in at least one process; lower train.lr or the "
                    f"method's weights{self._last_good_state()}"
                )
            out = {f"train/{k}": t / max(c, 1) for k, (t, c) in totals.items() if k != "/top1"}
            t, c = totals["/top1"]
            out["train/top1"] = 100.0 * t / max(c, 1)
        else:
            out = {f"train/{k}": float(v) / max(seen, 1) for k, v in sums.items()}
            out["train/top1"] = 100.0 * float(correct) / max(seen, 1)
        # this process's wait (process 0's is the one logged)
        out["time/data_wait_s"] = data_wait
        return out

    def check_weights_finite(self, epoch: int) -> None:
        """An epoch's last steps can leave NaN or infinite weights behind a finite loss; checked
        before the epoch's checkpoint, so last.pt keeps the last good state."""
        modules = {"student": self.distiller.student, **self.distiller.extra_modules()}
        for name, module in modules.items():
            for key, t in module.state_dict().items():  # buffers too: BatchNorm statistics
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise TrainingDiverged(
                        f"epoch {epoch}: the {name}'s '{key}' is not finite after training; lower "
                        f"train.lr or the method's weights"
                    )

    def fit(self, runlog: RunLog) -> TrainState:
        cfg = self.cfg
        self.evaluate_teacher()
        start = self.state.epoch + 1
        for epoch in range(start, cfg.train.epochs + 1):
            t0 = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            record: dict[str, Any] = {"epoch": epoch, "lr": lr}
            record.update(self.train_epoch(epoch))
            # the training steps alone (time/epoch_s adds the test pass): the cost per iteration
            record["time/train_s"] = time.perf_counter() - t0
            record["time/data_wait_share"] = record["time/data_wait_s"] / max(record["time/train_s"], 1e-9)
            # Process 0's BatchNorm statistics (and other buffers) in every process: the model
            # evaluated is the one saved, and a resumed run starts where every process was.
            broadcast_buffers(self.ctx, {"student": self.distiller.student, **self.distiller.extra_modules()})
            self.check_weights_finite(epoch)
            evaluated = epoch % cfg.train.eval_every == 0 or epoch == cfg.train.epochs
            test = selected = None
            if evaluated:
                self.last_test = self.evaluate(self.distiller, "test")
                test = self.last_test.summary()
                record.update({f"test/{k}": v for k, v in test.items()})
                selected = test
                if self.data.has_val:
                    val = self.evaluate(self.distiller, "val").summary()
                    record.update({f"val/{k}": v for k, v in val.items()})
                    selected = val
            scalars, hists = self.distiller.pop_diagnostics(
                (lambda sums: reduce_sums(self.ctx, sums)) if self.ctx.enabled else None)
            record.update({f"diag/{k}": v for k, v in scalars.items()})
            dt = time.perf_counter() - t0
            record["time/epoch_s"] = dt
            st = self.state
            st.epoch, st.seconds = epoch, st.seconds + dt
            improved = False
            if evaluated:
                st.last = {"top1": test["top1"], "top5": test["top5"]}
                improved = selected["top1"] > st.best_top1
                if improved:
                    st.best_top1, st.best_epoch = selected["top1"], epoch
                    st.best_top5 = selected["top5"]
                if not all(math.isfinite(v) for v in (test["loss"],)):
                    log.warning("epoch %d: test loss is not finite", epoch)
            runlog.epoch(record, hists)
            if self.ctx.is_main:
                payload = self._payload()
                # best.pt first: a crash in between must not leave last.pt naming a best model that
                # best.pt does not hold.
                if improved:
                    save_checkpoint(self.rundir.best, payload)
                save_checkpoint(self.rundir.last, payload)
            sel = "val" if self.data.has_val else "test"
            if evaluated:
                scores = "test top-1 %.2f%% top-5 %.2f%%%s" % (
                    test["top1"], test["top5"], f"  val top-1 {selected['top1']:.2f}%" if sel == "val" else "")
            else:
                scores = f"(evaluated every {cfg.train.eval_every} epochs)"
            log.info(
                "epoch %d/%d  lr %.4g  loss %.4f  train %.1f%%  %s  (%.1fs, waiting for data %.0f%%%s)",
                epoch, cfg.train.epochs, lr, record["train/loss"], record["train/top1"], scores, dt,
                100 * record["time/data_wait_share"],
                eta_note(st.seconds, st.epoch, cfg.train.epochs, prefix=", run "),
            )
        return self.state

