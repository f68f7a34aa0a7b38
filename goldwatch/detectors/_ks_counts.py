"""The exact two-sample KS statistic from counts, without sorting the samples.

The statistic is the largest gap between the two empirical CDFs, evaluated at the end of every tie group. Sorting
both samples to find it costs more than everything else in the test. Counting is enough:

1. **Grid.** Every value goes to one of ``B + 2`` buckets by a monotone map of ``x * scale - lo * scale`` with
   ``lo``/``scale`` from the reference's range (the two outer buckets take values beyond it); see
   :meth:`ReferenceGrid.bucket_ids`. Rounding keeps the map monotone, so equal values share a bucket and every
   value in a bucket is smaller than every value in the next one. One ``bincount`` per sample gives the counts.
2. **Bounds.** The end of a non-empty bucket is the end of a tie group, so the CDF gap there is a value the
   statistic takes: the largest of them, ``L``, is a lower bound of the statistic. Inside a bucket the gap cannot
   exceed ``max(F1(end) - F2(start), F2(end) - F1(start))``; only buckets whose bound reaches ``L`` and that hold
   values of both samples (else the gap is monotone inside) can hide a larger gap. On data without drift that is
   a fraction of a percent of the values.
3. **Refinement.** The values of those buckets are split again, by the order-preserving integer image of the
   float (so any range, subnormal to 1e308, splits evenly in bits), 64 ways per level, with the counts of
   everything before each bucket carried along, until no bucket can hide a larger gap. A bucket holding one
   distinct value is final.

Gaps are integers (``c1 * n2 - c2 * n1``), so the maximum is found exactly; the statistic is then
``|c1 / n1 - c2 / n2|`` computed in floating point at the maximising positions, as scipy computes it (the largest
such float where several positions share the integer maximum).

>>> import numpy as np
>>> from scipy import stats
>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(size=(5000, 3)), rng.normal(0.05, size=(4000, 3))
>>> d = ks_statistic_counts(a, b)
>>> bool(all(d[j] == stats.ks_2samp(a[:, j], b[:, j], method="asymp").statistic for j in range(3)))
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ReferenceGrid", "ks_statistic_counts"]

_SUB_BITS = 6  # refinement: 64 sub-buckets per candidate bucket and level
_SIGN_MASK = np.int64(0x7FFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class ReferenceGrid:
    """Level-one buckets of a reference, fitted once and reused for every window tested against it.

    Per feature, ``t = clip(x * scale - lo_scaled, -1, B)`` and the bucket is ``floor(t / 2**k) + 1`` (0 and the
    last bucket take values beyond the reference's range). ``cum_counts``: the reference values in buckets 0..j at
    the finest level (``k = 0``), (F, B + 2). A window much smaller than the reference is counted on a coarser grid
    (``k > 0``): its buckets are unions of 2**k fine ones, so the reference's counts stay exact.
    """

    scale: np.ndarray
    lo_scaled: np.ndarray
    buckets: int
    cum_counts: np.ndarray
    _levels: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False)

    @classmethod
    def fit(
        cls, reference: np.ndarray, *, lo: np.ndarray | None = None, hi: np.ndarray | None = None,
        buckets: int | None = None,
    ) -> ReferenceGrid:
        """``reference``: (n, F) finite values, any strides; ``lo``/``hi``: its column minima and maxima, when
        already known (a reduction over a strided block of columns is slow)."""
        return cls._fit(reference, lo=lo, hi=hi, buckets=buckets)[0]

    @classmethod
    def _fit(
        cls, reference: np.ndarray, *, lo: np.ndarray | None = None, hi: np.ndarray | None = None,
        buckets: int | None = None,
    ) -> tuple[ReferenceGrid, np.ndarray]:
        """The grid and the reference's bucket ids."""
        n, n_features = reference.shape
        b = buckets or _buckets_for(n)
        lo = np.asarray(reference.min(axis=0) if lo is None else lo, dtype=np.float64)
        hi = np.asarray(reference.max(axis=0) if hi is None else hi, dtype=np.float64)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            width = hi - lo
            scale = (b - 1) / width
            lo_scaled = lo * scale
        # a constant reference, or one whose range overflows: one bucket (and the two outer ones); the refinement
        # splits it
        bad = ~(np.isfinite(scale) & (scale > 0) & np.isfinite(width) & np.isfinite(lo_scaled))
        grid = cls(scale=np.where(bad, 0.0, scale), lo_scaled=np.where(bad, 0.0, lo_scaled), buckets=b,
                   cum_counts=np.empty((n_features, 0), dtype=np.int32))
        idx = grid.bucket_ids(reference, 0, clip=False)
        counts = np.bincount(idx.ravel(), minlength=n_features * (b + 2)).reshape(n_features, b + 2)
        object.__setattr__(grid, "cum_counts", np.cumsum(counts, axis=1, dtype=np.int32 if n < 2**31 else np.int64))
        return grid, idx

    def block(self, cols: slice) -> ReferenceGrid:
        """The grid of a block of features (with the levels computed so far, as views)."""
        levels = {key: (c1[cols], ca[cols]) for key, (c1, ca) in list(self._levels.items())}
        return ReferenceGrid(scale=self.scale[cols], lo_scaled=self.lo_scaled[cols], buckets=self.buckets,
                             cum_counts=self.cum_counts[cols], _levels=levels)

    def coarsening_for(self, n_current: int) -> int:
        """k such that the grid has about one bucket per one or two current values (never finer than the fit):
        coarser buckets leave more reference values to refine, finer ones cost more per bucket (measured)."""
        target = _buckets_for(2 * n_current)
        return max(0, self.buckets.bit_length() - target.bit_length())

    def counts_at(self, k: int, dtype: type[np.signedinteger] = np.int64) -> np.ndarray:
        """Cumulative reference counts on the grid coarsened by 2**k, (F, B / 2**k + 2)."""
        return self.level(k, dtype)[0]

    def level(self, k: int, dtype: type[np.signedinteger] = np.int64) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative and per-bucket reference counts on the grid coarsened by 2**k, (F, B / 2**k + 2) each,
        computed once per level and kept (a reference summary tests every window on the same level)."""
        key = (k, np.dtype(dtype).str)
        got = self._levels.get(key)
        if got is None:
            if k == 0:
                c1 = self.cum_counts.astype(dtype, copy=False)
            else:
                ends = np.concatenate([[0], np.arange(1, (self.buckets >> k) + 1) << k, [self.buckets + 1]])
                c1 = self.cum_counts[:, ends].astype(dtype)
            got = (c1, np.diff(c1, axis=1, prepend=np.zeros((c1.shape[0], 1), dtype=c1.dtype)))
            self._levels[key] = got
        return got

    def bucket_ids(self, x: np.ndarray, k: int, *, clip: bool = True) -> np.ndarray:
        """Global bucket ids of (n, F) values on the grid coarsened by 2**k: feature j owns ids j*(Bk+2) ..
        j*(Bk+2)+Bk+1.

        The fine id is ``trunc(clip(x * scale - (lo_scaled - 1 - j*(B+2)), j*(B+2), j*(B+2)+B+1))``: monotone in x
        whatever the rounding (every step is), and a coarse id is computed from the fine one with integer shifts,
        so every grid level partitions the values the same way. Rows go through in chunks that stay in cache.
        ``clip=False`` for the reference itself: its values map into ``[first + 1, first + B]`` up to rounding, a
        margin of one bucket on either side of the bounds the clip would enforce.
        """
        n, n_features = x.shape
        b = self.buckets
        first = np.arange(n_features, dtype=np.float64) * (b + 2)  # each feature's first fine id
        last = first + (b + 1)
        shift = self.lo_scaled - 1.0 - first
        out = np.empty((n, n_features), dtype=np.int64)
        step = max(1, _CHUNK_ELEMS // max(n_features, 1))
        t = np.empty((min(step, n), n_features))
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            tt = t[: hi - lo]
            with np.errstate(over="ignore", invalid="ignore"):
                np.multiply(x[lo:hi], self.scale, out=tt)
                tt -= shift
            if clip:  # finite x and scale: never NaN; an overflow to +-inf is clipped like any far value
                np.maximum(tt, first, out=tt)
                np.minimum(tt, last, out=tt)
            out[lo:hi] = tt  # truncation toward zero; every value is >= 0
        if k:
            fine_first = np.arange(n_features, dtype=np.int64) * (b + 2)
            out -= fine_first + 1  # fine id - 1, in -1 .. B
            out >>= k  # arithmetic shift: -1 stays -1
            out += np.arange(n_features, dtype=np.int64) * ((b >> k) + 2) + 1
        return out


_CHUNK_ELEMS = 1 << 16  # values per pass of bucket_ids: the float temporary stays in the L2 cache


def gap_dtype(n1: int, n2: int) -> type[np.signedinteger]:
    """int32 when every scaled gap (at most n1 * n2) fits in it, else int64."""
    return np.int32 if n1 * n2 < 2**31 - 1 else np.int64


def _buckets_for(n: int) -> int:
    """About 4 values per bucket, a power of two between 256 and 65,536."""
    return int(min(65536, max(256, 1 << max(n // 4, 1).bit_length())))


def _order_keys(values: np.ndarray) -> np.ndarray:
    """int64 keys ordered like the floats (-0.0 is 0.0 first, so that it ties with +0.0)."""
    bits = (values + 0.0).view(np.int64)
    return bits ^ ((bits >> 63) & _SIGN_MASK)


def _bit_length(span: np.ndarray) -> np.ndarray:
    """Bit length of uint64 spans (exact or one too many, which only wastes a level's resolution)."""
    _, exp = np.frexp(span.astype(np.float64))
    return exp.astype(np.int64)


class _Best:
    """Per feature: the largest integer gap found so far and the largest float statistic among its positions."""

    def __init__(self, n_features: int, n1: int, n2: int) -> None:
        self.gap = np.zeros(n_features, dtype=np.int64)
        self.stat = np.zeros(n_features)
        self.n1, self.n2 = n1, n2

    def update(self, feature: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> None:
        """Gaps at positions with counts ``c1``/``c2`` (ends of tie groups) of features ``feature``."""
        if not feature.size:
            return
        g = np.abs(c1 * self.n2 - c2 * self.n1)
        top = np.zeros_like(self.gap)
        np.maximum.at(top, feature, g)
        raised = top > self.gap
        self.stat[raised] = 0.0
        self.gap = np.maximum(self.gap, top)
        at = g == self.gap[feature]
        if at.any():
            f = feature[at]
            np.maximum.at(self.stat, f, np.abs(c1[at] / self.n1 - c2[at] / self.n2))


def ks_statistic_counts(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    grid: ReferenceGrid | None = None,
    reference_sorted: bool = False,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
) -> np.ndarray:
    """KS statistic per feature of finite (n1, F) and (n2, F) arrays (any strides), scipy's value exactly.

    ``grid``: the reference's fitted level-one buckets (else fitted here, with the reference's column minima and
    maxima ``lo``/``hi`` when given). ``reference_sorted``: the reference's columns are sorted ascending, so a
    bucket's reference values are a contiguous slice of its column and the reference is not read again.
    """
    n1, n_features = reference.shape
    n2 = current.shape[0]
    ref_idx: np.ndarray | None = None
    if grid is None:
        grid, ref_idx = ReferenceGrid._fit(reference, lo=lo, hi=hi)
    k = grid.coarsening_for(n2)
    b2 = (grid.buckets >> k) + 2
    # every product below is at most n1 * n2: 32-bit arithmetic halves the memory traffic when it fits
    dtype = gap_dtype(n1, n2)
    c1, ca = grid.level(k, dtype)
    cur_idx = grid.bucket_ids(current, k)
    cb = np.bincount(cur_idx.ravel(), minlength=n_features * b2).reshape(n_features, b2).astype(dtype)
    c2 = np.cumsum(cb, axis=1, dtype=dtype)
    best = _Best(n_features, n1, n2)
    # every bucket end is the end of a tie group (empty buckets repeat the gap before them)
    d = c1 * dtype(n2)
    d -= c2 * dtype(n1)  # signed gap F1 - F2, scaled by n1 * n2
    gap = np.abs(d)
    best.gap = gap.max(axis=1).astype(np.int64)
    at_f, at_j = np.nonzero(gap == best.gap.astype(dtype)[:, None])
    np.maximum.at(best.stat, at_f, np.abs(c1[at_f, at_j] / n1 - c2[at_f, at_j] / n2))
    # inside a bucket the gap is at most max(F1(end) - F2(start), F2(end) - F1(start)):
    # c1 * n2 - (c2 - cb) * n1 = d + cb * n1 and c2 * n1 - (c1 - ca) * n2 = ca * n2 - d
    up = cb * dtype(n1)
    up += d
    down = ca * dtype(n2)
    down -= d
    np.maximum(up, down, out=up)
    cf, cj = np.nonzero(up >= best.gap.astype(dtype)[:, None])
    both = (ca[cf, cj] > 0) & (cb[cf, cj] > 0)
    cf, cj = cf[both], cj[both]
    c1s, c2s = c1[cf, cj] - ca[cf, cj], c2[cf, cj] - cb[cf, cj]
    if not cf.size:
        return best.stat
    cand = np.zeros((n_features, b2), dtype=bool)
    cand[cf, cj] = True
    # the candidate buckets' values, each tagged with its bucket (cell) and sample; bucket ids are C-ordered
    # (n, F) arrays, so flat position p is row p // F, column p % F
    cell_of = np.full(n_features * b2, -1, dtype=np.int64)
    cell_of[cf * b2 + cj] = np.arange(cf.size)
    flat = cur_idx.ravel()
    cur_pos = np.flatnonzero(cand.ravel()[flat])
    cur_vals = current[cur_pos // n_features, cur_pos % n_features]
    cur_cells = cell_of[flat[cur_pos]]
    if reference_sorted:
        lengths = ca[cf, cj].astype(np.int64)
        ref_cells = np.repeat(np.arange(cf.size), lengths)
        within = np.arange(ref_cells.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        ref_vals = reference[np.repeat(c1s.astype(np.int64), lengths) + within, cf[ref_cells]]
    else:
        if ref_idx is None or k:
            ref_idx = grid.bucket_ids(reference, k)
        flat = ref_idx.ravel()
        ref_pos = np.flatnonzero(cand.ravel()[flat])
        ref_vals = reference[ref_pos // n_features, ref_pos % n_features]
        ref_cells = cell_of[flat[ref_pos]]
    values = np.concatenate([ref_vals, cur_vals])
    cells = np.concatenate([ref_cells, cur_cells])
    is_cur = np.zeros(values.size, dtype=bool)
    is_cur[ref_vals.size :] = True
    _refine(best, values, cells, is_cur, feature=cf, base1=c1s.astype(np.int64), base2=c2s.astype(np.int64))
    return best.stat


def _refine(
    best: _Best,
    values: np.ndarray,
    cells: np.ndarray,
    is_cur: np.ndarray,
    *,
    feature: np.ndarray,
    base1: np.ndarray,
    base2: np.ndarray,
) -> None:
    """Split candidate cells (values ``values`` in cells ``cells``; cell c belongs to ``feature[c]`` and has
    ``base1[c]``/``base2[c]`` values of each sample before it) until none can hide a larger gap."""
    n1, n2 = best.n1, best.n2
    s = 1 << _SUB_BITS
    keys = _order_keys(values)
    while cells.size:
        n_cells = feature.size
        kmin = np.full(n_cells, np.iinfo(np.int64).max, dtype=np.int64)
        kmax = np.full(n_cells, np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(kmin, cells, keys)
        np.maximum.at(kmax, cells, keys)
        span = kmax.view(np.uint64) - kmin.view(np.uint64)
        shift = np.maximum(_bit_length(span) - _SUB_BITS, 0)
        sub = ((keys.view(np.uint64) - kmin[cells].view(np.uint64)) >> shift[cells].astype(np.uint64)).astype(
            np.int64)
        gid = cells * s + sub
        ca = np.bincount(gid[~is_cur], minlength=n_cells * s).reshape(n_cells, s)
        cb = np.bincount(gid[is_cur], minlength=n_cells * s).reshape(n_cells, s)
        c1 = base1[:, None] + np.cumsum(ca, axis=1)
        c2 = base2[:, None] + np.cumsum(cb, axis=1)
        nonempty = (ca + cb) > 0
        f_idx = np.broadcast_to(feature[:, None], c1.shape)
        best.update(f_idx[nonempty], c1[nonempty], c2[nonempty])
        c1s, c2s = c1 - ca, c2 - cb
        bound = np.maximum(c1 * n2 - c2s * n1, c2 * n1 - c1s * n2)
        # shift 0: a sub-bucket holds one key, one distinct value, and its end is exact
        cand = (bound >= best.gap[feature][:, None]) & (ca > 0) & (cb > 0) & (shift > 0)[:, None]
        cc, cj = np.nonzero(cand)
        if not cc.size:
            return
        new_of = np.full(n_cells * s, -1, dtype=np.int64)
        new_of[cc * s + cj] = np.arange(cc.size)
        new_cells = new_of[gid]
        keep = new_cells >= 0
        keys, is_cur, cells = keys[keep], is_cur[keep], new_cells[keep]
        feature, base1, base2 = feature[cc], c1s[cc, cj], c2s[cc, cj]
