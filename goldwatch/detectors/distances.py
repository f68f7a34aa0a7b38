"""Distances between reference and current distributions, every feature at once.

* :func:`wasserstein` -- Wasserstein-1 between the empirical distributions (as ``scipy.stats.wasserstein_distance``),
  raw or ``normed`` by the reference standard deviation (so one threshold fits features of any scale).
* :func:`psi`, :func:`jensen_shannon`, :func:`hellinger`, :func:`kl_divergence` -- on histograms whose bins are
  reference quantiles (``bins`` equal-mass bins; the outer bins are open so every current value lands in a bin).

Dask arrays and dataframes are accepted too: the binned distances count current chunks against the
reference's edges on the current Dask client (sums of counts, so the same histograms as in memory);
Wasserstein runs in feature blocks. Distances have no p-value: a feature drifts when its distance exceeds
``threshold``. Defaults, in line with common practice: PSI 0.2 ("significant shift"), Jensen-Shannon
distance 0.1, Hellinger 0.1, KL 0.1 nats, normed Wasserstein 0.1 reference standard deviations. Empty bins are
floored at ``eps`` (1e-4) before logarithms so a bin that is empty on one side gives a large, finite contribution.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref, cur = rng.normal(size=(5000, 2)), rng.normal([0.0, 1.0], size=(5000, 2))
>>> psi(ref, cur).statistic.round(3).tolist()
[0.004, 0.931]
>>> wasserstein(ref, cur, normed=True).drifted.tolist()
[False, True]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from goldwatch.detectors._backend import any_dask
from goldwatch.detectors._merge import merge_rows, sorted_rows
from goldwatch.detectors._validation import as_samples, check_pair, feature_names_of, iter_feature_chunks
from goldwatch.detectors.results import TestResult
from goldwatch.errors import DataError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "bin_edges",
    "hellinger",
    "hellinger_from_histograms",
    "histograms",
    "jensen_shannon",
    "js_from_histograms",
    "kl_divergence",
    "kl_from_histograms",
    "psi",
    "psi_from_histograms",
    "wasserstein",
    "wasserstein_rows",
]

DEFAULT_THRESHOLDS = {"psi": 0.2, "js": 0.1, "hellinger": 0.1, "kl": 0.1, "wasserstein": 0.1}
EPS = 1e-4


def _pair(reference: Any, current: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    ref = as_samples(reference, name="reference")
    cur = as_samples(current, name="current")
    check_pair(ref, cur)
    if not (np.isfinite(ref).all() and np.isfinite(cur).all()):
        raise DataError("NaN or inf in the input", where=where, hint="use detect_drift(..., nan_policy='omit')")
    return ref, cur


def _result(test: str, stat: np.ndarray, threshold: float, reference: Any, n1: int, n2: int) -> TestResult:
    return TestResult(
        test=test, statistic=stat, pvalue=None, drifted=stat > threshold, threshold=threshold,
        threshold_kind="statistic", feature_names=feature_names_of(reference, stat.size),
        n_reference=np.full(stat.size, n1), n_current=np.full(stat.size, n2),
    )


def wasserstein_rows(ref_rows: np.ndarray, cur_rows: np.ndarray) -> np.ndarray:
    """W1 of sorted rows: the integral of |F_ref - F_cur| over the pooled values (scipy's formula)."""
    m = merge_rows(ref_rows, cur_rows)
    deltas = np.diff(m.values, axis=1)
    cdf_gap = np.abs(m.count_a[:, :-1] / m.n_a - m.count_b[:, :-1] / m.n_b)
    return np.sum(cdf_gap * deltas, axis=1)


def wasserstein(
    reference: Any, current: Any, *, normed: bool = False, threshold: float | None = None
) -> TestResult:
    """Wasserstein-1 per feature; ``normed`` divides by the reference standard deviation (a constant reference
    feature uses 1 instead, so the distance stays finite). Dask inputs run in feature blocks on the current client."""
    if any_dask(reference, current):
        from goldwatch.detectors.distributed import wasserstein as distributed_wasserstein

        return distributed_wasserstein(reference, current, normed=normed, threshold=threshold)
    ref, cur = _pair(reference, current, "wasserstein")
    out = np.empty(ref.shape[1])
    for cols in iter_feature_chunks(ref.shape[1], ref.shape[0] + cur.shape[0], budget_elems=2_000_000):
        out[cols] = wasserstein_rows(sorted_rows(ref[:, cols]), sorted_rows(cur[:, cols]))
    test = "wasserstein"
    if normed:
        std = ref.std(axis=0)
        out = out / np.where(std > 0, std, 1.0)
        test = "wasserstein_normed"
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS["wasserstein"] if normed else np.inf
    return _result(test, out, float(threshold), reference, ref.shape[0], cur.shape[0])


def bin_edges(reference: np.ndarray, *, bins: int = 10) -> np.ndarray:
    """Interior bin edges (bins - 1, F) at reference quantiles; repeated edges (ties) give empty bins."""
    if bins < 2:
        raise DataError(f"expected at least 2 bins, got {bins}", where="bins")
    return np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1], axis=0)


