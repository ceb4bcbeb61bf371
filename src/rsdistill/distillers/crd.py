"""CRD: contrastive representation distillation (Tian, Krishnan & Isola, ICLR 2020).

The pooled embeddings of the student and the teacher are projected by two linear heads to
``feat_dim`` (128) and L2-normalised (e_s, e_t). Two memory banks hold one such vector per training
sample (M_s for the student, M_t for the teacher). For a sample i with K negatives j_1..j_K drawn
from the training set (the positive, i itself, at slot 0):

    P_s(i, j) = exp(<e_s(i), M_t[j]> / tau) / Z_s      (student anchor, teacher bank)
    P_t(i, j) = exp(<e_t(i), M_s[j]> / tau) / Z_t      (teacher anchor, student bank)
    L(P)      = -1/B sum_i [ log P(i,i) / (P(i,i) + K/N + eps)
                             + sum_k log (K/N) / (P(i,j_k) + K/N + eps) ]        (NCE, Eq. 18)
    loss      = ce_weight * CE + crd_weight * (L(P_s) + L(P_t))

N is the training-set size, the noise distribution uniform (P_n = 1/N), eps = 1e-7. Z_s and Z_t
are the official code's normalisation constants: set once, from the first batch, to
N * mean(exp(score / tau)) (a Monte-Carlo estimate of the partition function), then fixed; they are
buffers, saved with the banks. After the scores are computed the banks move toward the batch's
embeddings at exactly the batch's indices: M[i] <- normalise(m M[i] + (1 - m) e(i)), m = 0.5.

Negatives are sampled here (not in the data layer), without replacement, with torch's RNG on the
banks' device: by default from the samples of the other classes (the official "exact" mode), or
from every other sample (``negatives: other_samples``); K is capped by what the training set holds.
The defaults are the official CIFAR-100 settings (RepDistiller): K 16384, tau 0.07, m 0.5, 128-d,
CE 1 + 0.8 CRD, no KD term. See docs/methods/crd.md.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from ..errors import ConfigError
from .base import Distiller
from .registry import register
from .settings import DistillationSettings

NCE_EPS = 1e-7  # the official ContrastLoss's eps


class CRDConfig(DistillationSettings):
    name: str = "crd"
    # No warm-up unless set: the paper has none.
    default_warmup_fraction: ClassVar[float] = 0.0
    # beta, the weight of L_s + L_t (official -b 0.8 on CIFAR-100; the paper's ImageNet run uses the
    # same loss). Not the article's KD weight 4: CRD has no KL term.
    crd_weight: float = Field(0.8, ge=0)
    # Width of the embedding heads (official --feat_dim 128).
    feat_dim: int = Field(128, ge=1)
    # Negatives per positive (official --nce_k 16384), capped by the training set.
    nce_k: int = Field(16384, ge=1)
    # NCE temperature (official --nce_t 0.07).
    nce_t: float = Field(0.07, gt=0)
    # Momentum of the memory banks (official --nce_m 0.5).
    nce_m: float = Field(0.5, ge=0, lt=1)
    # other_classes: negatives from the other classes (the official "exact" mode);
    # other_samples: from every sample but the anchor itself.
    negatives: Literal["other_classes", "other_samples"] = "other_classes"


class Embed(nn.Module):
    """Linear head + L2 normalisation (the official ``Embed``)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.linear(x.flatten(1)), dim=1)


def negative_capacity(labels: Tensor, mode: str) -> int:
    """The most negatives every sample can be given without replacement."""
    n = labels.numel()
    if mode == "other_samples":
        return n - 1
    return n - int(torch.bincount(labels).max())


def sample_contrast_indices(index: Tensor, labels: Tensor, k: int, mode: str) -> Tensor:
    """B x (1 + k) training-set indices: the anchor's own index at slot 0, then k distinct negatives
    drawn uniformly (torch's RNG, on ``labels``' device) from the other classes or other samples."""
    n = labels.numel()
    keys = torch.rand(index.numel(), n, device=labels.device)
    if mode == "other_classes":
        excluded = labels[None, :] == labels[index][:, None]
    else:
        excluded = torch.arange(n, device=labels.device)[None, :] == index[:, None]
    keys.masked_fill_(excluded, 2.0)  # above every uniform draw: never among the k smallest
    negatives = keys.topk(k, dim=1, largest=False, sorted=False).indices
    return torch.cat([index[:, None], negatives], dim=1)


def nce_loss(p: Tensor, n_data: int) -> Tensor:
    """The official ContrastLoss: p = B x (1 + K) normalised scores, the positive in column 0."""
    m = p.shape[1] - 1
    noise = m / n_data  # K * P_n, P_n = 1/N
    log_d1 = torch.log(p[:, 0] / (p[:, 0] + noise + NCE_EPS))
    log_d0 = torch.log(noise / (p[:, 1:] + noise + NCE_EPS))
    return -(log_d1.sum() + log_d0.sum()) / p.shape[0]


