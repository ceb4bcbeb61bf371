"""The analysis figures, drawn with matplotlib (Agg: no display needed) from numbers computed
elsewhere. Each function writes one PNG and returns its path; nothing here computes a statistic."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import atomic_write
from ..reports.per_class import draw_confusion

DPI = 110


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, svg: bool = False) -> Path:
    """Write the PNG (and, with ``svg``, a vector twin beside it for print) and return the PNG's path."""
    # Every figure uses constrained layout, which already fits labels and legends: no second,
    # "tight" drawing pass.
    for fmt in ("png", "svg") if svg else ("png",):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=DPI, **({"metadata": {"Date": None}} if fmt == "svg" else {}))
        atomic_write(path.with_suffix(f".{fmt}"), lambda f, b=buf: f.write(b.getvalue()))
    _plt().close(fig)
    return path


def _tick_size(n: int) -> float:
    return max(4.0, 9.0 - n / 8)


def _class_axes(ax, class_names: list[str], x: bool = True, y: bool = True) -> None:
    n, fs = len(class_names), _tick_size(len(class_names))
    if x:
        ax.set_xticks(range(n), class_names, rotation=90, fontsize=fs)
    if y:
        ax.set_yticks(range(n), class_names, fontsize=fs)


def _panel_grid(k: int, size: float):
    """Up to three panels a row; constrained layout keeps titles, labels and colour bars apart."""
    cols = min(k, 3)
    rows = (k + cols - 1) // cols
    fig, axes = _plt().subplots(rows, cols, figsize=(size * cols + 1.2, size * rows + 0.6), squeeze=False,
                                layout="constrained")
    for ax in axes.flat[k:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:k])


def _heat_panels(path: Path, matrices: dict[str, np.ndarray], subtitles: dict[str, str], class_names: list[str],
                 title: str, cmap: str, vmin: float, vmax: float, xlabel: str, ylabel: str) -> Path:
    size = min(3.2 + 0.18 * len(class_names), 9.0)
    fig, axes = _panel_grid(len(matrices), size)
    im = None
    cols = min(len(matrices), 3)
    for i, (ax, (name, m)) in enumerate(zip(axes, matrices.items())):
        im = ax.imshow(np.asarray(m, dtype=float), cmap=cmap, vmin=vmin, vmax=vmax)
        first = i % cols == 0  # class names on the left of each row only: panels share the axes
        _class_axes(ax, class_names)
        if not first:
            ax.set_yticklabels([])
        ax.set_title(f"{name}\n{subtitles[name]}", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        if first:
            ax.set_ylabel(ylabel, fontsize=8)
    fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02)  # one scale shared by every panel
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def similarity_figure(path: Path, matrices: dict[str, np.ndarray], mean_off: dict[str, float],
                      class_names: list[str]) -> Path:
    vals = np.concatenate([np.asarray(m, dtype=float).ravel() for m in matrices.values()])
    vals = vals[~np.isnan(vals)]
    vmin, vmax = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
    subtitles = {k: f"mean off-diagonal {mean_off[k]:.3f}" for k in matrices}
    return _heat_panels(path, matrices, subtitles, class_names, "Inter-class similarity of logits (test split)",
                        "magma", vmin, vmax, "class centre", "true class")


def fidelity_figure(path: Path, matrices: dict[str, np.ndarray], maxima: dict[str, float], means: dict[str, float],
                    teachers: dict[str, str], class_names: list[str]) -> Path:
    vmax = max(float(np.nanmax(m)) for m in matrices.values()) or 1.0
    subtitles = {k: f"vs {teachers[k]}: max {maxima[k]:.2f}, mean {means[k]:.2f}" for k in matrices}
    return _heat_panels(path, matrices, subtitles, class_names,
                        "|corr(teacher) - corr(student)| of softmax outputs (test split)",
                        "Reds", 0.0, vmax, "class", "class")


@dataclass
class SoftLabelExample:
    title: str  # "easiest" / "hardest"
    image: np.ndarray  # H x W x 3 in [0, 1]
    label: int
    gap: float
    p_t: np.ndarray
    q: np.ndarray


