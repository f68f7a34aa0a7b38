"""Chi-squared test of categorical features (reference vs current category frequencies), unseen categories included.

Each feature's 2 x K contingency table (rows: reference, current; columns: the categories seen in either sample)
is tested as ``scipy.stats.chi2_contingency`` does, Yates' correction included when K = 2. A category that only
appears in the current window (an unseen category: a new product code, a broken upstream encoder) keeps its own
column -- with a reference count of zero it weighs heavily, as it should -- and is counted in ``n_unseen``.
Missing values (None/NaN) are a category of their own, named ``"<missing>"``.

All features are counted in one pandas group-by over (feature, category) pairs and the statistics are computed
over the flat table at once.

>>> import numpy as np
>>> ref = np.array([["a", "x"], ["b", "x"], ["a", "y"], ["b", "y"]] * 50, dtype=object)
>>> cur = np.array([["a", "x"], ["b", "x"], ["a", "x"], ["c", "x"]] * 50, dtype=object)
>>> res = chi2_test(ref, cur)
>>> res.result.drifted.tolist(), res.n_unseen.tolist()
([True, True], [1, 0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from goldwatch.detectors._validation import as_samples, check_pair, feature_names_of
from goldwatch.detectors.results import TestResult

__all__ = ["CategoricalResult", "chi2_test"]

MISSING = "<missing>"


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


def chi2_test(reference: Any, current: Any, *, alpha: float = 0.05) -> CategoricalResult:
    """Chi-squared homogeneity test per categorical feature."""
    import pandas as pd
    from scipy.stats import chi2

    ref = as_samples(reference, name="reference", numeric=False)
    cur = as_samples(current, name="current", numeric=False)
    check_pair(ref, cur)
    n_features = ref.shape[1]
    table = pd.concat({"ref": _long(ref, n_features), "cur": _long(cur, n_features)}, axis=1).fillna(0)
    feature = table.index.get_level_values("feature").to_numpy(dtype=np.int64)
    o_ref = table["ref"].to_numpy(dtype=np.float64)
    o_cur = table["cur"].to_numpy(dtype=np.float64)
    n_ref, n_cur = float(ref.shape[0]), float(cur.shape[0])
    total = n_ref + n_cur
    col_total = o_ref + o_cur
    e_ref, e_cur = col_total * n_ref / total, col_total * n_cur / total
    n_categories = np.bincount(feature, minlength=n_features)
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
        feature_names=feature_names_of(reference, n_features), method="pearson",
        n_reference=np.full(n_features, ref.shape[0]), n_current=np.full(n_features, cur.shape[0]),
    )
    return CategoricalResult(result=result, dof=dof, n_unseen=n_unseen)
