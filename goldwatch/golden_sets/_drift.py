"""The output-distribution check of a replay, via :func:`goldwatch.detectors.detect_drift`.

A golden replay compares answers one by one; this adds a two-sample Kolmogorov-Smirnov test per output column
(replayed vs expected, Bonferroni-corrected), which reports *how* a wrong model's outputs moved (a shifted or
squashed distribution) in the detectors' own terms.

This is the one place that knows the detectors' spelling (``ks_2samp`` with the asymptotic p-value, then
``adjust_pvalues``). Where they are missing (older checkouts), a vectorized KS with scipy's asymptotic p-value
and the same correction stands in. Bit-identical answers (the common case of a healthy model) skip the test:
their statistic is 0 and p is 1.

>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(200, 3))
>>> output_drift("golden:y:distribution", ref, ref.copy(), alpha=0.01).status
'pass'
>>> output_drift("golden:y:distribution", ref, ref + 1.0, alpha=0.01).status
'fail'
"""

from __future__ import annotations

import numpy as np

from goldwatch.checks import Check

__all__ = ["MAX_COLUMNS", "output_drift"]

#: columns tested per output; wider outputs (feature maps) are subsampled at an even stride
MAX_COLUMNS = 256


def _ks_bonferroni(
    reference: np.ndarray, current: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(statistic, Bonferroni-adjusted p-value, drifted, method) per column."""
    import goldwatch.detectors as detectors

    ks_2samp = getattr(detectors, "ks_2samp", None)
    adjust = getattr(detectors, "adjust_pvalues", None)
    if ks_2samp is not None and adjust is not None:
        # the asymptotic p-value: the exact one costs O(n*m) per column, far more than the replay it checks
        result = ks_2samp(reference, current, method="asymp", alpha=alpha)
        adjusted = np.asarray(adjust(np.asarray(result.pvalue, float), "bonferroni"), float)
        return np.asarray(result.statistic, float), adjusted, adjusted < alpha, "goldwatch.detectors.ks_2samp (asymp)"
    stat = _ks_statistic(reference, current)
    from scipy import stats

    n, m = len(reference), len(current)
    # scipy's ks_2samp(method="asymp") p-value, vectorized over columns; Bonferroni over the columns
    adjusted = np.minimum(stats.kstwo.sf(stat, np.round(n * m / (n + m))) * stat.size, 1.0)
    return stat, adjusted, adjusted < alpha, "two-sample KS (asymptotic)"


def _ks_statistic(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """max |F_ref - F_cur| per column, all columns at once (ties handled: only where the pooled value changes).

    >>> _ks_statistic(np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])).tolist()
    [1.0]
    """
    n, m = len(reference), len(current)
    # columns as contiguous rows: sorting along the last axis is several times faster than along axis 0
    pooled = np.ascontiguousarray(np.concatenate([reference, current]).T)
    order = np.argsort(pooled, axis=1)  # any order within ties: only the end of each run of equal values counts
    steps = np.where(order < n, 1.0 / n, -1.0 / m)
    diff = np.abs(np.cumsum(steps, axis=1))
    values = np.take_along_axis(pooled, order, axis=1)
    last_of_run = np.ones_like(values, dtype=bool)
    last_of_run[:, :-1] = values[:, 1:] != values[:, :-1]
    return np.where(last_of_run, diff, 0.0).max(axis=1)


def output_drift(name: str, reference: np.ndarray, current: np.ndarray, *, alpha: float) -> Check:
    """One check: does any column of ``current`` (n, k) come from another distribution than ``reference``'s?"""
    if not (np.all(np.isfinite(current)) and np.all(np.isfinite(reference))):
        return Check(name=name, status="skip", summary="non-finite outputs: see the nonfinite check")
    cols = reference.shape[1]
    if cols > MAX_COLUMNS:
        idx = np.linspace(0, cols - 1, MAX_COLUMNS).round().astype(int)
        reference, current = reference[:, idx], current[:, idx]
    if np.array_equal(reference, current):
        # identical samples: statistic 0, p-value 1 for every column; skip the test's cost on the common path
        m = reference.shape[1]
        stat, adjusted, drifted, method = np.zeros(m), np.ones(m), np.zeros(m, bool), "identical samples"
    else:
        stat, adjusted, drifted, method = _ks_bonferroni(reference, current, alpha)
    m = len(adjusted)
    worst = int(np.argmin(adjusted))
    n_drifted = int(drifted.sum())
    return Check(
        name=name,
        status="fail" if n_drifted else "pass",
        summary=(
            f"{n_drifted} of {m} column(s) drifted (min Bonferroni p = {adjusted[worst]:.3g} < {alpha})"
            if n_drifted
            else f"no column drifted (min Bonferroni p = {adjusted[worst]:.3g} >= {alpha})"
        ),
        measured={"min_pvalue": float(adjusted[worst]), "max_statistic": float(stat.max()), "drifted": n_drifted},
        threshold={"alpha": alpha, "correction": "bonferroni", "columns": m},
        details={"method": method, "worst_column": worst},
    )
