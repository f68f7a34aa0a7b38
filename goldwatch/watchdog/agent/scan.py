"""One pass over the expectations: fingerprint each resident tensor in slices under a duty-cycle budget and compare
it with its expectation block by block.

Pacing: after a slice that kept the device busy for ``b`` seconds the pass pauses ``b (1 - d) / d`` seconds, so the
agent's share of its device stays at the budget ``d`` (``duty_cycle=1``: no pauses). On the CPU ``b`` is the CPU
time the calling thread spent on the slice (``time.thread_time``: neither waits for the GIL nor time the scheduler
gave to other processes count, so a loaded machine does not make the agent pause longer than its work warrants);
on a GPU it is the device time between two CUDA events around the slice's kernels, which run on a stream of the
lowest priority the device offers. A pause ends early when ``stop`` is set.

>>> import torch
>>> from goldwatch.watchdog.agent.resident import ResidentTensor
>>> from goldwatch.watchdog.agent.plan import Expectation
>>> from goldwatch.integrity.fingerprint_torch import fingerprint_tensor
>>> w = torch.zeros(600_000)                                   # 2.4 MB: 3 blocks
>>> x = Expectation(ResidentTensor("w", (), "parameter", w), fingerprint_tensor(w), "file", "w")
>>> with torch.no_grad():
...     w[300_000] = 1.0                                       # a write into block 1
>>> result = run_pass([x], number=1, duty_cycle=1.0, slice_bytes=1 << 20)
>>> [(m.tensor, m.block, m.start, m.stop) for m in result.mismatches]
[('w', 1, 1048576, 2097152)]
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from goldwatch.integrity.fingerprint import BLOCK_BYTES, TensorFingerprint
from goldwatch.integrity.slices import TensorScan
from goldwatch.watchdog.agent.plan import Expectation
from goldwatch.watchdog.agent.results import BlockMismatch, PassResult

__all__ = ["DEFAULT_SLICE_BYTES", "StreamCache", "compare", "run_pass"]

#: CPU: 4 MiB per slice (about 2 ms of one core); GPU slices are larger (see the agent's default for CUDA)
DEFAULT_SLICE_BYTES = 4 << 20


class StreamCache:
    """One lowest-priority CUDA stream per device, created on first use.

    CUDA's lowest priority is the default streams' priority, so the stream yields to inference that runs on
    higher-priority streams; against inference on default-priority streams the duty-cycle budget is what bounds
    the agent's share of the GPU.
    """

    def __init__(self) -> None:
        self._streams: dict[str, Any] = {}

    def get(self, device: Any) -> Any:
        if getattr(device, "type", None) != "cuda":
            return None
        key = str(device)
        if key not in self._streams:
            import torch

            # out-of-range priorities are clamped to the nearest valid one: a large number is the lowest priority
            stream = torch.cuda.Stream(device=device, priority=1 << 20)
            # work queued before (the weights' upload) must finish before the stream reads them
            stream.wait_stream(torch.cuda.current_stream(device))
            self._streams[key] = stream
        return self._streams[key]

    def order_after_pending_work(self) -> None:
        """Make each stream wait for work already queued on its device's current stream (e.g. a weight upload)."""
        if not self._streams:
            return
        import torch

        for stream in self._streams.values():
            stream.wait_stream(torch.cuda.current_stream(stream.device))


def compare(x: Expectation, actual: TensorFingerprint) -> list[BlockMismatch]:
    """The blocks of ``x``'s tensor whose fingerprint differs from the expectation."""
    out = []
    for b in x.expected.diff(actual):
        start, stop = x.expected.block_range(b) if b < len(x.expected.blocks) else actual.block_range(b)
        in_file = x.how == "file" and x.file_offset is not None
        out.append(BlockMismatch(
            tensor=x.resident.name, block=b, start=start, stop=stop, how=x.how,
            expected=x.expected.blocks[b] if b < len(x.expected.blocks) else "",
            actual=actual.blocks[b] if b < len(actual.blocks) else "",
            manifest_name=x.manifest_name, aliases=x.resident.aliases, file=x.file,
            file_start=x.file_offset + start if in_file and x.file_offset is not None else None,
            file_stop=x.file_offset + stop if in_file and x.file_offset is not None else None,
            device=x.resident.device,
        ))
    return out


class _Clock:
    """Times one slice: the thread's CPU time on the CPU, device time between two events on a CUDA stream."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._events: tuple[Any, Any] | None = None
        if stream is not None:
            import torch

            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))

    def time(self, work: Callable[[], int]) -> tuple[int, float]:
        if self._events is None:
            t0 = time.thread_time()
            n = work()
            return n, time.thread_time() - t0
        begin, end = self._events
        begin.record(self.stream)
        n = work()
        end.record(self.stream)
        end.synchronize()  # a host wait (the GIL is released); the kernels themselves ran on the device
        return n, begin.elapsed_time(end) / 1000.0


def run_pass(
    expectations: Sequence[Expectation],
    *,
    number: int,
    duty_cycle: float,
    slice_bytes: int = DEFAULT_SLICE_BYTES,
    gpu_slice_bytes: int | None = None,
    stop: threading.Event | None = None,
    on_mismatch: Callable[[BlockMismatch], None] | None = None,
    streams: StreamCache | None = None,
    on_busy: Callable[[float], None] | None = None,
) -> PassResult:
    """Check every expectation once (see the module docstring); ``on_mismatch`` hears of each bad block at once,
    ``on_busy`` of the busy seconds of each slice (for a metric that follows a long pass as it runs)."""
    stop = stop or threading.Event()
    streams = streams or StreamCache()
    started, t0 = time.time(), time.perf_counter()
    busy = 0.0
    checked_bytes = checked_tensors = 0
    mismatches: list[BlockMismatch] = []
    complete = True

    def pause(slice_busy: float) -> bool:
        """Sleep to keep the duty cycle; True when the pass must stop."""
        if duty_cycle < 1.0 and slice_busy > 0:
            return stop.wait(slice_busy * (1.0 - duty_cycle) / duty_cycle)
        return stop.is_set()

    for x in expectations:
        if stop.is_set():
            complete = False
            break
        t_read = time.thread_time()
        tensor = x.resident.dense()  # the resident tensor itself; a temporary unpacked copy for packed weights
        busy += time.thread_time() - t_read
        stream = streams.get(tensor.device)
        scan = TensorScan(tensor, stream=stream)
        clock = _Clock(stream)
        size = gpu_slice_bytes if stream is not None and gpu_slice_bytes else slice_bytes
        step = max(1, size // BLOCK_BYTES)
        stopped = False
        for first in range(0, scan.nblocks, step):
            __, spent = clock.time(functools.partial(scan.scan, first, min(first + step, scan.nblocks)))
            busy += spent
            if on_busy is not None:
                on_busy(spent)
            if pause(spent) and not (first + step >= scan.nblocks):
                stopped = True
                break
        if stopped:
            complete = False
            break
        found = compare(x, scan.finish())
        checked_tensors += 1
        checked_bytes += scan.nbytes
        for m in found:
            mismatches.append(m)
            if on_mismatch is not None:
                on_mismatch(m)
    wall = time.perf_counter() - t0
    return PassResult(number=number, started=started, finished=time.time(), wall_s=wall, busy_s=busy,
                      tensors_checked=checked_tensors, bytes_checked=checked_bytes, mismatches=tuple(mismatches),
                      complete=complete)
