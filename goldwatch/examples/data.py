"""Synthetic, seeded data sets for the example models (no downloads).

>>> x, y = tabular_data(n=6, seed=0)
>>> x.shape, x.dtype, y.tolist()
((6, 8), dtype('float32'), [2, 1, 1, 0, 0, 0])
>>> images, labels = image_data(n=4, seed=0)
>>> images.shape, labels.dtype
((4, 1, 16, 16), dtype('int64'))
"""

from __future__ import annotations

import numpy as np

__all__ = ["image_data", "tabular_data"]


def tabular_data(*, n: int, seed: int, n_features: int = 8, n_classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian classes with a non-linear twist (a linear model cannot separate them fully)."""
    centers = np.random.default_rng(12345).normal(scale=1.2, size=(n_classes, n_features))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    x = centers[y] + rng.normal(size=(n, n_features))
    # the sign of feature 0 flips which half of feature 1's range a class occupies: needs a hidden layer
    x[:, 1] += np.where(x[:, 0] > 0, 1.0, -1.0) * (y - (n_classes - 1) / 2)
    return x.astype(np.float32), y.astype(np.int64)


def image_data(*, n: int, seed: int, size: int = 16, noise: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 1-channel textures in four classes: horizontal, vertical, diagonal stripes and a checkerboard."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n)
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    freq = rng.uniform(0.5, 1.2, size=(n, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    waves = np.stack(
        [
            np.sin(freq * rows + phase),
            np.sin(freq * cols + phase),
            np.sin(freq * (rows + cols) / np.sqrt(2) + phase),
            np.sin(freq * rows + phase) * np.sin(freq * cols + phase),
        ]
    )  # (4, n, size, size): every pattern for every sample, then pick each sample's class
    images = waves[y, np.arange(n)] + rng.normal(scale=noise, size=(n, size, size))
    return images[:, None].astype(np.float32), y.astype(np.int64)
