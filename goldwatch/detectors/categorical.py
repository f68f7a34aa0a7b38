"""Chi-squared test of categorical features (reference vs current category frequencies), unseen categories included.

Each feature's 2 x K contingency table (rows: reference, current; columns: the categories seen in either sample)
is tested as ``scipy.stats.chi2_contingency`` does, Yates' correction included when K = 2. A category that only
appears in the current window (an unseen category: a new product code, a broken upstream encoder) keeps its own
column -- with a reference count of zero it weighs heavily, as it should -- and is counted in ``n_unseen``.
Missing values (None/NaN) are a category of their own, named ``"<missing>"``.

Continuous data is refused, not tested: every distinct float would be its own category, so almost every cell
holds one observation and a real shift reads as "no drift" (a 0.5-sigma mean shift of normal data gave p = 0.49).
A float feature with non-integral values is refused with a :class:`~goldwatch.errors.DataError` when its distinct
values (reference and current together) exceed both half the samples and 50. Integer, boolean, string and
integral-valued float columns (counts with a NaN, say) are tested as before.

All features are counted in one pandas group-by over (feature, category) pairs and the statistics are computed
over the flat table at once.

>>> import numpy as np
>>> ref = np.array([["a", "x"], ["b", "x"], ["a", "y"], ["b", "y"]] * 50, dtype=object)
>>> cur = np.array([["a", "x"], ["b", "x"], ["a", "x"], ["c", "x"]] * 50, dtype=object)
>>> res = chi2_test(ref, cur)
>>> res.result.drifted.tolist(), res.n_unseen.tolist()
([True, True], [1, 0])
>>> chi2_test(np.random.default_rng(0).normal(size=200), np.random.default_rng(1).normal(size=200))
Traceback (most recent call last):
...
goldwatch.errors.DataError: chi2_test: feature(s) look continuous, ...: f0 (400 distinct values in 400 samples) ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from goldwatch.detectors._backend import any_dask
from goldwatch.detectors._validation import as_samples, check_pair, feature_names_of
from goldwatch.detectors.results import TestResult
from goldwatch.errors import DataError

__all__ = ["CategoricalResult", "category_counts", "chi2_from_counts", "chi2_test"]

MISSING = "<missing>"

# a float feature looks continuous when its distinct values exceed both of these (reference + current pooled)
CONTINUOUS_FRACTION = 0.5
CONTINUOUS_MIN_DISTINCT = 50


@dataclass(frozen=True)
class CategoricalResult:
    result: TestResult
    dof: np.ndarray
    n_unseen: np.ndarray  # categories in current that the reference never had


def _long(x: np.ndarray, n_features: int) -> Any:
    import pandas as pd

    values = pd.DataFrame(x).astype(object)
    values = values.where(values.notna(), MISSING).astype(str)
    stacked = values.melt(var_name="feature", value_name="category")
    return stacked.groupby(["feature", "category"], sort=True).size()


def _fractional_floats(x: np.ndarray) -> np.ndarray:
    """Per feature: is it a float column holding a non-integral value? (pandas infers each object column's type
    in one pass, so an object array from a mixed DataFrame is judged per column as well.)"""
    import pandas as pd

    frame = pd.DataFrame(x).infer_objects()
    is_float = frame.columns.isin(frame.select_dtypes(include="floating").columns)
    if not is_float.any():
        return np.asarray(is_float, dtype=bool)
    block = frame.loc[:, is_float].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        fractional = (np.isfinite(block) & (block != np.round(block))).any(axis=0)
    out = np.zeros(x.shape[1], dtype=bool)
    out[np.flatnonzero(is_float)] = fractional
    return out


def _refuse_continuous(
    fractional: np.ndarray | Callable[[], np.ndarray], n: int, n_categories: np.ndarray, names: list[str]
) -> None:
    many = (n_categories > CONTINUOUS_FRACTION * n) & (n_categories > CONTINUOUS_MIN_DISTINCT)
    if not many.any():
        return
    bad = np.flatnonzero(many & (fractional() if callable(fractional) else fractional))
    if not bad.size:
        return
    shown = ", ".join(f"{names[j]} ({n_categories[j]} distinct values in {n} samples)" for j in bad[:5])
    raise DataError(
        f"feature(s) look continuous, so every value would be its own category: {shown}"
        + (f" and {bad.size - 5} more" if bad.size > 5 else ""),
        where="chi2_test",
        hint="use a numeric test such as 'ks' or 'psi', or bin the column first (numpy.digitize, pandas.cut) "
        "and pass the bins",
    )


def category_counts(x: np.ndarray) -> Any:
    """Counts per (feature, category) of ``x`` (a pandas Series with that two-level index); they add up over
    chunks of rows, which is how a distributed run counts."""
    return _long(x, x.shape[1])


def chi2_from_counts(
    ref_counts: Any,
    cur_counts: Any,
    *,
    n_reference: int,
    n_current: int,
    n_features: int,
    names: list[str],
    fractional: np.ndarray | Callable[[], np.ndarray],
    alpha: float = 0.05,
) -> CategoricalResult:
    """The test from category counts (see :func:`category_counts`) and the per-feature "holds non-integral floats"
    flags (or a function computing them, called only when a feature has many categories).

    Raises :class:`~goldwatch.errors.DataError` for a continuous float feature."""
    import pandas as pd
    from scipy.stats import chi2

    table = pd.concat({"ref": ref_counts, "cur": cur_counts}, axis=1).fillna(0)
    feature = table.index.get_level_values("feature").to_numpy(dtype=np.int64)
    o_ref = table["ref"].to_numpy(dtype=np.float64)
    o_cur = table["cur"].to_numpy(dtype=np.float64)
    n_ref, n_cur = float(n_reference), float(n_current)
    total = n_ref + n_cur
    col_total = o_ref + o_cur
    e_ref, e_cur = col_total * n_ref / total, col_total * n_cur / total
    n_categories = np.bincount(feature, minlength=n_features)
    _refuse_continuous(fractional, n_reference + n_current, n_categories, names)
    dof = n_categories - 1
    yates = (dof == 1)[feature]
    # Yates: move each observed count up to 0.5 towards its expectation (scipy's chi2_contingency, dof == 1)
    obs_ref, obs_cur = o_ref.copy(), o_cur.copy()
    for obs, exp in ((obs_ref, e_ref), (obs_cur, e_cur)):
        diff = exp - obs
        obs[yates] += (np.sign(diff) * np.minimum(0.5, np.abs(diff)))[yates]
    cell = (obs_ref - e_ref) ** 2 / e_ref + (obs_cur - e_cur) ** 2 / e_cur
    stat = np.bincount(feature, weights=cell, minlength=n_features)
    stat = np.where(dof == 0, 0.0, stat)
    p = np.where(dof == 0, 1.0, chi2.sf(stat, np.maximum(dof, 1)))
    n_unseen = np.bincount(feature, weights=(o_ref == 0), minlength=n_features).astype(np.int64)
    result = TestResult(
        test="chi2", statistic=stat, pvalue=p, drifted=p < alpha, threshold=alpha, threshold_kind="pvalue",
        feature_names=names, method="pearson",
        n_reference=np.full(n_features, n_reference), n_current=np.full(n_features, n_current),
    )
    return CategoricalResult(result=result, dof=dof, n_unseen=n_unseen)


def chi2_test(reference: Any, current: Any, *, alpha: float = 0.05) -> CategoricalResult:
    """Chi-squared homogeneity test per categorical feature.

    Raises :class:`~goldwatch.errors.DataError` for a continuous float feature (see the module docstring).
    Dask arrays and dataframes are counted on the current Dask client (:mod:`goldwatch.detectors.distributed`).
    """
    if any_dask(reference, current):
        from goldwatch.detectors.distributed import chi2_test as distributed_chi2

        return distributed_chi2(reference, current, alpha=alpha)
    ref = as_samples(reference, name="reference", numeric=False)
    cur = as_samples(current, name="current", numeric=False)
    check_pair(ref, cur)
    n_features = ref.shape[1]
    return chi2_from_counts(
        category_counts(ref), category_counts(cur), n_reference=ref.shape[0], n_current=cur.shape[0],
        n_features=n_features, names=feature_names_of(reference, n_features),
        fractional=lambda: _fractional_floats(ref) | _fractional_floats(cur), alpha=alpha,
    )