def soft_labels_figure(path: Path, run: str, class_names: list[str], examples: list[SoftLabelExample],
                       p_t_y: list[float], q_y: list[float], labels: list[int]) -> Path:
    plt = _plt()
    rows = max(1, len(examples))
    width = min(3.0 + 0.22 * len(class_names), 8.0)
    fig = plt.figure(figsize=(2.4 + 2 * width + 4.2, 2.8 * rows + 0.5), layout="constrained")
    gs = fig.add_gridspec(rows, 4, width_ratios=[2.4, width, width, 4.2])
    x = np.arange(len(class_names))
    for r, ex in enumerate(examples):
        ax = fig.add_subplot(gs[r, 0])
        ax.imshow(np.clip(ex.image, 0, 1))
        ax.set_axis_off()
        ax.set_title(f"{ex.title}: {class_names[ex.label]}\nteacher gap {ex.gap:.2f}", fontsize=8)
        for c, (vec, name) in enumerate(((ex.p_t, "teacher soft label p_t"), (ex.q, "scaled soft label q"))):
            ax = fig.add_subplot(gs[r, 1 + c])
            colours = ["#d62728" if i == ex.label else "#9aa5b1" for i in x]
            ax.bar(x, vec, color=colours)
            ax.set_ylim(0, 1)
            ax.set_title(f"{name} (target {vec[ex.label]:.2f})", fontsize=8)
            _class_axes(ax, class_names, y=False)
            ax.get_xticklabels()[ex.label].set_color("#d62728")
            ax.get_xticklabels()[ex.label].set_fontweight("bold")
    ax = fig.add_subplot(gs[:, 3])
    cmap = plt.get_cmap("tab20" if len(class_names) > 10 else "tab10")
    ax.scatter(p_t_y, q_y, color=[cmap(int(y) % cmap.N) for y in labels], s=8, alpha=0.7)
    ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("teacher target probability p_t[y]")
    ax.set_ylabel("scaled target probability q[y]")
    ax.set_title("all training samples (colour: class)", fontsize=9)
    ax.set_aspect("equal")
    fig.suptitle(f"{run}: soft labels before and after instance-level scaling", fontsize=11)
    return _save(fig, path)


@dataclass
class EmbeddingPanel:
    title: str
    points: np.ndarray  # N x 2
    values: np.ndarray  # N: class index, or a margin
    by: str  # "class" or "margin"


