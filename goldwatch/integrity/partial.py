"""Partial fingerprints of tensor shards, and the merge that proves byte coverage and gives the whole fingerprint.

The fingerprint (:mod:`goldwatch.integrity.fingerprint`) is a sum modulo 2^64 per 1 MiB block of terms that each
depend only on a word's value and its position in the block. So whoever holds some bytes of a tensor -- a rank
with a tensor-parallel slice resident on its GPU, a reader of one shard file, a Dask task given a byte range --
can add up their terms into a :class:`PartialFingerprint`, and the sum of the partials of a tensor is the
fingerprint of the whole, bit for bit, whatever the split. Only the per-block length term is added once, at the
merge.

A sum cannot tell a byte range counted twice or never; :func:`merge_partials` proves coverage from the ranges every
partial declares: the ranges of a tensor must tile ``[0, nbytes)`` exactly, or the merge fails naming the tensor,
the range and the partials involved. Replicated tensors (the same bytes resident on several ranks) are declared
``replica=True``: they are compared with the primary copy, never added.

SHA-256 does not merge: a file digest is a sequential hash of one file's bytes, so a checkpoint sharded across
files or ranks has one digest per file, and whole-tensor integrity across shards rests on these fingerprints.

>>> import numpy as np
>>> from goldwatch.integrity.fingerprint_numpy import fingerprint_array
>>> w = np.arange(48, dtype=np.float32).reshape(6, 8)
>>> left = partial_from_slice("w", w[:, :3], offsets=(0, 0), global_shape=(6, 8), origin="rank 0")
>>> right = partial_from_slice("w", w[:, 3:], offsets=(0, 3), global_shape=(6, 8), origin="rank 1")
>>> merge_partials([left, right]).fingerprints["w"] == fingerprint_array(w)
True
>>> merge_partials([left])
Traceback (most recent call last):
...
goldwatch.errors.ArtifactError: tensor 'w': 6 byte range(s) covered by no partial, first ...
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from goldwatch.errors import ArtifactError, DataError
from goldwatch.integrity.dtypes import dtype_of
from goldwatch.integrity.fingerprint import (
    WORD_BYTES,
    WORDS_PER_BLOCK,
    BlockSums,
    TensorFingerprint,
    key_table,
)

__all__ = [
    "MergedFingerprints",
    "PartialFingerprint",
    "merge_partials",
    "partial_from_bytes",
    "partial_from_slice",
    "slice_byte_runs",
]

# words processed per step of the vectorized (gathered-key) path: bounded temporaries of ~8 x this many bytes
_STEP_WORDS = 1 << 22


@dataclasses.dataclass(frozen=True)
class PartialFingerprint:
    """The fingerprint terms of some bytes of one tensor.

    ``starts``/``stops``: the byte ranges ``[start, stop)`` of the whole tensor that were added (sorted, disjoint);
    ``blocks``/``sums``: the touched 1 MiB blocks and their two lane sums modulo 2^64, without the length term;
    ``nbytes``, ``dtype``, ``shape``: of the whole tensor; ``origin``: who computed it (for messages);
    ``replica``: a copy of bytes another partial (the primary) also covers -- compared, not added.
    """

    tensor: str
    nbytes: int
    dtype: str
    shape: tuple[int, ...]
    starts: np.ndarray
    stops: np.ndarray
    blocks: np.ndarray
    sums: np.ndarray
    origin: str = ""
    replica: bool = False

    @property
    def covered(self) -> int:
        return int(np.sum(self.stops - self.starts))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (integers as such, lane sums as 32 hex digits per block)."""
        return {
            "tensor": self.tensor, "nbytes": self.nbytes, "dtype": self.dtype, "shape": list(self.shape),
            "starts": self.starts.tolist(), "stops": self.stops.tolist(), "blocks": self.blocks.tolist(),
            "sums": [f"{int(a):016x}{int(b):016x}" for a, b in self.sums.tolist()],
            "origin": self.origin, "replica": self.replica,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PartialFingerprint:
        try:
            sums = np.array([[int(s[:16], 16), int(s[16:], 16)] for s in raw["sums"]], dtype=np.uint64)
            return cls(
                tensor=str(raw["tensor"]), nbytes=int(raw["nbytes"]), dtype=str(raw["dtype"]),
                shape=tuple(int(d) for d in raw["shape"]),
                starts=np.asarray(raw["starts"], dtype=np.int64), stops=np.asarray(raw["stops"], dtype=np.int64),
                blocks=np.asarray(raw["blocks"], dtype=np.int64), sums=sums.reshape(-1, 2),
                origin=str(raw.get("origin", "")), replica=bool(raw.get("replica", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"malformed partial fingerprint ({type(exc).__name__}: {exc})",
                                hint="send partials made by PartialFingerprint.to_dict") from None


# ----------------------------------------------------------------------------------------------- layout


def slice_byte_runs(
    offsets: Sequence[int], sizes: Sequence[int], global_shape: Sequence[int], itemsize: int
) -> tuple[np.ndarray, int]:
    """Where the row-major bytes of the block ``[offsets, offsets + sizes)`` of a tensor lie in the whole tensor.

    Returns ``(starts, run_bytes)``: the block's bytes, in its own row-major order, are runs of ``run_bytes``
    contiguous bytes of the whole tensor starting at ``starts`` (increasing). Trailing dimensions the block spans
    fully merge into one run.

    >>> slice_byte_runs((0, 2), (2, 3), (4, 8), 4)
    (array([ 8, 40]), 12)
    >>> slice_byte_runs((1, 0), (2, 8), (4, 8), 4)
    (array([32]), 64)
    """
    shape = [int(d) for d in global_shape]
    off = [int(o) for o in offsets]
    size = [int(s) for s in sizes]
    if not (len(shape) == len(off) == len(size)):
        raise DataError(f"offsets {tuple(off)} and sizes {tuple(size)} do not match the shape {tuple(shape)}")
    for d, (o, s, n) in enumerate(zip(off, size, shape)):
        if o < 0 or s < 0 or o + s > n:
            raise DataError(f"slice [{o}, {o + s}) of dimension {d} is outside the tensor's {n}",
                            hint="offsets and sizes must lie inside the global shape")
    if not shape:
        return np.zeros(1, dtype=np.int64), itemsize
    if 0 in size:
        return np.zeros(0, dtype=np.int64), 0
    stride = [itemsize] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        stride[d] = stride[d + 1] * shape[d + 1]
    # the innermost dimension the block does not span fully: everything after it is contiguous
    cut = len(shape) - 1
    while cut > 0 and off[cut] == 0 and size[cut] == shape[cut]:
        cut -= 1
    run = size[cut] * stride[cut]
    starts = np.full(1, off[cut] * stride[cut], dtype=np.int64)
    for d in range(cut - 1, -1, -1):  # outer dimensions, innermost first (a handful)
        steps = (off[d] + np.arange(size[d], dtype=np.int64)) * stride[d]
        starts = (steps[:, None] + starts[None, :]).reshape(-1)
    return starts, run


def _coalesce(starts: np.ndarray, run: int) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal length -> disjoint [start, stop) ranges, adjacent runs merged."""
    if starts.size == 0:
        return starts, starts.copy()
    stops = starts + run
    new = np.ones(starts.size, dtype=bool)
    new[1:] = starts[1:] != stops[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:], starts.size) - 1
    return starts[first], stops[last]


# ----------------------------------------------------------------------------------------------- numpy path


def _sums_from_words_numpy(words: np.ndarray, word_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lane sums per block of ``words`` (uint32) found at absolute word positions ``word_index`` (increasing)."""
    keys = key_table()
    block = word_index >> 18
    pos = word_index & (WORDS_PER_BLOCK - 1)
    wide = words.astype(np.uint64)
    bounds = np.flatnonzero(np.diff(block)) + 1
    seg = np.concatenate([[0], bounds])
    out = np.empty((seg.size, 2), dtype=np.uint64)
    for lane in (0, 1):  # two lanes: each one vectorized pass
        out[:, lane] = np.add.reduceat(wide * keys[lane][pos], seg)  # wraps modulo 2^64
    return block[seg], out


def _add_runs_numpy(sums: BlockSums, data: np.ndarray, starts: np.ndarray, run: int) -> None:
    """Add the bytes ``data`` (uint8), which are runs of ``run`` bytes placed at ``starts`` of the tensor."""
    from goldwatch.integrity.fingerprint_numpy import add_bytes

    if run % WORD_BYTES or (starts % WORD_BYTES).any() or len(starts) <= 4:
        for i, start in enumerate(starts.tolist()):  # unaligned or few runs: the general byte path per run
            add_bytes(sums, data[i * run : (i + 1) * run], start)
        return
    run_words = run // WORD_BYTES
    words = data.view("<u4")
    first_word = starts // WORD_BYTES
    for lo in range(0, words.size, _STEP_WORDS):  # bounded temporaries
        hi = min(words.size, lo + _STEP_WORDS)
        local = np.arange(lo, hi, dtype=np.int64)
        index = first_word[local // run_words] + local % run_words
        blocks, block_sums = _sums_from_words_numpy(words[lo:hi], index)
        np.add.at(sums.sums, blocks, block_sums)


# ----------------------------------------------------------------------------------------------- torch path


def _add_runs_torch(sums: BlockSums, tensor: Any, starts: np.ndarray, run: int) -> None:
    """The same on the tensor's device: keys gathered by position, products summed per block with index_add_."""
    import torch

    from goldwatch.integrity.fingerprint_torch import _LOW32, _device_add_bytes, _flat_bytes, device_keys

    data = _flat_bytes(tensor.contiguous())
    device = data.device
    acc = torch.zeros((len(sums.sums), 2), dtype=torch.int64, device=device)
    aligned = run % WORD_BYTES == 0 and not (starts % WORD_BYTES).any() and data.data_ptr() % WORD_BYTES == 0
    with torch.no_grad():
        if not aligned:
            for i, start in enumerate(starts.tolist()):
                _device_add_bytes(sums, acc, data[i * run : (i + 1) * run], start, fused=False)
        else:
            keys = device_keys(device)
            words = data.view(torch.int32)
            run_words = run // WORD_BYTES
            first_word = torch.from_numpy(starts // WORD_BYTES).to(device)
            for lo in range(0, words.numel(), _STEP_WORDS):
                hi = min(words.numel(), lo + _STEP_WORDS)
                local = torch.arange(lo, hi, dtype=torch.int64, device=device)
                index = first_word[local // run_words] + local % run_words
                block = index >> 18
                pos = index & (WORDS_PER_BLOCK - 1)
                w = words[lo:hi].to(torch.int64) & _LOW32
                for lane in (0, 1):
                    # int64 arithmetic wraps modulo 2^64 like the definition's ring; index_add_ adds in any order
                    acc[:, lane].index_add_(0, block, w * keys[lane][pos])
    sums.sums += acc.cpu().numpy().view(np.uint64)


# ----------------------------------------------------------------------------------------------- builders


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _host_bytes(local: Any) -> np.ndarray:
    """The row-major bytes of a CPU torch tensor (any dtype: bf16 and float8 have no numpy type) or an array."""
    if _is_torch(local):
        from goldwatch.integrity.fingerprint_torch import _flat_bytes

        return np.asarray(_flat_bytes(local.detach().contiguous()).numpy())
    arr = np.ascontiguousarray(local)
    if arr.dtype.byteorder == ">" and arr.dtype.itemsize > 1:
        arr = arr.astype(arr.dtype.newbyteorder("<"))  # files and devices hold little-endian bytes
    return arr.reshape(-1).view(np.uint8)


def _touched(sums: BlockSums, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    if starts.size == 0:
        return np.zeros(0, dtype=np.int64)
    first = starts // (WORDS_PER_BLOCK * WORD_BYTES)
    last = (stops - 1) // (WORDS_PER_BLOCK * WORD_BYTES)
    marks = np.zeros(len(sums.sums) + 1, dtype=np.int64)
    np.add.at(marks, first, 1)
    np.add.at(marks, last + 1, -1)
    return np.flatnonzero(np.cumsum(marks)[:-1] > 0)


def _finish(name: str, sums: BlockSums, starts: np.ndarray, stops: np.ndarray, *, dtype: str,
            shape: tuple[int, ...], origin: str, replica: bool) -> PartialFingerprint:
    blocks = _touched(sums, starts, stops)
    return PartialFingerprint(tensor=name, nbytes=sums.nbytes, dtype=dtype, shape=shape, starts=starts, stops=stops,
                              blocks=blocks, sums=sums.sums[blocks].copy(), origin=origin, replica=replica)


def partial_from_slice(
    name: str,
    local: Any,
    *,
    offsets: Sequence[int],
    global_shape: Sequence[int],
    origin: str = "",
    replica: bool = False,
    dtype: str | None = None,
) -> PartialFingerprint:
    """The partial of a block of a tensor: ``local`` (numpy array, or torch tensor on any device) holds the
    elements ``[offsets, offsets + local.shape)`` of a tensor of ``global_shape`` -- a tensor-parallel slice, a
    DTensor's local shard, a DCP chunk. Computed where ``local`` lives (a CUDA tensor is never copied to the host).
    ``dtype`` names the element type when ``local`` is a raw view of it (e.g. bfloat16 bytes viewed as uint16).
    """
    shape = tuple(int(d) for d in global_shape)
    sizes = tuple(int(s) for s in local.shape)
    itemsize = int(local.element_size()) if _is_torch(local) else int(local.dtype.itemsize)
    run_starts, run = slice_byte_runs(offsets, sizes, shape, itemsize)
    nbytes = math.prod(shape) * itemsize
    sums = BlockSums(nbytes)
    if run_starts.size:
        if _is_torch(local) and local.device.type != "cpu":
            _add_runs_torch(sums, local.detach(), run_starts, run)
        else:
            _add_runs_numpy(sums, _host_bytes(local), run_starts, run)
    starts, stops = _coalesce(run_starts, run)
    return _finish(name, sums, starts, stops, dtype=dtype or dtype_of(local), shape=shape, origin=origin,
                   replica=replica)


def partial_from_bytes(
    name: str,
    data: Any,
    *,
    offset: int,
    nbytes: int,
    dtype: str,
    shape: Sequence[int],
    origin: str = "",
    replica: bool = False,
) -> PartialFingerprint:
    """The partial of the bytes ``[offset, offset + len(data))`` of a tensor of ``nbytes`` bytes (any alignment):
    a range of a file, one rank's piece of a flattened parameter, a Dask task's share of a large tensor.
    ``data``: bytes, memoryview, mmap, a numpy uint8 array, or a torch tensor (its bytes, on its device)."""
    from goldwatch.integrity.fingerprint_numpy import add_bytes

    sums = BlockSums(int(nbytes))
    if _is_torch(data):
        length = int(data.numel() * data.element_size())
    else:
        data = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(
            np.uint8)
        length = len(data)
    if offset < 0 or offset + length > nbytes:
        raise DataError(f"bytes [{offset}, {offset + length}) lie outside tensor {name!r} of {nbytes} bytes",
                        hint="check the offset and the tensor's size")
    if length:
        if _is_torch(data) and data.device.type != "cpu":
            _add_runs_torch(sums, data.detach().reshape(-1), np.array([offset], dtype=np.int64), length)
        else:
            add_bytes(sums, _host_bytes(data) if _is_torch(data) else data, int(offset))
    starts = np.array([offset] if length else [], dtype=np.int64)
    stops = np.array([offset + length] if length else [], dtype=np.int64)
    return _finish(name, sums, starts, stops, dtype=dtype, shape=tuple(int(d) for d in shape), origin=origin,
                   replica=replica)


# ----------------------------------------------------------------------------------------------- merge


@dataclasses.dataclass(frozen=True)
class MergedFingerprints:
    """The merge's outcome: one fingerprint per tensor, and the replicas that disagree with their primary copy
    (each as ``(tensor, origin of the replica, origin of the primary, differing blocks)``)."""

    fingerprints: dict[str, TensorFingerprint]
    dtypes: dict[str, str]
    shapes: dict[str, tuple[int, ...]]
    replica_mismatches: list[tuple[str, str, str, list[int]]]


def _describe(ranges: list[tuple[int, int]], total: int) -> str:
    shown = ", ".join(f"[{a}, {b})" for a, b in ranges[:3])
    return shown + (f" and {total - 3} more" if total > 3 else "")


def _check_coverage(name: str, nbytes: int, parts: list[PartialFingerprint]) -> None:
    starts = np.concatenate([p.starts for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    stops = np.concatenate([p.stops for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    owner = np.concatenate([np.full(p.starts.size, i) for i, p in enumerate(parts)]) if parts else starts
    if (starts < 0).any() or (stops > nbytes).any() or (stops < starts).any():
        bad = int(np.flatnonzero((starts < 0) | (stops > nbytes) | (stops < starts))[0])
        raise ArtifactError(
            f"tensor {name!r}: {parts[owner[bad]].origin or 'a partial'} declares bytes "
            f"[{starts[bad]}, {stops[bad]}) outside [0, {nbytes})",
            hint="the shard's offsets do not match the tensor's shape")
    order = np.lexsort((stops, starts))
    starts, stops, owner = starts[order], stops[order], owner[order]
    keep = stops > starts
    starts, stops, owner = starts[keep], stops[keep], owner[keep]
    # consecutive ranges must meet exactly: a gap before each start, an overlap where a start is inside the last
    reach = np.concatenate([[0], np.maximum.accumulate(stops)[:-1]]) if stops.size else stops
    if stops.size:
        overlap = np.flatnonzero(starts < reach)
        if overlap.size:
            i = int(overlap[0])
            prev = int(np.flatnonzero(stops[:i] > starts[i])[0])
            who = sorted({parts[owner[i]].origin or "?", parts[owner[prev]].origin or "?"})
            raise ArtifactError(
                f"tensor {name!r}: bytes [{starts[i]}, {min(stops[i], reach[i])}) are covered twice "
                f"({' and '.join(who)}); {overlap.size} overlap(s) in all",
                hint="each byte must come from exactly one primary partial; mark copies of replicated tensors "
                "replica=True")
    gap_starts = np.concatenate([reach, [stops.max(initial=0)]]) if stops.size else np.array([0])
    gap_stops = np.concatenate([starts, [nbytes]]) if stops.size else np.array([nbytes])
    gaps = [(int(a), int(b)) for a, b in zip(gap_starts, gap_stops) if b > a]
    if gaps:
        raise ArtifactError(
            f"tensor {name!r}: {len(gaps)} byte range(s) covered by no partial, first {_describe(gaps, len(gaps))} "
            f"of {nbytes} bytes",
            hint="a rank's or a file's shard is missing: gather the partials of every rank / shard")


def merge_partials(partials: Iterable[PartialFingerprint]) -> MergedFingerprints:
    """Add the partials of every tensor after proving that their byte ranges tile the tensor exactly.

    Raises :class:`~goldwatch.errors.ArtifactError` naming the tensor and the byte range when ranges leave a gap
    or overlap, or when partials disagree on a tensor's size, dtype or shape. Replicas are compared with the
    primary partial of the same ranges; disagreements are returned (they are evidence, not input errors).
    """
    by_name: dict[str, list[PartialFingerprint]] = {}
    for p in partials:
        by_name.setdefault(p.tensor, []).append(p)
    fingerprints: dict[str, TensorFingerprint] = {}
    dtypes: dict[str, str] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    disagreements: list[tuple[str, str, str, list[int]]] = []
    for name, parts in by_name.items():
        first = parts[0]
        for p in parts[1:]:
            if (p.nbytes, p.dtype, tuple(p.shape)) != (first.nbytes, first.dtype, tuple(first.shape)):
                raise ArtifactError(
                    f"tensor {name!r}: {p.origin or 'a partial'} says {p.nbytes} bytes {p.dtype} {list(p.shape)}, "
                    f"{first.origin or 'another'} says {first.nbytes} bytes {first.dtype} {list(first.shape)}",
                    hint="the partials come from different models or versions")
        primaries = [p for p in parts if not p.replica]
        _check_coverage(name, first.nbytes, primaries)
        total = BlockSums(first.nbytes)
        for p in primaries:
            np.add.at(total.sums, p.blocks, p.sums)  # uint64: wraps modulo 2^64
        fingerprints[name] = total.finalize()
        dtypes[name], shapes[name] = first.dtype, tuple(first.shape)
        for rep in (p for p in parts if p.replica):
            twin = next((p for p in primaries if np.array_equal(p.starts, rep.starts)
                         and np.array_equal(p.stops, rep.stops)), None)
            if twin is None:
                if rep.covered == first.nbytes:  # a full copy: compare with the merged whole
                    own = BlockSums(first.nbytes)
                    np.add.at(own.sums, rep.blocks, rep.sums)
                    diff = fingerprints[name].diff(own.finalize())
                    if diff:
                        disagreements.append((name, rep.origin, "the merged primaries", diff))
                    continue
                raise ArtifactError(f"tensor {name!r}: replica from {rep.origin or '?'} matches no primary's ranges",
                                    hint="a replica must cover the same bytes as one primary partial")
            if not (np.array_equal(twin.blocks, rep.blocks) and np.array_equal(twin.sums, rep.sums)):
                differ = [int(b) for b, x, y in zip(twin.blocks, twin.sums, rep.sums) if not np.array_equal(x, y)]
                disagreements.append((name, rep.origin, twin.origin, differ))
    return MergedFingerprints(fingerprints, dtypes, shapes, disagreements)
