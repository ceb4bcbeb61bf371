"""ISDM: instance-level scaling (IS) + dynamic margin alignment (DM).

This is the project's reconstruction of the article's method (its equations are not available to
us); docs/isdm.md states the formulation, why it was chosen and what it measured:

    u_i   = [p_t[i, y_i], non-target p_t[i] sorted descending]            (detached, C values)
    a_i   = clamp(g(u_i), -a_max, a_max),  g = Linear(C, h) - ReLU - Linear(h, 1), last layer 0
    q_i   = softmax(z_t[i] / T + a_i e_{y_i})                               (scaled soft label)
    L_ER  = mean_i [ -log q_i[y_i] - lambda_H H(q_i) ]                      (trains g only)
    g_i   = z_t[i, y_i] - max_{c != y_i} z_t[i, c]                           (teacher logit gap)
    m_i   = m tanh((g_i - mean(g)) / (std(g) + eps))  | m (fixed) | 0 (none)   (detached)
    L_DM  = T^2 mean_i KL(q_i || softmax((z_s[i] - m_i e_{y_i}) / T))
    L     = ce_weight CE + w(epoch) gamma L_DM + beta L_ER

With ``scaling=false`` q = p_t and there is no L_ER; with ``margin=none`` m_i = 0; both off is KD
with weight gamma (a test holds it to 1e-6).

``logit_std`` (the LS modifier, docs/methods/ls.md) z-scores z_t and z_s per sample first; IS and DM
then run on the standardised logits, with T = ``ls_T`` and the alignment weight ``ls_weight`` in
place of gamma (both off it is ``kd+ls``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from ..io import atomic_write_json
from ..runs.folder import RunDir
from .base import Distiller
from .losses import kl_divergence, max_non_target_logit, target_logit, target_mask
from .registry import register, register_alias
from .settings import DistillationSettings, LogitStandardization, ls_view


class ISDMConfig(LogitStandardization, DistillationSettings):
    name: str = "isdm"
    T: float = Field(4.0, gt=0, description="temperature")
    gamma: float = Field(4.0, ge=0, description="weight of the alignment (distillation) term")
    beta: float = Field(0.1, ge=0, description="weight of the entropy regularisation L_ER")
    m: float = Field(5.0, ge=0, description="margin scale (dynamic) or the margin (fixed)")
    lambda_H: float = Field(1.0, ge=0, description="entropy weight inside L_ER (is_level=entropy)")
    # teacher: measured best on the CPU protocol (docs/isdm_search.md); entropy is the first level rule.
    is_level: Literal["entropy", "teacher"] = Field(
        "teacher", description="the target level L_ER lifts or lowers q[y] to: set by lambda_H (entropy), or "
                               "the batch's mean teacher target probability (teacher: each sample's entropy "
                               "weight is solved so that L_ER's optimum is that level)")
    is_direction: Literal["both", "raise", "lower"] = Field(
        "both", description="which way IS may move q[y]: both, only up (hard samples) or only down (easy "
                            "samples); the shift is clamped at 0 on the other side")
    h: int = Field(64, ge=1, description="hidden width of the scaler")
    a_max: float = Field(5.0, gt=0, description="clamp of the scaler's output")
    scaling: bool = Field(True, description="IS: scale the teacher's target class per instance")
    margin: Literal["dynamic", "fixed", "none"] = "dynamic"
    margin_source: Literal["scaling", "gap"] = Field(
        "scaling", description="dynamic margin from IS's shift of the teacher's target (scaling), or "
                               "the batch z-score of the teacher's logit gap (gap: the first reconstruction)")
    # 0.5: measured best of {1, 0.5} on the CPU protocol (docs/isdm_search.md); 0 is IS alone.
    kappa: float = Field(0.5, ge=0, description="margin_source=scaling: m_i = -kappa T a_i (1: the student "
                                                "is shifted as the teacher's label was, 0: IS alone)")
    # Where and on which samples the margin acts (issue 21's search, docs/isdm_search.md).
    margin_on: Literal["all", "teacher_right"] = Field(
        "all", description="samples that get a margin: all, or only those the teacher classifies right "
                           "(the others follow IS's scaled label fully)")
    margin_sign: Literal["both", "positive"] = Field(
        "both", description="keep both signs of the margin, or only the positive ones (easy samples); "
                            "negative margins are set to 0")
    margin_acts: Literal["kl", "gap"] = Field(
        "kl", description="kl: the margin shifts the student's target logit inside the KL; gap: the KL "
                          "aligns to IS's scaled label unshifted and a separate hinge asks the student's own "
                          "target-vs-runner-up logit gap to reach the scaled label's gap, d_t + T a_i")
    gap_weight: float = Field(1.0, ge=0, description="margin_acts=gap: weight of the gap hinge")
    kappa_end: float | None = Field(None, ge=0, description="anneal kappa linearly from `kappa` at the first "
                                                            "epoch to this value at the last (None: constant)")
    anneal_epochs: int | None = Field(None, ge=1, description="the run's epochs, for kappa_end (filled in "
                                                              "from the run)")
    # A teacher barely better than its student costs the student accuracy (issue 21): with
    # trust=advantage the alignment is weighted by how far the teacher is ahead of the student.
    trust: Literal["none", "advantage"] = Field(
        "none", description="advantage: weight the alignment by clamp((acc_t - acc_s) / trust_margin, 0, 1), "
                            "the teacher's and the student's running accuracy on the training batches")
    trust_margin: float = Field(0.1, gt=0, description="trust=advantage: the lead (a fraction, 0.1 = 10 "
                                                       "points) at which the teacher gets the full weight")
    trust_momentum: float = Field(0.98, ge=0, lt=1, description="trust=advantage: momentum of the running "
                                                                "accuracies (per step)")
    eps: float = Field(1e-6, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _alpha_is_ce_weight(cls, values: Any) -> Any:
        # Earlier versions named the CE weight after the article's alpha; DKD's alpha is a TCKD
        # weight, so the shared name is ce_weight. Old config.yaml files still load.
        if isinstance(values, dict) and "alpha" in values:
            values = dict(values)
            if "ce_weight" in values:
                raise ValueError("give the CE weight once: 'ce_weight' ('alpha' is its old name)")
            values["ce_weight"] = values.pop("alpha")
        if isinstance(values, dict) and REMOVED.keys() & values.keys():
            values = dict(values)
            for key, kept in REMOVED.items():
                # the resolved config.yaml of a run made before they went lists them at the one
                # value still computed: it loads; any other value would not be the run it was
                if key in values and values.pop(key) != kept:
                    raise ValueError(f"'{key}' was removed (it lost the search, docs/isdm_search.md); "
                                     f"only {kept!r} is still computed")
        if isinstance(values, dict) and "lambda_H" in values and "is_level" not in values:
            # lambda_H only acts with the entropy level: a config that sets it means that level. So
            # do the resolved config.yaml files of runs made before `is_level` existed (they list
            # every field), which therefore resume and evaluate as they were trained.
            values = {**values, "is_level": "entropy"}
        return values


# Options that lost the search and no table needs, with the one value they are still read at.
REMOVED = {"is_input": "sorted", "is_grad_from_kd": False}


def shift_bounds(direction: str, a_max: float) -> tuple[float, float]:
    """The interval IS's shift a_i is clamped to."""
    return {"both": (-a_max, a_max), "raise": (0.0, a_max), "lower": (-a_max, 0.0)}[direction]


