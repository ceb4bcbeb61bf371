"""Inter-class similarity of a model's logits (article Fig. 4).

The centre of a class is the mean logit vector of its test samples. Entry (i, j) of the matrix is
the mean cosine similarity between the logits of the samples of true class i and the centre of
class j: a model that separates the classes well has a bright diagonal and a dark rest.
"""

from __future__ import annotations

import numpy as np


def class_centres(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """C x K: the mean logit vector per class (a row of NaN for a class without samples)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    centres = np.full((num_classes, logits.shape[1]), np.nan)
    for c in range(num_classes):
        sel = labels == c
        if sel.any():
            centres[c] = logits[sel].mean(0)
    return centres


def cosine_to_centres(logits: np.ndarray, centres: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """N x C: the cosine similarity of each sample's logits to each centre."""
    a = np.asarray(logits, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), eps)
    b = centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), eps)
    return a @ b.T


def inter_class_similarity(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """C x C: rows are true classes, columns class centres (NaN rows/columns for absent classes)."""
    labels = np.asarray(labels)
    cos = cosine_to_centres(logits, class_centres(logits, labels, num_classes))
    out = np.full((num_classes, num_classes), np.nan)
    for c in range(num_classes):
        sel = labels == c
        if sel.any():
            out[c] = cos[sel].mean(0)
    return out


def mean_off_diagonal(matrix: np.ndarray) -> float:
    """The mean of the entries off the diagonal (NaN entries ignored): one number per model,
    lower meaning classes that look less alike."""
    m = np.asarray(matrix, dtype=np.float64)
    off = m[~np.eye(m.shape[0], dtype=bool)]
    off = off[~np.isnan(off)]
    return float(off.mean()) if off.size else float("nan")