class ContrastMemory(nn.Module):
    """The two memory banks (N x feat_dim each) and the normalisation constants, as buffers: they
    move with ``.to(device)`` and are saved in checkpoints (``extras.memory``)."""

    def __init__(self, dim: int, labels: Tensor, momentum: float):
        super().__init__()
        n = labels.numel()
        self.momentum = momentum
        stdv = 1.0 / math.sqrt(dim / 3)  # the official initialisation: uniform, rows of norm ~1
        self.register_buffer("memory_s", torch.rand(n, dim).mul_(2 * stdv).add_(-stdv))
        self.register_buffer("memory_t", torch.rand(n, dim).mul_(2 * stdv).add_(-stdv))
        # Z_s, Z_t; negative = not set yet (set from the first batch, then fixed).
        self.register_buffer("z", torch.full((2,), -1.0))
        self.register_buffer("labels", labels.detach().clone().long(), persistent=False)
        self._z_checked = False  # skips the per-step device sync once Z is known to be set

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._z_checked = False  # a loaded Z (set or not) is looked at again on the next batch

    @property
    def num_data(self) -> int:
        return self.memory_s.shape[0]

    def probabilities(self, e_s: Tensor, e_t: Tensor, idx: Tensor, T: float) -> tuple[Tensor, Tensor]:
        """P_s (student anchor vs teacher bank) and P_t (teacher anchor vs student bank), each
        B x (1 + K), in float32. Same numbers as the official index_select + bmm, computed as one
        B x N product and a gather (less memory for the K slots)."""
        logits_s = (e_s @ self.memory_t.t()).gather(1, idx) / T
        logits_t = (e_t @ self.memory_s.t()).gather(1, idx) / T
        out_s, out_t = logits_s.exp(), logits_t.exp()
        if not self._z_checked:
            with torch.no_grad():
                first = torch.stack([out_s.mean(), out_t.mean()]) * self.num_data
                self.z.copy_(torch.where(self.z < 0, first, self.z))
            self._z_checked = True
        return out_s / self.z[0], out_t / self.z[1]

    @torch.no_grad()
    def update(self, e_s: Tensor, e_t: Tensor, index: Tensor) -> None:
        # Out of place: this step's graph still holds the old banks (the scores' backward needs them).
        m = self.momentum
        for name, e in (("memory_s", e_s), ("memory_t", e_t)):
            bank = getattr(self, name)
            rows = bank.index_select(0, index).mul_(m).add_(e.detach().to(bank.dtype), alpha=1 - m)
            setattr(self, name, bank.index_copy(0, index, F.normalize(rows, dim=1)))


@register("crd")
class CRD(Distiller[CRDConfig]):
    needs = frozenset({"indices"})
    summary = "CRD: contrastive representation distillation with memory banks (Tian et al. 2020)"

    def __init__(self, student, teacher, cfg: CRDConfig, info):
        super().__init__(student, teacher, cfg, info)
        labels = info.train_labels.detach().cpu().long()
        capacity = negative_capacity(labels, cfg.negatives) if labels.numel() else 0
        if capacity < 1:
            raise ConfigError(
                f"method.negatives={cfg.negatives}: the training split ({labels.numel()} images) leaves "
                "no negatives for CRD"
            )
        self.num_negatives = min(cfg.nce_k, capacity)
        s_out, t_out = self.probe()
        self.embed_s = Embed(s_out.features.pooled.shape[1], cfg.feat_dim)
        self.embed_t = Embed(t_out.features.pooled.shape[1], cfg.feat_dim)
        self.memory = ContrastMemory(cfg.feat_dim, labels, cfg.nce_m)

    @classmethod
    def extra_parameter_count(cls, cfg: CRDConfig, num_classes: int) -> int | None:
        return None  # the heads' inputs are the models' embedding widths

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"embed_s": self.embed_s, "embed_t": self.embed_t, "memory": self.memory}

    def contrast_indices(self, index: Tensor) -> Tensor:
        labels = self.memory.labels
        return sample_contrast_indices(index.to(labels.device), labels, self.num_negatives, self.cfg.negatives)

    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.cfg
        image, label, index = batch["image"], batch["label"], batch["index"]
        t_out = self.teacher_forward(image)
        s_out = self.student(image)
        index = index.to(self.memory.memory_s.device).long()
        # Scores of exp(. / 0.07) overflow half precision: the contrast runs in float32.
        with torch.autocast(image.device.type, enabled=False):
            e_s = self.embed_s(s_out.features.pooled.float())
            e_t = self.embed_t(t_out.features.pooled.float())
            idx = self.contrast_indices(index)
            p_s, p_t = self.memory.probabilities(e_s, e_t, idx, cfg.nce_t)
            loss_s = nce_loss(p_s, self.memory.num_data)
            loss_t = nce_loss(p_t, self.memory.num_data)
            self.memory.update(e_s, e_t, index)
        self.log_mean("crd/p_pos_s", p_s[:, 0])
        self.log_mean("crd/p_pos_t", p_t[:, 0])
        logits = s_out.logits
        w = self.warmup() * cfg.crd_weight
        return logits, {
            "ce": self.ce_loss(logits, label),
            "crd_s": w * loss_s,
            "crd_t": w * loss_t,
        }
