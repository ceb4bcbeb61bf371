"""Per-class comparison of two runs on the same test split: accuracy per class, confusion
matrices, and the classes whose accuracy changed most."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """C x C counts, rows true classes, columns predicted."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels), np.asarray(predictions)), 1)
    return cm


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Percent correct per true class (NaN for a class without test samples)."""
    cm = np.asarray(confusion, dtype=np.float64)
    support = cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, 100.0 * np.diag(cm) / support, np.nan)


@dataclass(frozen=True)
class ClassChange:
    name: str
    before: float  # accuracy of the first run (%)
    after: float  # of the second
    delta: float  # after - before


def changed_most(before: np.ndarray, after: np.ndarray, class_names: list[str], k: int = 3) -> list[ClassChange]:
    """The ``k`` classes with the largest |after - before| (unchanged classes never listed;
    ties keep class order)."""
    changes = [ClassChange(n, float(b), float(a), float(a - b))
               for n, b, a in zip(class_names, before, after) if not (np.isnan(a) or np.isnan(b)) and a != b]
    changes.sort(key=lambda c: -abs(c.delta))
    return changes[:k]
