"""Per-class accuracy and the confusion matrix of one model on one split (CSV + PNG)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_write, atomic_write_text
from ..runs.folder import CONFUSION_CSV, CONFUSION_PNG, PER_CLASS


def write_per_class(out_dir: Path, class_names: list[str], confusion: torch.Tensor, title: str = "") -> list[Path]:
    support = confusion.sum(1)
    acc = (100.0 * confusion.diag() / support.clamp_min(1)).tolist()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "accuracy", "correct", "support"])
    for name, a, c, n in zip(class_names, acc, confusion.diag().tolist(), support.tolist()):
        w.writerow([name, f"{a:.2f}", c, n])
    per_class = out_dir / PER_CLASS
    atomic_write_text(per_class, buf.getvalue())

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true \\ predicted", *class_names])
    for name, row in zip(class_names, confusion.tolist()):
        w.writerow([name, *row])
    cm_csv = out_dir / CONFUSION_CSV
    atomic_write_text(cm_csv, buf.getvalue())
    cm_png = out_dir / CONFUSION_PNG
    plot_confusion(cm_png, class_names, confusion, title)
    return [per_class, cm_csv, cm_png]


def plot_confusion(path: Path, class_names: list[str], confusion: torch.Tensor, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(class_names)
    size = min(4 + 0.3 * n, 20)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = draw_confusion(ax, confusion.numpy())
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=max(5, 10 - n // 10))
    ax.set_yticks(range(n), class_names, fontsize=max(5, 10 - n // 10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (row-normalised colours, counts in cells)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def draw_confusion(ax, confusion) -> Any:
    """A confusion matrix on ``ax``: row-normalised colours, the counts written in the cells (up to
    30 classes; beyond that they are unreadable). Returns the image, for a colour bar."""
    cm = np.asarray(confusion, dtype=float)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    n = len(cm)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if rates[i, j] > 0.5 else "black")
    return im
