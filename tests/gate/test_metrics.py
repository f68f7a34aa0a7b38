"""The gate's numeric comparisons against hand-computed values and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from goldwatch.errors import DataError
from goldwatch.watchdog.gate.metrics import (
    error_histogram,
    measure_latency,
    metric_delta_check,
    nonfinite_check,
    task_metric,
    top1_agreement,
)


def test_top1_agreement_multi_axis() -> None:
    cand = np.zeros((2, 3, 4))
    base = np.zeros((2, 3, 4))
    cand[..., 1] = 1
    base[..., 1] = 1
    base[0, 0, 2] = 2
    assert top1_agreement(cand, base) == pytest.approx(5 / 6)


def test_top1_agreement_shape_mismatch_is_data_error() -> None:
    with pytest.raises(DataError, match=r"shapes \(2, 3\) and \(2, 4\)"):
        top1_agreement(np.zeros((2, 3)), np.zeros((2, 4)))


@pytest.mark.parametrize(
    ("cand", "base", "abs_", "rel", "better", "status"),
    [
        (0.90, 0.90, 0.0, 0.0, True, "pass"),      # no regression required by default
        (0.89, 0.90, 0.0, 0.0, True, "fail"),
        (0.89, 0.90, -0.02, -1.0, True, "pass"),   # a tolerated regression
        (0.95, 0.90, 0.1, 0.0, True, "fail"),      # improvement below the required absolute gain
        (0.95, 0.90, 0.0, 0.1, True, "fail"),      # 5.6 % < 10 % relative
        (0.80, 1.00, 0.0, 0.1, False, "pass"),     # rmse: lower is better, 20 % gain
    ],
)
def test_metric_delta_follows_mlflow_semantics(cand, base, abs_, rel, better, status) -> None:
    check = metric_delta_check("m", candidate=cand, baseline=base, greater_is_better=better,
                               min_absolute_change=abs_, min_relative_change=rel, name="x")
    assert check.status == status
    assert check.measured["absolute_gain"] == pytest.approx((cand - base) * (1 if better else -1))


def test_task_metric_validates_labels() -> None:
    with pytest.raises(DataError, match=r"labels have shape \(3,\), expected \(2,\)"):
        task_metric(np.zeros((2, 4), np.float32), np.zeros(3, np.int64))


def test_nonfinite_check_counts_per_output() -> None:
    bad = np.array([1.0, np.nan, np.inf, -np.inf])
    check = nonfinite_check({"a": bad, "b": np.ones(3), "ids": np.arange(3)}, name="finite")
    assert check.status == "fail"
    assert check.measured == {"nonfinite": 3, "elements": 7}
    assert check.details == {"per_output": {"a": 3}}
    assert nonfinite_check({"b": np.ones(3)}, name="f").status == "pass"


@given(
    hnp.arrays(np.float64, st.integers(1, 200), elements=st.floats(-1e3, 1e3)),
    st.floats(1e-9, 1.0),
)
def test_histogram_counts_every_element_once(values: np.ndarray, tol: float) -> None:
    expected = np.zeros_like(values)
    h = error_histogram(values, expected, tolerance=tol, title="t")
    assert sum(h.counts) == values.size
    assert len(h.labels) == len(h.counts)
    outside = int(np.count_nonzero(np.abs(values) >= tol))
    assert sum(h.counts[h.limit_bin:]) == outside


def test_histogram_reports_nonfinite() -> None:
    h = error_histogram(np.array([np.nan, 1.0]), np.array([0.0, 1.0]), tolerance=None, title="t")
    assert h.labels[-1] == "NaN/Inf"
    assert h.counts[-1] == 1
    assert h.limit_bin is None


def test_latency_percentiles_from_a_fake_clock() -> None:
    durations = iter([0.001 * k for k in range(1, 11)])
    now = [0.0]

    def clock() -> float:
        return now[0]

    def run() -> None:
        now[0] += next(durations)

    stats = measure_latency(run, batch_size=4, repeats=10, warmup=0, clock=clock)
    assert stats.p50_ms == pytest.approx(5.5)
    assert stats.p95_ms == pytest.approx(9.55)
    assert math.isclose(stats.mean_ms, 5.5)
