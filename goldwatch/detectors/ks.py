"""Two-sample Kolmogorov-Smirnov test over every feature at once, with scipy's statistic and p-values.

:func:`ks_2samp` follows ``scipy.stats.ks_2samp(alternative="two-sided")``: the same statistic (ECDF difference
evaluated at every observation, ties included), the same method choice (``"auto"`` is exact when
``max(n1, n2) <= 10000``), the same exact p-values (square method for equal sizes, inside method otherwise) and the
same asymptotic p-value (the finite-n Kolmogorov distribution ``kstwo`` at ``round(n1 n2 / (n1 + n2))``).

The statistic comes from one merge per feature block: both samples are sorted, concatenated, and merged with a
stable argsort (timsort merges two sorted runs in linear time); counts from each sample at the last element of
every tie group give the ECDFs. Blocks are sized to stay in cache and run on all cores (numpy's sorts release
the GIL). Torch tensors are sorted and merged on their own device (CUDA included); the
p-value, a function of three numbers per feature, is then computed on the host.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(200, 3))
>>> cur = np.column_stack([rng.normal(size=150), rng.normal(0.5, size=150), rng.normal(size=150)])
>>> res = ks_2samp(ref, cur)
>>> res.method, res.drifted.tolist()
('exact', [False, True, False])
>>> from scipy import stats
>>> bool(np.isclose(res.pvalue[1], stats.ks_2samp(ref[:, 1], cur[:, 1]).pvalue, rtol=1e-12))
True
"""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from goldwatch.detectors._backend import any_dask, as_torch_samples, is_torch
from goldwatch.detectors._kolmogorov import exact_inside, exact_square, kstwo_sf
from goldwatch.detectors._validation import as_samples, check_pair, feature_names_of, iter_feature_chunks
from goldwatch.detectors.results import TestResult
from goldwatch.errors import DataError

__all__ = ["MAX_AUTO_N", "ks_2samp", "ks_pvalue", "ks_statistic", "ks_statistic_sorted"]

MAX_AUTO_N = 10000  # scipy's threshold: "auto" is exact when max(n1, n2) <= MAX_AUTO_N
Method = Literal["auto", "exact", "asymp"]


