"""Sharded weights under ``torch.distributed``: every rank fingerprints the shards it holds, one rank merges them,
proves they cover every byte, and compares the result with the single-host manifest -- at each of the agent's passes.

A rank of a tensor- or FSDP2-sharded model holds ``DTensor`` parameters: a slice of each manifest tensor, resident
on its GPU. No rank can compare its slice with the file's whole-tensor blocks alone, and the bytes must not travel.
So at the end of each pass, each rank's agent computes the partial fingerprints of its local shards where they live
(:func:`goldwatch.integrity.ranks.shard_partials`: 16 bytes per MiB leave the device), the agents gather them on one
rank (``dst``, global rank 0 of the group) over a **gloo process group of their own**, created once when the agents
start -- never the group the model serves with, so the check never queues behind or between serving collectives --
and that rank merges and verifies (:func:`~goldwatch.integrity.ranks.verify_partials`): a differing block is named
by tensor, block, byte range and the ranks whose shards hold those bytes (:func:`~goldwatch.integrity.ranks.holders`).
Only ``dst`` reports the verdict on the shards; every rank still checks and reports its own plain tensors.

Every rank must watch the same module the same way, at the same point (creating the group is itself a collective),
and stop its agent with the others: a rank that skips a pass leaves the others' gather to time out
(``collective_timeout_s``), which they report as an error (never a rollback).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from goldwatch.errors import GoldwatchError, InvalidInputError
from goldwatch.integrity.manifest import ArtifactManifest
from goldwatch.integrity.partial import PartialFingerprint, merge_partials
from goldwatch.integrity.ranks import gather_partials, holders, shard_partials, verify_partials
from goldwatch.logs import get_logger
from goldwatch.watchdog.agent.names import Rename, match_names
from goldwatch.watchdog.agent.results import TensorCoverage

__all__ = ["ShardMismatch", "ShardedResult", "ShardedWatch", "is_sharded"]

log = get_logger(__name__)


def is_sharded(tensor: Any) -> bool:
    """A ``DTensor`` (or a parameter wrapping one): its bytes live on several ranks."""
    data = getattr(tensor, "data", tensor)
    return any(type(t).__name__ == "DTensor" and hasattr(t, "placements") and hasattr(t, "to_local")
               for t in (tensor, data))


@dataclasses.dataclass(frozen=True)
class ShardMismatch:
    """A difference found by the merge: the tensor (as the module names it), the block and byte range (None for a
    dtype or shape difference), and the ranks whose shards hold those bytes."""

    tensor: str
    manifest_name: str
    block: int | None
    start: int | None
    stop: int | None
    ranks: tuple[int, ...]
    kind: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ranks": list(self.ranks), "how": "sharded"}


@dataclasses.dataclass(frozen=True)
class ShardedResult:
    """One collective check. ``merged``: this rank merged and verified (only ``dst``); ``mismatches`` and
    ``tensors_verified`` are its findings. ``local_bytes``: the shard bytes this rank fingerprinted. ``error``: the
    check could not complete (a rank did not take part in time, the shards do not cover a tensor)."""

    merged: bool
    dst: int
    world: int
    tensors: int
    local_bytes: int
    busy_s: float
    wall_s: float
    tensors_verified: int = 0
    bytes_verified: int = 0
    mismatches: tuple[ShardMismatch, ...] = ()
    error: str | None = None


def _rank_of(origin: str) -> int | None:
    found = re.fullmatch(r"rank (\d+)", origin)
    return int(found.group(1)) if found else None


class ShardedWatch:
    """The sharded tensors of one module and the gloo group their agents check them on (see the module docstring).
    Build it with :meth:`plan`."""

    def __init__(self, entries: dict[str, tuple[str, Any]], manifest: ArtifactManifest, *, group: Any, dst: int,
                 rank: int, world: int) -> None:
        self.entries = entries  # manifest name -> (resident name, DTensor)
        self.manifest = manifest
        self.group = group
        self.dst = dst
        self.rank = rank
        self.world = world

    @classmethod
    def plan(cls, module: Any, manifest: ArtifactManifest, *, group: Any = None, rename: Rename | None = None,
             exclude: Sequence[str] = (), collective_timeout_s: float = 120.0) -> ShardedWatch | None:
        """The sharded parameters and buffers of ``module`` matched to ``manifest``'s tensors, and the group to check
        them on (``group``, else a new gloo group over every rank); None when the module holds none."""
        import fnmatch

        found: dict[str, Any] = {}
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if is_sharded(tensor) and not any(fnmatch.fnmatchcase(name, p) for p in exclude):
                found.setdefault(name, tensor)
        if not found:
            return None
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise InvalidInputError("the module holds DTensor parameters but no process group is initialized",
                                    where="watch", hint="call watch() on every rank after init_process_group")
        names = list(found)
        index = {t.name for _, t in manifest.tensors()}
        matches, _rule = match_names([(n,) for n in names], index, rename=rename)
        missing = [n for i, n in enumerate(names) if i not in matches]
        if missing:
            raise InvalidInputError(
                f"{len(missing)} sharded tensor(s) have no tensor in the manifest: {', '.join(missing[:5])}",
                where="manifest", hint="pass rename= mapping the module's names to the file's, or exclude= them")
        entries = {matches[i]: (n, found[n].data if hasattr(found[n], "data") else found[n])
                   for i, n in enumerate(names)}
        if group is None:
            # a group of its own, on gloo: the check's small messages never share a queue with serving's NCCL
            # collectives, and a check that waits for a slow rank times out instead of hanging the agent
            group = dist.new_group(backend="gloo", timeout=dt.timedelta(seconds=collective_timeout_s))
        dst = dist.get_global_rank(group, 0) if group is not dist.group.WORLD else 0
        return cls(entries, manifest, group=group, dst=dst, rank=dist.get_rank(),
                   world=dist.get_world_size(group))

    def coverage(self) -> dict[str, TensorCoverage]:
        """How each sharded tensor is covered (by resident name), for the agent's coverage report."""
        out = {}
        for manifest_name, (name, value) in self.entries.items():
            local = value.to_local()
            placements = ", ".join(str(p) for p in value.placements)
            out[name] = TensorCoverage(
                name=name, how="sharded", nbytes=int(local.numel() * local.element_size()),
                dtype=str(local.dtype).removeprefix("torch."), device=str(local.device), manifest_name=manifest_name,
                reason=f"this rank's shard ({placements}) of {list(value.shape)}: merged with the other "
                f"{self.world - 1} rank(s)' on a gloo group and compared with the file")
        return out

    def run(self, *, stop: threading.Event, duty_cycle: float) -> ShardedResult:
        """One collective check (every rank of the group calls it); pauses between tensors to keep ``duty_cycle``."""
        t0 = time.perf_counter()
        busy = 0.0
        partials: list[PartialFingerprint] = []
        local_bytes = 0
        for manifest_name, (_name, value) in self.entries.items():
            local = value.to_local()
            # busy time: the thread's CPU time for a CPU shard; for a CUDA shard the elapsed time, which ends with
            # the copy of its block sums to the host (a synchronisation), so it covers the kernels
            clock = time.perf_counter if local.device.type == "cuda" else time.thread_time
            t_start = clock()
            partials += shard_partials({manifest_name: value}, rank=self.rank)
            spent = clock() - t_start
            busy += spent
            local_bytes += int(local.numel() * local.element_size())
            if duty_cycle < 1.0 and spent > 0:
                stop.wait(spent * (1.0 - duty_cycle) / duty_cycle)  # a stop does not skip the gather: others wait

        def result(merged: bool, **found: Any) -> ShardedResult:
            return ShardedResult(merged=merged, dst=self.dst, world=self.world, tensors=len(self.entries),
                                 local_bytes=local_bytes, busy_s=busy, wall_s=time.perf_counter() - t0, **found)

        try:
            gathered = gather_partials(partials, group=self.group, dst=self.dst)
        except Exception as exc:  # a rank that did not take part in time (gloo's timeout), a broken group
            first_line = str(exc).splitlines()[0][:300] if str(exc) else ""
            return result(False, error=f"the ranks' partial fingerprints could not be gathered: "
                                       f"{type(exc).__name__}: {first_line}")
        if gathered is None:
            return result(False)
        try:
            merged = merge_partials(gathered)
            report = verify_partials(gathered, self.manifest, strict=False)
        except GoldwatchError as exc:
            return result(True, error=f"the ranks' shards cannot be merged: {exc}")
        resident = {m: n for m, (n, _v) in self.entries.items()}
        replica_ranks = {(t, r) for t, r, _p, _b in merged.replica_mismatches}
        found = []
        for m in report.mismatches:
            tensor = m.tensor or ""
            if m.start is not None:
                ranks = [_rank_of(o) for o in holders(m, gathered)]
            elif "the copy on" in m.message:  # a replica that disagrees with its primary
                ranks = [_rank_of(r) for t, r in replica_ranks if t == tensor and r in m.message]
            else:  # a dtype or shape: every rank that holds some of it
                ranks = [_rank_of(p.origin) for p in gathered if p.tensor == tensor and not p.replica]
            found.append(ShardMismatch(
                tensor=resident.get(tensor, tensor), manifest_name=tensor, block=m.block, start=m.start, stop=m.stop,
                ranks=tuple(sorted({r for r in ranks if r is not None})), kind=m.kind, message=m.message))
        return result(True, tensors_verified=report.tensors_checked, bytes_verified=report.bytes_checked,
                      mismatches=tuple(found))
