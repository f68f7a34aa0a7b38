"""Fingerprinting a resident tensor a few 1 MiB blocks at a time: the unit of work of a paced, in-process check.

A check that runs inside a serving process must not take a core (or a GPU) away from inference for the whole
second a large model takes to fingerprint. :class:`TensorScan` lets the caller walk a tensor in slices of whole
blocks, in any order, pausing between them; the blocks' lane sums are the same numbers a whole-tensor fingerprint
adds up (the definition is a sum modulo 2^64 per block, property 3 of :mod:`goldwatch.integrity.fingerprint`), so
:meth:`TensorScan.finish` returns exactly :func:`~goldwatch.integrity.fingerprint_torch.fingerprint_tensor`'s
result. Nothing is copied: a CPU tensor is read through a zero-copy numpy view on the calling thread (numpy releases
the GIL inside each block's arithmetic), a CUDA tensor on its own device by the fused Triton kernel (eager torch
where Triton is missing), on the stream given, with one transfer of the per-block sums (16 bytes per MiB) at the end.

>>> import torch
>>> from goldwatch.integrity.fingerprint_torch import fingerprint_tensor
>>> t = torch.arange(700_000, dtype=torch.float32)            # 2.7 MB: 3 blocks
>>> scan = TensorScan(t)
>>> scan.nblocks
3
>>> for first in (2, 0, 1):                                    # any order, one block at a time
...     _ = scan.scan(first, first + 1)
>>> scan.finish() == fingerprint_tensor(t)
True
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from goldwatch.integrity import fingerprint_numpy
from goldwatch.integrity.fingerprint import (
    BLOCK_BYTES,
    WORDS_PER_BLOCK,
    BlockSums,
    TensorFingerprint,
    block_count,
    key_table,
)
from goldwatch.integrity.fingerprint_torch import (
    Backend,
    _check_tensor,
    _device_add_bytes,
    _flat_bytes,
    fingerprint_tensor,
    resolve_backend,
)

if TYPE_CHECKING:
    import torch

__all__ = ["TensorScan", "whole_block_sums"]

_LOCAL = threading.local()
#: blocks per group of numpy calls. Measured on the 2-core benchmark machine (one thread, best of 6): 1.26 GB/s
#: with one block per group, 1.09 with two, 0.58 with four (the two 8-byte-per-word buffers leave the caches).
#: Two halves the GIL round trips per byte for 13% of speed: a serving thread waits on the agent less often.
GROUP_BLOCKS = 2


def whole_block_sums(data: np.ndarray) -> np.ndarray:
    """Lane sums (shape ``(k, 2)``, uint64, before the length term) of ``k`` whole 1 MiB blocks of bytes ``data``.

    Five numpy calls per group of ``GROUP_BLOCKS`` blocks (widen, then multiply and reduce per lane), each of which
    releases the GIL: a thread serving requests next to this one gets the GIL back once per call, not several times
    per block. Buffers (2 x 8 bytes per word of a group) are kept per thread.

    >>> from goldwatch.integrity.fingerprint_numpy import fingerprint_buffer
    >>> data = np.random.default_rng(0).integers(0, 256, size=2 * BLOCK_BYTES, dtype=np.uint8)
    >>> sums = BlockSums(len(data)); sums.add(0, whole_block_sums(data))
    >>> sums.finalize() == fingerprint_buffer(data)
    True
    """
    k, rest = divmod(len(data), BLOCK_BYTES)
    if rest:
        raise ValueError(f"{len(data)} bytes are not whole {BLOCK_BYTES}-byte blocks")
    bufs = getattr(_LOCAL, "bufs", None)
    if bufs is None:
        size = GROUP_BLOCKS * WORDS_PER_BLOCK
        bufs = _LOCAL.bufs = (np.empty(size, dtype=np.uint64), np.empty(size, dtype=np.uint64))
    words = data.view("<u4").reshape(k, WORDS_PER_BLOCK)
    keys = key_table()
    out = np.empty((k, 2), dtype=np.uint64)
    for first in range(0, k, GROUP_BLOCKS):  # groups of blocks, each one pass of vectorized calls
        g = min(GROUP_BLOCKS, k - first)
        wide = bufs[0][: g * WORDS_PER_BLOCK].reshape(g, WORDS_PER_BLOCK)
        product = bufs[1][: g * WORDS_PER_BLOCK].reshape(g, WORDS_PER_BLOCK)
        np.copyto(wide, words[first : first + g], casting="unsafe")
        for lane in (0, 1):  # two lanes, not a loop over data
            np.multiply(wide, keys[lane], out=product)  # wraps modulo 2^64, as the definition wants
            np.add.reduce(product, axis=1, out=out[first : first + g, lane])
    return out


class TensorScan:
    """The fingerprint of one tensor, computed over block ranges the caller chooses (each block exactly once).

    ``stream``: a ``torch.cuda.Stream`` the device work is queued on (CUDA tensors only; None: the current stream).
    A non-contiguous tensor cannot be cut into byte slices without copying, so it is scanned whole by the first
    :meth:`scan` call (later calls add nothing); parameters and buffers are contiguous in practice.
    """

    def __init__(self, tensor: Any, *, backend: Backend = "auto", stream: Any = None) -> None:
        self.tensor: torch.Tensor = _check_tensor(tensor)
        self.backend = resolve_backend(self.tensor, backend)
        self.nbytes = self.tensor.numel() * self.tensor.element_size()
        self.nblocks = block_count(self.nbytes)
        self.stream = stream
        self._host = BlockSums(self.nbytes)
        self._done = np.zeros(self.nblocks, dtype=bool)
        self._whole: TensorFingerprint | None = None
        self._acc: torch.Tensor | None = None
        self._bytes: Any = None
        if not self.tensor.is_contiguous():
            return
        if self.backend == "numpy":
            self._bytes = _flat_bytes(self.tensor).numpy()  # a view of the tensor's memory, not a copy
        else:
            import torch

            self._bytes = _flat_bytes(self.tensor)
            with self._on_stream():
                self._acc = torch.zeros((self.nblocks, 2), dtype=torch.int64, device=self.tensor.device)

    def _on_stream(self) -> Any:
        import contextlib

        if self.stream is None or self.tensor.device.type != "cuda":
            return contextlib.nullcontext()
        import torch

        return torch.cuda.stream(self.stream)

    @property
    def complete(self) -> bool:
        return bool(self._done.all()) or self._whole is not None

    def scan(self, first_block: int, stop_block: int) -> int:
        """Add blocks ``[first_block, stop_block)``; returns the number of tensor bytes they hold.

        CUDA work is queued on the stream and may still be running when this returns (synchronize the stream, or
        record an event, to time it).
        """
        if not 0 <= first_block <= stop_block <= self.nblocks:
            raise ValueError(f"block range [{first_block}, {stop_block}) outside [0, {self.nblocks})")
        if self._bytes is None:  # non-contiguous: the whole tensor, once
            if self._whole is not None:
                return 0
            with self._on_stream():
                self._whole = fingerprint_tensor(self.tensor, backend=self.backend)
            return self.nbytes
        if self._done[first_block:stop_block].any():
            raise ValueError(f"blocks [{first_block}, {stop_block}) were already scanned")
        start = first_block * BLOCK_BYTES
        stop = min(stop_block * BLOCK_BYTES, self.nbytes)
        if stop <= start:
            return 0
        if self.backend == "numpy":
            # one thread: a serving process's cores belong to inference; numpy drops the GIL in each call
            whole = (stop - start) // BLOCK_BYTES * BLOCK_BYTES
            if whole:
                self._host.add(first_block, whole_block_sums(self._bytes[start : start + whole]))
            if start + whole < stop:  # the tensor's short last block
                fingerprint_numpy.add_bytes(self._host, self._bytes[start + whole : stop], start + whole, threads=1)
        else:
            import torch

            assert self._acc is not None
            with self._on_stream(), torch.no_grad():
                _device_add_bytes(self._host, self._acc, self._bytes[start:stop], start,
                                  fused=self.backend == "triton")
        self._done[first_block:stop_block] = True
        return stop - start

    def finish(self) -> TensorFingerprint:
        """The tensor's fingerprint; every block must have been scanned."""
        if self._whole is not None:
            return self._whole
        if not self._done.all():
            missing = int((~self._done).sum())
            raise ValueError(f"{missing} of {self.nblocks} blocks were not scanned")
        if self._acc is not None:
            with self._on_stream():
                # one small transfer of the per-block sums (16 bytes per MiB of weights), never of the weights
                self._host.sums += self._acc.cpu().numpy().view(np.uint64)
        return self._host.finalize()
