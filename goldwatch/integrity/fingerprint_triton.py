"""A fused Triton kernel for the fingerprint of CUDA tensors: each weight byte is read from HBM exactly once.

Imported only for CUDA tensors (by :mod:`goldwatch.integrity.fingerprint_torch`), never by ``import goldwatch``.
Each program takes a tile of ``TILE`` words that lies inside one 1 MiB block, widens the words to 64 bits, multiplies
them by the two key rows (2 x 2 MiB, which stay in L2 across all programs) and writes the two lane sums of the tile.
A second, tiny reduction adds the tiles of each block. Both steps are integer additions modulo 2^64, so the result is
the same number the numpy and eager torch paths compute, whatever order the GPU schedules the programs in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from goldwatch._optional import require
from goldwatch.integrity.fingerprint import WORDS_PER_BLOCK

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only torch builds have no Triton; importing this module must still work (doctests, docs)
    triton = None

if TYPE_CHECKING:
    import torch

__all__ = ["TILE", "fused_block_sums"]

TILE = 4096  # words per program; divides WORDS_PER_BLOCK, so a tile never straddles two blocks
TILES_PER_BLOCK = WORDS_PER_BLOCK // TILE


def _tile_sums(words_ptr, keys_ptr, out_ptr, n_words, TILE: tl.constexpr, TILES_PER_BLOCK: tl.constexpr,
               WORDS_PER_BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    lane = tl.arange(0, TILE)
    offs = pid * TILE + lane
    mask = offs < n_words
    # int32 -> uint32 (bitcast) -> int64 zero-extends: the word's value in [0, 2^32)
    w = tl.load(words_ptr + offs, mask=mask, other=0).to(tl.uint32, bitcast=True).to(tl.int64)
    kpos = (pid % TILES_PER_BLOCK) * TILE + lane
    k0 = tl.load(keys_ptr + kpos, mask=mask, other=0)
    k1 = tl.load(keys_ptr + WORDS_PER_BLOCK + kpos, mask=mask, other=0)
    # int64 multiply and add wrap modulo 2^64: the ring the fingerprint is defined in
    s0 = tl.sum(w * k0, axis=0)
    s1 = tl.sum(w * k1, axis=0)
    tl.store(out_ptr + pid * 2, s0)
    tl.store(out_ptr + pid * 2 + 1, s1)


_tile_sums_kernel: Any = triton.jit(_tile_sums) if triton is not None else None


def fused_block_sums(words: torch.Tensor, first_block: int, acc: torch.Tensor, keys: torch.Tensor) -> None:
    """Add the lane sums of the contiguous int32 CUDA tensor ``words`` (starting at block ``first_block``) to ``acc``.

    ``acc`` is the (nblocks, 2) int64 accumulator of the whole tensor, ``keys`` the (2, WORDS_PER_BLOCK) int64 key
    table on the same device.
    """
    import torch

    if _tile_sums_kernel is None:
        require("triton", purpose="the fused CUDA fingerprint kernel")
    n = words.numel()
    tiles = triton.cdiv(n, TILE)
    blocks = triton.cdiv(n, WORDS_PER_BLOCK)
    partial = torch.zeros((blocks * TILES_PER_BLOCK, 2), dtype=torch.int64, device=words.device)
    _tile_sums_kernel[(tiles,)](
        words, keys, partial, n,
        TILE=TILE, TILES_PER_BLOCK=TILES_PER_BLOCK, WORDS_PER_BLOCK=WORDS_PER_BLOCK, num_warps=8,
    )
    acc[first_block : first_block + blocks] += partial.view(blocks, TILES_PER_BLOCK, 2).sum(dim=1)