class InstanceScaler(nn.Module):
    """The IS perceptron: a class-agnostic view of the teacher's soft label -> a_i."""

    def __init__(self, num_classes: int, hidden: int, a_max: float):
        super().__init__()
        self.a_max = a_max
        self.net = nn.Sequential(nn.Linear(num_classes, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))
        # Zero output at the start: training begins from the plain teacher (q = p_t).
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, u: Tensor) -> Tensor:
        return self.net(u).squeeze(1).clamp(-self.a_max, self.a_max)

    @staticmethod
    def parameter_count(num_classes: int, hidden: int) -> int:
        return num_classes * hidden + hidden + hidden + 1


def scaler_input(p_t: Tensor, labels: Tensor) -> Tensor:
    """[p_t[y], the non-target p_t sorted descending]: class-agnostic."""
    mask = target_mask(p_t, labels)
    target = p_t[mask].unsqueeze(1)
    others = p_t[~mask].view(p_t.shape[0], -1).sort(dim=1, descending=True).values
    return torch.cat([target, others], dim=1)


def scaled_soft_label(teacher_logits: Tensor, labels: Tensor, a: Tensor, T: float) -> Tensor:
    """q = softmax(z_t / T + a e_y): the target probability multiplied by exp(a), renormalised."""
    return F.softmax(teacher_logits / T + a[:, None] * target_mask(teacher_logits, labels), dim=1)


