"""Distillation fidelity (article Fig. 7): how well the student reproduces the teacher's
correlations between classes.

For softmax outputs P (N x C) on the test split, the class-correlation matrix is the Pearson
correlation between its columns (C x C). The figure shows |corr(P_teacher) - corr(P_student)|;
entries lie in [0, 2]. Its diagonal is always 0, so the mean is taken over the class pairs off the
diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_correlation(probs: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """C x C Pearson correlation between the classes' output columns. A column that never varies
    correlates 0 with the others (and 1 with itself): np.corrcoef would give NaN there."""
    p = np.asarray(probs, dtype=np.float64)
    d = p - p.mean(axis=0, keepdims=True)
    norm = np.sqrt((d * d).sum(axis=0))
    constant = norm < eps
    d = d / np.where(constant, 1.0, norm)
    corr = d.T @ d
    corr[constant, :] = 0.0
    corr[:, constant] = 0.0
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1.0, 1.0)


@dataclass(frozen=True)
class CorrelationDifference:
    matrix: np.ndarray  # C x C, |corr_teacher - corr_student|
    max: float
    mean: float  # over the off-diagonal pairs


def correlation_difference(teacher_probs: np.ndarray, student_probs: np.ndarray) -> CorrelationDifference:
    """Both N x C on the same samples in the same order."""
    t, s = np.asarray(teacher_probs), np.asarray(student_probs)
    if t.shape != s.shape:
        raise ValueError(f"teacher outputs {t.shape} and student outputs {s.shape} differ in shape")
    diff = np.abs(class_correlation(t) - class_correlation(s))
    off = diff[~np.eye(diff.shape[0], dtype=bool)]
    return CorrelationDifference(diff, float(diff.max()), float(off.mean()) if off.size else 0.0)
