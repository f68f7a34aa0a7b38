"""Two-sample Cramér-von Mises test of every feature at once, as ``scipy.stats.cramervonmises_2samp``.

The statistic uses midranks of the pooled sample (one merge per feature block, blocks sized to a working-set
budget and run on every core); the p-value is the asymptotic
one (Anderson 1962's normalisation and the limiting one-sample distribution, evaluated for all features at once)
or, for ``max(n1, n2) <= 20`` with ``method="auto"``, scipy's exact enumeration (small samples, few distinct values).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> res = cramervonmises_2samp(rng.normal(size=(300, 2)), rng.normal([0.0, 0.4], size=(200, 2)))
>>> res.drifted.tolist()
[False, True]
>>> from scipy import stats
>>> rng = np.random.default_rng(0)
>>> x, y = rng.normal(size=(300, 2)), rng.normal([0.0, 0.4], size=(200, 2))
>>> bool(np.isclose(res.pvalue[1], stats.cramervonmises_2samp(x[:, 1], y[:, 1]).pvalue, rtol=1e-9))
True
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from goldwatch.detectors._backend import any_dask
from goldwatch.detectors._merge import merge_rows, midranks, sorted_rows
from goldwatch.detectors._threads import map_column_blocks
from goldwatch.detectors._validation import as_samples, check_pair, feature_names_of
from goldwatch.detectors.results import TestResult
from goldwatch.errors import DataError

__all__ = ["cdf_cvm_inf", "cramervonmises_2samp", "cvm_from_u", "statistic_u"]


def cdf_cvm_inf(x: np.ndarray) -> np.ndarray:
    """CDF of the limiting Cramér-von Mises distribution (Csörgő & Faraway 1996), as scipy's ``_cdf_cvm_inf``:
    series terms are added per element until they fall below 1e-7."""
    from scipy.special import gammaln, kv

    x = np.asarray(x, dtype=np.float64)
    total = np.zeros_like(x)
    active = np.ones(x.shape, dtype=bool)
    k = 0
    while active.any():
        xa = x[active]
        u = math.exp(gammaln(k + 0.5) - gammaln(k + 1)) / (np.pi**1.5 * np.sqrt(xa))
        y = 4 * k + 1
        q = y**2 / (16 * xa)
        z = u * math.sqrt(y) * np.exp(-q) * kv(0.25, q)
        total[active] += z
        still = active.copy()
        still[active] = np.abs(z) >= 1e-7
        active = still
        k += 1
    return total


def _statistic_u(ref_rows: np.ndarray, cur_rows: np.ndarray) -> np.ndarray:
    m = merge_rows(ref_rows, cur_rows)
    ranks = midranks(m)
    nx, ny = m.n_a, m.n_b
    # boolean masks pick, row by row, each sample's ranks in ascending order (the merge is stable)
    rx = ranks[~m.from_b].reshape(-1, nx)
    ry = ranks[m.from_b].reshape(-1, ny)
    return nx * np.sum((rx - np.arange(1, nx + 1, dtype=np.float64)) ** 2, axis=-1) + ny * np.sum(
        (ry - np.arange(1, ny + 1, dtype=np.float64)) ** 2, axis=-1
    )


# pooled values per feature block: a block's merge keeps ~15 arrays of this many elements alive, so 4M elements
# is ~0.5 GB per thread in flight (all features at once would hold every feature's arrays together)
_BLOCK_ELEMS = 4_000_000


def statistic_u(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """U of finite (n1, F) and (n2, F) samples, features processed in blocks on all cores."""

    def block(cols: slice) -> np.ndarray:
        return _statistic_u(sorted_rows(reference[:, cols]), sorted_rows(current[:, cols]))

    return map_column_blocks(block, reference.shape[1], reference.shape[0] + current.shape[0],
                             budget_elems=_BLOCK_ELEMS)


def cvm_from_u(
    u: np.ndarray, nx: int, ny: int, *, method: Literal["auto", "exact", "asymptotic"] = "auto"
) -> tuple[np.ndarray, np.ndarray, str]:
    """(statistic T, p-value, method used) from U = nx sum (r_i - i)^2 + ny sum (s_j - j)^2, as scipy."""
    if method == "auto":
        method = "asymptotic" if max(nx, ny) > 20 else "exact"
    k, N = nx * ny, nx + ny
    t = u / (k * N) - (4 * k - 1) / (6 * N)
    if method == "exact":
        from scipy.stats._hypotests import _pval_cvm_2samp_exact

        # samples of at most 20: a handful of distinct u values, each a small enumeration
        uniq, inverse = np.unique(u, return_inverse=True)
        p = np.array([_pval_cvm_2samp_exact(np.asarray(v), nx, ny) for v in uniq])[inverse.reshape(-1)]
    else:
        et = (1 + 1 / N) / 6
        vt = (N + 1) * (4 * k * N - 3 * (nx**2 + ny**2) - 2 * k) / (45 * N**2 * 4 * k)
        tn = 1 / 6 + (t - et) / math.sqrt(45 * vt)
        p = np.ones_like(tn)
        big = tn >= 0.003  # below, the CDF is < 1.3e-18: p = 1 (scipy's shortcut)
        p[big] = np.clip(1.0 - cdf_cvm_inf(tn[big]), 0.0, None)
    return t, p, method


def cramervonmises_2samp(
    reference: Any, current: Any, *, method: Literal["auto", "exact", "asymptotic"] = "auto", alpha: float = 0.05
) -> TestResult:
    """Cramér-von Mises two-sample test per feature; each sample needs at least 2 observations.

    Dask arrays and dataframes run on the current Dask client (:mod:`goldwatch.detectors.distributed`).
    """
    if method not in ("auto", "exact", "asymptotic"):
        raise DataError(f"expected 'auto', 'exact' or 'asymptotic', got {method!r}", where="method")
    if any_dask(reference, current):
        from goldwatch.detectors.distributed import cramervonmises_2samp as distributed_cvm

        return distributed_cvm(reference, current, method=method, alpha=alpha)
    ref = as_samples(reference, name="reference", min_samples=2)
    cur = as_samples(current, name="current", min_samples=2)
    check_pair(ref, cur)
    if not (np.isfinite(ref).all() and np.isfinite(cur).all()):
        raise DataError("NaN or inf in the input", where="cramervonmises_2samp",
                        hint="use detect_drift(..., nan_policy='omit')")
    nx, ny = ref.shape[0], cur.shape[0]
    t, p, used = cvm_from_u(statistic_u(ref, cur), nx, ny, method=method)
    return TestResult(
        test="cvm", statistic=t, pvalue=p, drifted=p < alpha, threshold=alpha, threshold_kind="pvalue",
        feature_names=feature_names_of(reference, t.size), method=used,
        n_reference=np.full(t.size, nx), n_current=np.full(t.size, ny),
    )
