"""chi2_test refuses continuous float features instead of answering "no drift" (every float its own category)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from goldwatch.detectors import chi2_test, detect_drift
from goldwatch.errors import DataError


def test_half_sigma_shift_on_normal_data_is_refused_not_passed() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(1000, 2))
    cur = rng.normal(size=(1000, 2))
    cur[:, 0] += 0.5  # the shift that used to come back p = 0.49, "no drift"
    with pytest.raises(DataError) as info:
        chi2_test(ref, cur)
    msg = str(info.value)
    assert msg.startswith("chi2_test: feature(s) look continuous")
    assert "f0 (2000 distinct values in 2000 samples)" in msg
    assert "f1 (2000 distinct values in 2000 samples)" in msg
    assert "use a numeric test such as 'ks' or 'psi', or bin the column first" in msg
    # the numeric test the hint names does see the shift
    assert detect_drift(ref, cur, test="ks").drifted_features.tolist() == [True, False]
    with pytest.raises(DataError, match="look continuous"):
        detect_drift(ref, cur, test="chi2")


def test_only_the_continuous_columns_of_a_frame_are_named() -> None:
    rng = np.random.default_rng(1)
    n = 600

    def frame(shift: float) -> pd.DataFrame:
        return pd.DataFrame({
            "colour": rng.choice(["red", "green", "blue"], n),
            "zip": rng.integers(0, 10_000, n),  # integers: categories, however many
            "count": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 5_000, n)),  # integral floats + NaN
            "score": rng.normal(shift, 1.0, n),  # continuous
            "rating": rng.normal(shift, 1.0, n).round(1),  # binned floats: few distinct values
        })

    ref, cur = frame(0.0), frame(0.5)
    with pytest.raises(DataError) as info:
        chi2_test(ref, cur)
    msg = str(info.value)
    assert "score (" in msg
    for name in ("colour", "zip", "count", "rating"):
        assert f"{name} (" not in msg
    res = chi2_test(ref.drop(columns="score"), cur.drop(columns="score"))
    assert res.result.feature_names == ["colour", "zip", "count", "rating"]
    assert bool(res.result.drifted[3])  # binned, the shift is visible
    # an object array (a mixed frame's .to_numpy()) is judged per column too
    with pytest.raises(DataError, match=r"f3 \(1200 distinct values in 1200 samples\)"):
        chi2_test(ref.to_numpy(), cur.to_numpy())


def test_thresholds_are_half_the_samples_and_fifty_distinct() -> None:
    rng = np.random.default_rng(2)
    # 40 distinct floats in 40 samples: under the absolute floor, tested as categories
    chi2_test(rng.normal(size=20), rng.normal(size=20))
    # 60 distinct floats in 200 samples: under half the samples
    levels = rng.normal(size=60)
    chi2_test(rng.choice(levels, 100), rng.choice(levels, 100))
    # exactly half (100 distinct of 200: 60 levels, 39 fresh values, 0.0) passes; 101 of 200 is refused
    ref = np.r_[levels, levels[:40]]
    chi2_test(ref, np.r_[rng.normal(size=39), np.zeros(61)])
    with pytest.raises(DataError, match=r"f0 \(101 distinct values in 200 samples\)"):
        chi2_test(ref, np.r_[rng.normal(size=40), np.zeros(60)])


def test_many_continuous_features_are_summarised() -> None:
    rng = np.random.default_rng(3)
    with pytest.raises(DataError, match=r"f4 \(400 distinct values in 400 samples\) and 3 more"):
        chi2_test(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)))
