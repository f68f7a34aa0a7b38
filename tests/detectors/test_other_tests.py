"""Cramér-von Mises, Anderson-Darling, Wasserstein, binned distances and chi-squared against scipy."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from goldwatch.detectors import (
    anderson_ksamp,
    chi2_test,
    cramervonmises_2samp,
    hellinger,
    jensen_shannon,
    kl_divergence,
    psi,
    wasserstein,
)
from goldwatch.detectors.distances import bin_edges, histograms, js_from_histograms
from goldwatch.errors import DataError
from tests.detectors.detectors_support import rel_diff

kinds = st.sampled_from(["normal", "ties", "shifted", "huge", "tiny"])


def make(rng: np.random.Generator, n: int, kind: str, features: int = 3) -> np.ndarray:
    if kind == "ties":
        return rng.integers(0, 4, size=(n, features)).astype(float)
    if kind == "shifted":
        return rng.normal(0.7, size=(n, features))
    if kind == "huge":
        return rng.normal(size=(n, features)) * 1e150
    if kind == "tiny":
        return rng.normal(size=(n, features)) * 1e-150
    return rng.normal(size=(n, features))


@settings(max_examples=30)
@given(n1=st.integers(2, 80), n2=st.integers(2, 80), k1=kinds, k2=kinds, seed=st.integers(0, 2**32 - 1))
def test_cvm_matches_scipy(n1, n2, k1, k2, seed) -> None:
    rng = np.random.default_rng(seed)
    a, b = make(rng, n1, k1), make(rng, n2, k2)
    ours = cramervonmises_2samp(a, b)
    for j in range(a.shape[1]):
        ref = stats.cramervonmises_2samp(a[:, j], b[:, j])
        assert rel_diff(ours.statistic[j], ref.statistic) <= 1e-9
        assert rel_diff(ours.pvalue[j], ref.pvalue) <= 1e-9


@settings(max_examples=30)
@given(n1=st.integers(2, 80), n2=st.integers(2, 80), k1=kinds, k2=kinds, seed=st.integers(0, 2**32 - 1))
def test_anderson_matches_scipy(n1, n2, k1, k2, seed) -> None:
    rng = np.random.default_rng(seed)
    a, b = make(rng, n1, k1), make(rng, n2, k2)
    ours = anderson_ksamp(a, b)
    for j in range(a.shape[1]):
        pooled = np.concatenate([a[:, j], b[:, j]])
        if np.unique(pooled).size < 2:
            assert np.isnan(ours.statistic[j])
            assert ours.pvalue[j] == 1.0
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ref = stats.anderson_ksamp([a[:, j], b[:, j]], variant="midrank")
        assert rel_diff(ours.statistic[j], ref.statistic) <= 1e-9
        assert rel_diff(ours.pvalue[j], ref.pvalue) <= 1e-9


def test_constant_columns_do_not_drift(rng) -> None:
    a, b = np.full((50, 2), 3.0), np.full((40, 2), 3.0)
    assert not anderson_ksamp(a, b).drifted.any()
    assert not cramervonmises_2samp(a, b).drifted.any()
    assert wasserstein(a, b, normed=True).statistic.tolist() == [0.0, 0.0]


@settings(max_examples=30)
@given(n1=st.integers(1, 80), n2=st.integers(1, 80), k1=kinds, k2=kinds, seed=st.integers(0, 2**32 - 1))
def test_wasserstein_matches_scipy(n1, n2, k1, k2, seed) -> None:
    rng = np.random.default_rng(seed)
    a, b = make(rng, n1, k1), make(rng, n2, k2)
    ours = wasserstein(a, b).statistic
    ref = [stats.wasserstein_distance(a[:, j], b[:, j]) for j in range(a.shape[1])]
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=0)


def test_normed_wasserstein_is_scale_free(rng) -> None:
    a, b = rng.normal(size=(400, 1)), rng.normal(0.5, size=(300, 1))
    one = wasserstein(a, b, normed=True).statistic
    many = wasserstein(a * 1e6, b * 1e6, normed=True).statistic
    np.testing.assert_allclose(one, many, rtol=1e-12)


@settings(max_examples=30)
@given(n1=st.integers(5, 200), n2=st.integers(1, 200), k1=kinds, k2=kinds, seed=st.integers(0, 2**32 - 1))
def test_jensen_shannon_matches_scipy_on_the_histograms(n1, n2, k1, k2, seed) -> None:
    rng = np.random.default_rng(seed)
    a, b = make(rng, n1, k1), make(rng, n2, k2)
    edges = bin_edges(a)
    p, q = histograms(a, edges), histograms(b, edges)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    ref = [jensenshannon(p[j], q[j]) for j in range(a.shape[1])]
    np.testing.assert_allclose(js_from_histograms(p, q), ref, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(jensen_shannon(a, b).statistic, ref, rtol=1e-9, atol=1e-15)


def test_histograms_put_every_value_in_a_bin(rng) -> None:
    a = rng.normal(size=(1000, 2))
    edges = bin_edges(a, bins=5)
    b = np.array([[-1e9, 1e9], [1e9, -1e9], [0.0, 0.0]])
    np.testing.assert_allclose(histograms(b, edges).sum(axis=1), 1.0)
    np.testing.assert_allclose(histograms(a, edges), 0.2, atol=1e-3)


def test_binned_distances_rank_shifts(rng) -> None:
    a = rng.normal(size=(5000, 3))
    b = rng.normal([0.0, 0.3, 1.5], size=(5000, 3))
    for func in (psi, jensen_shannon, hellinger, kl_divergence):
        stat = func(a, b).statistic
        assert stat[0] < stat[1] < stat[2], func.__name__
        assert func(a, b).drifted.tolist() == [False, stat[1] > func(a, b).threshold, True]
    assert psi(a, a).statistic.max() == pytest.approx(0.0, abs=1e-12)


def test_psi_known_value() -> None:
    # 2 bins at the reference median: reference 50/50, current 80/20 -> PSI = 0.3 ln(1.6) + 0.3 ln(2.5)
    a = np.array([0.0, 0.0, 1.0, 1.0])[:, None]
    b = np.array([0.0] * 8 + [1.0] * 2)[:, None]
    assert psi(a, b, bins=2).statistic[0] == pytest.approx(0.3 * np.log(1.6) + 0.3 * np.log(2.5))


def _scipy_chi2(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    labels = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    table = pd.crosstab(labels, np.r_[ref, cur].astype(str)).to_numpy()
    if table.shape[1] == 1:
        return 0.0, 1.0
    res = stats.chi2_contingency(table)
    return res.statistic, res.pvalue


@settings(max_examples=30)
@given(n1=st.integers(1, 120), n2=st.integers(1, 120), k1=st.integers(1, 6), k2=st.integers(1, 7),
       seed=st.integers(0, 2**32 - 1))
def test_chi2_matches_scipy_with_unseen_categories(n1, n2, k1, k2, seed) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, k1, size=(n1, 3)).astype(str).astype(object)
    cur = rng.integers(0, k2, size=(n2, 3)).astype(str).astype(object)
    res = chi2_test(ref, cur)
    for j in range(3):
        stat, p = _scipy_chi2(ref[:, j], cur[:, j])
        assert res.result.statistic[j] == pytest.approx(stat, rel=1e-9, abs=1e-12)
        assert res.result.pvalue[j] == pytest.approx(p, rel=1e-9, abs=1e-300)
        assert res.n_unseen[j] == len(set(cur[:, j]) - set(ref[:, j]))


def test_chi2_missing_values_are_a_category() -> None:
    ref = np.array([["a"], ["b"]] * 50, dtype=object)
    cur = np.array([["a"], [None]] * 50, dtype=object)
    res = chi2_test(ref, cur)
    assert res.n_unseen.tolist() == [1]
    assert res.result.drifted.tolist() == [True]


@pytest.mark.parametrize("func", [cramervonmises_2samp, anderson_ksamp, wasserstein, psi])
def test_numeric_tests_refuse_bad_input(func) -> None:
    with pytest.raises(DataError, match="current: expected 2 features"):
        func(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(DataError, match="expected numeric data"):
        func(np.array([["x", "y"]] * 10), np.zeros((10, 2)))
    with pytest.raises(DataError, match="NaN or inf"):
        func(np.full((10, 2), np.inf), np.zeros((10, 2)))


def test_cvm_needs_two_observations() -> None:
    with pytest.raises(DataError, match="current: expected at least 2 sample"):
        cramervonmises_2samp(np.zeros((5, 1)), np.zeros((1, 1)))