def entropy_regularization(q: Tensor, labels: Tensor, lambda_H: float | Tensor) -> Tensor:
    """L_ER = mean_i [ -log q_i[y_i] - lambda_H H(q_i) ]; lambda_H is one weight or one per sample."""
    log_q = q.clamp_min(1e-30).log()
    nll = -log_q.gather(1, labels[:, None]).squeeze(1)
    entropy = -(q * log_q).sum(1)
    return (nll - lambda_H * entropy).mean()


def dynamic_margin(difficulty: Tensor, m: float, eps: float) -> Tensor:
    """m_i = m tanh((s_i - mean(s)) / (std(s) + eps)): positive for samples easier than the batch
    (larger s), negative for harder ones. Population std, so a batch of one gives m_i = 0."""
    s = difficulty.detach()
    return m * torch.tanh((s - s.mean()) / (s.std(correction=0) + eps))


def coupled_margin(shift: Tensor, T: float, kappa: float) -> Tensor:
    """m_i = -kappa T a_i: the student's target logit is shifted (in tempered units) by kappa times
    the shift IS gave the teacher's. With kappa = 1 the student's optimum is the teacher itself and
    IS only redistributes the alignment between target and non-target classes per sample; easy
    samples (a_i < 0) get positive margins, hard ones (a_i > 0) negative margins."""
    return -kappa * T * shift.detach()


def margin_mask(cfg: ISDMConfig, m: Tensor, teacher_correct: Tensor) -> Tensor:
    """1 where a sample keeps its margin: every sample, or (margin_on=teacher_right) only those
    the teacher classifies right; with margin_sign=positive only positive margins."""
    keep = torch.ones_like(m)
    if cfg.margin_on == "teacher_right":
        keep = keep * teacher_correct.to(m.dtype)
    if cfg.margin_sign == "positive":
        keep = keep * (m > 0).to(m.dtype)
    return keep


def margin_values(cfg: ISDMConfig, *, shift: Tensor | None, difficulty: Tensor, teacher_correct: Tensor,
                  T: float, kappa: float) -> Tensor:
    """The per-sample margins m_i (detached), the one place the margin rule is dispatched:
    none (0), fixed (m), coupled to IS's shift (-kappa T a_i) or the batch z-score of the
    difficulty (the first reconstruction); then restricted by margin_on / margin_sign."""
    if cfg.margin == "none":
        return torch.zeros_like(difficulty)
    if cfg.margin == "fixed":
        m = torch.full_like(difficulty, cfg.m)
    elif cfg.margin_source == "scaling":
        if shift is None:
            raise ValueError("the coupled margin needs IS's shift")
        m = coupled_margin(shift, T, kappa)
    else:
        m = dynamic_margin(difficulty, cfg.m, cfg.eps)
    if cfg.margin_on == "all" and cfg.margin_sign == "both":
        return m
    return m * margin_mask(cfg, m, teacher_correct)


