"""The feature-block strategy: every row of a few features on one worker, tested by the in-memory code.

Both samples are rechunked to column blocks (all rows, a few features each -- sized to the worker's memory) and
each block runs the same function the in-memory detector runs, so the numbers are the in-memory numbers, bit for
bit. It is the strategy for tests that need a whole column at once (Cramér-von Mises with ties, Anderson-Darling,
Wasserstein) when a column fits, and what the network carries is every value once (the rechunk).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from goldwatch.detectors._validation import _compact
from goldwatch.detectors.distributed._inputs import as_block

__all__ = ["BlockResult", "block_statistics"]


@dataclasses.dataclass(frozen=True)
class BlockResult:
    """Per feature of one block: the statistic (KS D, CvM U, or the detector's own), its p-value where the worker
    computed one, and the finite counts of each side."""

    statistic: np.ndarray
    pvalue: np.ndarray | None
    n_ref: np.ndarray
    n_cur: np.ndarray
    method: str


def block_statistics(test: str, reference: Any, current: Any) -> BlockResult:
    """Run ``test`` on one column block with non-finite values dropped per feature (runs on a worker)."""
    ref, cur = as_block(reference), as_block(current)
    n_ref = np.count_nonzero(np.isfinite(ref), axis=0).astype(np.int64)
    n_cur = np.count_nonzero(np.isfinite(cur), axis=0).astype(np.int64)
    n_features = ref.shape[1]
    stat = np.full(n_features, np.nan)
    pvalue = np.full(n_features, np.nan) if test not in ("ks", "cvm") else None
    method = ""
    pairs = np.stack([n_ref, n_cur], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    for g, (k1, k2) in enumerate(uniq):  # groups of features with equal finite counts (usually one)
        cols = np.flatnonzero(inverse.reshape(-1) == g)
        if k1 == 0 or k2 == 0:
            continue
        a = ref[:, cols] if k1 == ref.shape[0] else _compact(ref[:, cols], int(k1))
        b = cur[:, cols] if k2 == cur.shape[0] else _compact(cur[:, cols], int(k2))
        if test == "ks":
            from goldwatch.detectors.ks import ks_statistic

            stat[cols] = ks_statistic(a, b)
        elif test == "cvm":
            from goldwatch.detectors._merge import sorted_rows
            from goldwatch.detectors.cvm import _statistic_u

            stat[cols] = _statistic_u(sorted_rows(a), sorted_rows(b))
        elif test == "wasserstein_raw":
            from goldwatch.detectors.distances import wasserstein

            stat[cols] = wasserstein(a, b, normed=False).statistic
        else:
            from goldwatch.detectors.registry import get_detector

            part = get_detector(test).run(a, b, alpha=0.05, threshold=None)
            stat[cols] = part.statistic
            if pvalue is not None and part.pvalue is not None:
                pvalue[cols] = part.pvalue
            method = part.method
    if pvalue is not None and test in ("wasserstein", "wasserstein_raw", "psi", "js", "hellinger", "kl"):
        pvalue = None
    return BlockResult(statistic=stat, pvalue=pvalue, n_ref=n_ref, n_cur=n_cur, method=method)