def histograms(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin probabilities (F, bins) of samples ``x`` (n, F) for interior ``edges`` (bins - 1, F).

    Bin k holds values in (edge[k-1], edge[k]]; the first and last bins are open-ended.
    """
    n, n_features = x.shape
    counts_le = np.empty((n_features, edges.shape[0]), dtype=np.int64)
    for cols in iter_feature_chunks(n_features, n * edges.shape[0], budget_elems=8_000_000):
        # one comparison per (value, edge): bins are few, and this stays vectorized across features
        counts_le[cols] = np.count_nonzero(x[:, None, cols] <= edges[None, :, cols], axis=0).T
    cum = np.concatenate([np.zeros((n_features, 1), np.int64), counts_le, np.full((n_features, 1), n)], axis=1)
    return np.diff(cum, axis=1) / n


def _binned(reference: Any, current: Any, bins: int, where: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    ref, cur = _pair(reference, current, where)
    edges = bin_edges(ref, bins=bins)
    return histograms(ref, edges), histograms(cur, edges), ref.shape[0], cur.shape[0]


def _distributed(test: str, reference: Any, current: Any, *, bins: int, threshold: float) -> TestResult:
    """Dask inputs: current chunks are counted against the reference's bin edges on the current Dask client."""
    from goldwatch.detectors.distributed import histogram_distance

    return histogram_distance(test, reference, current, bins=bins, threshold=threshold)


def psi_from_histograms(p_ref: np.ndarray, p_cur: np.ndarray, *, eps: float = EPS) -> np.ndarray:
    p, q = np.maximum(p_ref, eps), np.maximum(p_cur, eps)
    return np.sum((q - p) * np.log(q / p), axis=1)


def js_from_histograms(p_ref: np.ndarray, p_cur: np.ndarray) -> np.ndarray:
    """Jensen-Shannon *distance* (natural log), as ``scipy.spatial.distance.jensenshannon``."""
    from scipy.special import rel_entr

    p = p_ref / p_ref.sum(axis=1, keepdims=True)
    q = p_cur / p_cur.sum(axis=1, keepdims=True)
    m = (p + q) / 2.0
    js = np.sum(rel_entr(p, m), axis=1) + np.sum(rel_entr(q, m), axis=1)
    return np.sqrt(np.maximum(js, 0.0) / 2.0)


def hellinger_from_histograms(p_ref: np.ndarray, p_cur: np.ndarray) -> np.ndarray:
    return np.sqrt(0.5 * np.sum((np.sqrt(p_ref) - np.sqrt(p_cur)) ** 2, axis=1))


def kl_from_histograms(p_ref: np.ndarray, p_cur: np.ndarray, *, eps: float = EPS) -> np.ndarray:
    """KL(current || reference) in nats, both floored at ``eps`` and renormalised."""
    p = np.maximum(p_ref, eps)
    q = np.maximum(p_cur, eps)
    p, q = p / p.sum(axis=1, keepdims=True), q / q.sum(axis=1, keepdims=True)
    return np.sum(q * np.log(q / p), axis=1)


def psi(reference: Any, current: Any, *, bins: int = 10, threshold: float = DEFAULT_THRESHOLDS["psi"]) -> TestResult:
    """Population stability index on reference-quantile bins."""
    if any_dask(reference, current):
        return _distributed("psi", reference, current, bins=bins, threshold=threshold)
    p, q, n1, n2 = _binned(reference, current, bins, "psi")
    return _result("psi", psi_from_histograms(p, q), threshold, reference, n1, n2)


def jensen_shannon(
    reference: Any, current: Any, *, bins: int = 10, threshold: float = DEFAULT_THRESHOLDS["js"]
) -> TestResult:
    """Jensen-Shannon distance (natural log, in [0, sqrt(ln 2)]) on reference-quantile bins."""
    if any_dask(reference, current):
        return _distributed("js", reference, current, bins=bins, threshold=threshold)
    p, q, n1, n2 = _binned(reference, current, bins, "jensen_shannon")
    return _result("js", js_from_histograms(p, q), threshold, reference, n1, n2)


def hellinger(
    reference: Any, current: Any, *, bins: int = 10, threshold: float = DEFAULT_THRESHOLDS["hellinger"]
) -> TestResult:
    """Hellinger distance (in [0, 1]) on reference-quantile bins."""
    if any_dask(reference, current):
        return _distributed("hellinger", reference, current, bins=bins, threshold=threshold)
    p, q, n1, n2 = _binned(reference, current, bins, "hellinger")
    return _result("hellinger", hellinger_from_histograms(p, q), threshold, reference, n1, n2)


def kl_divergence(
    reference: Any, current: Any, *, bins: int = 10, threshold: float = DEFAULT_THRESHOLDS["kl"]
) -> TestResult:
    """KL(current || reference) in nats on reference-quantile bins."""
    if any_dask(reference, current):
        return _distributed("kl", reference, current, bins=bins, threshold=threshold)
    p, q, n1, n2 = _binned(reference, current, bins, "kl_divergence")
    return _result("kl", kl_from_histograms(p, q), threshold, reference, n1, n2)
