"""The fingerprint of a loaded torch tensor, computed on the tensor's own device without a host copy of it.

Three backends, one definition (:mod:`goldwatch.integrity.fingerprint`), bit-identical results:

* ``"numpy"`` -- CPU tensors: a zero-copy numpy view of the tensor's bytes goes through the threaded numpy kernel
  (the fastest CPU path).
* ``"torch"`` -- eager torch ``int64`` arithmetic on any device (two's complement wraps modulo 2^64, exactly the
  definition's ring), processing at most ``CHUNK_BLOCKS`` blocks at a time so the extra memory stays bounded.
* ``"triton"`` -- CUDA: one fused kernel that reads each weight byte once
  (:mod:`goldwatch.integrity.fingerprint_triton`, imported only for CUDA tensors).

``"auto"`` picks numpy on CPU and Triton on CUDA when Triton is installed, else eager torch. Any dtype works (bf16,
fp16, float8, int8, bool, ...): the fingerprint is taken over the raw bytes. Non-contiguous tensors are read in
logical row-major order, copying pieces of at most ``PIECE_BYTES`` to contiguous memory one at a time.

>>> import torch
>>> from goldwatch.integrity.fingerprint_numpy import fingerprint_array
>>> t = torch.arange(24, dtype=torch.bfloat16).reshape(4, 6)
>>> fingerprint_tensor(t, backend="torch") == fingerprint_tensor(t, backend="numpy")
True
>>> fingerprint_tensor(t.t(), backend="torch") == fingerprint_tensor(t.t().contiguous(), backend="numpy")
True
>>> x = torch.arange(10, dtype=torch.int32)
>>> fingerprint_tensor(x) == fingerprint_array(x.numpy())
True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from goldwatch._optional import require
from goldwatch.errors import DataError, DependencyMissingError
from goldwatch.integrity import fingerprint_numpy
from goldwatch.integrity.fingerprint import (
    WORD_BYTES,
    WORDS_PER_BLOCK,
    BlockSums,
    TensorFingerprint,
    key_table,
)

if TYPE_CHECKING:
    import torch

__all__ = ["Backend", "fingerprint_tensor", "resolve_backend", "triton_available"]

Backend = Literal["auto", "numpy", "torch", "triton"]

CHUNK_BLOCKS = 16  # eager path: 16 MiB of weights per step -> 2 x 32 MiB of int64 temporaries
FUSED_BLOCKS = 4096  # fused path: 4 GiB per launch (no temporaries but 1 KiB of tile sums per MiB)
PIECE_BYTES = 16 << 20  # non-contiguous tensors are made contiguous this many bytes at a time
_LOW32 = 0xFFFFFFFF

_KEYS: dict[str, Any] = {}


def device_keys(device: torch.device) -> torch.Tensor:
    """The key table as a (2, WORDS_PER_BLOCK) int64 tensor on ``device``, uploaded once per device (4 MiB)."""
    torch_module = require("torch", purpose="fingerprinting torch tensors")
    name = str(device)
    if name not in _KEYS:
        # the uint64 keys reinterpreted as int64: same bits, and int64 arithmetic wraps modulo 2^64 alike
        _KEYS[name] = torch_module.from_numpy(key_table().view(np.int64).copy()).to(device)
    keys: torch.Tensor = _KEYS[name]
    return keys


def triton_available() -> bool:
    """True when Triton can be imported (it ships with CUDA builds of torch)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(tensor: torch.Tensor, backend: Backend) -> Literal["numpy", "torch", "triton"]:
    """The backend ``auto`` stands for on ``tensor``'s device, or ``backend`` checked against that device."""
    kind = tensor.device.type
    if backend == "auto":
        if kind == "cpu":
            return "numpy"
        return "triton" if kind == "cuda" and triton_available() else "torch"
    if backend == "numpy" and kind != "cpu":
        raise DataError(
            f"backend 'numpy' needs a CPU tensor, got one on {tensor.device}",
            hint="use backend='auto' or 'torch' to fingerprint on the device without copying to the host",
        )
    if backend == "triton":
        if kind != "cuda":
            raise DataError(f"backend 'triton' needs a CUDA tensor, got one on {tensor.device}", hint="use 'auto'")
        if not triton_available():
            raise DependencyMissingError("triton is not installed", hint="pip install triton, or use backend='torch'")
    return backend


