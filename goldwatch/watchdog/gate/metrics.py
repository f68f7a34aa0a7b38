"""The gate's numeric comparisons, on plain numpy arrays: agreement, metric deltas, non-finite values, latency.

They take outputs already computed (by a runtime, on a golden set's inputs) and return :class:`Check` objects and
plot data, so each is testable without a model. All are vectorized over samples and elements.

>>> import numpy as np
>>> cand = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
>>> base = np.array([[0.8, 0.2], [0.1, 0.9], [0.4, 0.6], [0.3, 0.7]])
>>> top1_agreement(cand, base)
0.75
>>> metric_delta_check("accuracy", candidate=0.90, baseline=0.92, greater_is_better=True,
...                    min_absolute_change=0.0, min_relative_change=0.0, name="baseline:g:accuracy").status
'fail'
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from goldwatch.checks import Check
from goldwatch.errors import DataError
from goldwatch.watchdog.gate.verdict import HistogramPlot

__all__ = [
    "LatencyStats",
    "error_histogram",
    "is_class_scores",
    "measure_latency",
    "metric_delta_check",
    "nonfinite_check",
    "task_metric",
    "top1_agreement",
]


def is_class_scores(array: np.ndarray) -> bool:
    """Scores over classes (batch first, classes last, more than one class), where top-1 is meaningful."""
    return array.ndim >= 2 and array.shape[-1] > 1 and np.issubdtype(array.dtype, np.floating)


def top1_agreement(candidate: np.ndarray, baseline: np.ndarray) -> float:
    """Fraction of positions where both models pick the same class (argmax over the last axis)."""
    if candidate.shape != baseline.shape:
        raise DataError(
            f"outputs have shapes {candidate.shape} and {baseline.shape}",
            hint="candidate and baseline must have the same output signature",
        )
    if candidate.size == 0:
        raise DataError("outputs are empty", hint="the golden set needs at least one sample")
    return float(np.mean(np.argmax(candidate, axis=-1) == np.argmax(baseline, axis=-1)))


def task_metric(outputs: np.ndarray, labels: np.ndarray) -> tuple[str, float, bool]:
    """(name, value, greater_is_better): accuracy for class scores with integer labels, else RMSE.

    >>> task_metric(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))
    ('accuracy', 0.5, True)
    >>> task_metric(np.array([1.0, 3.0]), np.array([1.0, 1.0]))
    ('rmse', 1.4142135623730951, False)
    """
    labels = np.asarray(labels)
    if is_class_scores(outputs) and np.issubdtype(labels.dtype, np.integer):
        if labels.shape != outputs.shape[:-1]:
            raise DataError(
                f"labels have shape {labels.shape}, expected {outputs.shape[:-1]} for outputs {outputs.shape}",
                hint="give one class index per sample",
            )
        return "accuracy", float(np.mean(np.argmax(outputs, axis=-1) == labels)), True
    if labels.shape != outputs.shape:
        raise DataError(
            f"labels have shape {labels.shape}, outputs {outputs.shape}",
            hint="regression labels must have the output's shape",
        )
    diff = outputs.astype(np.float64) - labels.astype(np.float64)
    return "rmse", float(np.sqrt(np.mean(diff * diff))), False


def metric_delta_check(
    metric: str,
    *,
    candidate: float,
    baseline: float,
    greater_is_better: bool,
    min_absolute_change: float,
    min_relative_change: float,
    name: str,
) -> Check:
    """MLflow ``MetricThreshold`` semantics: the candidate must improve on the baseline by at least
    ``min_absolute_change`` and by at least ``min_relative_change`` (a fraction of the baseline).

    With both at 0 (the default) this means: no regression.
    """
    sign = 1.0 if greater_is_better else -1.0
    gain = sign * (candidate - baseline)
    relative = gain / abs(baseline) if baseline != 0 else (math.inf if gain > 0 else (0.0 if gain == 0 else -math.inf))
    passed = gain >= min_absolute_change and relative >= min_relative_change
    direction = "higher" if greater_is_better else "lower"
    summary = (
        f"{metric} {candidate:.6g} vs baseline {baseline:.6g} (change {candidate - baseline:+.6g}, "
        f"{direction} is better; required gain >= {min_absolute_change:g} abs and >= {min_relative_change:g} rel)"
    )
    return Check(
        name=name,
        status="pass" if passed else "fail",
        summary=summary,
        measured={"candidate": candidate, "baseline": baseline, "absolute_gain": gain,
                  "relative_gain": relative if math.isfinite(relative) else str(relative)},
        threshold={"min_absolute_change": min_absolute_change, "min_relative_change": min_relative_change,
                   "greater_is_better": greater_is_better},
    )


def nonfinite_check(outputs: Mapping[str, np.ndarray], *, name: str) -> Check:
    """Fail when any output holds NaN or Inf; the evidence names the outputs and counts."""
    found: dict[str, int] = {}
    total = 0
    for key, array in outputs.items():
        array = np.asarray(array)
        if not np.issubdtype(array.dtype, np.inexact):
            continue
        total += array.size
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            found[key] = bad
    if found:
        listed = ", ".join(f"{k}: {v}" for k, v in found.items())
        return Check(name=name, status="fail", summary=f"non-finite values in outputs ({listed})",
                     measured={"nonfinite": sum(found.values()), "elements": total}, threshold={"max": 0},
                     details={"per_output": found})
    return Check(name=name, status="pass", summary=f"all {total} output values finite",
                 measured={"nonfinite": 0, "elements": total}, threshold={"max": 0})


def error_histogram(
    actual: np.ndarray, expected: np.ndarray, *, tolerance: float | None, title: str, group: str = "golden",
    note: str = "",
) -> HistogramPlot:
    """Histogram of ``|actual - expected|`` on decade bins, with the tolerance itself as a bin edge.

    Exact matches get their own bin ("0"), so a bit-exact replay reads as one tall bar; bins from the tolerance
    upwards are the ones outside it.

    >>> h = error_histogram(np.array([1.0, 1.0, 1.5]), np.array([1.0, 1.0 + 1e-7, 1.0]), tolerance=1e-5, title="y")
    >>> list(zip(h.labels, h.counts))[:1], h.labels[h.limit_bin], h.counts[h.limit_bin:]
    ([('0', 1)], '≥1e-05', [0, 0, 0, 0, 1, 0, 0, 0])
    """
    err = np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64)).ravel()
    finite = err[np.isfinite(err)]
    zero = int(np.count_nonzero(finite == 0))
    positive = finite[finite > 0]
    # decades from 1e-12 to 1e2; the tolerance is inserted as an extra edge so within/outside is exact
    edges = [10.0**k for k in range(-12, 3)]
    if tolerance is not None and tolerance > 0 and math.isfinite(tolerance):
        edges = sorted({*edges, float(tolerance)})
    edge_arr = np.asarray(edges)
    below = int(np.count_nonzero(positive < edge_arr[0]))
    counts_mid = np.histogram(positive, bins=edge_arr)[0].astype(int).tolist()
    above = int(np.count_nonzero(positive >= edge_arr[-1]))
    nonfinite = int(err.size - finite.size)
    labels = ["0", f"<{edges[0]:.0e}"]
    labels += [f"≥{lo:.0e}" if lo == tolerance else f"{lo:.0e}" for lo in edges[:-1]]
    labels.append(f"≥{edges[-1]:.0e}")
    counts = [zero, below, *counts_mid, above]
    if nonfinite:
        labels.append("NaN/Inf")
        counts.append(nonfinite)
    limit_bin = None
    if tolerance is not None and tolerance in edges:
        limit_bin = 2 + edges.index(tolerance)
    return HistogramPlot(
        title=title, group=group, labels=labels, counts=counts, x_label="|output − expected|",
        limit=tolerance, limit_bin=limit_bin, note=note,
    )


@dataclass(frozen=True)
class LatencyStats:
    """Wall time per batch over ``repeats`` timed runs (after warm-up)."""

    p50_ms: float
    p95_ms: float
    mean_ms: float
    batch_size: int
    repeats: int


def measure_latency(
    run: Callable[[], object], *, batch_size: int, repeats: int = 20, warmup: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> LatencyStats:
    """Time ``run()`` ``repeats`` times after ``warmup`` untimed runs (first runs pay for lazy initialisation).

    >>> ticks = iter(range(0, 100, 1))
    >>> measure_latency(lambda: None, batch_size=8, repeats=5, warmup=0, clock=lambda: next(ticks) / 1000).p50_ms
    1.0
    """
    if repeats < 1:
        raise DataError(f"repeats must be at least 1, got {repeats}", hint="time at least one batch")
    for _ in range(warmup):
        run()
    times = np.empty(repeats)
    for i in range(repeats):
        start = clock()
        run()
        times[i] = clock() - start
    ms = times * 1000.0
    return LatencyStats(
        p50_ms=float(np.percentile(ms, 50)), p95_ms=float(np.percentile(ms, 95)), mean_ms=float(ms.mean()),
        batch_size=batch_size, repeats=repeats,
    )
