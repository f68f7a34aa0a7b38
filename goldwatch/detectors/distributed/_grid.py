"""The broadcast strategy: the reference's distinct values go to every worker, current chunks are only counted.

For a fixed reference and unbounded current data. Each feature's reference is reduced to its sorted distinct
finite values ``u_1 < ... < u_k`` and cumulative counts ``R_j = #{x <= u_j}``; a current chunk reports, for every
``u_j``, how many of its values are ``< u_j`` and ``<= u_j``. Those counts add up over chunks (no shuffle, no
current value leaves its worker), and they are all the KS statistic needs:

* at ``u_j`` the ECDFs are ``R_j / n1`` and ``le_j / n2``;
* between ``u_{j-1}`` and ``u_j`` the reference ECDF stays ``R_{j-1} / n1`` while the current one climbs to
  ``lt_j / n2`` at the last current value before ``u_j`` -- the largest gap of that stretch in one direction; in
  the other direction the largest is at ``u_{j-1}``, already counted.

So the supremum over every pooled observation is the maximum of ``|R_j/n1 - le_j/n2|`` and
``|R_{j-1}/n1 - lt_j/n2|``, each computed as scipy computes its ECDF differences (count / n in float64): the
same floats at the same points, hence the same statistic, bit for bit. Histogram distances on fixed edges are
counts ``<= edge`` the same way.

>>> import numpy as np
>>> from scipy import stats
>>> rng = np.random.default_rng(0)
>>> ref, cur = rng.integers(0, 5, size=(50, 2)).astype(float), rng.integers(0, 6, size=(70, 2)).astype(float)
>>> grid = ReferenceGrid.from_array(ref)
>>> c = add_counts(count_chunk(cur[:30], grid.values), count_chunk(cur[30:], grid.values))
>>> d = ks_statistic_from_counts(grid, c)
>>> bool(d[1] == stats.ks_2samp(ref[:, 1], cur[:, 1]).statistic)
True
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from goldwatch.detectors.distributed._inputs import as_block
from goldwatch.errors import DataError

__all__ = [
    "ChunkCounts",
    "ReferenceGrid",
    "add_counts",
    "count_chunk",
    "histogram_chunk",
    "ks_statistic_from_counts",
    "rowwise_searchsorted",
    "sorted_finite_rows",
]


def sorted_finite_rows(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, F) -> ((F, n) rows sorted ascending with every non-finite value as NaN at the end, finite counts)."""
    finite = np.isfinite(block)
    n_finite = np.count_nonzero(finite, axis=0).astype(np.int64)
    if n_finite.sum() == finite.size:  # the usual case: no pass to replace anything
        rows = np.array(block.T, dtype=np.float64, order="C")  # a copy: sorted in place, the chunk stays intact
    else:
        rows = np.ascontiguousarray(np.where(finite, block, np.nan).T)
    rows.sort(axis=1)
    return rows, n_finite


def rowwise_searchsorted(rows: np.ndarray, queries: np.ndarray, *, side: str) -> np.ndarray:
    """``searchsorted(rows[f], queries[f])`` for every row f: (F, n) sorted rows, (F, q) queries -> (F, q) int64.

    numpy's searchsorted is one-dimensional; each call here is one vectorized pass over a whole row of a chunk,
    so the loop costs two calls per feature per chunk, not a pass over the data.
    """
    out = np.empty(queries.shape, dtype=np.int64)
    for f in range(rows.shape[0]):
        out[f] = np.searchsorted(rows[f], queries[f], side=side)  # type: ignore[call-overload]
    return out


