"""detect_drift: corrections, effect-size floor, NaN policy, checks, calibration under the null."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goldwatch.detectors import adjust_pvalues, available_detectors, detect_drift, get_detector
from goldwatch.errors import ConfigError, DataError


def test_dataset_verdict_and_feature_table(rng) -> None:
    ref = pd.DataFrame(rng.normal(size=(800, 3)), columns=["a", "b", "c"])
    cur = pd.DataFrame(rng.normal([0.0, 0.6, 0.0], size=(600, 3)), columns=["a", "b", "c"])
    report = detect_drift(ref, cur)
    assert report.drifted
    assert report.n_drifted == 1
    frame = report.to_frame()
    assert list(frame.index) == ["a", "b", "c"]
    assert frame["drifted"].tolist() == [False, True, False]
    np.testing.assert_allclose(frame["adjusted_pvalue"], np.minimum(frame["pvalue"] * 3, 1.0))


def test_to_checks_one_per_feature_plus_dataset(rng) -> None:
    report = detect_drift(rng.normal(size=(300, 2)), rng.normal([0, 1], size=(300, 2)))
    checks = report.to_checks("inputs")
    assert [c.name for c in checks] == ["inputs:ks:f0", "inputs:ks:f1", "inputs:ks"]
    assert [c.status for c in checks] == ["pass", "fail", "fail"]
    assert checks[-1].details["drifted_features"] == ["f1"]
    assert checks[1].measured["pvalue"] < 1e-10


@settings(max_examples=40)
@given(p=st.lists(st.floats(0, 1), min_size=1, max_size=40))
def test_corrections_are_monotone_and_bounded(p) -> None:
    p = np.array(p)
    bonf, bh = adjust_pvalues(p, "bonferroni"), adjust_pvalues(p, "bh")
    assert np.all(bonf >= p)
    assert np.all(bonf <= 1)
    assert np.all(bh >= p - 1e-15)
    assert np.all(bh <= bonf + 1e-15)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(bh[order]) >= -1e-15)


def test_bh_matches_the_textbook_example() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), [0.02, 0.04, 0.04, 0.02])


def test_min_effect_floor_silences_tiny_but_significant_shifts(rng) -> None:
    ref = rng.normal(size=(100_000, 1))
    cur = rng.normal(0.03, size=(100_000, 1))
    assert detect_drift(ref, cur).drifted  # "significant" with this many rows
    report = detect_drift(ref, cur, min_effect="auto")  # KS D >= 0.1
    assert not report.drifted
    assert report.min_effect == 0.1
    assert detect_drift(ref, rng.normal(1.0, size=(1000, 1)), min_effect="auto").drifted


def test_nan_policy_raise_counts_the_values(rng) -> None:
    cur = rng.normal(size=(100, 3))
    cur[[1, 2], 1] = np.nan
    cur[3, 2] = np.inf
    with pytest.raises(DataError) as info:
        detect_drift(rng.normal(size=(100, 3)), cur)
    message = str(info.value)
    assert "current has 3 non-finite value(s)" in message
    assert "feature 1: 2" in message
    assert "nan_policy='omit'" in message


def test_nan_policy_omit_drops_per_feature_and_matches_clean_data(rng) -> None:
    ref, cur = rng.normal(size=(300, 3)), rng.normal([0, 0.4, 0], size=(250, 3))
    dirty = cur.copy()
    dirty[:10, 0] = np.nan
    dirty[5, 2] = -np.inf
    report = detect_drift(ref, dirty, nan_policy="omit")
    assert report.n_dropped_current.tolist() == [10, 0, 1]
    expected0 = detect_drift(ref[:, :1], cur[10:, :1], correction="none").pvalue
    assert report.pvalue is not None
    assert report.pvalue[0] == pytest.approx(expected0[0], rel=1e-12)
    clean = detect_drift(ref, cur)
    assert report.pvalue[1] == clean.pvalue[1]


def test_nan_policy_omit_refuses_an_all_nan_feature(rng) -> None:
    cur = rng.normal(size=(20, 2))
    cur[:, 1] = np.nan
    with pytest.raises(DataError, match=r"feature\(s\) \[1\] have no finite value"):
        detect_drift(rng.normal(size=(20, 2)), cur, nan_policy="omit")


@pytest.mark.parametrize("test", sorted(set(available_detectors()) - {"chi2"}))
def test_every_numeric_detector_runs_through_detect_drift(rng, test) -> None:
    ref = rng.normal(size=(600, 2))
    cur = rng.normal([0.0, 2.0], size=(500, 2))
    report = detect_drift(ref, cur, test=test)
    assert report.drifted_features.tolist() == [False, True], test
    assert report.test == test


def test_categorical_detector_through_detect_drift(rng) -> None:
    ref = rng.choice(["a", "b", "c"], size=(500, 2)).astype(object)
    cur = ref.copy()
    cur[:200, 1] = "z"
    report = detect_drift(ref, cur, test="chi2")
    assert report.drifted_features.tolist() == [False, True]


def test_bad_options() -> None:
    x = np.zeros((5, 1))
    with pytest.raises(ConfigError, match="unknown detector 'kolmogorov'"):
        detect_drift(x, x, test="kolmogorov")
    with pytest.raises(DataError, match="alpha"):
        detect_drift(x, x, alpha=0)
    with pytest.raises(DataError, match="correction"):
        detect_drift(x, x, correction="holm")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="min_effect"):
        detect_drift(x, x, min_effect=-1)
    with pytest.raises(DataError, match="nan_policy"):
        detect_drift(x, x, nan_policy="ignore")  # type: ignore[arg-type]


def test_registry_names_match_the_config_literal() -> None:
    from typing import get_args

    from goldwatch.config import DetectorsConfig

    allowed = set(get_args(DetectorsConfig.model_fields["test"].annotation))
    assert allowed == set(available_detectors())
    assert get_detector("ks").has_pvalue
    assert not get_detector("psi").has_pvalue


def test_bonferroni_family_wise_false_alarm_rate_with_500_null_features() -> None:
    """Simulated calibration: 500 null features, Bonferroni at 0.05 -> P(any false alarm) <= 0.05 + tolerance."""
    rng = np.random.default_rng(2024)
    reps = 120
    alarms = 0
    for _ in range(reps):
        ref = rng.normal(size=(150, 500))
        cur = rng.normal(size=(120, 500))
        alarms += detect_drift(ref, cur, alpha=0.05).drifted
    rate = alarms / reps
    # binomial standard error at 0.05 with 120 reps is 0.02: allow 3 of them
    assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps), rate


def test_uncorrected_tests_do_alarm_on_null_data() -> None:
    """The reason for the correction: without it, 500 null features nearly always produce an alarm."""
    rng = np.random.default_rng(7)
    report = detect_drift(rng.normal(size=(150, 500)), rng.normal(size=(120, 500)), correction="none")
    assert report.drifted
    assert 5 <= report.n_drifted <= 50
