"""Tolerance calibration and the per-output comparison checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from goldwatch.golden_sets import Tolerance
from goldwatch.golden_sets.calibrate import FLOOR_ULPS_ABS, calibrate, dtype_floor, errors
from goldwatch.golden_sets.compare import compare_output

finite32 = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=12),
    elements=st.floats(-1e3, 1e3, width=32),
)


@given(expected=finite32, noise=st.floats(0, 1e-2), factor=st.floats(1, 10))
def test_tolerance_covers_every_calibration_run(expected: np.ndarray, noise: float, factor: float) -> None:
    rng = np.random.default_rng(0)
    runs = [("cpu", {"y": (expected + rng.normal(scale=noise, size=expected.shape)).astype(np.float32)})
            for _ in range(3)]
    tol = calibrate({"y": expected}, runs, safety_factor=factor)["y"]
    floor_abs, floor_rel = dtype_floor(expected.dtype, float(np.abs(expected).max()))
    assert tol.atol >= floor_abs
    assert tol.rtol >= floor_rel
    for _, out in runs:
        max_abs, max_rel, _ = errors(out["y"], expected, denominator_floor=floor_abs / floor_rel)
        assert max_abs <= tol.atol
        assert max_rel <= tol.rtol
        checks = compare_output("y", out["y"], expected, tolerance=tol, role="tensor", drift_alpha=None)
        assert {c.name.split(":")[-1]: c.status for c in checks}["max_abs_error"] == "pass"


@given(expected=finite32)
def test_identical_outputs_pass_every_check(expected: np.ndarray) -> None:
    tol = calibrate({"y": expected}, [("cpu", {"y": expected})], safety_factor=4.0)["y"]
    labels = expected.argmax(axis=1)
    checks = compare_output("y", expected.copy(), expected, tolerance=tol, role="scores", labels=labels)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


def test_floor_is_dtype_aware_and_integers_are_exact() -> None:
    assert dtype_floor(np.dtype("float32"), 10.0)[0] == pytest.approx(FLOOR_ULPS_ABS * np.finfo(np.float32).eps * 10)
    assert dtype_floor(np.dtype("float64"), 10.0)[0] < 1e-12
    assert dtype_floor(np.dtype("int32"), 10.0) == (0.0, 0.0)
    e = np.array([[1, 2], [3, 4]], np.int64)
    tol = calibrate({"y": e}, [("cpu", {"y": e})], safety_factor=4.0)["y"]
    assert (tol.atol, tol.rtol) == (0.0, 0.0)
    failed = compare_output("y", e + np.array([[0, 1], [0, 0]]), e, tolerance=tol, role="tensor", drift_alpha=None)
    assert failed[0].status == "fail"


def test_measured_noise_above_the_floor_sets_the_tolerance() -> None:
    e = np.ones((4, 3), np.float32)
    tol = calibrate({"y": e}, [("cpu", {"y": e}), ("cuda", {"y": e + np.float32(1e-3)})], safety_factor=4.0)["y"]
    assert tol.atol == pytest.approx(4e-3, rel=1e-3)
    assert tol.derivation["bound_by"] == "measured noise"
    assert tol.derivation["per_device"]["cuda"]["max_abs"] == pytest.approx(1e-3, rel=1e-3)
    assert tol.derivation["devices"] == ["cpu", "cuda"]


def test_nan_in_the_same_place_is_equal_new_nan_is_infinite_error() -> None:
    e = np.array([[np.nan, 1.0]], np.float32)
    assert errors(e.copy(), e, denominator_floor=1.0)[0] == 0.0
    a = np.array([[np.nan, np.nan]], np.float32)
    assert errors(a, e, denominator_floor=1.0)[0] == np.inf


def _statuses(checks) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {c.name.split(":")[-1]: c.status for c in checks}


def test_top1_flip_fails_but_near_ties_are_excused() -> None:
    e = np.array([[5.0, 1.0, 0.0], [0.0, 0.0, 4.0]] * 6 + [[1.0, 1.0 + 1e-7, 0.0]], np.float32)
    tol = Tolerance(atol=1e-5, rtol=1e-4, derivation={"floor_abs": 1e-6})
    tie_flip = e.copy()
    tie_flip[12] = [1.0 + 1e-7, 1.0, 0.0]
    s = _statuses(compare_output("y", tie_flip, e, tolerance=tol, role="scores", drift_alpha=None))
    assert s["top1_agreement"] == "pass"
    assert s["max_abs_error"] == "pass"
    flipped = e.copy()
    flipped[0] = flipped[2] = [0.0, 5.0, 1.0]
    checks = compare_output("y", flipped, e, tolerance=tol, role="scores", labels=e.argmax(1), drift_alpha=None)
    s = _statuses(checks)
    assert s["top1_agreement"] == "fail"
    assert s["label_accuracy"] == "fail"
    assert "cosine" not in s  # class scores: top-1/top-k and the errors judge them, not a cosine of logits
    as_embedding = _statuses(compare_output("y", flipped, e, tolerance=tol, role="embedding", drift_alpha=None))
    assert as_embedding["cosine"] == "fail"
    top1 = next(c for c in checks if c.name.endswith("top1_agreement"))
    assert top1.details["ambiguous_samples"] == 1
    assert top1.details["changed_samples"] >= 1


def test_nonfinite_and_distribution_checks() -> None:
    rng = np.random.default_rng(1)
    e = rng.normal(size=(64, 4)).astype(np.float32)
    tol = Tolerance(atol=1e-4, rtol=1e-3, derivation={"floor_abs": 1e-5})
    bad = e.copy()
    bad[3, 2] = np.inf
    s = _statuses(compare_output("y", bad, e, tolerance=tol, role="embedding"))
    assert s["nonfinite"] == "fail"
    assert s["max_abs_error"] == "fail"
    assert s["distribution"] == "skip"
    shifted = s2 = _statuses(compare_output("y", e + 2.0, e, tolerance=tol, role="tensor"))
    assert shifted["distribution"] == "fail"
    assert s2["max_abs_error"] == "fail"


@given(
    ref=hnp.arrays(np.float64, (40, 3), elements=st.floats(-5, 5)),
    cur=hnp.arrays(np.float64, (30, 3), elements=st.floats(-5, 5)),
)
def test_fallback_ks_statistic_matches_scipy_with_ties(ref: np.ndarray, cur: np.ndarray) -> None:
    from scipy import stats

    from goldwatch.detectors.paired import _ks_statistic

    ref, cur = np.round(ref), np.round(cur)  # many ties: the tricky case for a vectorized statistic
    expected = stats.ks_2samp(ref, cur, axis=0).statistic
    np.testing.assert_allclose(_ks_statistic(ref, cur), expected, atol=1e-12)


def test_output_drift_names_the_shifted_column_and_its_size() -> None:
    from goldwatch.golden_sets._drift import output_drift

    rng = np.random.default_rng(3)
    ref = rng.normal(size=(300, 4))
    cur = ref + np.array([0.0, 0.0, 0.5, 0.0]) + rng.normal(scale=1e-3, size=ref.shape)
    check = output_drift("d", ref, cur, alpha=0.01)
    assert check.status == "fail"
    assert check.measured["drifted"] == 1
    assert check.details["worst_column"] == 2
    (shift,) = check.details["shifts"]
    assert shift["column"] == 2
    assert shift["effect"] == pytest.approx(0.5, abs=0.01)
    assert "col 2 by 0.5" in check.summary


def test_distribution_test_runs_only_when_answers_are_outside_tolerance() -> None:
    """Exact zeros replayed as 1e-7 (a ReLU output on another kernel) are within tolerance: no drift alarm, although
    a KS test on them alone would call every zero column drifted."""
    rng = np.random.default_rng(2)
    e = np.where(rng.random((500, 3)) < 0.5, 0.0, rng.normal(size=(500, 3))).astype(np.float32)
    a = np.where(e == 0, np.float32(1e-7), e)
    tol = calibrate({"y": e}, [("cpu", {"y": e})], safety_factor=4.0)["y"]
    within = next(c for c in compare_output("y", a, e, tolerance=tol, role="tensor") if c.name.endswith("distribution"))
    assert within.status == "skip"
    assert "within tolerance" in within.summary
    from goldwatch.golden_sets._drift import output_drift

    # what was avoided: the test alone calls every zero column drifted; only the effect floor keeps it quiet
    assert output_drift("d", e.astype(float), a.astype(float), alpha=0.01, min_effect=0.0).status == "fail"
    assert output_drift("d", e.astype(float), a.astype(float), alpha=0.01).status == "pass"


def test_expected_view_is_cached_only_for_read_only_arrays() -> None:
    from goldwatch.golden_sets.compare import expected_view

    e = np.array([[1.0, 2.0], [3.0, 0.0]], np.float32)
    assert expected_view(e) is not expected_view(e)  # writeable: could change under us, never cached
    e.flags.writeable = False
    view = expected_view(e)
    assert view is expected_view(e)
    assert view.top1.tolist() == [1, 0]  # type: ignore[union-attr]
    assert view.row_scale.tolist() == [2.0, 3.0]
    assert view.margin.tolist() == [1.0, 3.0]  # type: ignore[union-attr]
