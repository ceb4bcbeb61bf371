"""Any timm model as a teacher or a student: ``--model timm:NAME`` (the optional ``timm`` extra).

The timm model is used as it is, wrapped in :class:`TimmNet` so that the adapter gets the logits
from its own ``forward`` and the feature bundle from timm's ``forward_intermediates`` (the maps
listed in the model's ``feature_info``):

- CNNs: one map per resolution stage; an entry at stride 2 before the first stage (the stem) is
  left out when later stages exist, so a timm ResNet has the 4 stages of torchvision's.
- Transformers, whose blocks all work at the patch resolution: up to 4 evenly spaced blocks
  ending with the last one, as N x C x h x w maps of the patch tokens.
- The deepest stage is the input of the global pooling (``forward_features``' output, e.g.
  after EfficientNet's 1x1 head convolution), as for torchvision's MobileNetV2 and ShuffleNetV2.
- ``preact`` equals ``stages`` (timm hands over each stage's output after its activation);
  ``pooled`` is timm's pre-logits vector; the classifier (weight) is given only where it is one
  linear layer reading the pooled last map (what CAT-KD and SDD need): not for heads that
  transform the pooled vector first (MobileNetV3's).

What a model does not expose is :class:`~rsdistill.models.features.Unavailable`: a feature method
then stops with one line naming the model, while logit methods (KD, DKD, ISDM, ...) work with any
timm model. Models are built with ``pretrained=False``: nothing is downloaded; ``model.weights``
loads a local timm checkpoint (``.pth``/``.pt``/``.safetensors``).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError
from ..section import suggest
from .features import Features, Output, Unavailable

PREFIX = "timm:"
INSTALL_HINT = "pip install 'rsdistill[timm]'"
# At most this many blocks of a transformer are handed over as its stages.
MAX_TRANSFORMER_STAGES = 4


def is_timm_name(name: str) -> bool:
    return name.startswith(PREFIX)


def _import_timm():
    try:
        import timm
    except ImportError:
        return None
    return timm


def timm_name_problem(name: str) -> str | None:
    """Why ``timm:NAME`` cannot be built here (timm missing, or no such model), or None."""
    base = name[len(PREFIX):]
    timm = _import_timm()
    if timm is None:
        return f"model '{name}' needs the optional timm package ({INSTALL_HINT})"
    if not base:
        return "timm model name missing: use timm:NAME (e.g. timm:mobilenetv3_small_100)"
    if not timm.is_model(base):
        return f"timm has no model '{base}'{suggest(base, timm.list_models())}"
    return None


def build_timm(name: str, num_classes: int, channels: int = 3) -> TimmNet:
    problem = timm_name_problem(name)
    if problem:
        raise ConfigError(f"model.name: {problem}")
    import timm

    base = name[len(PREFIX):]
    try:
        # Transformers take any input size this way (position embeddings interpolated), as every
        # other model of the registry does; CNNs do not know the argument.
        model = timm.create_model(base, pretrained=False, num_classes=num_classes, in_chans=channels,
                                  dynamic_img_size=True)
    except TypeError:
        model = timm.create_model(base, pretrained=False, num_classes=num_classes, in_chans=channels)
    return TimmNet(name, model)


def _stage_indices(model: nn.Module) -> list[int] | None:
    """Indices into ``feature_info`` of the maps handed over as stages; None when the model does
    not expose its intermediate maps."""
    info = getattr(model, "feature_info", None)
    if not info or not hasattr(model, "forward_intermediates"):
        return None
    reductions = [int(f["reduction"]) for f in info]
    n = len(reductions)
    if len(set(reductions)) == 1:  # a plain transformer: every block at the patch resolution
        k = min(MAX_TRANSFORMER_STAGES, n)
        return sorted({max(0, round((i + 1) * n / k) - 1) for i in range(k)})
    indices = list(range(n))
    if n > 2 and reductions[0] <= 2 and reductions[1] > reductions[0]:
        indices = indices[1:]  # the stem
    return indices


class TimmNet(nn.Module):
    """A timm model behind the adapter's interface (``forward`` -> logits, ``forward_features``
    -> :class:`Output`)."""

    def __init__(self, name: str, model: nn.Module):
        super().__init__()
        self.name = name
        self.model = model
        self.stage_indices = _stage_indices(model)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def resamples_position_embedding(self) -> bool:
        """A transformer built with ``dynamic_img_size`` resamples its position embeddings to the
        input's patch grid at every call (antialiased bicubic interpolation, which ONNX lacks)."""
        return bool(getattr(self.model, "dynamic_img_size", False)) and hasattr(self.model, "set_input_size")

    def fix_input_size(self, size: int) -> None:
        """Resample the position embeddings once, for ``size`` x ``size`` inputs: the same values
        the model computes at every call at that size, so a graph traced at that size holds no
        resampling. Other sizes then fail: for export copies only."""
        self.model.set_input_size(img_size=(size, size))

    def _linear_head(self) -> nn.Linear | None:
        head = self.model.get_classifier() if hasattr(self.model, "get_classifier") else None
        return head if isinstance(head, nn.Linear) else None

    def _cam_problem(self) -> str | None:
        """Why class activation maps (the classifier applied to the last map) are undefined."""
        head = self._linear_head()
        if self.stage_indices is None:
            return f"{self.name} does not expose its feature maps"
        if head is None:
            return f"{self.name}'s classifier is not one linear layer"
        width = getattr(self.model, "num_features", None)
        if head.in_features != width:
            return (f"{self.name}'s classifier reads a {head.in_features}-wide vector that its head makes "
                    f"after pooling the {width}-channel last map")
        return None

    def forward_features(self, x: Tensor) -> Output:
        model = self.model
        if self.stage_indices is None:
            final, maps = model.forward_features(x), None
        else:
            final, maps = model.forward_intermediates(x, indices=self.stage_indices)
        pooled = model.forward_head(final, pre_logits=True)
        head = self._linear_head()
        # timm's forward_head is pre_logits followed by its classifier; a linear classifier is
        # applied here to the same vector instead of running the head twice.
        logits = head(pooled) if head is not None else model.forward_head(final)
        if maps is None:
            missing = Unavailable(f"{self.name} does not expose its intermediate feature maps to timm's "
                                  "forward_intermediates: use a logit method (kd, dkd, isdm, ...) or one "
                                  "that reads the pooled embedding (rkd, crd) with it")
            return Output(logits, Features(missing, missing, missing, pooled, missing))
        stages = list(maps)
        if final.ndim == 4 and final.shape[-2:] == stages[-1].shape[-2:]:
            stages[-1] = final  # the input of the global pooling (after a 1x1 head conv, if any)
        problem = self._cam_problem()
        weight = head.weight if problem is None else Unavailable(
            f"{problem}: class activation maps (cat, sdd) are undefined for it")
        return Output(logits, Features(stages[0], stages, list(stages), pooled, weight))

    @property
    def classifier_layer(self) -> nn.Linear:
        """The linear classifier, where it reads the pooled last map (SDD applies it to pooled
        regions of that map)."""
        problem = self._cam_problem()
        if problem is not None:
            raise ConfigError(f"{problem}: class activation maps (cat, sdd) are undefined for it")
        return self._linear_head()

    def bn_before_relu(self) -> list[nn.BatchNorm2d]:
        raise ConfigError(f"{self.name}: OFD needs the BatchNorm before each stage's final activation, "
                          "which rsdistill does not locate inside timm models; use another method "
                          "(or a torchvision/CIFAR model as OFD's teacher)")

    def classifier_prefix(self) -> str:
        """The state-dict prefix of the classifier (timm's ``pretrained_cfg['classifier']``)."""
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        return str(cfg.get("classifier") or "")

    def input_statistics(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The mean and std timm's weights for this model expect (ImageNet's by default)."""
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        return tuple(cfg.get("mean") or IMAGENET_MEAN), tuple(cfg.get("std") or IMAGENET_STD)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_timm_weights(net: TimmNet, path: Path | dict, keep_classifier: bool = True, rgb=(0, 1, 2),
                      source: str | None = None) -> None:
    """Load a local timm checkpoint into ``net.model``. With ``keep_classifier`` a classifier of
    another shape (another class count) is left as initialised; RGB weights of the first
    convolution are adapted to a model of other bands (``input_bands``); any other mismatch is an
    error naming the file."""
    from .input_bands import adapt_state_dict
    from .weights_file import read_state_dict

    model = net.model
    own = model.state_dict()
    state = adapt_state_dict(path if isinstance(path, dict) else read_state_dict(path), own, rgb)
    prefix = net.classifier_prefix()

    def is_classifier(key: str) -> bool:
        return bool(prefix) and (key == prefix or key.startswith(prefix + "."))

    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    bad = sorted(k for k in set(state) ^ set(own) | {k for k in state if k in own and k not in fits}
                 if not (keep_classifier and is_classifier(k)))
    if bad:
        raise CheckpointError(f"model.weights: '{source or path}' does not fit {net.name} (e.g. keys {bad[:3]})")
    model.load_state_dict(fits, strict=False)
