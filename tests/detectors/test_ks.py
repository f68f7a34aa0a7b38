"""ks_2samp against scipy.stats.ks_2samp: statistic exactly, p-values to a relative 1e-9."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from goldwatch.detectors import ks_2samp
from goldwatch.detectors._kolmogorov import _inside_walk, exact_inside, exact_square, kstwo_sf
from goldwatch.errors import DataError
from tests.detectors.detectors_support import rel_diff

RTOL = 1e-9


def scipy_columns(a: np.ndarray, b: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = [stats.ks_2samp(a[:, j], b[:, j], method=method) for j in range(a.shape[1])]
    return np.array([r.statistic for r in res]), np.array([r.pvalue for r in res])


def assert_matches_scipy(a: np.ndarray, b: np.ndarray, method: str = "auto") -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ours = ks_2samp(a, b, method=method)  # type: ignore[arg-type]
    stat, p = scipy_columns(a, b, method)
    np.testing.assert_array_equal(ours.statistic, stat)
    assert rel_diff(ours.pvalue, p).max() <= RTOL, (ours.pvalue, p)


samples = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.sampled_from(["normal", "ties", "constant", "huge", "tiny", "shifted"]),
    )
)


def make(rng: np.random.Generator, n: int, kind: str, features: int = 3) -> np.ndarray:
    if kind == "ties":
        return rng.integers(0, 4, size=(n, features)).astype(float)
    if kind == "constant":
        return np.full((n, features), 2.5)
    if kind == "huge":
        return rng.normal(size=(n, features)) * 1e300
    if kind == "tiny":
        return rng.normal(size=(n, features)) * 1e-300
    if kind == "shifted":
        return rng.normal(0.8, size=(n, features))
    return rng.normal(size=(n, features))


@settings(max_examples=60)
@given(a=samples, b=samples, seed=st.integers(0, 2**32 - 1), method=st.sampled_from(["auto", "exact", "asymp"]))
def test_matches_scipy_on_random_samples(a, b, seed, method) -> None:
    rng = np.random.default_rng(seed)
    assert_matches_scipy(make(rng, a[0], a[1]), make(rng, b[0], b[1]), method)


@settings(max_examples=25)
@given(
    n1=st.integers(1, 400),
    n2=st.integers(1, 400),
    levels=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
)
def test_heavy_ties_and_unequal_sizes(n1, n2, levels, seed) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, levels, size=(n1, 4)).astype(float)
    b = rng.integers(0, levels + 1, size=(n2, 4)).astype(float)
    assert_matches_scipy(a, b)


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (1, 7), (10000, 10000), (9999, 10000), (10001, 9000), (20000, 3)])
def test_sizes_at_the_branch_boundaries(rng, n1, n2) -> None:
    a = rng.normal(size=(n1, 2))
    b = rng.normal(0.02, size=(n2, 2))
    assert_matches_scipy(a, b)


@pytest.mark.slow
def test_unequal_exact_near_the_auto_limit(rng) -> None:
    assert_matches_scipy(rng.normal(size=(10000, 3)), rng.normal(0.03, size=(8000, 3)))


def test_one_dimensional_input_is_one_feature(rng) -> None:
    a, b = rng.normal(size=50), rng.normal(size=70)
    res = ks_2samp(a, b)
    ref = stats.ks_2samp(a, b)
    assert res.statistic.shape == (1,)
    assert res.statistic[0] == ref.statistic
    assert rel_diff(res.pvalue, ref.pvalue).max() <= RTOL


def test_result_converts_to_frame_with_column_names(rng) -> None:
    import pandas as pd

    ref = pd.DataFrame(rng.normal(size=(100, 2)), columns=["age", "income"])
    cur = pd.DataFrame(rng.normal([0, 2], size=(80, 2)), columns=["age", "income"])
    frame = ks_2samp(ref, cur).to_frame()
    assert list(frame.index) == ["age", "income"]
    assert frame.loc["income", "drifted"]
    assert not frame.loc["age", "drifted"]


def test_kstwo_sf_matches_scipy_on_every_branch() -> None:
    ns = np.array([1, 2, 5, 30, 140, 141, 500, 5000, 50000, 100001, 150000])
    xs = np.array([0.0, 1e-4, 0.002, 0.01, 0.03, 0.08, 0.2, 0.45, 0.5, 0.7, 0.99, 1.0])
    nn, xx = np.meshgrid(ns, xs)
    ours = kstwo_sf(nn.ravel(), xx.ravel())
    ref = stats.kstwo.sf(xx.ravel(), nn.ravel())
    assert rel_diff(ours, ref).max() <= RTOL


def test_exact_helpers_match_scipy_internals() -> None:
    from scipy.stats._stats_py import _compute_prob_outside_square
    from scipy.stats._stats_pythran import _compute_outer_prob_inside_method

    h = np.array([1, 3, 17, 40, 99])
    expected = [_compute_prob_outside_square(100, int(v)) for v in h]
    assert rel_diff(exact_square(100, h), expected).max() <= 1e-12
    h = np.array([1, 5, 60, 300, 700])
    expected = [_compute_outer_prob_inside_method(70, 40, 10, int(v)) for v in h]
    # the anti-diagonal walk performs scipy's floating-point operations exactly
    np.testing.assert_array_equal(_inside_walk(70, 40, 7, 4, h), expected)
    np.testing.assert_array_equal(exact_inside(70, 40, h), expected)
    many = np.arange(1, 400)  # whichever of the two paths exact_inside picks, the answer is scipy's
    np.testing.assert_array_equal(
        exact_inside(700, 400, many), [_compute_outer_prob_inside_method(700, 400, 100, int(v)) for v in many]
    )


def test_drifted_uses_alpha(rng) -> None:
    a, b = rng.normal(size=(200, 1)), rng.normal(0.3, size=(200, 1))
    p = ks_2samp(a, b).pvalue[0]
    assert ks_2samp(a, b, alpha=p * 1.01).drifted[0]
    assert not ks_2samp(a, b, alpha=p * 0.99).drifted[0]


@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        (np.zeros((5, 2)), np.zeros((5, 3)), "current: expected 2 features"),
        (np.zeros((0, 2)), np.zeros((5, 2)), "reference: expected at least 1 sample(s), got shape (0, 2)"),
        (np.zeros((5, 2, 2)), np.zeros((5, 2)), "reference: expected a 1-D (n_samples,) or 2-D"),
        (np.array([["a", "b"]]), np.zeros((5, 2)), "reference: expected numeric data (int or float), got dtype <U1"),
        (np.zeros((5, 0)), np.zeros((5, 0)), "reference: expected at least one feature"),
        (np.array([[np.nan], [1.0]]), np.zeros((5, 1)), "NaN or inf in the input"),
    ],
)
def test_bad_input_names_argument_and_shape(reference, current, message) -> None:
    with pytest.raises(DataError) as info:
        ks_2samp(reference, current)
    assert isinstance(info.value, ValueError)
    assert message in str(info.value)


def test_bad_method_and_alpha() -> None:
    with pytest.raises(DataError, match="method"):
        ks_2samp([1.0, 2.0], [1.0, 3.0], method="fast")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="alpha"):
        ks_2samp([1.0, 2.0], [1.0, 3.0], alpha=1.5)


def test_torch_cpu_tensors_give_the_numpy_result(rng) -> None:
    torch = pytest.importorskip("torch")
    a, b = rng.normal(size=(300, 5)), rng.normal(0.1, size=(12000, 5))
    ours = ks_2samp(torch.from_numpy(a), torch.from_numpy(b))
    ref = ks_2samp(a, b)
    np.testing.assert_array_equal(ours.statistic, ref.statistic)
    np.testing.assert_array_equal(ours.pvalue, ref.pvalue)


@pytest.mark.cuda
def test_cuda_tensors_are_tested_on_the_device_with_scipy_pvalues(rng) -> None:
    import torch

    a, b = rng.normal(size=(20000, 8)), rng.normal(0.02, size=(15000, 8))
    a[:100] = np.round(a[:100])  # ties
    ours = ks_2samp(torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda())
    stat, p = scipy_columns(a, b, "auto")
    np.testing.assert_array_equal(ours.statistic, stat)
    assert rel_diff(ours.pvalue, p).max() <= RTOL


def test_ties_at_the_unmasked_maximum_in_a_mixed_block(rng, monkeypatch) -> None:
    # Rows whose largest gap falls inside a tie group (sorted runs of equal values straddling both samples) sit
    # in the same blocks as tie-free rows; small blocks spread them over several threads.
    import goldwatch.detectors.ks as ks_module

    monkeypatch.setattr(ks_module, "_BLOCK_ELEMS", 1000)
    monkeypatch.setattr(ks_module, "_MIN_BLOCK_COLS", 3)
    n1, n2 = 300, 210
    a = rng.normal(size=(n1, 20))
    b = rng.normal(size=(n2, 20))
    a[:, ::2] = np.round(a[:, ::2])  # a few values, many ties within and across the samples
    b[:, ::2] = np.round(b[:, ::2] + 0.3)
    a[:150, 1::4] = 0.0  # one large tie group in a, then b's copies of it
    b[:30, 1::4] = 0.0
    assert_matches_scipy(a, b)
    assert_matches_scipy(a[:210], b)  # equal sizes, with the int32 gap


def test_exact_square_matches_scipy_for_every_h() -> None:
    from scipy.stats._stats_py import _compute_prob_outside_square

    for n in (1, 2, 7, 30):
        h = np.arange(1, n + 1)
        expected = [_compute_prob_outside_square(n, int(v)) for v in h]
        assert rel_diff(exact_square(n, h), expected).max() <= 1e-12
