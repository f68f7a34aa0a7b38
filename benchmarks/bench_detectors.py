"""Drift-detector benchmark: goldwatch vs a scipy per-column loop vs Evidently's DataDriftPreset (KS), same data.

Cases (full run; ``--quick`` shrinks them for a smoke run):

* KS, asymptotic branch: 100,000 x 100 reference and current.
* KS, exact branch: 10,000 x 50 reference and current.
* Streaming: 1,000 streams x 10,000 updates of Page-Hinkley and CUSUM.

Each timing is the best of ``--repeats`` runs for goldwatch and scipy and a single run for Evidently (tens of
seconds). The largest relative p-value difference against scipy is printed next to the ratios. Results go to
benchmarks/RESULTS.md via :func:`benchmarks._results.record`.

Run: ``.venv/bin/python -m benchmarks.bench_detectors [--quick] [--no-evidently] [--only-ks]``
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks._results import record, table


def best_of(repeats: int, func: Callable[[], Any]) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - t0)
    return best, out


def scipy_loop(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    from scipy import stats

    return np.array([stats.ks_2samp(ref[:, j], cur[:, j]).pvalue for j in range(ref.shape[1])])


def goldwatch_ks(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    from goldwatch.detectors import ks_2samp

    return ks_2samp(ref, cur).pvalue


def evidently_ks(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = [f"f{i}" for i in range(ref.shape[1])]
    definition = DataDefinition(numerical_columns=cols)
    report = Report([DataDriftPreset(method="ks", num_method="ks")])
    snapshot = report.run(
        Dataset.from_pandas(pd.DataFrame(cur, columns=cols), data_definition=definition),
        Dataset.from_pandas(pd.DataFrame(ref, columns=cols), data_definition=definition),
    )
    values = {}
    for metric in snapshot.dict()["metrics"]:
        name = metric["metric_name"]
        if name.startswith("ValueDrift(column="):
            values[name.split("column=")[1].split(",")[0]] = metric["value"]
    return np.array([values[c] for c in cols])


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.abs(a - b) / np.abs(b)
    return float(np.max(np.where(a == b, 0.0, d)))


def ks_case(name: str, n: int, features: int, *, repeats: int, evidently: bool, seed: int = 0) -> list[object]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, features))
    cur = rng.normal(size=(n, features))
    cur[:, : max(1, features // 10)] += 0.01  # a few mildly shifted features, like real windows
    goldwatch_ks(ref[:50], cur[:50])  # imports and first-call costs out of the timing
    scipy_loop(ref[:50, :2], cur[:50, :2])
    t_gw, p_gw = best_of(repeats, lambda: goldwatch_ks(ref, cur))
    t_sp, p_sp = best_of(max(1, repeats - 1), lambda: scipy_loop(ref, cur))
    row: list[object] = [name, f"{n:,} x {features}", f"{t_gw:.3f}", f"{t_sp:.3f}", f"{t_sp / t_gw:.1f}x"]
    diff = rel_diff(p_gw, p_sp)
    if evidently:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_ev, p_ev = best_of(1, lambda: evidently_ks(ref, cur))
        row += [f"{t_ev:.2f}", f"{t_ev / t_gw:.0f}x"]
        ev_diff = rel_diff(p_ev, p_sp)
    else:
        row += ["-", "-"]
        ev_diff = float("nan")
    row += [f"{diff:.1e}", f"{ev_diff:.1e}"]
    print(" | ".join(str(c) for c in row), flush=True)
    return row


def stream_case(cls_name: str, n_streams: int, steps: int, *, block: int, repeats: int) -> list[object]:
    from goldwatch.detectors import CUSUM, PageHinkley

    cls = {"PageHinkley": PageHinkley, "CUSUM": CUSUM}[cls_name]
    data = np.random.default_rng(1).normal(size=(steps, n_streams))

    def go() -> int:
        det = cls(n_streams=n_streams)
        alarms = 0
        for lo in range(0, steps, block):
            det.update(data[lo : lo + block])
            alarms += int(det.drift_detected.sum())
        return alarms

    seconds, alarms = best_of(repeats, go)
    row: list[object] = [cls_name, f"{n_streams:,} x {steps:,}", block, f"{seconds:.3f}", alarms]
    print(" | ".join(str(c) for c in row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-evidently", action="store_true", help="skip Evidently (it takes ~25 s at full size)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only-ks", action="store_true", help="the KS cases only, printed and not recorded")
    args = parser.parse_args()
    evidently = not args.no_evidently
    load_before = os.getloadavg()[0]
    if args.quick:
        ks_sizes = [("asymptotic", 20_000, 20), ("exact", 5_000, 20)]
        streams = (200, 2_000)
    else:
        ks_sizes = [("asymptotic", 100_000, 100), ("exact", 10_000, 50)]
        streams = (1_000, 10_000)
    print("KS case | shape | goldwatch s | scipy loop s | vs scipy | Evidently s | vs Evidently | "
          "max rel p diff (scipy) | Evidently vs scipy")
    ks_rows = [ks_case(name, n, f, repeats=args.repeats, evidently=evidently) for name, n, f in ks_sizes]
    if args.only_ks:
        print("(--only-ks: not recorded)")
        return
    print("detector | streams x updates | rows per update() | seconds | alarms")
    stream_rows = [
        stream_case(name, *streams, block=block, repeats=args.repeats)
        for name in ("PageHinkley", "CUSUM")
        for block in (streams[1], 100)
    ]
    load_after = os.getloadavg()[0]
    shared = max(load_before, load_after) > 2.5
    body = (
        table(
            ["KS case", "shape (each side)", "goldwatch s", "scipy loop s", "speed-up vs scipy", "Evidently s",
             "speed-up vs Evidently", "max rel. p diff vs scipy", "Evidently p diff vs scipy"],
            ks_rows,
        )
        + "\n\n"
        + table(["detector", "streams x updates", "rows per update()", "seconds", "alarms (stable data)"],
                stream_rows)
        + "\n\nTimings: best of "
        + f"{args.repeats} (goldwatch), {max(1, args.repeats - 1)} (scipy), 1 (Evidently). "
        + f"Load average before/after: {load_before:.1f}/{load_after:.1f}"
        + (" -- the machine was shared with other work during this run; ratios are from the same run."
           if shared else ".")
    )
    command = "python -m benchmarks.bench_detectors" + (" --quick" if args.quick else "")
    if not args.quick:
        record("detectors", body, command=command)
    else:
        print("(--quick: not recorded)")
    print(body)


if __name__ == "__main__":
    main()