@dataclasses.dataclass(frozen=True)
class ReferenceGrid:
    """Sorted distinct finite reference values per feature, padded with +inf to a rectangle.

    ``values``: (F, k_max); ``cum``: (F, k_max) reference values ``<=`` each (padding: the finite count);
    ``size``: k per feature; ``n_finite`` / ``n_nonfinite``: per feature.
    """

    values: np.ndarray
    cum: np.ndarray
    size: np.ndarray
    n_finite: np.ndarray
    n_nonfinite: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)

    @classmethod
    def from_array(cls, reference: np.ndarray) -> ReferenceGrid:
        rows, n_finite = sorted_finite_rows(reference)
        n = rows.shape[1]
        is_end = np.ones(rows.shape, dtype=bool)
        is_end[:, :-1] = rows[:, 1:] != rows[:, :-1]
        is_end &= np.isfinite(rows)  # NaN != NaN: the non-finite tail is not a run of distinct values
        size = np.count_nonzero(is_end, axis=1)
        k_max = max(int(size.max(initial=0)), 1)
        values = np.full((rows.shape[0], k_max), np.inf)
        cum = np.repeat(n_finite[:, None], k_max, axis=1)
        r, c = np.nonzero(is_end)
        j = np.cumsum(is_end, axis=1)[r, c] - 1
        values[r, j] = rows[r, c]
        cum[r, j] = c + 1
        return cls(values=values, cum=cum, size=size, n_finite=n_finite, n_nonfinite=n - n_finite)

    def sorted_column_values(self, cols: np.ndarray) -> np.ndarray:
        """The sorted finite reference values of features ``cols`` that share one finite count, as (n, len(cols))."""
        n = int(self.n_finite[cols[0]])
        out = np.empty((n, len(cols)))
        for i, f in enumerate(cols):  # rebuilt once per feature group for quantile edges: a copy, not a test
            k = int(self.size[f])
            out[:, i] = np.repeat(self.values[f, :k], np.diff(self.cum[f, :k], prepend=0))
        return out


@dataclasses.dataclass(frozen=True)
class ChunkCounts:
    """Exact counts from current chunks; they add up.

    ``steps``: (F, k_max) how many current values fall in ``[u_{j-1}, u_j)`` -- the increments of the counts
    ``<`` each grid value, stored in the narrowest unsigned type that holds them (one byte each when the chunk is
    not much larger than the grid: what a task sends back is a quarter of the int32 counts);
    ``eq_rows``/``eq_cols``/``eq_counts``: the few grid values that current values equal, sparse (continuous data
    has almost none); ``n_finite`` per feature; ``n_rows`` seen.
    """

    steps: np.ndarray
    eq_rows: np.ndarray
    eq_cols: np.ndarray
    eq_counts: np.ndarray
    n_finite: np.ndarray
    n_rows: int

    @property
    def lt(self) -> np.ndarray:
        """Current values ``<`` each grid value."""
        return np.cumsum(self.steps, axis=1, dtype=np.int64)

    @property
    def le(self) -> np.ndarray:
        """Current values ``<=`` each grid value."""
        le = self.lt
        np.add.at(le, (self.eq_rows, self.eq_cols), self.eq_counts)
        return le


def _narrow_steps(lt: np.ndarray) -> np.ndarray:
    steps = np.diff(lt, axis=1, prepend=0)
    top = int(steps.max(initial=0))
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return steps.astype(dtype)
    return steps.astype(np.int64)


def _check_width(block: np.ndarray, n_features: int) -> None:
    if block.shape[1] != n_features:
        raise DataError(f"expected {n_features} features (like reference), got a chunk of shape {block.shape}",
                        where="current", hint="pass the same columns, in the same order, as the reference")


def _binned_counts(x: np.ndarray, grid_values: np.ndarray, *, side: str) -> np.ndarray:
    """(F, k) counts of current values v with ``searchsorted(grid, v, side) <= j``: unsorted values located in a
    small sorted grid and counted per slot (NaN lands past the last slot and is not counted)."""
    cols = np.ascontiguousarray(x.T)
    k = grid_values.shape[1]
    out = np.empty(grid_values.shape, dtype=np.int64)
    for f in range(cols.shape[0]):  # one vectorized pass over the feature's values per call
        slots = np.searchsorted(grid_values[f], cols[f], side=side)  # type: ignore[call-overload]
        out[f] = np.cumsum(np.bincount(slots, minlength=k + 1)[:k])
    return out


def count_chunk(block: Any, grid_values: np.ndarray) -> ChunkCounts:
    """Count one current chunk against the reference grid (runs on a worker).

    The chunk's columns are sorted and every grid value is searched in them (sorted queries: numpy reuses the
    previous position as a bound); the ``<=`` count is searched again only where the chunk holds the grid value
    itself. (Locating each unsorted current value in the grid instead measured slower even for a 64-value grid:
    a binary search per value mispredicts its branches, a sort streams.)
    """
    x = as_block(block)
    _check_width(x, grid_values.shape[0])
    rows, n_finite = sorted_finite_rows(x)
    lt = rowwise_searchsorted(rows, grid_values, side="left")
    m = rows.shape[1]
    if m:
        at = np.take_along_axis(rows, np.minimum(lt, m - 1), axis=1)
        hit = (lt < m) & (at == grid_values)
    else:
        hit = np.zeros(lt.shape, dtype=bool)
    r, c = np.nonzero(hit)
    eq = np.empty(r.size, dtype=np.int64)
    for f in np.unique(r):  # features whose chunk holds some grid values (ties): usually none or few
        sel = r == f
        eq[sel] = np.searchsorted(rows[f], grid_values[f, c[sel]], side="right") - lt[f, c[sel]]
    return ChunkCounts(steps=_narrow_steps(lt), eq_rows=r, eq_cols=c, eq_counts=eq, n_finite=n_finite,
                       n_rows=x.shape[0])


