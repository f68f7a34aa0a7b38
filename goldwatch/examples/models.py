"""Factories of the example architectures (``module:function`` targets of ``goldwatch-model.json``).

Both stack two layers of the same shape on purpose: the fault-injection matrix swaps them.

>>> m = tabular_mlp()
>>> [tuple(p.shape) for p in m.parameters()][:2]
[(32, 8), (32,)]
"""

from __future__ import annotations

from typing import Any

from goldwatch._optional import require

__all__ = ["small_cnn", "tabular_mlp"]


def tabular_mlp(*, n_features: int = 8, hidden: int = 32, n_classes: int = 3) -> Any:
    """A 4-layer ReLU MLP classifier: ``x (batch, n_features) -> logits (batch, n_classes)``."""
    nn = require("torch.nn", purpose="building the example tabular model")
    return nn.Sequential(
        nn.Linear(n_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )


def small_cnn(*, channels: int = 8, n_classes: int = 4, size: int = 16) -> Any:
    """Three 3x3 convolutions, a 2x2 max-pool and a linear head: ``x (batch, 1, size, size) -> logits``."""
    nn = require("torch.nn", purpose="building the example convolutional model")
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * (size // 2) ** 2, n_classes),
    )
