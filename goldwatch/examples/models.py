"""Factories of the example architectures (``module:function`` targets of ``goldwatch-model.json``).

The tabular and convolutional ones stack two layers of the same shape on purpose: the fault-injection matrix swaps
them. :func:`sentence_encoder` is a BERT-style transformer with sentence-embedding output.

>>> m = tabular_mlp()
>>> [tuple(p.shape) for p in m.parameters()][:2]
[(32, 8), (32,)]
"""

from __future__ import annotations

from typing import Any

from goldwatch._optional import require

__all__ = ["sentence_encoder", "small_cnn", "tabular_mlp"]


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


def sentence_encoder(
    *, vocab_size: int = 512, hidden: int = 384, layers: int = 1, heads: int = 6, intermediate: int = 512,
    max_len: int = 32, with_pooler: bool = False,
) -> Any:
    """A BERT-style encoder with mean pooling and unit-norm output: ``(input_ids, attention_mask,
    token_type_ids)`` int64 ``(batch, seq)`` -> ``(batch, hidden)``. ``with_pooler`` adds the CLS pooler (and the
    ``embeddings.position_ids`` buffer) that published checkpoints carry and mean pooling never uses."""
    require("torch", purpose="building the example sentence encoder")
    from goldwatch.examples._encoder import SentenceEncoder

    return SentenceEncoder(vocab_size=vocab_size, hidden=hidden, layers=layers, heads=heads,
                           intermediate=intermediate, max_len=max_len, with_pooler=with_pooler)
