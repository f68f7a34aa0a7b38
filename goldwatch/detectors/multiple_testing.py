"""Multiple-testing corrections across features, and the dataset-level verdict.

Testing 100 features at alpha = 0.05 flags five of them on perfectly stable data. ``bonferroni`` controls the
family-wise error rate (the chance of *any* false alarm) and ``bh`` (Benjamini-Hochberg) the false discovery rate
(the expected share of false alarms among the flagged features). Adjusted p-values are compared with alpha.

>>> import numpy as np
>>> p = np.array([0.001, 0.01, 0.03, 0.5])
>>> adjust_pvalues(p, "bonferroni").tolist()
[0.004, 0.04, 0.12, 1.0]
>>> adjust_pvalues(p, "bh").round(4).tolist()
[0.004, 0.02, 0.04, 0.5]
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from goldwatch.errors import DataError

__all__ = ["CORRECTIONS", "Correction", "adjust_pvalues"]

Correction = Literal["bonferroni", "bh", "none"]
CORRECTIONS: tuple[str, ...] = ("bonferroni", "bh", "none")


def adjust_pvalues(pvalues: np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values (clipped to 1). NaN p-values stay NaN and do not count as tests."""
    p = np.asarray(pvalues, dtype=np.float64)
    if method not in CORRECTIONS:
        raise DataError(f"expected one of {', '.join(CORRECTIONS)}, got {method!r}", where="correction")
    valid = ~np.isnan(p)
    m = int(valid.sum())
    out = np.full(p.shape, np.nan)
    if m == 0:
        return out
    pv = p[valid]
    if method == "none":
        out[valid] = pv
    elif method == "bonferroni":
        out[valid] = np.minimum(pv * m, 1.0)
    else:
        # Benjamini-Hochberg step-up: p_(i) * m / i, made monotone from the largest p-value down
        order = np.argsort(pv)
        ranked = pv[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        adj = np.empty(m)
        adj[order] = np.minimum(ranked, 1.0)
        out[valid] = adj
    return out
