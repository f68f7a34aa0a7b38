"""What showing progress costs: the same work with no reporter (the library, the sidecar), with the CI log lines,
and with the terminal bar (drawn into /dev/null).

Issue 16 sets no speed target; progress must simply not slow the work it reports. Two hot paths are measured, each
against its anchor in the same run: hashing a file (``file_digest``, one report per 1 MiB chunk) against hashlib
on the same bytes, and a batched inference loop on a tiny numpy model with batches of one sample (one report per
batch: the worst case, since the model does almost nothing) against the same loop with no reporter.

    .venv/bin/python -m benchmarks.bench_progress [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np

from benchmarks._results import record, table
from goldwatch import progress
from goldwatch.cli._progress import LogReporter, TerminalReporter
from goldwatch.integrity.digest import file_digest
from goldwatch.runtimes.base import ModelIdentity, Signature, TensorSpec, run_batches


class TinyModel:
    kind, device = "numpy", "cpu"

    def __init__(self) -> None:
        self.w = np.ones((4, 2), dtype=np.float32)
        self.signature = Signature(inputs=(TensorSpec("x", "float32", (None, 4)),),
                                   outputs=(TensorSpec("y", "float32", (None, 2)),))
        self.identity = ModelIdentity(kind="numpy", source="tiny")

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": inputs["x"] @ self.w}

    def close(self) -> None:
        pass


def _best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB and 5,000 batches instead of 512 MiB and 50,000")
    args = parser.parse_args()
    size = (64 if args.quick else 512) << 20
    batches = 5_000 if args.quick else 50_000
    repeats = 3
    devnull = open(os.devnull, "w")  # noqa: SIM115 - kept open for the whole run
    modes: dict[str, Callable[[], AbstractContextManager[object]]] = {
        "no reporter (library, sidecar)": nullcontext,
        "log lines (CI, --log-format json)": lambda: progress.reporting(LogReporter(delay_s=0.0, interval_s=10.0)),
        "terminal bar (tqdm)": lambda: progress.reporting(TerminalReporter(delay_s=0.0, file=devnull)),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.bin"
        path.write_bytes(os.urandom(size))
        data = path.read_bytes()
        anchor = _best(lambda: hashlib.sha256(data).hexdigest(), repeats)
        rows.append(["sha256 of the bytes in memory (hashlib, anchor)", f"{size / anchor / 2**20:,.0f} MiB/s", "1.00"])
        for label, mode in modes.items():
            def hashing(mode: Callable[[], AbstractContextManager[object]] = mode) -> None:
                with mode(), progress.task("hashing", total=size, unit="B"):
                    file_digest(path, "sha256")

            seconds = _best(hashing, repeats)
            rows.append([f"file_digest sha256, {label}", f"{size / seconds / 2**20:,.0f} MiB/s",
                         f"{anchor / seconds:.2f}"])
    x = np.ones((batches, 4), dtype=np.float32)
    model = TinyModel()
    loop_rows = []

    def timed(mode: Callable[[], AbstractContextManager[object]] | None) -> float:
        t0 = time.perf_counter()
        if mode is None:
            run_batches(model, {"x": x}, batch_size=1)
        else:
            with mode(), progress.task("replay", total=batches, unit="samples"):
                run_batches(model, {"x": x}, batch_size=1)
        return time.perf_counter() - t0

    # interleaved, best of several: the machine is shared, and load drifts between consecutive runs
    best: dict[str | None, float] = {}
    for _ in range(2 * repeats):
        for label in (None, *modes):
            seconds = timed(None if label is None else modes[label])
            best[label] = min(best.get(label, seconds), seconds)
    bare = best[None]
    for label in modes:
        seconds = best[label]
        loop_rows.append([label, f"{batches / seconds:,.0f}", f"{(seconds - bare) / batches * 1e6:+.2f}",
                          f"{bare / seconds:.2f}"])
    devnull.close()
    body = (
        table(["hashing a file (page cache)", "throughput", "speed vs hashlib"], rows)
        + "\n\n"
        + table(["batched inference, 1 sample per batch", "batches/s", "µs per batch vs bare loop",
                 "speed vs bare loop"], loop_rows)
        + f"\n\nBest of {repeats} runs each: {size >> 20} MiB hashed (SHA-256, 1 MiB chunks); best of {2 * repeats} "
        f"interleaved runs each: {batches:,} batches of a 4x2 numpy model. The bare loop is the same "
        "`run_batches` with no task open (progress then hands the library its plain `range`). A real model's batch "
        "takes milliseconds, so the per-batch cost is what to read. "
        f"Machine load at the end of the run: {os.getloadavg()[0]:.1f} (1-min average; other work shares it)."
    )
    print(body)
    record("progress", body, command="python -m benchmarks.bench_progress" + (" --quick" * args.quick))


if __name__ == "__main__":
    main()