def tsne_figure(path: Path, panels: list[EmbeddingPanel], class_names: list[str]) -> Path:
    plt = _plt()
    fig, axes = _panel_grid(len(panels), 4.0)
    cmap = plt.get_cmap("tab20" if len(class_names) > 10 else "tab10")
    for ax, p in zip(axes, panels):
        if p.by == "class":
            for c, name in enumerate(class_names):
                sel = p.values == c
                if sel.any():
                    ax.scatter(p.points[sel, 0], p.points[sel, 1], s=10, color=cmap(c % cmap.N), label=name)
        else:
            lim = float(np.max(np.abs(p.values))) or 1.0
            sc = ax.scatter(p.points[:, 0], p.points[:, 1], s=10, c=p.values, cmap="coolwarm", vmin=-lim, vmax=lim)
            fig.colorbar(sc, ax=ax, fraction=0.046, label="margin m")
        ax.set_title(p.title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if any(p.by == "class" for p in panels) and len(class_names) <= 30:
        handles, names = next(ax for ax, p in zip(axes, panels) if p.by == "class").get_legend_handles_labels()
        fig.legend(handles, names, loc="outside right center", fontsize=7, markerscale=1.5)
    fig.suptitle("t-SNE of pooled features (test split)", fontsize=11)
    return _save(fig, path)


@dataclass
class CostPoint:
    run: str
    method: str
    cost: float  # in the unit the figure's x label names (ms per iteration, minutes...)
    top1: float
    top1_std: float | None = None  # over seeds, drawn as an error bar


_MARKERS = "osD^vP*Xph<>"


def cost_figure(path: Path, points: list[CostPoint], xlabel: str = "training time per iteration (ms)",
                title: str = "Cost against accuracy", svg: bool = False) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.2), layout="constrained")
    methods = list(dict.fromkeys(p.method for p in points))
    cmap = plt.get_cmap("tab10")
    shown = [p for p in points if np.isfinite(p.cost) and np.isfinite(p.top1)]
    for i, m in enumerate(methods):
        sel = [p for p in shown if p.method == m]
        if sel:
            ax.scatter([p.cost for p in sel], [p.top1 for p in sel], s=60,
                       marker=_MARKERS[i % len(_MARKERS)], color=cmap(i % 10), label=m, zorder=3)
            err = [p for p in sel if p.top1_std is not None]
            if err:
                ax.errorbar([p.cost for p in err], [p.top1 for p in err], yerr=[p.top1_std for p in err],
                            fmt="none", ecolor=cmap(i % 10), capsize=3, lw=1)
    for p in shown:
        if p.run != p.method:  # the legend already names a point that is its method's only one
            ax.annotate(p.run, (p.cost, p.top1), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    if shown:
        ax.legend(fontsize=8, title="method", title_fontsize=8)
    return _save(fig, path, svg)


@dataclass
class SeedPanel:
    """One split's methods: every seed's top-1 (a dot each) and the reference means drawn across."""

    title: str
    values: dict[str, list[float]]  # method label -> top-1 of each finished seed, in table order
    references: dict[str, float]  # e.g. {"student alone": mean, "KD": mean}


def seeds_figure(path: Path, panels: list[SeedPanel], title: str, svg: bool = False) -> Path:
    """Per method, the seeds as dots over a bar spanning mean ± std (a line at the mean); the
    references as dashed lines, so a method's gain reads against the seeds' spread."""
    plt = _plt()
    n = max((len(p.values) for p in panels), default=1)
    fig, axes = _panel_grid(max(len(panels), 1), max(3.6, 0.55 * n + 1.5))
    cmap = plt.get_cmap("tab10")
    for ax, panel in zip(axes, panels):
        for i, (method, vals) in enumerate(panel.values.items()):
            if not vals:
                continue
            m = float(np.mean(vals))
            sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
            ax.bar(i, 2 * sd, bottom=m - sd, width=0.55, color="#1f77b4", alpha=0.25, zorder=1)
            ax.hlines(m, i - 0.3, i + 0.3, color="#1f77b4", lw=2, zorder=2)
            # spread the dots sideways, always the same way: seeds with equal top-1 stay visible
            offsets = np.linspace(-0.15, 0.15, len(vals)) if len(vals) > 1 else np.zeros(1)
            ax.scatter(i + offsets, vals, s=18, color="#222", zorder=3)
        for k, (name, value) in enumerate(panel.references.items()):
            ax.axhline(value, color=cmap((k + 1) % 10), ls="--", lw=1, label=f"{name} (mean)", zorder=0)
        ax.set_xticks(range(len(panel.values)), list(panel.values), rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(panel.values) - 0.4)
        ax.set_ylabel("test top-1 (%)", fontsize=8)
        ax.set_title(panel.title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if panel.references:
            ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path, svg)


def per_class_figure(path: Path, names: tuple[str, str], class_names: list[str], accuracy: tuple[np.ndarray, np.ndarray],
                     confusion: tuple[np.ndarray, np.ndarray], changed: list[str]) -> Path:
    plt = _plt()
    n = len(class_names)
    size = min(3.5 + 0.18 * n, 9.0)
    fig = plt.figure(figsize=(2 * size + 1, 3.2 + size), layout="constrained")
    gs = fig.add_gridspec(2, 2, height_ratios=[3.2, size])
    ax = fig.add_subplot(gs[0, :])
    x = np.arange(n)
    w = 0.4
    ax.bar(x - w / 2, accuracy[0], w, label=names[0], color="#9aa5b1")
    ax.bar(x + w / 2, accuracy[1], w, label=names[1], color="#1f77b4")
    for c in changed:  # call out the classes that changed most
        i = class_names.index(c)
        d = accuracy[1][i] - accuracy[0][i]
        ax.annotate(f"{d:+.0f}", (i, max(accuracy[0][i], accuracy[1][i])), textcoords="offset points",
                    xytext=(0, 3), ha="center", fontsize=7, color="#d62728", fontweight="bold")
    _class_axes(ax, class_names, y=False)
    for label in ax.get_xticklabels():
        if label.get_text() in changed:
            label.set_color("#d62728")
            label.set_fontweight("bold")
    ax.set_ylim(0, 110)
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title("Per-class test accuracy (red: the classes that changed most)", fontsize=10)
    for k in range(2):
        ax = fig.add_subplot(gs[1, k])
        draw_confusion(ax, confusion[k])
        _class_axes(ax, class_names)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"confusion: {names[k]}", fontsize=9)
    return _save(fig, path)


def curves_figure(path: Path, curves: dict[str, dict[str, list[tuple[int, float]]]]) -> Path:
    """``curves``: {quantity: {run: [(epoch, value), ...]}}: one axes per quantity, every run on it."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = _panel_grid(len(curves), 3.6)
    runs = list(dict.fromkeys(r for per_run in curves.values() for r in per_run))
    cmap = plt.get_cmap("tab10")
    for ax, (quantity, per_run) in zip(axes, curves.items()):
        for run, pts in per_run.items():
            if pts:
                e, v = zip(*pts)
                ax.plot(e, v, marker="o", ms=3, color=cmap(runs.index(run) % 10), label=run)
        ax.set_title(quantity, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=cmap(i % 10), marker="o", ms=3) for i in range(len(runs))]
    fig.legend(handles, runs, loc="outside upper center", ncol=min(len(runs), 5), fontsize=8)
    return _save(fig, path)
