"""Paired output drift: p-values agree with scipy's, the effect floor is in the output's units."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from goldwatch.detectors.paired import MAX_TESTED_COLUMNS, columns_tested, paired_output_shift
from goldwatch.errors import DataError


def test_pvalues_agree_with_scipy_ttest_rel_and_ks_2samp_asymp() -> None:
    rng = np.random.default_rng(4)
    ref = np.round(rng.normal(size=(150, 6)), 1)  # ties: the case where scipy's exact KS gives up
    cur = np.round(ref + rng.normal(scale=0.3, size=ref.shape) + np.array([0, 0.1, 0.3, 0, 0, 1.0]), 1)
    shift = paired_output_shift(ref, cur, alpha=0.01, correction="none", min_effect=0.0)
    for j in range(ref.shape[1]):  # the reference implementations, one column at a time
        t = stats.ttest_rel(cur[:, j], ref[:, j])
        ks = stats.ks_2samp(ref[:, j], cur[:, j], method="asymp")
        assert shift.paired_pvalue[j] == pytest.approx(t.pvalue, rel=1e-9, abs=1e-300)
        assert shift.ks_statistic[j] == pytest.approx(ks.statistic, abs=1e-12)
        assert shift.ks_pvalue[j] == pytest.approx(ks.pvalue, rel=1e-9, abs=1e-300)
        assert shift.effect[j] == pytest.approx(stats.wasserstein_distance(ref[:, j], cur[:, j]), rel=1e-9)
    expected = np.minimum(2 * np.minimum(shift.ks_pvalue, shift.paired_pvalue), 1)
    np.testing.assert_allclose(shift.adjusted_pvalue, expected)


def test_the_paired_test_is_sharper_than_comparing_distributions() -> None:
    """A shift of a tenth of the spread on 100 samples: the marginals overlap (KS misses it), the differences do
    not (every sample moved)."""
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(100, 1))
    cur = ref + 0.1 + rng.normal(scale=0.01, size=ref.shape)
    shift = paired_output_shift(ref, cur, alpha=0.01, min_effect=0.0)
    assert shift.ks_pvalue[0] > 0.05
    assert shift.paired_pvalue[0] < 1e-50
    assert shift.drifted.tolist() == [True]
    assert shift.shifts(shift.drifted)[0]["sharper_test"] == "paired t"


def test_near_constant_column_moves_detectably_but_negligibly() -> None:
    rng = np.random.default_rng(6)
    ref = rng.normal(scale=0.05, size=(300, 3))
    ref[:, 1] = 1e-33 + rng.normal(scale=1e-9, size=300)  # the published model's near-constant dimension
    cur = ref.copy()
    cur[:, 1] = 0.0  # fp16 rounding zeroes it
    shift = paired_output_shift(ref, cur, alpha=0.01)
    assert shift.significant.tolist() == [False, True, False]
    assert shift.drifted.tolist() == [False, False, False]
    assert shift.effect[1] < 1e-8 < shift.effect_floor
    assert "within the effect floor" in shift.describe()
    strict = paired_output_shift(ref, cur, alpha=0.01, min_effect=0.0)
    assert strict.drifted.tolist() == [False, True, False]  # without the floor: the false alarm of the field report


def test_identical_outputs_and_constant_differences() -> None:
    x = np.arange(20.0).reshape(10, 2)
    same = paired_output_shift(x, x.copy(), alpha=0.01)
    assert same.n_drifted == 0
    assert same.adjusted_pvalue.tolist() == [1.0, 1.0]
    moved = paired_output_shift(x, x + np.array([0.0, 5.0]), alpha=0.01)  # every sample by exactly 5
    assert moved.paired_pvalue.tolist() == [1.0, 0.0]
    assert moved.drifted.tolist() == [False, True]


def test_wide_outputs_test_the_same_evenly_spaced_columns_everywhere() -> None:
    assert columns_tested(384).tolist() == list(range(384))
    wide = columns_tested(4096)
    assert wide.size == MAX_TESTED_COLUMNS
    assert wide[0] == 0
    assert wide[-1] == 4095
    rng = np.random.default_rng(7)
    ref = rng.normal(size=(20, 8, 100))
    assert paired_output_shift(ref, ref + 1, alpha=0.01).columns.tolist() == columns_tested(800).tolist()


def test_no_scipy_warning_and_clear_errors() -> None:
    rng = np.random.default_rng(8)
    ref = np.round(rng.normal(size=(400, 8)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paired_output_shift(ref, np.round(ref + rng.normal(size=ref.shape)), alpha=0.01)
    with pytest.raises(DataError, match="same shape"):
        paired_output_shift(ref, ref[:10], alpha=0.01)
    with pytest.raises(DataError, match="NaN or inf"):
        paired_output_shift(ref, np.full_like(ref, np.nan), alpha=0.01)
