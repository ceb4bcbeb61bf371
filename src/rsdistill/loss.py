"""Any method as a loss in your own training loop.

:func:`distillation_loss` builds a method (``"isdm"``, ``"kd"``, ``"dkd"``, ``"at"``... see
``rsdistill methods``) around your own teacher and student: plain ``torch.nn.Module`` objects
that map images to logits, or the project's models. Calling it on a batch returns the named,
already weighted losses (their sum is what to back-propagate); the trainable parameters it adds
(ISDM's scaler, FitNet's connectors...) are :meth:`DistillationLoss.trainable_parameters`, for
your optimizer beside the student's.

What a method needs from the models:

- the logit methods (KD, DKD, ISDM, MLLD, and their LS forms) need only the logits, so any
  module works (MLLD's batches also carry a strongly augmented view, ``image_strong``);
- the feature methods (FitNet, AT, OFD, ReviewKD, RKD, CRD, CAT, SDD) need the models' intermediate
  feature maps: give torchvision ResNets, MobileNetV2s or ShuffleNetV2s, the project's models
  (``rsdistill.models.build_model``), or a module with ``forward_features`` returning
  :class:`rsdistill.models.Output`; a plain module fails with one line naming what is missing.

Your modules see the batch's images as they are (no normalisation is added), and the teacher is
frozen (``requires_grad_(False)``, eval mode) by the loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models import MobileNetV2, ResNet, ShuffleNetV2

from .data.info import DataInfo
from .distillers import registry
from .distillers.base import Distiller
from .distillers.settings import RunContext
from .engine.teacher_cache import CACHEABLE, TeacherOutputCache, tensor_digest
from .errors import ConfigError
from .models import Features, ModelAdapter, Output
from .models.features import Unavailable

__all__ = ["DistillationLoss", "distillation_loss", "teacher_logits_cache", "as_model"]


class _LogitsModule(ModelAdapter):
    """A user's module that maps images to logits, behind the adapter the methods call."""

    def forward(self, x: Tensor) -> Output:
        net = self.net
        if hasattr(net, "forward_features") or isinstance(net, (ResNet, MobileNetV2, ShuffleNetV2)):
            return super().forward(x)
        missing = Unavailable(f"{type(net).__name__} gives logits only: this method distils intermediate "
                              "features (use a logit method such as kd or isdm, or a torchvision ResNet, "
                              "MobileNetV2 or ShuffleNetV2, or a module with forward_features)")
        return Output(self.net(self.normalize(x)), Features(missing, missing, missing, missing, missing))  # type: ignore[arg-type]

    @property
    def classifier(self) -> nn.Linear:
        if isinstance(self.net, (ResNet, MobileNetV2, ShuffleNetV2)):
            return super().classifier
        raise ConfigError(f"{type(self.net).__name__}: this method needs the model's classifier layer")


