"""k-sample Anderson-Darling test (k = 2, midrank variant) of every feature at once, as ``scipy.stats.anderson_ksamp``.

The statistic is Scholz & Stephens' A2akN (their equation 7) standardised by its variance; the p-value is scipy's
interpolation of the tabulated critical values, capped to [0.001, 0.25] (the table's range: outside it the
p-value is only known to be at least 0.25 or at most 0.001).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> res = anderson_ksamp(rng.normal(size=(300, 2)), rng.normal([0.0, 0.5], size=(200, 2)))
>>> res.pvalue.round(3).tolist(), res.drifted.tolist()
([0.25, 0.001], [False, True])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from goldwatch.detectors._merge import merge_rows, sorted_rows
from goldwatch.detectors._validation import as_samples, check_pair, feature_names_of
from goldwatch.detectors.results import TestResult
from goldwatch.errors import DataError

__all__ = ["anderson_ksamp"]

_B0 = np.array([0.675, 1.281, 1.645, 1.96, 2.326, 2.573, 3.085])
_B1 = np.array([-0.245, 0.25, 0.678, 1.149, 1.822, 2.364, 3.615])
_B2 = np.array([-0.105, -0.305, -0.362, -0.391, -0.396, -0.345, -0.154])
_SIG = np.array([0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001])


def _a2akn(ref_rows: np.ndarray, cur_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A2akN per row, and the number of distinct pooled values per row."""
    m = merge_rows(ref_rows, cur_rows)
    N = m.n_a + m.n_b
    end = m.is_end
    pos = np.arange(N)
    lj = (pos - m.group_start + 1).astype(np.float64)  # tie-group size at its end position
    bj = m.group_start + lj / 2.0
    total = np.zeros(m.values.shape[0])
    for counts, n_i, from_i in ((m.count_a, m.n_a, ~m.from_b), (m.count_b, m.n_b, m.from_b)):
        # count of this sample inside the tie group = count at its end - count just before its start
        before = np.take_along_axis(counts, m.group_start, axis=1) - np.take_along_axis(
            from_i, m.group_start, axis=1
        )
        fij = counts - before
        mij = counts - fij / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            inner = lj / float(N) * (N * mij - bj * n_i) ** 2 / (bj * (N - bj) - N * lj / 4.0)
        total += np.sum(np.where(end, inner, 0.0), axis=1) / n_i
    return total * ((N - 1.0) / N), np.count_nonzero(end, axis=1)


def anderson_ksamp(reference: Any, current: Any, *, alpha: float = 0.05) -> TestResult:
    """Anderson-Darling 2-sample test per feature (midrank). A feature whose pooled values are all equal cannot
    have drifted: its statistic is NaN and its p-value 1 (scipy refuses such input)."""
    ref = as_samples(reference, name="reference")
    cur = as_samples(current, name="current")
    check_pair(ref, cur)
    if not (np.isfinite(ref).all() and np.isfinite(cur).all()):
        raise DataError("NaN or inf in the input", where="anderson_ksamp",
                        hint="use detect_drift(..., nan_policy='omit')")
    n = np.array([ref.shape[0], cur.shape[0]])
    N, k = int(n.sum()), 2
    if N < 4:
        raise DataError(f"expected at least 4 pooled observations, got {N}", where="reference/current")
    a2kn, distinct = _a2akn(sorted_rows(ref), sorted_rows(cur))
    H = (1.0 / n).sum()
    hs_cs = (1.0 / np.arange(N - 1, 1, -1)).cumsum()
    h = hs_cs[-1] + 1
    g = (hs_cs / np.arange(2, N)).sum()
    a = (4 * g - 6) * (k - 1) + (10 - 6 * g) * H
    b = (2 * g - 4) * k**2 + 8 * h * k + (2 * g - 14 * h - 4) * H - 8 * h + 4 * g - 6
    c = (6 * h + 2 * g - 2) * k**2 + (4 * h - 4 * g + 6) * k + (2 * h - 6) * H + 4 * h
    d = (2 * h + 6) * k**2 - 4 * h * k
    sigmasq = (a * N**3 + b * N**2 + c * N + d) / ((N - 1.0) * (N - 2.0) * (N - 3.0))
    m = k - 1
    a2 = (a2kn - m) / math.sqrt(sigmasq)
    critical = _B0 + _B1 / math.sqrt(m) + _B2 / m
    pf = np.polyfit(critical, np.log(_SIG), 2)
    with np.errstate(over="ignore"):  # far outside the table the fit explodes; those p-values are capped below
        p = np.exp(np.polyval(pf, a2))
    p = np.where(a2 < critical.min(), _SIG.max(), np.where(a2 > critical.max(), _SIG.min(), p))
    degenerate = distinct < 2
    a2 = np.where(degenerate, np.nan, a2)
    p = np.where(degenerate, 1.0, p)
    return TestResult(
        test="anderson", statistic=a2, pvalue=p, drifted=p < alpha, threshold=alpha, threshold_kind="pvalue",
        feature_names=feature_names_of(reference, a2.size), method="midrank-interpolated",
        n_reference=np.full(a2.size, n[0]), n_current=np.full(a2.size, n[1]),
    )