def _check_tensor(tensor: Any) -> torch.Tensor:
    torch = require("torch", purpose="fingerprinting torch tensors")
    if not isinstance(tensor, torch.Tensor):
        raise DataError(f"expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.layout != torch.strided or tensor.is_quantized or tensor.device.type == "meta":
        raise DataError(
            f"cannot fingerprint a {tensor.layout} / quantized={tensor.is_quantized} tensor on {tensor.device}",
            hint="fingerprint dense tensors that hold data (materialize meta tensors, dequantize or convert first)",
        )
    return tensor.detach()


def _byte_pieces(tensor: torch.Tensor) -> Iterator[tuple[torch.Tensor, int]]:
    """(uint8 1-D tensor on the device, byte offset) pieces of the logical row-major bytes, in order."""

    if tensor.is_contiguous():
        yield _flat_bytes(tensor), 0
        return
    pieces = fingerprint_numpy.row_major_pieces(tuple(tensor.shape), tensor.element_size(), PIECE_BYTES)
    for index, offset, _ in pieces:
        yield _flat_bytes(tensor[index].contiguous()), offset


def _flat_bytes(tensor: torch.Tensor) -> torch.Tensor:
    """The bytes of a contiguous tensor as a 1-D uint8 view (no copy)."""
    import torch

    # as_strided, not reshape(-1): a contiguous tensor of 0 or 1 elements may keep a stride != 1, which
    # view(uint8) refuses; with stride 1 over numel elements the view is exactly the tensor's bytes
    flat = tensor.as_strided((tensor.numel(),), (1,))
    return flat.view(torch.uint8)


def _words_int32(data: torch.Tensor) -> torch.Tensor:
    """A uint8 tensor of length 4k as k little-endian 32-bit words (a view when aligned, else assembled)."""
    import torch

    try:
        return data.view(torch.int32)
    except RuntimeError:
        # storage offset not a multiple of 4 (e.g. a slice of an int8 tensor): build the words from the bytes,
        # a bounded copy because callers pass at most CHUNK_BLOCKS blocks at a time
        b = data.view(-1, 4).to(torch.int64)
        return (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)).to(torch.int32)


def _eager_words(words: torch.Tensor, first_word: int, acc: torch.Tensor, keys: torch.Tensor) -> None:
    """Add the lane sums of int32 ``words`` starting at absolute word ``first_word`` into ``acc`` (nblocks, 2)."""
    n = words.numel()
    done = 0
    while done < n:
        block, pos = divmod(first_word + done, WORDS_PER_BLOCK)
        if pos or n - done < WORDS_PER_BLOCK:
            take = min(n - done, WORDS_PER_BLOCK - pos)
            w = words[done : done + take].to(acc.dtype) & _LOW32
            acc[block] += (w.unsqueeze(0) * keys[:, pos : pos + take]).sum(dim=1)
            done += take
        else:
            full = min((n - done) // WORDS_PER_BLOCK, CHUNK_BLOCKS)
            w = words[done : done + full * WORDS_PER_BLOCK].view(full, WORDS_PER_BLOCK).to(acc.dtype) & _LOW32
            acc[block : block + full, 0] += (w * keys[0]).sum(dim=1)
            acc[block : block + full, 1] += (w * keys[1]).sum(dim=1)
            done += full * WORDS_PER_BLOCK


def _device_add_bytes(
    host: BlockSums, acc: torch.Tensor, data: torch.Tensor, offset: int, *, fused: bool
) -> None:
    """Add a uint8 piece at byte ``offset``: loose head/tail bytes on the host, whole words on the device."""
    n = data.numel()
    head = min(n, -offset % WORD_BYTES)
    body = (n - head) - (n - head) % WORD_BYTES
    loose = [(t, v) for t, v in zip(range(head), data[:head].tolist())]
    loose += [(t, v) for t, v in zip(range(head + body, n), data[head + body :].tolist())]
    for t, value in loose:  # at most 6 bytes per piece
        pos = offset + t
        host.add_word(pos // WORD_BYTES, value << (8 * (pos % WORD_BYTES)))
    if not body:
        return
    first_word = (offset + head) // WORD_BYTES
    keys = device_keys(acc.device)
    # The fused kernel reads the words in place: it needs them 4-byte aligned and starting on a block boundary
    # (true for every whole contiguous tensor). Anything else takes the eager path in bounded steps.
    fused = fused and first_word % WORDS_PER_BLOCK == 0 and (data.data_ptr() + head) % WORD_BYTES == 0
    # few, large launches for the fused kernel (launch overhead would dominate small ones)
    step = (FUSED_BLOCKS if fused else CHUNK_BLOCKS) * WORDS_PER_BLOCK * WORD_BYTES
    for start in range(0, body, step):
        part = data[head + start : head + min(body, start + step)]
        words = _words_int32(part)
        word0 = first_word + start // WORD_BYTES
        if fused:
            from goldwatch.integrity.fingerprint_triton import fused_block_sums

            fused_block_sums(words, word0 // WORDS_PER_BLOCK, acc, keys)
        else:
            _eager_words(words, word0, acc, keys)


def fingerprint_tensor(tensor: Any, *, backend: Backend = "auto") -> TensorFingerprint:
    """Fingerprint a torch tensor's logical row-major bytes on its own device (see the module docstring)."""
    torch = require("torch", purpose="fingerprinting torch tensors")
    tensor = _check_tensor(tensor)
    chosen = resolve_backend(tensor, backend)
    nbytes = tensor.numel() * tensor.element_size()
    host = BlockSums(nbytes)
    if chosen == "numpy":
        for piece, offset in _byte_pieces(tensor):
            fingerprint_numpy.add_bytes(host, piece.numpy(), offset)
        return host.finalize()
    acc = torch.zeros((len(host.sums), 2), dtype=torch.int64, device=tensor.device)
    with torch.no_grad():
        for piece, offset in _byte_pieces(tensor):
            _device_add_bytes(host, acc, piece, offset, fused=chosen == "triton")
    # one small transfer of the per-block sums (16 bytes per MiB of weights), never of the weights
    host.sums += acc.cpu().numpy().view(np.uint64)
    return host.finalize()
