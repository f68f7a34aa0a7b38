"""The fingerprint computed with numpy on the CPU: from file bytes (memory-mapped) or from arrays.

Whole 1 MiB blocks are the unit of work: each is widened to ``uint64`` (a 2 MiB per-thread buffer that stays in
L2/L3), multiplied by each lane's key row into a second buffer and summed; numpy's wrapping ``uint64`` arithmetic
is exactly the ``mod 2^64`` of the definition. numpy releases the GIL in that loop, so blocks run on a thread per core.
Bytes before the first and after the last whole word of a piece are added one by one (at most 3 + 3), which is
what lets a stream be split at any byte offset (see :mod:`goldwatch.integrity.fingerprint`, property 3).

>>> import numpy as np
>>> from goldwatch.integrity.fingerprint import fingerprint_of_bytes_reference
>>> data = np.random.default_rng(0).integers(0, 256, size=1_100_003, dtype=np.uint8)
>>> fingerprint_buffer(data) == fingerprint_of_bytes_reference(data.tobytes())
True
>>> a = np.arange(12, dtype=np.float32).reshape(3, 4)
>>> fingerprint_array(a.T) == fingerprint_array(np.ascontiguousarray(a.T))   # logical row-major bytes
True
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from goldwatch.errors import DataError
from goldwatch.integrity.fingerprint import (
    WORD_BYTES,
    WORDS_PER_BLOCK,
    BlockSums,
    TensorFingerprint,
    key_table,
)

__all__ = ["add_bytes", "fingerprint_array", "fingerprint_buffer", "row_major_pieces"]

# Pieces of a non-contiguous array are copied to contiguous memory this many bytes at a time (bounded memory).
PIECE_BYTES = 16 << 20

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="goldwatch-fp")
        return _POOL


_LOCAL = threading.local()


def _lane_sums(words: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``keys @ words`` modulo 2^64 for a (2, m) key slice and m uint32 words -> shape (1, 2)."""
    # Per-thread buffers: a fresh 2 MiB array per block would be mmap'ed and page-faulted every time. Measured on
    # the 2-core benchmark machine (one core, 1 MiB blocks): widen + multiply-into-buffer + add.reduce per lane runs
    # at 2.2 GB/s, np.dot per lane at 2.0 GB/s, and a (2, m) @ (m,) uint64 matmul (no BLAS for integers) at 0.95.
    bufs = getattr(_LOCAL, "bufs", None)
    if bufs is None:
        bufs = _LOCAL.bufs = (np.empty(WORDS_PER_BLOCK, dtype=np.uint64), np.empty(WORDS_PER_BLOCK, dtype=np.uint64))
    m = len(words)
    wide, product = bufs[0][:m], bufs[1][:m]
    np.copyto(wide, words, casting="unsafe")
    out = np.empty((1, 2), dtype=np.uint64)
    for lane in (0, 1):  # two lanes, not a loop over data: each step is one vectorized pass over the block
        np.multiply(keys[lane], wide, out=product)  # wraps modulo 2^64, as the definition wants
        out[0, lane] = np.add.reduce(product)
    return out


