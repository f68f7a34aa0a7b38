"""Resident shards across ranks: every rank fingerprints what it holds, one rank merges, proves coverage, verifies.

Under ``torch.distributed`` (tensor parallelism, FSDP, any DTensor layout) no rank holds the whole model, and the
bytes must not travel: each rank computes the partial fingerprints of its own shards where they live (on its GPU,
by the same kernels as :mod:`goldwatch.integrity.fingerprint_torch`), sends those few bytes (16 per MiB of
weights, plus its byte ranges) to one rank, which merges them -- proving that the ranks' ranges tile every tensor
-- and compares the result with the single-host manifest.

What a rank may hold, per state-dict entry:

* a ``DTensor``: its local shard; offsets come from its mesh and placements. Ranks that hold the same shard on a
  ``Replicate`` mesh dimension send it as a replica (compared with the primary, never added);
* a :class:`TensorShard`: a block ``[offsets, offsets + local.shape)`` of a tensor of ``global_shape`` (Megatron
  style tensor-parallel slices, or anything else laid out as a hyper-rectangle);
* a :class:`ByteShard`: bytes ``[offset, offset + nbytes)`` of a tensor (FSDP1 flat parameters);
* a plain tensor or array: a full copy on every rank (rank 0's is the primary, the others' replicas).

The agent calls, on every rank (after the model is loaded, and then periodically)::

    report = verify_sharded(model.state_dict(), "model.manifest.json")   # collective: every rank calls it
    if report is not None and not report.ok: ...                         # rank 0 (or all ranks with broadcast=True)

:func:`shard_partials` + :func:`gather_partials` + :func:`verify_partials` are the three steps, for callers that
move the partials themselves (a Dask task, an HTTP post to a sidecar); :func:`holders` names the ranks whose bytes a
mismatch falls in. The in-process agent (:mod:`goldwatch.watchdog.agent.sharded`) runs them at each pass on a gloo
group of its own.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from goldwatch.errors import DataError
from goldwatch.integrity.manifest import ArtifactManifest
from goldwatch.integrity.partial import PartialFingerprint, merge_partials, partial_from_bytes, partial_from_slice
from goldwatch.integrity.verify import IntegrityReport, Mismatch, _compare_tensor, _manifest_index

__all__ = [
    "ByteShard",
    "TensorShard",
    "gather_partials",
    "holders",
    "shard_partials",
    "verify_partials",
    "verify_sharded",
]


@dataclasses.dataclass(frozen=True)
class TensorShard:
    """``local`` holds the elements ``[offsets, offsets + local.shape)`` of a tensor of ``global_shape``."""

    local: Any
    offsets: Sequence[int]
    global_shape: Sequence[int]
    replica: bool = False


@dataclasses.dataclass(frozen=True)
class ByteShard:
    """``local``'s bytes are the bytes ``[offset, offset + local's nbytes)`` of a tensor of ``dtype`` and
    ``global_shape`` (e.g. one rank's piece of an FSDP flat parameter, viewed per original tensor)."""

    local: Any
    offset: int
    global_shape: Sequence[int]
    dtype: str
    replica: bool = False


def _is_dtensor(value: Any) -> bool:
    return type(value).__name__ == "DTensor" and hasattr(value, "placements") and hasattr(value, "to_local")


def _dtensor_partial(name: str, value: Any, origin: str) -> PartialFingerprint:
    from torch.distributed.tensor import Partial, Replicate
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    mesh, placements = value.device_mesh, value.placements
    if any(isinstance(p, Partial) for p in placements):
        raise DataError(f"tensor {name!r} is a DTensor with Partial placements (unreduced sums)",
                        hint="fingerprint weights, not pending reductions: redistribute to Shard/Replicate first")
    coordinate = mesh.get_coordinate()
    if coordinate is None:  # this rank holds nothing of the tensor
        return partial_from_slice(name, value.to_local()[tuple(slice(0, 0) for _ in value.shape)],
                                  offsets=(0,) * len(value.shape), global_shape=tuple(value.shape), origin=origin)
    _, offsets = compute_local_shape_and_global_offset(tuple(value.shape), mesh, placements)
    replica = any(isinstance(p, Replicate) and coordinate[d] != 0 for d, p in enumerate(placements))
    return partial_from_slice(name, value.to_local(), offsets=offsets, global_shape=tuple(value.shape),
                              origin=origin, replica=replica)


def shard_partials(state: Mapping[str, Any], *, rank: int | None = None) -> list[PartialFingerprint]:
    """This rank's partial fingerprints of every entry of ``state`` (see the module docstring), computed where each
    tensor lives. ``rank`` defaults to ``torch.distributed.get_rank()`` (0 outside a process group)."""
    if rank is None:
        rank = _rank()
    origin = f"rank {rank}"
    out = []
    for name, value in state.items():
        if isinstance(value, TensorShard):
            out.append(partial_from_slice(name, value.local, offsets=value.offsets, global_shape=value.global_shape,
                                          origin=origin, replica=value.replica))
        elif isinstance(value, ByteShard):
            size = 1
            for d in value.global_shape:
                size *= int(d)
            itemsize = _itemsize(value.local, value.dtype)
            out.append(partial_from_bytes(name, value.local, offset=value.offset, nbytes=size * itemsize,
                                          dtype=value.dtype, shape=value.global_shape, origin=origin,
                                          replica=value.replica))
        elif _is_dtensor(value):
            out.append(_dtensor_partial(name, value, origin))
        elif hasattr(value, "shape") and hasattr(value, "dtype"):
            out.append(partial_from_slice(name, value, offsets=(0,) * len(value.shape),
                                          global_shape=tuple(value.shape), origin=origin, replica=rank != 0))
        else:
            raise DataError(f"entry {name!r} is a {type(value).__name__}, not a tensor or a shard",
                            hint="pass tensors, DTensors, TensorShard or ByteShard values")
    return out


def _itemsize(local: Any, dtype: str) -> int:
    import numpy as np

    try:
        return int(np.dtype(dtype).itemsize)
    except TypeError:
        import torch

        return int(torch.empty(0, dtype=getattr(torch, dtype)).element_size())


def _rank() -> int:
    try:
        import torch.distributed as dist
    except ImportError:
        return 0
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather_partials(
    partials: Iterable[PartialFingerprint], *, group: Any = None, dst: int = 0
) -> list[PartialFingerprint] | None:
    """Gather every rank's partials on rank ``dst`` (a collective: every rank of ``group`` calls it).

    ``dst`` is a global rank. Sent as JSON text (16 bytes per MiB of weights plus byte ranges), never the
    weights. Returns the list on ``dst``, None elsewhere. With the NCCL backend, set the rank's CUDA device
    first (torch's rule for objects).
    """
    import torch.distributed as dist

    payload = json.dumps([p.to_dict() for p in partials], separators=(",", ":"))
    me = dist.get_rank()  # dst is a global rank, as in torch.distributed's collectives
    size = dist.get_world_size(group) if group is not None else dist.get_world_size()
    received: list[Any] | None = [None] * size if me == dst else None
    dist.gather_object(payload, received, dst=dst, group=group)
    if received is None:
        return None
    return [PartialFingerprint.from_dict(raw) for text in received for raw in json.loads(text)]


def verify_partials(
    partials: Iterable[PartialFingerprint],
    manifest: ArtifactManifest | str,
    *,
    strict: bool = True,
    source: str | None = None,
) -> IntegrityReport:
    """Merge the partials (proving coverage) and compare every tensor with ``manifest`` -- the single-host
    manifest of the same weights (a safetensors file, a DCP directory, ...).

    Coverage gaps and overlaps raise :class:`~goldwatch.errors.ArtifactError` (the sharding description is wrong,
    not the weights); differing blocks, dtypes and shapes, and replicas that disagree with their primary, are
    mismatches in the report, named by tensor, block and byte range.
    """
    t0 = time.perf_counter()
    partials = list(partials)
    if not isinstance(manifest, ArtifactManifest):
        manifest = ArtifactManifest.load(manifest)
    merged = merge_partials(partials)
    index = _manifest_index(manifest, source)
    by_tensor: dict[str, list[PartialFingerprint]] = {}
    for p in partials:
        if not p.replica:
            by_tensor.setdefault(p.tensor, []).append(p)
    origins = sorted({p.origin for p in partials})
    mismatches: list[Mismatch] = []
    report = IntegrityReport(subject=f"resident shards from {len(origins)} origin(s)", mismatches=mismatches,
                             files=["resident"])
    if not strict and not set(merged.fingerprints) & set(index):
        raise DataError("none of the merged tensors is in the manifest",
                        hint="check that the manifest belongs to this model")
    for name, fp in merged.fingerprints.items():
        if name not in index:
            if strict:
                mismatches.append(Mismatch(kind="unexpected", file="resident", tensor=name,
                                           message=f"tensor {name!r} is not in the manifest"))
            continue
        _, entry = index[name]
        report.tensors_checked += 1
        report.bytes_checked += fp.nbytes
        found = _compare_tensor(None, entry, merged.dtypes[name], merged.shapes[name], fp)
        mismatches += [_attributed(m, by_tensor.get(name, [])) for m in found]
    for name, replica, primary, blocks in merged.replica_mismatches:
        mismatches.append(Mismatch(
            kind="block", file="resident", tensor=name, block=blocks[0] if blocks else None,
            message=f"tensor {name!r}: the copy on {replica} differs from {primary} in block(s) {blocks[:8]}",
        ))
    if strict:
        for name in index:
            if name not in merged.fingerprints:
                mismatches.append(Mismatch(kind="missing", file="resident", tensor=name,
                                           message=f"tensor {name!r} of the manifest is held by no rank"))
    report.duration_s = time.perf_counter() - t0
    return report


def holders(m: Mismatch, partials: Iterable[PartialFingerprint]) -> list[str]:
    """The origins (``rank N``) whose primary partials hold bytes of the mismatch's range: who to suspect.
    Empty for a mismatch without a byte range (a dtype or shape)."""
    if m.start is None or m.stop is None:
        return []
    start, stop = m.start, m.stop
    return sorted({p.origin for p in partials if p.tensor == m.tensor and not p.replica
                   and bool(((p.starts < stop) & (p.stops > start)).any())})


def _attributed(m: Mismatch, parts: list[PartialFingerprint]) -> Mismatch:
    """A mismatch of the merged tensor, with the origins that hold the bytes of its block (who to suspect)."""
    m = dataclasses.replace(m, file="resident")
    found = holders(m, parts)
    if not found:
        return m
    return dataclasses.replace(m, message=f"{m.message}; held by {', '.join(found)}")


def verify_sharded(
    state: Mapping[str, Any],
    manifest: ArtifactManifest | str,
    *,
    group: Any = None,
    dst: int = 0,
    strict: bool = True,
    source: str | None = None,
    broadcast: bool = False,
) -> IntegrityReport | None:
    """Collective: every rank fingerprints its resident shards of ``state``, rank ``dst`` (global) merges and
    verifies.

    Returns the :class:`IntegrityReport` on ``dst`` (and on every rank with ``broadcast=True``), None elsewhere.
    A coverage error raises on ``dst`` only unless ``broadcast`` (then every rank raises it).
    """
    import torch.distributed as dist

    me = dist.get_rank()
    gathered = gather_partials(shard_partials(state, rank=me), group=group, dst=dst)
    report: IntegrityReport | None = None
    error: Exception | None = None
    if gathered is not None:
        try:
            report = verify_partials(gathered, manifest, strict=strict, source=source)
        except Exception as exc:  # delivered to every rank below when broadcasting, so no rank waits forever
            if not broadcast:
                raise
            error = exc
    if broadcast:
        box: list[Any] = [(report, error) if me == dst else None]
        dist.broadcast_object_list(box, src=dst, group=group)
        report, error = box[0]
        if error is not None:
            raise error
    return report if (broadcast or me == dst) else None
