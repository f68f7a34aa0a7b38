"""The BERT-style sentence encoder behind :func:`goldwatch.examples.models.sentence_encoder` (imports torch).

Parameter names follow Hugging Face's ``BertModel`` (``embeddings.word_embeddings.weight``,
``encoder.layer.0.attention.self.query.weight``, ...), so a checkpoint written from it looks like a published one;
the forward pass is what sentence-transformers serve: mean pooling over the attention mask, then unit L2 norm.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SentenceEncoder"]


class _Embeddings(nn.Module):
    def __init__(self, vocab_size: int, hidden: int, max_len: int, with_position_ids: bool) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_len, hidden)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)
        # a published checkpoint carries this buffer; the serving module need not (persistent only if asked)
        self.register_buffer("position_ids", torch.arange(max_len).unsqueeze(0), persistent=with_position_ids)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = self.get_buffer("position_ids")[:, : input_ids.shape[1]]
        h = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        return self.LayerNorm(h + self.token_type_embeddings(token_type_ids))


class _Linear(nn.Module):
    """``dense`` + ``LayerNorm`` of a residual block, as BERT names them."""

    def __init__(self, n_in: int, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)


class _Attention(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.self = _SelfAttention(hidden)
        self.output = _Linear(hidden, hidden)


class _Intermediate(nn.Module):
    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, intermediate)


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int) -> None:
        super().__init__()
        self.heads = heads
        self.attention = _Attention(hidden)
        self.intermediate = _Intermediate(hidden, intermediate)
        self.output = _Linear(intermediate, hidden)

    def forward(self, h: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        b, s, d = h.shape
        head = d // self.heads
        att = self.attention.self

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, s, self.heads, head).transpose(1, 2)

        q, k, v = split(att.query(h)), split(att.key(h)), split(att.value(h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(head) + additive_mask
        context = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, s, d)
        h = self.attention.output.LayerNorm(h + self.attention.output.dense(context))
        inner = nn.functional.gelu(self.intermediate.dense(h))
        return self.output.LayerNorm(h + self.output.dense(inner))


class _Encoder(nn.Module):
    def __init__(self, layers: int, hidden: int, heads: int, intermediate: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(hidden, heads, intermediate) for _ in range(layers))


class _Pooler(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)


class SentenceEncoder(nn.Module):
    """``(input_ids, attention_mask, token_type_ids)`` int64 ``(batch, seq)`` -> unit-norm ``(batch, hidden)``.

    ``with_pooler`` adds BERT's CLS pooler, which mean pooling never uses (published checkpoints carry it).
    """

    def __init__(self, *, vocab_size: int, hidden: int, layers: int, heads: int, intermediate: int, max_len: int,
                 with_pooler: bool = False) -> None:
        super().__init__()
        self.embeddings = _Embeddings(vocab_size, hidden, max_len, with_position_ids=with_pooler)
        self.encoder = _Encoder(layers, hidden, heads, intermediate)
        if with_pooler:
            self.pooler = _Pooler(hidden)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.to(torch.float32)
        additive = (1.0 - mask)[:, None, None, :] * -10000.0
        h = self.embeddings(input_ids, token_type_ids)
        for layer in self.encoder.layer:
            h = layer(h, additive)
        weights = mask.unsqueeze(-1)
        pooled = (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2.0, dim=1)