def _add_words(sums: BlockSums, words: np.ndarray, first_word: int, *, threads: int) -> None:
    """Add whole little-endian uint32 ``words`` that start at absolute word index ``first_word``."""
    keys = key_table()
    n = len(words)
    done = 0
    pos = first_word % WORDS_PER_BLOCK
    if pos:  # leading partial block
        take = min(n, WORDS_PER_BLOCK - pos)
        sums.add(first_word // WORDS_PER_BLOCK, _lane_sums(words[:take], keys[:, pos : pos + take]))
        done = take
    full = (n - done) // WORDS_PER_BLOCK
    if full:
        first_block = (first_word + done) // WORDS_PER_BLOCK
        rows = words[done : done + full * WORDS_PER_BLOCK].reshape(full, WORDS_PER_BLOCK)
        if threads > 1 and full > 1:
            parts = list(_pool().map(lambda row: _lane_sums(row, keys), rows))
        else:
            parts = [_lane_sums(row, keys) for row in rows]
        sums.add(first_block, np.concatenate(parts))
        done += full * WORDS_PER_BLOCK
    if done < n:  # trailing partial block
        sums.add((first_word + done) // WORDS_PER_BLOCK, _lane_sums(words[done:], keys[:, : n - done]))


def add_bytes(sums: BlockSums, data: np.ndarray, offset: int, *, threads: int | None = None) -> None:
    """Add the contribution of the bytes ``data`` (1-D uint8, any alignment) found at byte ``offset`` of the tensor."""
    threads = threads if threads is not None else (os.cpu_count() or 1)
    n = len(data)
    head = min(n, -offset % WORD_BYTES)
    for t in range(head):  # bytes that complete a word begun by the previous piece
        pos = offset + t
        sums.add_word(pos // WORD_BYTES, int(data[t]) << (8 * (pos % WORD_BYTES)))
    body = (n - head) - (n - head) % WORD_BYTES
    if body:
        words = data[head : head + body].view("<u4")
        _add_words(sums, words, (offset + head) // WORD_BYTES, threads=threads)
    for t in range(head + body, n):  # bytes that begin a word the next piece completes (or the zero-padded tail)
        pos = offset + t
        sums.add_word(pos // WORD_BYTES, int(data[t]) << (8 * (pos % WORD_BYTES)))


def _as_bytes(buffer: Any) -> np.ndarray:
    if isinstance(buffer, np.ndarray):
        if not buffer.flags.c_contiguous:
            raise DataError(
                f"expected a contiguous buffer, got a strided array of shape {buffer.shape}",
                hint="use fingerprint_array for arrays, which reads strided arrays in logical row-major order",
            )
        return buffer.reshape(-1).view(np.uint8)
    return np.frombuffer(buffer, dtype=np.uint8)


def fingerprint_buffer(buffer: Any, *, threads: int | None = None) -> TensorFingerprint:
    """Fingerprint the raw bytes of ``buffer`` (bytes, memoryview, mmap, contiguous numpy array)."""
    data = _as_bytes(buffer)
    sums = BlockSums(len(data))
    add_bytes(sums, data, 0, threads=threads)
    return sums.finalize()


def row_major_pieces(
    shape: tuple[int, ...], itemsize: int, max_bytes: int
) -> Iterator[tuple[tuple[int | slice, ...], int, int]]:
    """Cover a tensor of ``shape`` in row-major order with index tuples of at most ``max_bytes`` each.

    Yields ``(index, byte_offset, nbytes)``; ``tensor[index]`` is the piece (a view; copy it to read its bytes).
    A single innermost row longer than ``max_bytes`` is cut along the last dimension.

    >>> [(idx, off, n) for idx, off, n in row_major_pieces((2, 3), 4, 16)]
    [((slice(0, 1, None),), 0, 12), ((slice(1, 2, None),), 12, 12)]
    >>> [(idx, off) for idx, off, _ in row_major_pieces((2, 3), 4, 8)]  # doctest: +NORMALIZE_WHITESPACE
    [((0, slice(0, 2, None)), 0), ((0, slice(2, 3, None)), 8),
     ((1, slice(0, 2, None)), 12), ((1, slice(2, 3, None)), 20)]
    """
    if not shape:
        yield (), 0, itemsize
        return
    if 0 in shape:
        return
    inner = [itemsize] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        inner[d] = inner[d + 1] * shape[d + 1]

    def walk(prefix: tuple[int | slice, ...], d: int, base: int) -> Iterator[tuple[tuple[int | slice, ...], int, int]]:
        row = inner[d]
        if row <= max_bytes or d == len(shape) - 1:
            per = max(1, max_bytes // row)
            for a in range(0, shape[d], per):
                b = min(shape[d], a + per)
                yield (*prefix, slice(a, b)), base + a * row, (b - a) * row
        else:
            for i in range(shape[d]):
                yield from walk((*prefix, i), d + 1, base + i * row)

    yield from walk((), 0, 0)


def fingerprint_array(array: np.ndarray, *, threads: int | None = None) -> TensorFingerprint:
    """Fingerprint the logical row-major bytes of ``array`` (strided arrays are read in bounded pieces)."""
    if array.dtype.hasobject:
        raise DataError(f"cannot fingerprint an array of dtype {array.dtype}", hint="pass a numeric or bool array")
    if array.dtype.byteorder == ">" and array.dtype.itemsize > 1:
        # files and devices hold little-endian bytes; a big-endian view of them would fingerprint differently
        array = array.astype(array.dtype.newbyteorder("<"))
    if array.flags.c_contiguous:
        return fingerprint_buffer(array, threads=threads)
    sums = BlockSums(array.size * array.dtype.itemsize)
    for index, offset, _ in row_major_pieces(array.shape, array.dtype.itemsize, PIECE_BYTES):
        piece = np.ascontiguousarray(array[index])
        add_bytes(sums, piece.reshape(-1).view(np.uint8), offset, threads=threads)
    return sums.finalize()
