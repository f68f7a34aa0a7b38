"""Golden replay: overhead over raw inference (target <= 5%) and the fault-injection detection matrix.

Run: ``.venv/bin/python -m benchmarks.bench_replay [--quick]``

1. Overhead. For each example model and runtime, the same batches are timed through ``runtime.run`` alone (the
   anchor) and through ``goldwatch.golden_sets.replay`` (inference + every check), alternating, in one process;
   the ratio of the best times is the overhead. Two cases: replay of the golden set's own runtime (identical answers),
   and a cross-runtime replay (golden built with torch, replayed with ONNX Runtime: answers differ by a few ulps,
   so every check -- including the distribution test -- does its full work).
2. Detection power. The issue-5 fault matrix on both example models, with 100 clean replays each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks._results import record, table


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def overhead_rows(*, n: int, batch: int, repeats: int) -> list[list[object]]:
    from goldwatch.examples import KINDS, write_example
    from goldwatch.golden_sets import build_golden_set, replay
    from goldwatch.golden_sets.build import run_batches
    from goldwatch.runtimes import load_model

    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("tabular", "conv"):
            spec = KINDS[kind]
            art = write_example(kind, Path(tmp) / kind, formats=("onnx", "torch"))
            x, y = spec.data(n=n, seed=2)
            inputs = {spec.input_name: x}
            torch_rt = load_model(art.models["state_dict"])
            onnx_rt = load_model(art.models["onnx"])
            cases = [
                ("same runtime (torch)", torch_rt, build_golden_set(torch_rt, inputs, None, labels=y, repeats=2)),
                ("same runtime (onnx)", onnx_rt, build_golden_set(onnx_rt, inputs, None, labels=y, repeats=2)),
            ]
            cases.append(("cross-runtime (torch golden, onnx replay)", onnx_rt, cases[0][2]))
            for label, runtime, golden in cases:
                raw_fn = lambda rt=runtime, xs=inputs: run_batches(rt, xs, batch_size=batch)  # noqa: E731
                replay_fn = lambda rt=runtime, g=golden: replay(rt, g, batch_size=batch)  # noqa: E731
                assert replay_fn().ok
                raw_fn()  # warm both paths
                raw_times, replay_times, in_call = [], [], []
                for _ in range(repeats):  # alternate so that load from other processes hits both alike
                    raw_times.append(_time(raw_fn))
                    t0 = time.perf_counter()
                    report = replay_fn()
                    replay_times.append(time.perf_counter() - t0)
                    # the same call's own inference time: immune to load changing between calls
                    in_call.append(report.duration_s / report.inference_s)
                # min of alternating runs: the least-disturbed measurement of each on a shared machine
                raw, rep = min(raw_times), min(replay_times)
                rows.append([kind, label, n, batch, f"{raw * 1e3:.2f}", f"{rep * 1e3:.2f}",
                             f"{rep / raw:.3f}", f"{statistics.median(in_call):.3f}",
                             f"{(rep - raw) / n * 1e6:.2f}"])
                print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repeats and clean replays")
    args = parser.parse_args()
    n, batch, repeats, clean = (512, 128, 7, 20) if args.quick else (2048, 256, 9, 100)

    from goldwatch.examples.faults import fault_matrix

    started = time.perf_counter()
    rows = overhead_rows(n=n, batch=batch, repeats=repeats)
    matrices = [fault_matrix(kind, clean_replays=clean) for kind in ("tabular", "conv")]
    for m in matrices:
        print(m.to_markdown(), flush=True)
    elapsed = time.perf_counter() - started
    worst = max(float(r[7]) for r in rows)
    body = "\n\n".join(
        [
            "### Replay overhead over raw inference (same batches, same process, alternating; best of each)\n\n"
            + table(
                ["model", "case", "samples", "batch", "raw ms", "replay ms", "ratio", "in-call ratio",
                 "µs/sample added"],
                rows,
            )
            + f"\n\nTarget: replay <= 1.05 x raw. ratio = best replay / best raw run (separate calls); in-call ratio = "
            "median over runs of one replay's total time / its own inference time (robust to load changing between "
            f"calls). Worst in-call ratio here: {worst:.3f}. The checks cost a fixed ~1 ms per "
            "replay plus a few µs per sample (the KS distribution test dominates when answers differ at all; it "
            "is skipped when they are bit-identical: statistic 0, p = 1). The tabular MLP infers in well under a "
            "µs per sample, so there the checks cost more than the model; the conv model is the realistic case.",
            "### Fault-injection detection matrix (issue 5)\n\n"
            + "\n\n".join(m.to_markdown() for m in matrices)
            + "\n\nHarmful = changes top-1 on >= 1% of the golden samples; every harmful corruption must be detected, "
            "with zero false alarms over the clean replays. Corruptions are defined in goldwatch/examples/faults.py.",
            f"Total run time {elapsed:.0f} s. Absolute times are noisy on 2 cores; the ratios are measured side by "
            "side in one process.",
        ]
    )
    record("golden replay", body, command="python -m benchmarks.bench_replay" + (" --quick" if args.quick else ""))
    print(f"done in {elapsed:.0f} s; worst in-call replay/inference ratio {worst:.3f}")


if __name__ == "__main__":
    main()
