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

from typing import TYPE_CHECKING, Any

import numpy as np

from goldwatch.integrity import fingerprint_numpy
from goldwatch.integrity.fingerprint import BLOCK_BYTES, BlockSums, TensorFingerprint, block_count
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

__all__ = ["TensorScan"]


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
            # one thread: a serving process's cores belong to inference; numpy drops the GIL inside each block
            fingerprint_numpy.add_bytes(self._host, self._bytes[start:stop], start, threads=1)
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
