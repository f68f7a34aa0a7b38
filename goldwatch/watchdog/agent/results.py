"""What the in-process agent knows and says: coverage of the resident tensors, block mismatches, passes, evidence.

All frozen dataclasses. :class:`Evidence` is what reaches the sidecar; its :meth:`Evidence.to_json` is the body of
``POST /v1/models/{model}/evidence`` (see :mod:`goldwatch.watchdog.agent.reporter`).

>>> cov = Coverage(tensors=(
...     TensorCoverage("0.weight", "file", 4096, "float32", "cpu", manifest_name="0.weight"),
...     TensorCoverage("mask", "attested", 64, "bool", "cpu", reason="buffer not in the file: pinned at load"),
...     TensorCoverage("cache", "uncovered", 1024, "float32", "cpu", reason="excluded by configuration"),
... ), file_verified=True)
>>> cov.covered_bytes, cov.uncovered_bytes, [t.name for t in cov.uncovered]
(4160, 1024, ['cache'])
>>> cov.summary()
'2 of 3 tensors covered (4160 of 5184 bytes): file 1, attested 1; not covered: cache (excluded by configuration)'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from goldwatch.checks import Check

__all__ = ["BlockMismatch", "Coverage", "Evidence", "How", "PassResult", "TensorCoverage"]

#: How a resident tensor is checked. ``file``: its bytes are compared with the manifest's fingerprint of the file.
#: ``derived``: the server converted its dtype; at load the agent recomputed the conversion from the verified file,
#: found the resident bytes equal to it and pinned that. ``attested``: fingerprinted at load (after the file was
#: verified) and pinned -- the agent proves it does not change, not that it came from the file. ``unpacked``: an
#: opaque packed/quantized weight read through its unpack function (a temporary copy) and pinned like ``attested``.
#: ``sharded``: this rank holds a shard of the tensor (a DTensor); at each pass the ranks' partial fingerprints are
#: merged on one rank, proving byte coverage, and compared with the file (:mod:`goldwatch.watchdog.agent.sharded`).
#: ``uncovered``: not checked; ``reason`` says why.
How = Literal["file", "derived", "attested", "unpacked", "sharded", "uncovered"]


@dataclasses.dataclass(frozen=True)
class TensorCoverage:
    """One resident tensor (with the other names it is tied to) and how it is checked."""

    name: str
    how: How
    nbytes: int
    dtype: str
    device: str
    manifest_name: str | None = None
    aliases: tuple[str, ...] = ()
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Coverage:
    """Which resident tensors the agent checks, how, and which it cannot (with the reason).

    ``file_only`` names manifest tensors the module does not hold (loaded non-strictly, or unused by the server).
    ``file_verified``: the model file was verified against the manifest before anything was pinned at load.
    """

    tensors: tuple[TensorCoverage, ...]
    file_only: tuple[str, ...] = ()
    file_verified: bool = False
    name_rule: str = ""

    @property
    def covered(self) -> tuple[TensorCoverage, ...]:
        return tuple(t for t in self.tensors if t.how != "uncovered")

    @property
    def uncovered(self) -> tuple[TensorCoverage, ...]:
        return tuple(t for t in self.tensors if t.how == "uncovered")

    @property
    def covered_bytes(self) -> int:
        return sum(t.nbytes for t in self.covered)

    @property
    def uncovered_bytes(self) -> int:
        return sum(t.nbytes for t in self.uncovered)

    def bytes_by_how(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.how] = out.get(t.how, 0) + t.nbytes
        return out

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for t in self.covered:
            counts[t.how] = counts.get(t.how, 0) + 1
        total = self.covered_bytes + self.uncovered_bytes
        text = (f"{len(self.covered)} of {len(self.tensors)} tensors covered ({self.covered_bytes} of {total} bytes)"
                + (": " + ", ".join(f"{k} {v}" for k, v in counts.items()) if counts else ""))
        if self.uncovered:
            shown = ", ".join(f"{t.name} ({t.reason})" for t in self.uncovered[:5])
            more = f" and {len(self.uncovered) - 5} more" if len(self.uncovered) > 5 else ""
            text += f"; not covered: {shown}{more}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(), "file_verified": self.file_verified, "name_rule": self.name_rule,
            "bytes": self.bytes_by_how(), "file_only": list(self.file_only),
            "uncovered": [{"name": t.name, "reason": t.reason, "nbytes": t.nbytes} for t in self.uncovered],
            "not_from_file": [{"name": t.name, "how": t.how, "reason": t.reason}
                              for t in self.covered if t.how != "file"],
        }


@dataclasses.dataclass(frozen=True)
class BlockMismatch:
    """A 1 MiB block of a resident tensor whose fingerprint differs from the expectation.

    ``start``/``stop``: byte range inside the tensor; ``file_start``/``file_stop``: inside ``file`` when the
    expectation is the file's own bytes (``how == "file"``) and the file stores the tensor as a byte range.
    """

    tensor: str
    block: int
    start: int
    stop: int
    how: How
    expected: str
    actual: str
    manifest_name: str | None = None
    aliases: tuple[str, ...] = ()
    file: str | None = None
    file_start: int | None = None
    file_stop: int | None = None
    device: str = "cpu"

    @property
    def message(self) -> str:
        where = f" (file bytes [{self.file_start}, {self.file_stop}) of {self.file})" if self.file_start is not None \
            else ""
        source = "the file" if self.how == "file" else f"its {self.how} fingerprint pinned at load"
        return (f"resident tensor {self.tensor!r} on {self.device}: block {self.block} bytes [{self.start}, "
                f"{self.stop}) differs from {source}{where}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"message": self.message}


@dataclasses.dataclass(frozen=True)
class PassResult:
    """One full pass over the covered tensors (or the part of one done before the agent was stopped).

    ``busy_s`` is the time spent fingerprinting (the thread's CPU time on the CPU, device time on a GPU), ``wall_s``
    the pass's elapsed time with the pauses the duty-cycle budget imposed; ``duty_cycle = busy_s / wall_s``.
    """

    number: int
    started: float  # time.time()
    finished: float
    wall_s: float
    busy_s: float
    tensors_checked: int
    bytes_checked: int
    mismatches: tuple[BlockMismatch, ...]
    complete: bool = True

    @property
    def ok(self) -> bool:
        return self.complete and not self.mismatches

    @property
    def duty_cycle(self) -> float:
        return self.busy_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def bytes_per_s(self) -> float:
        """Fingerprinting speed while busy (what the device delivers when it is working for the agent)."""
        return self.bytes_checked / self.busy_s if self.busy_s > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class Evidence:
    """One report to the sidecar about ``model``: the checks of a pass (or a probe) and who sent them.

    ``source`` is ``agent:<host>:<pid>``; ``interval_s`` is how often this source reports (the sidecar calls a
    source silent for more than 3 x ``interval_s`` stale: a warning, never a rollback).
    """

    model: str
    source: str
    version: str | None
    interval_s: float
    checks: tuple[Check, ...]
    kind: str = "resident"

    @property
    def status(self) -> str:
        statuses = {c.status for c in self.checks}
        for s in ("fail", "error", "pass"):
            if s in statuses:
                return s
        return "skip"

    def to_json(self) -> dict[str, Any]:
        """The request body of ``POST /v1/models/{model}/evidence`` (the model is in the URL, not the body)."""
        return {
            "source": self.source, "kind": self.kind, "version": self.version, "interval_s": float(self.interval_s),
            "checks": [_check_json(c) for c in self.checks],
        }


def _check_json(check: Check) -> dict[str, Any]:
    return {
        "name": check.name, "status": check.status, "summary": check.summary,
        "measured": _plain(check.measured), "threshold": _plain(check.threshold), "details": _plain(check.details),
    }


def _plain(value: Any) -> Any:
    """JSON-ready copies (tuples -> lists, mappings -> dicts); numbers and strings pass through."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