def target_and_non_target_entropy(p: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """p[y] (clamped away from 0 and 1) and the entropy of the renormalised non-target part of p."""
    mask = target_mask(p, labels)
    p_y = p[mask].clamp(1e-12, 1 - 1e-12)
    rest = p.masked_fill(mask, 0.0) / (1 - p_y)[:, None]
    return p_y, -(rest * rest.clamp_min(1e-30).log()).sum(1)


def level_entropy_weights(p_t: Tensor, labels: Tensor, level: Tensor, max_weight: float = 10.0) -> Tensor:
    """Per-sample lambda_i that put L_ER's optimum at q[y] = level (H4: a level tied to the teacher).

    With q = softmax(log p_t + a e_y), t = logit(q_y) and H_nt the non-target entropy (unchanged by
    a), dL_ER/dt = (1 - q_y) (lambda q_y (t + H_nt) - 1): the stationary point is at the level when
    lambda = (1 + e^{-t}) / (t + H_nt). Levels at or below the maximum-entropy point (t <= -H_nt)
    cannot be reached by any weight (a confidently wrong teacher: its non-target mass sits on one
    class); there lambda is max_weight, which puts the optimum near the maximum-entropy point without
    letting those samples' gradients swamp the scaler's. (At 30 classes and T = 4 the weights of the
    CPU protocol's teacher lie in 1.9-2.8: none is capped.)"""
    p = p_t.detach().double()
    _, h_nt = target_and_non_target_entropy(p, labels)
    t = torch.logit(level.detach().double().clamp(1e-6, 1 - 1e-6)).expand_as(h_nt)
    denom = t + h_nt
    lam = torch.where(denom > 0, (1 + torch.exp(-t)) / denom.clamp_min(1e-12), torch.full_like(t, max_weight))
    return lam.clamp(max=max_weight).to(p_t.dtype)


def er_optimal_shift(p_t: Tensor, labels: Tensor, lambda_H: float, a_max: float, iters: int = 60) -> Tensor:
    """The a_i minimising -log q_y - lambda_H H(q) for q = softmax(log p_t + a e_y), per sample.

    q's non-target part keeps p_t's shape, so with t = logit(q_y) and H_nt the entropy of the
    renormalised non-target distribution, H(q) = h(q_y) + (1 - q_y) H_nt and the stationarity
    condition is  -t - H_nt + (1 + e^{-t}) / lambda_H = 0,  strictly decreasing in t: solved by
    bisection. a* = t* - logit(p_y), clamped to [-a_max, a_max] (+a_max when lambda_H = 0)."""
    p_y, h_nt = target_and_non_target_entropy(p_t.detach().double(), labels)
    if lambda_H == 0:
        return torch.full_like(p_y, a_max).to(p_t.dtype)
    lo, hi = torch.full_like(p_y, -60.0), torch.full_like(p_y, 60.0)
    for _ in range(iters):
        t = (lo + hi) / 2
        positive = -t - h_nt + (1 + torch.exp(-t)) / lambda_H > 0
        lo, hi = torch.where(positive, t, lo), torch.where(positive, hi, t)
    a = (lo + hi) / 2 - torch.logit(p_y)
    return a.clamp(-a_max, a_max).to(p_t.dtype)


def level_shift(p_t: Tensor, labels: Tensor, level: Tensor, a_max: float) -> Tensor:
    """The shift that takes p_t[y] to the level: logit(level) - logit(p_t[y]), clamped."""
    p_y = target_logit(p_t.detach(), labels).clamp(1e-12, 1 - 1e-12)
    return (torch.logit(level.detach().clamp(1e-6, 1 - 1e-6)) - torch.logit(p_y)).clamp(-a_max, a_max)


class AdvantageMeter(nn.Module):
    """Running accuracies of the teacher and the student on the training batches (buffers: saved
    with the checkpoint, so a resumed run continues with the same weights)."""

    def __init__(self, momentum: float, margin: float):
        super().__init__()
        self.momentum, self.margin = momentum, margin
        self.register_buffer("acc", torch.full((2,), -1.0))  # teacher, student; -1 before the first step

    @torch.no_grad()
    def update(self, teacher_right: Tensor, student_right: Tensor) -> None:
        now = torch.stack([teacher_right.float().mean(), student_right.float().mean()]).to(self.acc)
        first = self.acc[0] < 0
        self.acc.copy_(torch.where(first, now, self.momentum * self.acc + (1 - self.momentum) * now))

    def weight(self) -> Tensor:
        """clamp((acc_t - acc_s) / margin, 0, 1): 1 while the teacher leads by the margin or more,
        0 once the student has caught up with it."""
        return ((self.acc[0] - self.acc[1]) / self.margin).clamp(0.0, 1.0)


@register("isdm")
class ISDM(Distiller[ISDMConfig]):
    teacher_outputs = frozenset({"logits"})
    summary = "ISDM: instance-level scaling + dynamic margin alignment (the project's reconstruction)"

    def __init__(self, student, teacher, cfg: ISDMConfig, info):
        super().__init__(student, teacher, cfg, info)
        self.scaler = InstanceScaler(info.num_classes, cfg.h, cfg.a_max) if cfg.scaling else None
        self.trust = AdvantageMeter(cfg.trust_momentum, cfg.trust_margin) if cfg.trust == "advantage" else None

    @classmethod
    def resolve_config(cls, cfg: ISDMConfig, ctx) -> ISDMConfig:
        cfg = super().resolve_config(cfg, ctx)
        if cfg.kappa_end is not None and cfg.anneal_epochs is None:
            cfg = cfg.model_copy(update={"anneal_epochs": ctx.epochs})
        return cfg

    @classmethod
    def extra_parameter_count(cls, cfg: ISDMConfig, num_classes: int) -> int:
        return InstanceScaler.parameter_count(num_classes, cfg.h) if cfg.scaling else 0

    def extra_modules(self) -> dict[str, nn.Module]:
        extras = {"scaler": self.scaler} if self.scaler is not None else {}
        if self.trust is not None:
            extras["trust"] = self.trust
        return extras

    def extra_param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        # The contract: the scaler shares the lr schedule but has no weight decay.
        if self.scaler is None:
            return []
        return [{"params": list(self.scaler.parameters()), "weight_decay": 0.0}]

    @property
    def temperature(self) -> float:
        return self.cfg.distill_temperature(self.cfg.T)

    def teacher_view(self, teacher_logits: Tensor) -> Tensor:
        """The teacher logits IS and DM work on: z-scored per sample with ``logit_std`` (LS)."""
        return ls_view(self.cfg, teacher_logits, teacher_logits, self.cfg.T, self.cfg.gamma).teacher

    # ------------------------------------------------------------------ the parts
    def soft_targets(self, teacher_logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """p_t, the scaler output a, the scaled label q and L_ER (absent without scaling)."""
        cfg, T = self.cfg, self.temperature
        p_t = F.softmax(teacher_logits / T, dim=1)
        if self.scaler is None:
            return {"p_t": p_t, "q": p_t, "a": torch.zeros_like(labels, dtype=p_t.dtype)}
        a = self.scaler(scaler_input(p_t, labels).detach())
        er = entropy_regularization(scaled_soft_label(teacher_logits, labels, a, T), labels,
                                    self.entropy_weight(p_t, labels))
        if cfg.is_direction != "both":
            # The scaler still learns L_ER's two-sided optimum (a clamp at 0 would stop its
            # gradient at the zero start); only the shifts in the allowed direction are applied.
            a = a.clamp(*shift_bounds(cfg.is_direction, cfg.a_max))
        q = scaled_soft_label(teacher_logits, labels, a, T)
        return {"p_t": p_t, "q": q, "a": a, "er": er}

    def level(self, p_t: Tensor, labels: Tensor) -> Tensor:
        """is_level=teacher: the batch's mean teacher target probability (detached)."""
        return target_logit(p_t, labels).detach().mean()

    def entropy_weight(self, p_t: Tensor, labels: Tensor) -> float | Tensor:
        if self.cfg.is_level == "teacher":
            return level_entropy_weights(p_t, labels, self.level(p_t, labels))
        return self.cfg.lambda_H

    def difficulty(self, teacher_logits: Tensor, labels: Tensor, p_t: Tensor) -> Tensor:
        """Large for easy samples: the teacher's logit gap."""
        return target_logit(teacher_logits, labels) - max_non_target_logit(teacher_logits, labels)

    def margins(self, teacher_logits: Tensor, labels: Tensor, parts: dict[str, Tensor]) -> Tensor:
        """m_i of the batch (detached); zero where the margin acts as the separate gap hinge."""
        cfg, p_t = self.cfg, parts["p_t"]
        if cfg.margin_acts == "gap":
            return torch.zeros_like(p_t[:, 0])
        shift = self.target_shift(p_t, labels, parts) if self._coupled else None
        return margin_values(cfg, shift=shift, difficulty=self.difficulty(teacher_logits, labels, p_t),
                             teacher_correct=teacher_logits.argmax(1) == labels, T=self.temperature,
                             kappa=self.kappa_now())

    @property
    def _coupled(self) -> bool:
        return self.cfg.margin == "dynamic" and self.cfg.margin_source == "scaling"

    def kappa_now(self) -> float:
        """kappa at this epoch: constant, or linear from ``kappa`` (epoch 1) to ``kappa_end`` (last)."""
        cfg = self.cfg
        if cfg.kappa_end is None:
            return cfg.kappa
        if cfg.anneal_epochs is None:
            raise RuntimeError("isdm: kappa_end needs anneal_epochs (build methods through resolve_config)")
        progress = min(1.0, (self.epoch - 1) / max(1, cfg.anneal_epochs - 1))
        return cfg.kappa + (cfg.kappa_end - cfg.kappa) * progress

    def gap_hinge(self, student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, a: Tensor) -> Tensor:
        """margin_acts=gap: mean_i relu(r_i - d_s,i), r_i = d_t,i + T a_i the scaled label's
        target-vs-runner-up logit gap (large for easy samples, negative where the teacher is wrong
        and IS did not lift it past the runner-up), d_s,i the student's own gap."""
        required = (target_logit(teacher_logits, labels) - max_non_target_logit(teacher_logits, labels)
                    + self.temperature * a.detach())
        keep = margin_mask(self.cfg, required, teacher_logits.argmax(1) == labels)
        own = target_logit(student_logits, labels) - max_non_target_logit(student_logits, labels)
        return (F.relu(required.detach() - own) * keep).mean()

    def target_shift(self, p_t: Tensor, labels: Tensor, parts: dict[str, Tensor]) -> Tensor:
        """IS's shift a_i of the teacher's tempered target logit: the scaler's output, or without
        IS the shift a perfect scaler would learn (the per-sample optimum of L_ER)."""
        cfg = self.cfg
        if self.scaler is not None:
            return parts["a"].detach()
        if cfg.is_level == "teacher":
            a = level_shift(p_t, labels, self.level(p_t, labels), cfg.a_max)
        else:
            a = er_optimal_shift(p_t, labels, cfg.lambda_H, cfg.a_max)
        return a.clamp(*shift_bounds(cfg.is_direction, cfg.a_max))

    def alignment(self, student_logits: Tensor, labels: Tensor, q: Tensor, m: Tensor) -> Tensor:
        """L_DM = T^2 mean KL(q || softmax((z_s - m e_y) / T)); the margin shifts the target only."""
        T = self.temperature
        shifted = student_logits - m[:, None] * target_mask(student_logits, labels)
        return kl_divergence(q, F.log_softmax(shifted / T, dim=1)).mean() * (T * T)

    # ------------------------------------------------------------------ training
    def forward_train(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.cfg
        image, labels = batch["image"], batch["label"]
        zt = self.teacher_logits(batch)
        logits = self.student.logits(image)
        v = ls_view(cfg, logits, zt, cfg.T, cfg.gamma)
        teacher_logits = v.teacher
        parts = self.soft_targets(teacher_logits, labels)
        q = parts["q"].detach()  # the scaler learns from L_ER only
        m = self.margins(teacher_logits, labels, parts)
        ramp = self.warmup() * self.trust_weight(zt, logits, labels)
        losses = {
            "ce": self.ce_loss(logits, labels),
            "align": ramp * v.weight * self.alignment(v.student, labels, q, m),
        }
        if cfg.margin_acts == "gap" and cfg.margin != "none":
            losses["gap"] = ramp * cfg.gap_weight * self.gap_hinge(v.student, teacher_logits, labels, parts["a"])
        if "er" in parts:
            losses["er"] = cfg.beta * parts["er"]
        self._record(teacher_logits, labels, parts, m)
        return logits, losses

    def trust_weight(self, teacher_logits: Tensor, student_logits: Tensor, labels: Tensor) -> float | Tensor:
        """1, or with trust=advantage the weight the teacher's running lead over the student earns."""
        if self.trust is None:
            return 1.0
        if self.training:
            self.trust.update(teacher_logits.argmax(1) == labels, student_logits.detach().argmax(1) == labels)
        w = self.trust.weight()
        self.log_mean("trust", w)
        return w

    def _record(self, teacher_logits: Tensor, labels: Tensor, parts: dict[str, Tensor], m: Tensor) -> None:
        correct = teacher_logits.argmax(1) == labels
        p_y = target_logit(parts["p_t"], labels)
        q_y = target_logit(parts["q"].detach(), labels)
        self.log_mean("a", parts["a"])
        self.log_mean("m", m)
        for name, sel in (("teacher_right", correct), ("teacher_wrong", ~correct)):
            self.log_mean(f"p_t_y/{name}", p_y[sel])
            self.log_mean(f"q_y/{name}", q_y[sel])
        self.log_histogram("a", parts["a"])
        self.log_histogram("m", m)

    # ------------------------------------------------------------------ analysis (article Fig. 5)
    @torch.no_grad()
    def soft_label_records(self, loader, device: torch.device) -> dict[str, Tensor]:
        """p_t[y], q[y], a, the logit gap and m for every sample of an (unaugmented) loader.

        m is standardised over the whole set here (the expectation of the per-batch margin), since
        training batches are random."""
        was_training = self.training
        self.eval()
        cols: dict[str, list[Tensor]] = {k: [] for k in ("index", "label", "p_t_y", "q_y", "a", "shift", "gap",
                                                         "difficulty", "teacher_correct")}
        for batch in loader:
            image, labels = batch["image"].to(device), batch["label"].to(device)
            zt = self.teacher_view(self.teacher_forward(image).logits)
            parts = self.soft_targets(zt, labels)
            cols["index"].append(batch["index"])
            cols["label"].append(labels.cpu())
            cols["p_t_y"].append(target_logit(parts["p_t"], labels).cpu())
            cols["q_y"].append(target_logit(parts["q"], labels).cpu())
            cols["a"].append(parts["a"].cpu())
            cols["shift"].append(self.target_shift(parts["p_t"], labels, parts).cpu())
            cols["gap"].append((target_logit(zt, labels) - max_non_target_logit(zt, labels)).cpu())
            cols["difficulty"].append(self.difficulty(zt, labels, parts["p_t"]).cpu())
            cols["teacher_correct"].append((zt.argmax(1) == labels).cpu())
        self.train(was_training)
        out = {k: torch.cat(v) for k, v in cols.items()}
        cfg = self.cfg
        if cfg.margin_acts == "gap":
            out["m"] = torch.zeros_like(out["a"])
        else:
            out["m"] = margin_values(cfg, shift=out["shift"], difficulty=out["difficulty"],
                                     teacher_correct=out["teacher_correct"], T=self.temperature,
                                     kappa=self.kappa_now())
        return out

    def on_train_end(self, run_dir: Path, train_eval_loader, device: torch.device) -> None:
        rec = self.soft_label_records(train_eval_loader, device)
        paths = self.info.train_paths
        samples = [
            {
                "index": int(i),
                "path": paths[int(i)] if paths else None,
                "label": int(y),
                "teacher_correct": bool(c),
                "p_t_y": round(float(p), 6),
                "q_y": round(float(q), 6),
                "a": round(float(a), 6),
                "m": round(float(m), 6),
                "gap": round(float(g), 6),
            }
            for i, y, c, p, q, a, m, g in zip(rec["index"], rec["label"], rec["teacher_correct"],
                                              rec["p_t_y"], rec["q_y"], rec["a"], rec["m"], rec["gap"])
        ]
        cfg = self.cfg
        atomic_write_json(RunDir(run_dir).soft_labels, {
            "description": "ISDM soft labels of every training sample (unaugmented) after training: "
                           "teacher target probability p_t_y at T, scaled target probability q_y, "
                           "scaler output a, teacher logit gap, and margin m (dynamic margins "
                           "standardised over the training set)",
            "T": self.temperature, "logit_std": cfg.logit_std, "scaling": cfg.scaling,
            "margin": cfg.margin, "m_scale": cfg.m, "lambda_H": cfg.lambda_H, "is_level": cfg.is_level,
            "samples": samples,
        })


# IS alone (the ablation's "w/o DM"): the student aligned with IS's scaled label, no margin. Issue 21's
# search found no margin that adds to IS on two AID settings (docs/isdm.md, "Which to use").
register_alias("is", "isdm", margin="none")
