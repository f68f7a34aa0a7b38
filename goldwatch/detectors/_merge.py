"""The pooled, sorted view of two samples that the rank- and ECDF-based tests share (CvM, Anderson, Wasserstein).

Rows are features: ``a`` is (F, n1), ``b`` is (F, n2), both sorted ascending. :func:`merge_rows` merges them with a
stable argsort (a linear-time timsort merge of two sorted runs) and returns, per pooled position, the value, the
running counts from each sample and the tie-group boundaries, all as (F, n1 + n2) arrays.

>>> import numpy as np
>>> m = merge_rows(np.array([[1.0, 2.0, 2.0]]), np.array([[2.0, 3.0]]))
>>> m.values.tolist(), m.count_a.tolist(), m.is_end.tolist()
([[1.0, 2.0, 2.0, 2.0, 3.0]], [[1, 2, 3, 3, 3]], [[True, False, False, True, True]])
>>> midranks(m).tolist()
[[1.0, 3.0, 3.0, 3.0, 5.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Merged", "merge_rows", "midranks", "sorted_rows"]


@dataclass(frozen=True)
class Merged:
    values: np.ndarray  # pooled values, sorted
    from_b: np.ndarray  # True where the pooled value came from b
    count_a: np.ndarray  # number of a-values at or before this position
    count_b: np.ndarray
    is_end: np.ndarray  # last position of its tie group
    group_start: np.ndarray  # first position of this position's tie group
    n_a: int
    n_b: int


def sorted_rows(x: np.ndarray) -> np.ndarray:
    """(n, F) samples -> (F, n) rows, each sorted ascending."""
    return np.sort(np.ascontiguousarray(x.T), axis=1)


def merge_rows(a: np.ndarray, b: np.ndarray) -> Merged:
    n_a, n_b = a.shape[1], b.shape[1]
    pooled = np.concatenate([a, b], axis=1)
    order = np.argsort(pooled, axis=1, kind="stable")
    values = np.take_along_axis(pooled, order, axis=1)
    from_b = order >= n_a
    count_b = np.cumsum(from_b, axis=1)
    count_a = np.arange(1, n_a + n_b + 1) - count_b
    is_end = np.ones(values.shape, dtype=bool)
    is_end[:, :-1] = values[:, 1:] != values[:, :-1]
    is_start = np.ones(values.shape, dtype=bool)
    is_start[:, 1:] = is_end[:, :-1]
    positions = np.broadcast_to(np.arange(n_a + n_b), values.shape)
    group_start = np.maximum.accumulate(np.where(is_start, positions, 0), axis=1)
    return Merged(values, from_b, count_a, count_b, is_end, group_start, n_a, n_b)


def midranks(m: Merged) -> np.ndarray:
    """1-based average ranks of the pooled values (ties share the mean of their ranks), as scipy's rankdata."""
    # the end of each tie group, propagated backwards onto the group: reverse running minimum of end positions
    n = m.values.shape[1]
    ends = np.where(m.is_end, np.arange(n), n)
    group_end = np.minimum.accumulate(ends[:, ::-1], axis=1)[:, ::-1]
    return (m.group_start + group_end) / 2.0 + 1.0
