"""The counting KS statistic (buckets, bounds, refinement) against the sort-and-merge one and scipy, exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from goldwatch.detectors._ks_counts import ReferenceGrid, ks_statistic_counts
from goldwatch.detectors.ks import ks_statistic, ks_statistic_merge, ks_statistic_sorted

KINDS = ["normal", "ties", "zeros", "huge", "subnormal", "lognormal", "outlier", "constant", "shifted", "wide"]


def column(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    if kind == "ties":
        return rng.integers(0, 5, size=n).astype(float)
    if kind == "zeros":  # -0.0 and +0.0 are one value
        x = rng.normal(size=n)
        x[rng.random(n) < 0.3] = 0.0
        x[rng.random(n) < 0.3] = -0.0
        return x
    if kind == "huge":
        return rng.normal(size=n) * 1e300
    if kind == "subnormal":
        return rng.normal(size=n) * 1e-310
    if kind == "lognormal":  # most values in one level-one bucket
        return rng.lognormal(0.0, 4.0, size=n)
    if kind == "outlier":
        x = rng.normal(size=n)
        x[0] = 1e300
        return x
    if kind == "constant":
        return np.full(n, 3.25)
    if kind == "shifted":
        return rng.normal(0.3, size=n)
    if kind == "wide":  # the range overflows a float
        x = rng.normal(size=n)
        x[: max(1, n // 50)] = rng.choice([-1.7e308, 1.7e308], size=max(1, n // 50))
        return x
    return rng.normal(size=n)


def frame(rng: np.random.Generator, n: int, kinds: list[str]) -> np.ndarray:
    return np.column_stack([column(rng, n, k) for k in kinds])


@settings(max_examples=80, deadline=None)
@given(
    n1=st.integers(1, 3000),
    n2=st.integers(1, 3000),
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=6),
    other=st.lists(st.sampled_from(KINDS), min_size=6, max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_counting_equals_sort_merge(n1, n2, kinds, other, seed) -> None:
    rng = np.random.default_rng(seed)
    a = frame(rng, n1, kinds)
    b = frame(rng, n2, other[: len(kinds)])
    expected = ks_statistic_merge(a, b)
    np.testing.assert_array_equal(ks_statistic(a, b), expected)
    sorted_a = np.sort(a, axis=0)
    np.testing.assert_array_equal(ks_statistic_sorted(sorted_a, b), expected)
    np.testing.assert_array_equal(ks_statistic_counts(a, b, grid=ReferenceGrid.fit(a, buckets=256)), expected)


def test_scipy_statistic_on_large_samples() -> None:
    """Sizes where scipy's asymptotic statistic is reported unrounded: the same floats, bit for bit."""
    rng = np.random.default_rng(5)
    a = np.column_stack([rng.normal(size=30_000), np.round(rng.normal(size=30_000), 2), rng.exponential(size=30_000)])
    b = np.column_stack([rng.normal(0.02, size=20_000), np.round(rng.normal(size=20_000), 2),
                         rng.exponential(1.05, size=20_000)])
    ours = ks_statistic(a, b)
    theirs = [stats.ks_2samp(a[:, j], b[:, j], method="asymp").statistic for j in range(3)]
    assert ours.tolist() == theirs


@pytest.mark.parametrize(("n1", "n2"), [(100_000, 10_000), (100_000, 100), (2_000, 50_000)])
def test_window_against_a_presorted_reference_with_its_grid(n1, n2) -> None:
    """The grid is fitted once at the reference's resolution and coarsened for smaller windows."""
    rng = np.random.default_rng(n1 + n2)
    ref = np.sort(frame(rng, n1, ["normal", "ties", "lognormal", "zeros"]), axis=0)
    grid = ReferenceGrid.fit(ref, lo=ref[0], hi=ref[-1])
    for shift in (0.0, 0.05):
        window = frame(rng, n2, ["normal", "ties", "lognormal", "zeros"]) + shift
        np.testing.assert_array_equal(ks_statistic_sorted(ref, window, grid=grid), ks_statistic_merge(ref, window))


def test_one_grid_across_window_sizes_and_both_integer_widths() -> None:
    """The grid keeps the reference's counts per level and integer width: 32-bit gaps while n1 * n2 fits in
    them (a 5,000-row window), 64-bit beyond (a 40,000-row one: 2.4e9); alternating sizes reuse them."""
    rng = np.random.default_rng(11)
    kinds = ["normal", "ties", "zeros"]
    ref = np.sort(frame(rng, 60_000, kinds), axis=0)
    grid = ReferenceGrid.fit(ref, lo=ref[0], hi=ref[-1])
    for n2 in (5_000, 40_000, 5_000, 40_000):
        window = frame(rng, n2, kinds) + 0.03
        np.testing.assert_array_equal(ks_statistic_sorted(ref, window, grid=grid), ks_statistic_merge(ref, window))
    assert {dtype for _, dtype in grid._levels} == {np.dtype(np.int32).str, np.dtype(np.int64).str}