def add_counts(*parts: ChunkCounts) -> ChunkCounts:
    """Sum of chunk counts (the tree reduction's combine)."""
    first = parts[0]
    steps = first.steps.astype(np.int64, copy=True)
    n_finite = first.n_finite.copy()
    n_rows = first.n_rows
    for p in parts[1:]:
        steps += p.steps
        n_finite += p.n_finite
        n_rows += p.n_rows
    rows = np.concatenate([p.eq_rows for p in parts])
    cols = np.concatenate([p.eq_cols for p in parts])
    counts = np.concatenate([p.eq_counts for p in parts])
    width = steps.shape[1]
    if rows.size:  # merge duplicates so the sparse part stays no larger than the grid
        key = rows.astype(np.int64) * width + cols
        uniq, inverse = np.unique(key, return_inverse=True)
        counts = np.bincount(inverse.reshape(-1), weights=counts, minlength=uniq.size).astype(np.int64)
        rows, cols = uniq // width, uniq % width
    return ChunkCounts(steps=_narrow_steps(np.cumsum(steps, axis=1)), eq_rows=rows, eq_cols=cols, eq_counts=counts,
                       n_finite=n_finite, n_rows=n_rows)


def ks_statistic_from_counts(grid: ReferenceGrid, counts: ChunkCounts) -> np.ndarray:
    """The two-sided KS statistic per feature from the grid and the summed current counts (see the module doc)."""
    n1 = grid.n_finite[:, None]
    n2 = counts.n_finite[:, None]
    prev = np.zeros_like(grid.cum)
    prev[:, 1:] = grid.cum[:, :-1]
    lt = counts.lt
    le = counts.le
    with np.errstate(invalid="ignore", divide="ignore"):
        at = np.abs(grid.cum / n1 - le / n2)
        before = np.abs(prev / n1 - lt / n2)
    valid = np.arange(grid.values.shape[1])[None, :] < grid.size[:, None]
    gap = np.where(valid, np.maximum(at, before), 0.0)
    return np.asarray(gap.max(axis=1), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class HistogramCounts:
    """Current values ``<=`` each interior edge: (F, bins - 1); finite values and rows seen."""

    le: np.ndarray
    n_finite: np.ndarray
    n_rows: int


def histogram_chunk(block: Any, edges: np.ndarray) -> HistogramCounts:
    """Count one current chunk against interior bin ``edges`` (bins - 1, F) (runs on a worker): each value is
    located among the few edges (``v <= edge_j  <=>  #{edges < v} <= j``), no sort."""
    x = as_block(block)
    _check_width(x, edges.shape[1])
    finite = np.isfinite(x)
    le = _binned_counts(np.where(finite, x, np.nan), np.ascontiguousarray(edges.T), side="left")
    return HistogramCounts(le=le, n_finite=np.count_nonzero(finite, axis=0).astype(np.int64), n_rows=x.shape[0])


def add_histograms(*parts: HistogramCounts) -> HistogramCounts:
    le, n_finite, n_rows = parts[0].le.copy(), parts[0].n_finite.copy(), parts[0].n_rows
    for p in parts[1:]:
        le += p.le
        n_finite += p.n_finite
        n_rows += p.n_rows
    return HistogramCounts(le=le, n_finite=n_finite, n_rows=n_rows)


def probabilities(counts_le: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Bin probabilities (F, bins) from counts ``<=`` each interior edge, as
    :func:`goldwatch.detectors.distances.histograms` computes them (the same integers, the same division)."""
    n_features = counts_le.shape[0]
    cum = np.concatenate([np.zeros((n_features, 1), np.int64), counts_le, n[:, None].astype(np.int64)], axis=1)
    return np.diff(cum, axis=1) / n[:, None]
