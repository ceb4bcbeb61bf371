"""t-SNE of pooled features (article Fig. 6): scikit-learn's, with a fixed seed."""

from __future__ import annotations

import numpy as np


def default_perplexity(n: int) -> float:
    """scikit-learn's 30, lowered for small sets (it must stay below the sample count)."""
    return float(min(30.0, max(1.0, (n - 1) / 3)))


def subsample(n: int, max_samples: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_samples`` of ``n`` samples (all of them when fewer), drawn
    with ``seed``: t-SNE's cost grows with the sample count, and a few thousand points show the
    clusters as well as a whole NWPU test split would."""
    if max_samples is None or n <= max_samples:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))


def tsne_2d(features: np.ndarray, seed: int = 0, perplexity: float | None = None) -> np.ndarray:
    """N x 2 embedding of N x D features; the same seed gives the same points."""
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    n = len(x)
    if n < 3:  # t-SNE needs a neighbourhood; a point or two have nothing to arrange
        return np.zeros((n, 2))
    perplexity = default_perplexity(n) if perplexity is None else min(perplexity, n - 1.0)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed)
    return tsne.fit_transform(x).astype(np.float64)