def as_model(module: nn.Module, num_classes: int) -> ModelAdapter:
    """``module`` as the methods see a model; the project's own models are returned as they are.
    Inputs are passed through unchanged (identity normalisation)."""
    if isinstance(module, ModelAdapter):
        return module
    return _LogitsModule(type(module).__name__, module, num_classes, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


class DistillationLoss(nn.Module):
    """A method bound to a teacher and a student. ``loss(batch)`` -> ``{"ce": ..., "kd": ...}``.

    ``batch``: ``image`` (N x 3 x H x W) and ``label`` (N), plus what :attr:`needs` lists (CRD's
    ``index``, MLLD's ``image_strong``...). Set the epoch with :meth:`set_epoch` for the methods
    that ramp their term in (``warmup_epochs``)."""

    def __init__(self, distiller: Distiller, teacher_cache: TeacherOutputCache | None = None):
        super().__init__()
        self.distiller = distiller
        self.teacher_cache = teacher_cache

    @property
    def method(self) -> str:
        return self.distiller.method_name

    @property
    def config(self) -> Any:
        """The method's typed settings, with the run-dependent defaults resolved."""
        return self.distiller.cfg

    @property
    def needs(self) -> frozenset[str]:
        """What batches must carry beyond ``image`` and ``label``."""
        return self.distiller.needs

    @property
    def uses_only_teacher_logits(self) -> bool:
        """True for the logit methods: a teacher-output cache can stand in for the teacher."""
        return self.distiller.teacher_outputs <= CACHEABLE

    @property
    def student(self) -> nn.Module:
        return self.distiller.student

    def extra_modules(self) -> dict[str, nn.Module]:
        """The trainable modules the method adds (ISDM's ``scaler``, connectors...)."""
        return self.distiller.extra_modules()

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The extra modules' trainable parameters only (not the student's, not the frozen
        teacher's): give them to the optimizer beside ``student.parameters()``."""
        for m in self.extra_modules().values():
            yield from (p for p in m.parameters() if p.requires_grad)

    def param_groups(self, weight_decay: float = 0.0) -> list[dict[str, Any]]:
        """Optimizer groups of the extra modules as the method wants them (ISDM's scaler: no
        weight decay)."""
        return self.distiller.extra_param_groups(weight_decay)

    def set_epoch(self, epoch: int) -> None:
        """The 1-based epoch being trained (the distillation term's warm-up follows it)."""
        self.distiller.set_epoch(epoch)

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        losses, _ = self.losses_and_logits(batch)
        return losses

    def losses_and_logits(self, batch: Mapping[str, Any]) -> tuple[dict[str, Tensor], Tensor]:
        """The losses and the student's logits on the batch (for your accuracy counters)."""
        b = dict(batch)
        if self.teacher_cache is not None and "teacher_logits" not in b and self.uses_only_teacher_logits:
            if "index" not in b:
                raise ConfigError("teacher cache: batches must carry 'index' (each image's position in the "
                                  "images the cache was built on)")
            index = torch.as_tensor(b["index"])
            view = torch.as_tensor(b.get("view", torch.zeros_like(index)))
            b["teacher_logits"] = self.teacher_cache.lookup(index, view).to(b["image"].device)
        logits, losses = self.distiller.forward_train(b)
        return losses, logits


def distillation_loss(method: str, student: nn.Module, teacher: nn.Module, *, num_classes: int,
                      image_size: int, epochs: int = 1, train_labels: Tensor | Iterable[int] | None = None,
                      teacher_cache: TeacherOutputCache | None = None, student_name: str | None = None,
                      teacher_name: str | None = None, **settings: Any) -> DistillationLoss:
    """Build ``method`` (a name of ``rsdistill methods``, shorthands such as ``kd+ls`` too) around
    ``student`` and ``teacher`` with ``settings`` (the method's fields, e.g. ``T=4, gamma=4``; the
    rest keep the defaults ``rsdistill methods`` lists).

    ``image_size`` is the side of the training images (the feature methods build their connectors
    from the shapes at that size); ``epochs`` resolves defaults such as the warm-up (10 % of the
    epochs for the logit methods; ``warmup_epochs=0`` turns it off). ``train_labels`` (the training
    set's labels in dataset order) is needed by CRD only. Build the loss on the device the models
    are on; move it with ``.to(device)`` afterwards like any module."""
    cfg = registry.method_config({**settings, "name": method})
    cls = registry.get(cfg.name)
    if not cls.requires_teacher:
        raise ConfigError(f"method.name: '{method}' has no teacher; train the student with cross-entropy")
    s_model, t_model = as_model(student, num_classes), as_model(teacher, num_classes)
    ctx = RunContext(student=student_name or s_model.arch, teacher=teacher_name or t_model.arch,
                     num_classes=num_classes, epochs=epochs)
    cfg = cls.resolve_config(cfg, ctx)
    labels = torch.as_tensor(list(train_labels) if train_labels is not None and not isinstance(train_labels, Tensor)
                             else train_labels if train_labels is not None else [], dtype=torch.long)
    if "indices" in cls.needs and labels.numel() == 0:
        raise ConfigError(f"method '{cfg.name}' needs train_labels (the training set's labels in dataset order)")
    info = DataInfo([str(c) for c in range(num_classes)], image_size, labels)
    return DistillationLoss(cls(s_model, t_model, cfg, info), teacher_cache)


@torch.no_grad()
def teacher_logits_cache(teacher: nn.Module, images: Tensor | Iterable[Any], *, num_classes: int | None = None,
                         device: str | torch.device = "cpu") -> TeacherOutputCache:
    """The teacher's logits on fixed images, computed once: pass it to :func:`distillation_loss`
    (``teacher_cache=``) and give each batch the images' ``index`` (and ``view`` where an image
    has several fixed views, as the view bank's): a logit method then looks the teacher's output
    up instead of running it.

    ``images``: a tensor N x 3 x H x W, or an iterable of such tensors (or of batches, dicts with
    ``image``) in index order; with views, a tensor N x K x 3 x H x W."""
    model = teacher if isinstance(teacher, ModelAdapter) else as_model(teacher, num_classes or 0)
    was = model.training
    model.eval().to(device)
    if isinstance(images, Tensor):
        chunks: Iterable[Any] = [images]
    else:
        chunks = images
    out, size = [], 0
    for chunk in chunks:
        x = chunk["image"] if isinstance(chunk, Mapping) else chunk
        views = x.shape[1] if x.dim() == 5 else None
        flat = x.flatten(0, 1) if views else x
        size = int(flat.shape[-1])
        logits = model.logits(flat.to(device)).float().cpu()
        out.append(logits.view(x.shape[0], views, -1) if views else logits[:, None])
    model.train(was)
    logits = torch.cat(out)
    from .engine.teacher_cache import CacheKey

    digest = tensor_digest([("logits", logits)])
    # keyed by its values: these images are the caller's, not a dataset's view bank
    key = CacheKey(teacher=digest, split="", images="", bank="", views=logits.shape[1], seed=0, image_size=size)
    return TeacherOutputCache(logits, key)