def _statistic_rows(ref_cols: np.ndarray, cur_cols: np.ndarray, *, ref_sorted: bool) -> np.ndarray:
    """KS statistic of each column pair; columns of (n1, F) and (n2, F) finite arrays (any strides)."""
    n1, n2 = ref_cols.shape[0], cur_cols.shape[0]
    n = n1 + n2
    # One (F, n1 + n2) buffer: the transposed copies land in place and each half is sorted in place, so the
    # samples are copied once (no separate contiguous copies, sorted copies and concatenation).
    merged = np.empty((ref_cols.shape[1], n))
    merged[:, :n1] = ref_cols.T
    merged[:, n1:] = cur_cols.T
    if not ref_sorted:
        merged[:, :n1].sort(axis=1)
    merged[:, n1:].sort(axis=1)
    # timsort (kind="stable") merges the two sorted runs in linear time
    order = np.argsort(merged, axis=1, kind="stable")
    c2 = np.cumsum(order >= n1, axis=1, dtype=np.int32 if n < 2**31 else np.int64)
    # The ECDF gap c1/n1 - c2/n2 (c1 = k + 1 - c2), scaled by n1*n2/gcd(n1, n2) to integers: exact, in int32
    # when it fits (equal sizes: |k + 1 - 2 c2|), and computed in place (fresh temporaries cost page faults).
    g = math.gcd(n1, n2)
    w_a, w_n = n2 // g, n // g
    dtype = np.int32 if n * w_n < 2**31 else np.int64
    gap = np.multiply(c2, -w_n, dtype=dtype)
    gap += np.arange(1, n + 1, dtype=dtype) * dtype(w_a)
    np.abs(gap, out=gap)

    def is_end(r: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Whether pooled position k of row r is the last of its tie group (gathered at those positions only)."""
        nxt = np.minimum(k + 1, n - 1)
        return (k == n - 1) | (merged[r, order[r, k]] != merged[r, order[r, nxt]])

    # Tie groups count only at their last position (scipy's searchsorted(side="right")). The unmasked maximum
    # bounds the masked one, so a row whose first maximum ends its tie group is done; only rows whose maximum
    # falls inside a tie group gather their pooled values and mask the other positions with -1 (never a
    # maximum, since the last gap is 0).
    rows = np.arange(gap.shape[0])
    pos = np.argmax(gap, axis=1)
    tied = np.flatnonzero(~is_end(rows, pos))
    if tied.size:
        values = np.take_along_axis(merged[tied], order[tied], axis=1)
        masked = gap[tied]
        masked[:, :-1][values[:, 1:] == values[:, :-1]] = -1
        gap[tied] = masked
        pos[tied] = np.argmax(masked, axis=1)
    best = gap[rows, pos]
    # The statistic as scipy computes it in floating point, at the position reaching the integer maximum.
    # Distinct gaps differ by >= 1/(n1 n2), far more than rounding; equal gaps at several positions (rare) can
    # round differently, so those rows take the largest float among those ending a tie group, as scipy's max.
    c2k = c2[rows, pos].astype(np.int64)
    out = np.abs((pos + 1 - c2k) / n1 - c2k / n2)
    several = np.count_nonzero(gap == best[:, None], axis=1) > 1
    if several.any():
        r, k = np.nonzero(gap[several] == best[several, None])
        r = np.flatnonzero(several)[r]
        keep = is_end(r, k)
        r, k = r[keep], k[keep]
        c2k = c2[r, k].astype(np.int64)
        np.maximum.at(out, r, np.abs((k + 1 - c2k) / n1 - c2k / n2))
    return out


_BLOCK_ELEMS = 1_000_000  # pooled values per feature block: the block's working set stays near the L2 cache
_MIN_BLOCK_COLS = 8


def _map_feature_blocks(func: Any, n_features: int, n_rows: int) -> np.ndarray:
    """Run ``func(cols) -> values`` over cache-sized feature blocks on all cores (numpy's sorts release the GIL)."""
    cores = os.cpu_count() or 1
    # At least _MIN_BLOCK_COLS columns: a block copies its columns out of the row-major samples, and narrower
    # blocks read whole cache lines for a few values each (8 float64 per 64-byte line).
    step = max(1, _BLOCK_ELEMS // max(n_rows, 1), _MIN_BLOCK_COLS)
    if cores > 1 and n_features > 1:
        # at least two blocks per core, so that no core idles while another finishes a large last block
        step = min(step, -(-n_features // (2 * cores)))
    blocks = [slice(lo, min(lo + step, n_features)) for lo in range(0, n_features, step)]
    out = np.empty(n_features)
    workers = min(len(blocks), cores)
    if workers <= 1:
        for cols in blocks:
            out[cols] = func(cols)
        return out
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for cols, values in zip(blocks, pool.map(func, blocks)):
            out[cols] = values
    return out


def ks_statistic_sorted(ref_sorted: np.ndarray, current: np.ndarray) -> np.ndarray:
    """KS statistic with a reference whose columns are already sorted ascending; (n1, F) and (n2, F), finite."""
    n_rows = ref_sorted.shape[0] + current.shape[0]

    def block(cols: slice) -> np.ndarray:
        return _statistic_rows(ref_sorted[:, cols], current[:, cols], ref_sorted=True)

    return _map_feature_blocks(block, ref_sorted.shape[1], n_rows)


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """KS statistic of finite (n1, F) and (n2, F) arrays."""
    n_rows = reference.shape[0] + current.shape[0]

    def block(cols: slice) -> np.ndarray:
        return _statistic_rows(reference[:, cols], current[:, cols], ref_sorted=False)

    return _map_feature_blocks(block, reference.shape[1], n_rows)


def _ks_statistic_torch(reference: Any, current: Any) -> np.ndarray:
    """The same merge on the tensors' device; returns the statistic on the host as float64."""
    import torch

    n1, n2 = reference.shape[0], current.shape[0]
    n_features = reference.shape[1]
    out = np.empty(n_features)
    for cols in iter_feature_chunks(n_features, n1 + n2, budget_elems=64_000_000):
        a = torch.sort(reference[:, cols].T.contiguous(), dim=1).values
        b = torch.sort(current[:, cols].T.contiguous(), dim=1).values
        merged = torch.cat([a, b], dim=1)
        values, order = torch.sort(merged, dim=1, stable=True)
        c2 = torch.cumsum(order >= n1, dim=1)
        c1 = torch.arange(1, n1 + n2 + 1, device=merged.device) - c2
        diff = torch.abs(c1.to(torch.float64) / n1 - c2.to(torch.float64) / n2)
        last = torch.ones_like(values, dtype=torch.bool)
        last[:, :-1] = values[:, 1:] != values[:, :-1]
        out[cols] = torch.amax(torch.where(last, diff, torch.zeros_like(diff)), dim=1).cpu().numpy()
    return out


def _asymp(d: np.ndarray, n1: int, n2: int) -> np.ndarray:
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return np.clip(kstwo_sf(np.full(d.shape, int(np.round(en))), d), 0.0, 1.0)


def ks_pvalue(d: np.ndarray, n1: int, n2: int, *, method: Method = "auto") -> tuple[np.ndarray, np.ndarray, str]:
    """Two-sided p-values for statistics ``d`` of samples of sizes n1, n2.

    Returns (pvalue, statistic as scipy reports it, method used). The exact method rounds the statistic to the
    lattice h / lcm(n1, n2); features whose exact computation fails fall back to the asymptotic p-value one by
    one, as in scipy (the method is then reported as ``"exact+asymp"``).
    """
    d = np.asarray(d, dtype=np.float64)
    g = math.gcd(n1, n2)
    n1g, n2g = n1 // g, n2 // g
    if method == "auto":
        method = "exact" if max(n1, n2) <= MAX_AUTO_N else "asymp"
    elif method == "exact" and n1g >= np.iinfo(np.int32).max / n2g:
        warnings.warn(
            f"Exact ks_2samp calculation not possible with samples sizes {n1} and {n2}. Switching to 'asymp'.",
            RuntimeWarning,
            stacklevel=3,
        )
        method = "asymp"
    if method != "exact":
        return _asymp(d, n1, n2), d, "asymp"
    lcm = n1g * n2
    h = np.round(d * lcm).astype(np.int64)
    d = h * 1.0 / lcm
    prob = np.ones(d.shape)
    pos = h > 0
    if pos.any():
        with np.errstate(under="ignore", over="ignore", invalid="ignore"):
            prob[pos] = exact_square(n1, h[pos]) if n1 == n2 else exact_inside(n1, n2, h[pos])
    bad = ~((prob >= 0) & (prob <= 1))
    if not bad.any():
        return np.clip(prob, 0.0, 1.0), d, "exact"
    warnings.warn(
        f"ks_2samp: Exact calculation unsuccessful for {int(bad.sum())} feature(s). Switching to method=asymp.",
        RuntimeWarning,
        stacklevel=3,
    )
    prob[bad] = _asymp(d[bad], n1, n2)
    return np.clip(prob, 0.0, 1.0), d, "exact+asymp" if not bad.all() else "asymp"


def ks_2samp(reference: Any, current: Any, *, method: Method = "auto", alpha: float = 0.05) -> TestResult:
    """Two-sided two-sample KS test of every feature; ``drifted`` where the p-value is below ``alpha``.

    ``reference`` and ``current``: (n_samples, n_features) or 1-D, any sizes, finite values (use
    :func:`~goldwatch.detectors.detect_drift` with ``nan_policy="omit"`` to drop NaN/inf per feature).
    numpy arrays, frames and lists run on the CPU; torch tensors on their own device; dask arrays and dataframes
    on the current Dask client (:mod:`goldwatch.detectors.distributed`: exact counts there, this p-value code here).
    """
    if method not in ("auto", "exact", "asymp"):
        raise DataError(f"expected 'auto', 'exact' or 'asymp', got {method!r}", where="method")
    if not 0 < alpha < 1:
        raise DataError(f"expected a level in (0, 1), got {alpha!r}", where="alpha")
    if any_dask(reference, current):
        from goldwatch.detectors.distributed import ks_2samp as distributed_ks

        return distributed_ks(reference, current, method=method, alpha=alpha)
    if is_torch(reference) or is_torch(current):
        device = reference.device if is_torch(reference) else current.device
        ref_t = as_torch_samples(reference, name="reference", device=device)
        cur_t = as_torch_samples(current, name="current", device=device)
        if ref_t.shape[1] != cur_t.shape[1]:
            raise DataError(
                f"expected {ref_t.shape[1]} features (like reference), got shape {tuple(cur_t.shape)}",
                where="current",
            )
        import torch

        if not (bool(torch.isfinite(ref_t).all()) and bool(torch.isfinite(cur_t).all())):
            raise DataError(
                "NaN or inf in the input", where="ks_2samp", hint="use detect_drift(..., nan_policy='omit')"
            )
        stat = _ks_statistic_torch(ref_t, cur_t)
        n1, n2 = int(ref_t.shape[0]), int(cur_t.shape[0])
        names = [f"f{i}" for i in range(stat.size)]
    else:
        ref = as_samples(reference, name="reference")
        cur = as_samples(current, name="current")
        check_pair(ref, cur)
        if not (np.isfinite(ref).all() and np.isfinite(cur).all()):
            raise DataError(
                "NaN or inf in the input", where="ks_2samp", hint="use detect_drift(..., nan_policy='omit')"
            )
        stat = ks_statistic(ref, cur)
        n1, n2 = ref.shape[0], cur.shape[0]
        names = feature_names_of(reference, stat.size)
    pvalue, stat, used = ks_pvalue(stat, n1, n2, method=method)
    return TestResult(
        test="ks",
        statistic=stat,
        pvalue=pvalue,
        drifted=~(pvalue >= alpha),  # a NaN p-value (undefined test) is not evidence of stability
        threshold=alpha,
        threshold_kind="pvalue",
        feature_names=names,
        method=used,
        n_reference=np.full(stat.size, n1),
        n_current=np.full(stat.size, n2),
    )
