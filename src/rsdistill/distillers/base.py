"""The Distiller contract.

A distiller owns the student, the (frozen) teacher and any extra trainable modules of its method.
``forward_train(batch)`` returns the student's logits and a dict of named, already weighted losses;
the trainer sums them, and never special-cases a method. A method declares:

- its typed config, as the generic parameter (``class KD(Distiller[KDConfig])`` sets ``Config``
  and types ``self.cfg``); defaults = the article's / the original paper's settings;
- ``resolve_config``: the defaults that depend on the run (warm-up, per-pair weights), filled in
  before the method is built;
- ``needs``: what its batches must carry beyond image/label/index (e.g. ``{"two_views"}``);
- ``teacher_outputs``: what it uses of the teacher, ``{"logits"}`` or ``{"features"}``; a
  logits-only method reads ``teacher_logits(batch)``, which the teacher-output cache can fill
  (``batch["teacher_logits"]``) instead of a forward pass;
- ``extra_modules()``: trainable modules that join the optimizer and the checkpoint but not the
  deployed student.

``forward_train`` runs the teacher before the student: while the teacher's forward runs, the
student's activations saved for the backward pass are not alive yet (at 224 px on the CPU a KD
step is 8 % faster this way round). The contract tests check the order for every method.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.info import DataInfo
from ..models import ModelAdapter, Output
from .losses import warmup_factor
from .settings import DistillationSettings, MethodConfig, RunContext

C = TypeVar("C", bound=MethodConfig)


def as_ordinary_tensors(value: Any) -> Any:
    """``value`` (a tensor, a list or an output dataclass of them) with every tensor made under
    ``torch.inference_mode`` cloned into an ordinary one: autograd refuses to save inference
    tensors for the backward pass (e.g. p_t in KL(p_t || p_s)). Other values stay as they are."""
    if isinstance(value, Tensor):
        return value.clone() if value.is_inference() else value
    if isinstance(value, (list, tuple)):
        return type(value)(as_ordinary_tensors(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: as_ordinary_tensors(getattr(value, f.name))
                                            for f in dataclasses.fields(value) if f.init})
    return value


class Distiller(nn.Module, Generic[C]):
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    needs: ClassVar[frozenset[str]] = frozenset()
    # What the method uses of the teacher: "logits" only lets a cache of them stand in for it.
    teacher_outputs: ClassVar[frozenset[str]] = frozenset({"features"})
    requires_teacher: ClassVar[bool] = True
    method_name: ClassVar[str] = ""
    # One line for `rsdistill methods`.
    summary: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            args = get_args(base)
            if args and isinstance(args[0], type) and issubclass(args[0], MethodConfig):
                cls.Config = args[0]

    @classmethod
    def resolve_config(cls, cfg: C, ctx: RunContext) -> C:
        """``cfg`` with the defaults that depend on the run filled in (a method with per-pair
        defaults extends this). Called before the method is built; explicit values stay."""
        if isinstance(cfg, DistillationSettings) and cfg.warmup_epochs is None:
            cfg = cfg.model_copy(update={"warmup_epochs": round(cfg.default_warmup_fraction * ctx.epochs)})
        return cfg

    def __init__(self, student: ModelAdapter, teacher: ModelAdapter | None, cfg: C, info: DataInfo):
        super().__init__()
        if self.requires_teacher and teacher is None:
            raise ValueError(f"method '{self.method_name}' needs a teacher")
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False)
            teacher.eval()
        self.cfg: C = cfg
        self.info = info
        self.epoch = 1  # the 1-based epoch being trained, set by the trainer
        self._means: dict[str, tuple[Tensor | float, int]] = {}
        self._histograms: dict[str, list[Tensor]] = defaultdict(list)

    # ------------------------------------------------------------------ the contract
    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def forward(self, image: Tensor) -> Tensor:
        """Evaluation: the student's logits only."""
        return self.student.logits(image)

    def extra_modules(self) -> dict[str, nn.Module]:
        """Trainable modules besides the student (connectors, heads, scalers); none by default."""
        return {}

    def extra_param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups for the extra modules; they share the student's settings by default."""
        params = [p for m in self.extra_modules().values() for p in m.parameters() if p.requires_grad]
        return [{"params": params, "weight_decay": weight_decay}] if params else []

    @classmethod
    def extra_parameter_count(cls, cfg: MethodConfig, num_classes: int) -> int | None:
        """Trainable parameters the method adds for a class count, when known without building
        the models (shown by `rsdistill methods`); None when it depends on the architectures."""
        return 0

    # ------------------------------------------------------------------ helpers for methods
    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # the teacher's BN statistics and dropout stay frozen
        return self

    @torch.no_grad()
    def probe(self, batch_size: int = 2) -> tuple[Output, Output | None]:
        """Student and teacher outputs for a dummy batch at the run's real input size, so that
        connectors and heads are built from the shapes they will see (never from 32 or 224 px).
        Runs in eval mode: BN statistics are untouched."""
        size = self.info.image_size
        device = next(self.student.parameters()).device
        x = torch.zeros(batch_size, self.info.channels, size, size, device=device)
        was = self.student.training
        self.student.eval()
        s_out = self.student(x)
        self.student.train(was)
        t_out = self.teacher(x) if self.teacher is not None else None
        return s_out, t_out

    def teacher_forward(self, image: Tensor) -> Output:
        """The frozen teacher's outputs, computed under ``torch.inference_mode`` (no autograd
        bookkeeping at all) and returned as ordinary tensors, which the losses may combine with
        the student's."""
        with torch.inference_mode():
            out = self.teacher(image)
        return as_ordinary_tensors(out)

    def teacher_logits(self, batch: dict[str, Tensor]) -> Tensor:
        """The teacher's logits on the batch's images: from the teacher-output cache when the
        batch carries them (``teacher_logits``), else a forward pass."""
        cached = batch.get("teacher_logits")
        if cached is not None:
            return cached
        with torch.inference_mode():
            logits = self.teacher.logits(batch["image"])
        return as_ordinary_tensors(logits)

    def ce_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        return self.cfg.ce_weight * F.cross_entropy(logits, labels)

    def warmup(self) -> float:
        """The distillation term's ramp at this epoch (1 for methods without a teacher)."""
        cfg = self.cfg
        if not isinstance(cfg, DistillationSettings):
            return 1.0
        if cfg.warmup_epochs is None:
            raise RuntimeError(f"method '{self.method_name}': warmup_epochs was not resolved "
                               "(build methods from a config passed through resolve_config)")
        return warmup_factor(self.epoch, cfg.warmup_epochs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    # ------------------------------------------------------------------ diagnostics
    def log_mean(self, name: str, values: Tensor) -> None:
        """Accumulate values whose epoch mean the trainer logs as ``diag/<name>`` (kept on the
        device until the epoch ends: no synchronisation per batch)."""
        values = values.detach().float().flatten()
        if values.numel():
            total, count = self._means.get(name, (0.0, 0))
            self._means[name] = (total + values.sum(), count + values.numel())

    def log_histogram(self, name: str, values: Tensor) -> None:
        """Values whose epoch distribution goes to TensorBoard as ``hist/<name>``."""
        self._histograms[name].append(values.detach().float().flatten())

    def pop_diagnostics(self, reduce: Callable[[dict[str, tuple[float, float]]], dict[str, tuple[float, float]]]
                        | None = None) -> tuple[dict[str, float], dict[str, Tensor]]:
        """The epoch's means and histograms. ``reduce`` sums the (total, count) pairs over the
        processes of a distributed run, so each mean covers every sample; histograms stay this
        process's own."""
        sums = {k: (float(total), float(count)) for k, (total, count) in self._means.items()}
        if reduce is not None:
            sums = reduce(sums)
        scalars = {k: total / count for k, (total, count) in sums.items() if count}
        hists = {k: torch.cat(v).cpu() for k, v in self._histograms.items() if v}
        self._means.clear()
        self._histograms.clear()
        return scalars, hists

    def on_train_end(self, run_dir: Path, train_eval_loader, device: torch.device) -> None:
        """Hook for per-method artefacts written at the end of a run (e.g. ISDM's soft labels)."""
