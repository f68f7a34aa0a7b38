"""Golden replay: overhead over raw inference (target <= 5%) and the fault-injection detection matrix.

Run: ``.venv/bin/python -m benchmarks.bench_replay [--quick]``

1. Overhead. For each example model and runtime, the same batches are timed through the library's own call alone
   (the anchor: ``InferenceSession.run``, or the torch module) and through ``goldwatch.golden_sets.replay``
   (goldwatch's runtime, inference, every check, the report), alternating in pairs, in one process; the median of
   the pairs' ratios is the overhead. Two kinds of case: replay through the golden set's own runtime (answers
   bit-identical to the golden ones), and a cross-runtime replay (golden built with torch, replayed with ONNX
   Runtime: answers differ by a few ulps, within tolerance, so the error and top-1 checks do their work).
2. Detection power. The issue-5 fault matrix on both example models, with 100 clean replays each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._results import record, table


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def raw_inference(runtime: object, inputs: dict[str, np.ndarray], batch: int) -> Callable[[], object]:
    """The anchor: the library's own call per batch, nothing of goldwatch's around it.

    ONNX Runtime: ``InferenceSession.run`` on the runtime's own session (same threads, same providers). torch: the
    runtime's module under ``inference_mode``, ``from_numpy`` in and ``.numpy()`` out (the least any caller does).
    """
    name, x = next(iter(inputs.items()))
    starts = range(0, len(x), batch)
    if getattr(runtime, "kind", "") == "onnx":
        session = runtime._session  # type: ignore[attr-defined]

        def run_onnx() -> object:
            return [session.run(None, {name: x[s : s + batch]}) for s in starts]

        return run_onnx
    import torch

    module = runtime.module  # type: ignore[attr-defined]

    def run_torch() -> object:
        with torch.inference_mode():
            return [module(torch.from_numpy(x[s : s + batch])).numpy() for s in starts]

    return run_torch


#: (model, case, samples) -> µs that replay adds when inference itself costs nothing
FIXED: dict[tuple[str, str, int], float] = {}


class _Instant:
    """A stand-in runtime that returns the given answers at once: replay through it measures everything replay adds
    to inference (signature check, batching wrapper, every check, the report) with nothing else in the caches."""

    kind = "instant"
    device = "cpu"

    def __init__(self, runtime: Any, outputs: dict[str, np.ndarray]) -> None:
        self.signature, self.identity, self._outputs = runtime.signature, runtime.identity, outputs

    def run(self, inputs: object) -> dict[str, np.ndarray]:
        return self._outputs

    def run_batches(self, inputs: object, *, batch_size: int | None) -> dict[str, np.ndarray]:
        return self._outputs

    def close(self) -> None:
        pass


def fixed_cost_us(runtime: Any, golden: Any, outputs: dict[str, np.ndarray], batch: int) -> float:
    from goldwatch.golden_sets import replay

    instant = _Instant(runtime, outputs)
    return min(_time(lambda: replay(instant, golden, batch_size=batch)) for _ in range(3000)) * 1e6


def overhead_rows(*, sizes: Sequence[int], batch: int, budget_s: float) -> list[list[object]]:
    from goldwatch.examples import KINDS, write_example
    from goldwatch.golden_sets import build_golden_set, replay
    from goldwatch.runtimes import load_model

    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("tabular", "conv"):
            spec = KINDS[kind]
            art = write_example(kind, Path(tmp) / kind, formats=("onnx", "torch"))
            torch_rt = load_model(art.models["state_dict"])
            onnx_rt = load_model(art.models["onnx"])
            for n in sizes if kind == "tabular" else sizes[:1]:
                x, y = spec.data(n=n, seed=2)
                inputs = {spec.input_name: x}
                t_golden = build_golden_set(torch_rt, inputs, None, labels=y, repeats=2)
                cases = [
                    ("same runtime (torch)", torch_rt, t_golden),
                    ("same runtime (onnx)", onnx_rt, build_golden_set(onnx_rt, inputs, None, labels=y, repeats=2)),
                    ("cross-runtime (torch golden, onnx replay)", onnx_rt, t_golden),
                ]
                for label, runtime, golden in cases:
                    raw_fn = raw_inference(runtime, golden.inputs, batch)
                    replay_fn = lambda rt=runtime, g=golden: replay(rt, g, batch_size=batch)  # noqa: E731
                    report = replay_fn()
                    assert report.ok, [c for c in report.checks if not c.ok]
                    identical = all(np.array_equal(report.outputs[k], v) for k, v in golden.expected.items())
                    raw_fn()  # warm both paths
                    raw_times: list[float] = []
                    replay_times: list[float] = []
                    deadline = time.perf_counter() + budget_s
                    # alternate so that load from other processes hits both alike; at least 15 pairs
                    while len(raw_times) < 15 or time.perf_counter() < deadline:
                        raw_times.append(_time(raw_fn))
                        replay_times.append(_time(replay_fn))
                    # min of alternating runs: the least-disturbed measurement of each on a shared machine
                    raw, rep = min(raw_times), min(replay_times)
                    ratios = sorted(b / a for a, b in zip(raw_times, replay_times))
                    fixed = FIXED[(kind, label, n)] = fixed_cost_us(runtime, golden, report.outputs, batch)
                    rows.append([kind, label, "bit-identical" if identical else "within tolerance", n, batch,
                                 len(raw_times), f"{raw * 1e3:.3f}", f"{rep * 1e3:.3f}", f"{rep / raw:.3f}",
                                 f"{statistics.median(ratios):.3f}", f"{(rep - raw) * 1e6:.0f}", f"{fixed:.0f}"])
                    print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, shorter timing and fewer clean replays")
    args = parser.parse_args()
    sizes, batch, budget, clean = ([512], 128, 0.5, 20) if args.quick else ([2048, 16384], 256, 3.0, 100)

    from goldwatch.examples.faults import fault_matrix

    started = time.perf_counter()
    rows = overhead_rows(sizes=sizes, batch=batch, budget_s=budget)
    matrices = [fault_matrix(kind, clean_replays=clean) for kind in ("tabular", "conv")]
    for m in matrices:
        print(m.to_markdown(), flush=True)
    elapsed = time.perf_counter() - started
    ratio = {(r[0], r[1], r[3]): float(str(r[9])) for r in rows}
    met = [k for k, v in ratio.items() if v <= 1.05]
    missed = [f"{k[0]} {k[1]}, {k[2]} samples ({v:.3f})" for k, v in ratio.items() if v > 1.05]
    added = [float(str(r[10])) for r in rows if r[0] == "tabular"]
    tab = next(r for r in rows if r[0] == "tabular" and r[1] == "same runtime (onnx)")
    tab_raw_ms, tab_n = float(str(tab[6])), int(str(tab[3]))
    fixed_same = FIXED[("tabular", "same runtime (onnx)", tab_n)]
    fixed_cross = FIXED[("tabular", "cross-runtime (torch golden, onnx replay)", tab_n)]
    body = "\n\n".join(
        [
            "### Replay overhead over raw inference (same batches, same process, alternating)\n\n"
            + table(
                ["model", "case", "answers", "samples", "batch", "pairs", "raw ms (best)", "replay ms (best)",
                 "best / best", "median pair ratio", "µs added per replay", "µs added, instant stand-in"],
                rows,
            )
            + "\n\nRaw = the library's own call per batch and nothing else (`InferenceSession.run` on the runtime's "
            "session; the torch module under `inference_mode` with `from_numpy` in and `.numpy()` out). Replay = "
            "`goldwatch.golden_sets.replay` on the same batches: goldwatch's runtime wrapper, the signature check, "
            "joining the batches' outputs, every check, and the report. Each pair runs raw then replay back to back; "
            "the median of the pairs' ratios is the figure (robust to load changing between pairs). "
            f"Target replay <= 1.05 x raw: met in {len(met)} of {len(ratio)} cases"
            + (f"; not met: {'; '.join(missed)}." if missed else ".")
            + f" What replay adds is mostly a fixed cost per replay (tabular: {min(added):.0f}-{max(added):.0f} µs "
            "here, most of it Python run right after inference, with the library's working set in the caches) plus "
            "a few ns per answer, so the ratio is met once the golden set's inference takes a few milliseconds. "
            f"The tabular MLP infers {tab_n} samples in {tab_raw_ms:.2f} ms with ONNX Runtime, so 5 % is "
            f"{tab_raw_ms * 50:.0f} µs. Everything replay adds, measured on its own (through a stand-in runtime that "
            f"returns the same answers instantly, warm caches), takes {fixed_same:.0f} µs for bit-identical answers "
            f"and {fixed_cross:.0f} µs for answers within tolerance (last column); right after a real inference, "
            "with the library's working set in the caches, the same Python work costs more (the column before it)."
            + " Answers that are bit-identical to the golden ones (the healthy, same-runtime case) cost a byte "
            "comparison and the checks kept from the first replay; answers "
            "within tolerance but not identical (here: torch golden, ONNX Runtime replay) pay for the error and "
            "top-1 checks, with the top-1 of every sample whose margin exceeds twice the max error taken as proven.",
            "### Fault-injection detection matrix (issue 5)\n\n"
            + "\n\n".join(m.to_markdown() for m in matrices)
            + "\n\nHarmful = changes top-1 on >= 1% of the golden samples; every harmful corruption must be detected, "
            "with zero false alarms over the clean replays. Corruptions are defined in goldwatch/examples/faults.py.",
            f"Total run time {elapsed:.0f} s. Absolute times are noisy on 2 cores; the ratios are measured side by "
            "side in one process.",
        ]
    )
    record("golden replay", body, command="python -m benchmarks.bench_replay" + (" --quick" if args.quick else ""))
    print(f"done in {elapsed:.0f} s; replay <= 1.05 x raw in {len(met)} of {len(ratio)} cases")


if __name__ == "__main__":
    main()
