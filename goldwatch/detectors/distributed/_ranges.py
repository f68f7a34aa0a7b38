"""Range partitioning, for when both samples are too large for one worker: each task owns a value range.

1. Every chunk (of either sample) contributes a few order statistics per feature; the driver picks splitters
   ``s_1 <= ... <= s_{R-1}`` per feature from their pool (their quality only balances the tasks; exactness never
   depends on them).
2. Every chunk splits its sorted columns at the splitters: range ``r`` holds the values ``s_r <= v < s_{r+1}``, so
   a tie group never straddles two ranges.
3. Range task ``r`` merges the two samples' values of its range and returns exact integers, relative to its
   range: for KS the pooled positions where ``c1 n2 - c2 n1`` is largest and smallest; for Cramér-von Mises the
   count, sum and sum of squares of twice each element's rank offset. The driver adds the counts of the ranges
   below (known from the split sizes) and finishes exactly: the KS statistic is the same float at the same pooled
   point as scipy's; the CvM sums are exact integers, rounded once.

What the network carries: every value once, from its chunk to its range's task (a shuffle), then a few integers
per feature and range to the driver.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np

from goldwatch.detectors._merge import merge_rows, midranks
from goldwatch.detectors.distributed._grid import rowwise_searchsorted, sorted_finite_rows
from goldwatch.detectors.distributed._inputs import as_block

__all__ = [
    "RangeResult",
    "exact_square_sum",
    "pick_splitters",
    "range_statistics",
    "sample_chunk",
    "split_chunk",
]

SAMPLES_PER_CHUNK = 64


def sample_chunk(block: Any, n_samples: int = SAMPLES_PER_CHUNK) -> np.ndarray:
    """``n_samples`` evenly spaced order statistics of each feature's finite values, (F, n_samples), NaN if none."""
    rows, n_finite = sorted_finite_rows(as_block(block))
    pos = np.linspace(0.0, 1.0, n_samples)[None, :] * np.maximum(n_finite - 1, 0)[:, None]
    picked = np.take_along_axis(rows, pos.astype(np.int64), axis=1) if rows.shape[1] else np.full(pos.shape, np.nan)
    return np.where(n_finite[:, None] > 0, picked, np.nan)


def pick_splitters(samples: list[np.ndarray], n_ranges: int) -> np.ndarray:
    """(F, n_ranges - 1) splitters: quantiles of the pooled samples per feature (+inf where a feature has none)."""
    pooled = np.concatenate(samples, axis=1)
    if n_ranges <= 1:
        return np.empty((pooled.shape[0], 0))
    q = np.linspace(0.0, 1.0, n_ranges + 1)[1:-1]
    with np.errstate(invalid="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore", RuntimeWarning)  # all-NaN features: no splitter needed
        split = np.nanquantile(pooled, q, axis=1, method="inverted_cdf").T
    return np.where(np.isfinite(split), split, np.inf)


@dataclasses.dataclass(frozen=True)
class Piece:
    """One chunk's values of one range: (F, width) sorted, +inf-padded rows and the real length of each row."""

    values: np.ndarray
    lengths: np.ndarray


@dataclasses.dataclass(frozen=True)
class Split:
    """A chunk split into ranges: one :class:`Piece` per range, its finite counts per feature, its rows."""

    pieces: list[Piece]
    n_finite: np.ndarray
    n_rows: int


def split_chunk(block: Any, splitters: np.ndarray) -> Split:
    """Split a chunk's sorted finite columns at the splitters: one :class:`Piece` per range (runs on a worker)."""
    x = as_block(block)
    rows, n_finite = sorted_finite_rows(x)
    bounds = rowwise_searchsorted(rows, splitters, side="left")  # first index of each range r >= 1
    starts = np.concatenate([np.zeros((rows.shape[0], 1), np.int64), bounds], axis=1)
    stops = np.concatenate([bounds, n_finite[:, None]], axis=1)
    stops = np.maximum(stops, starts)
    pieces = []
    for r in range(starts.shape[1]):  # one piece per range (a handful), each built for all features at once
        lengths = stops[:, r] - starts[:, r]
        width = int(lengths.max(initial=0))
        idx = starts[:, r : r + 1] + np.arange(width)[None, :]
        take = np.take_along_axis(rows, np.minimum(idx, max(rows.shape[1] - 1, 0)), axis=1) if width else idx * 0.0
        values = np.where(np.arange(width)[None, :] < lengths[:, None], take, np.inf)
        pieces.append(Piece(values=np.ascontiguousarray(values, dtype=np.float64), lengths=lengths))
    return Split(pieces=pieces, n_finite=n_finite, n_rows=x.shape[0])


def piece_of(split: Split, r: int) -> Piece:
    return split.pieces[r]


def finite_of(split: Split) -> np.ndarray:
    return split.n_finite


def rows_of(split: Split) -> int:
    return split.n_rows


def _stack(pieces: tuple[Piece, ...], n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate pieces and sort: the range's values per feature, +inf padding at the end of each row."""
    lengths = np.zeros(n_features, dtype=np.int64)
    parts = []
    for p in pieces:
        lengths += p.lengths
        if p.values.shape[1]:
            parts.append(p.values)
    if not parts:
        return np.full((n_features, 1), np.inf), lengths
    values = np.concatenate(parts, axis=1)
    values.sort(axis=1)
    return values, lengths


def exact_square_sum(a: np.ndarray, valid: np.ndarray) -> list[int]:
    """Per row, the exact sum of ``a**2`` over ``valid`` entries as Python ints (int64 ``a`` with |a| < 2^31):
    squares split into high and low 24-bit halves so that no int64 sum can overflow."""
    sq = np.where(valid, a, 0).astype(np.int64) ** 2
    hi = np.asarray(np.sum(sq >> 24, axis=1, dtype=np.int64))
    lo = np.asarray(np.sum(sq & ((1 << 24) - 1), axis=1, dtype=np.int64))
    return [(int(hi[f]) << 24) + int(lo[f]) for f in range(sq.shape[0])]


@dataclasses.dataclass(frozen=True)
class RangeResult:
    """What one range task returns, per feature, relative to its range.

    ``n_ref``/``n_cur``: values of each sample in the range. KS: ``ks_rows``/``ks_c1``/``ks_c2`` list the local
    pooled positions (feature, counts) where ``c1 n2 - c2 n1`` reaches its largest or smallest value. CvM:
    ``cvm_*``: count, sum and sum of squares of ``2 (rank - index)`` within the range, per sample (Python ints).
    """

    n_ref: np.ndarray
    n_cur: np.ndarray
    ks_rows: np.ndarray
    ks_c1: np.ndarray
    ks_c2: np.ndarray
    cvm_ref: tuple[list[int], list[int]]  # (sum a, sum a^2)
    cvm_cur: tuple[list[int], list[int]]


def range_statistics(n1: np.ndarray, n2: np.ndarray, want_cvm: bool, *parts: Any) -> RangeResult:
    """Merge range r's values of both samples and return its exact local integers (runs on a worker).

    ``parts`` are the reference pieces followed by the current pieces; ``n1``/``n2`` are the total finite counts
    per feature (for the KS extremes) and the first element of ``parts`` says how many reference pieces follow.
    """
    n_ref_pieces = int(parts[0])
    ref_pieces, cur_pieces = parts[1 : 1 + n_ref_pieces], parts[1 + n_ref_pieces :]
    n_features = len(n1)
    a, la = _stack(ref_pieces, n_features)
    b, lb = _stack(cur_pieces, n_features)
    m = merge_rows(a, b)
    width = a.shape[1] + b.shape[1]
    real = np.arange(width)[None, :] < (la + lb)[:, None]
    # KS: c1 n2 - c2 n1 at the last element of every tie group (local counts; the driver adds the offsets)
    e = m.count_a.astype(np.int64) * n2[:, None] - m.count_b.astype(np.int64) * n1[:, None]
    ends = m.is_end & real
    hi = np.where(ends, e, np.iinfo(np.int64).min).max(axis=1)
    lo = np.where(ends, e, np.iinfo(np.int64).max).min(axis=1)
    extreme = ends & ((e == hi[:, None]) | (e == lo[:, None]))
    rows, cols = np.nonzero(extreme)
    ks_c1, ks_c2 = m.count_a[rows, cols].astype(np.int64), m.count_b[rows, cols].astype(np.int64)
    cvm_ref: tuple[list[int], list[int]] = ([], [])
    cvm_cur: tuple[list[int], list[int]] = ([], [])
    if want_cvm:
        ranks2 = (2 * midranks(m)).astype(np.int64)  # twice the local midranks: integers
        rx = ranks2[~m.from_b].reshape(n_features, -1)
        ry = ranks2[m.from_b].reshape(n_features, -1)
        vx = np.arange(rx.shape[1])[None, :] < la[:, None]
        vy = np.arange(ry.shape[1])[None, :] < lb[:, None]
        ax = rx - 2 * np.arange(1, rx.shape[1] + 1)[None, :]
        ay = ry - 2 * np.arange(1, ry.shape[1] + 1)[None, :]
        cvm_ref = ([int(v) for v in np.where(vx, ax, 0).sum(axis=1)], exact_square_sum(ax, vx))
        cvm_cur = ([int(v) for v in np.where(vy, ay, 0).sum(axis=1)], exact_square_sum(ay, vy))
    return RangeResult(n_ref=la, n_cur=lb, ks_rows=rows, ks_c1=ks_c1, ks_c2=ks_c2, cvm_ref=cvm_ref,
                       cvm_cur=cvm_cur)


def ks_from_ranges(results: list[RangeResult], n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """The KS statistic per feature: the largest |c1/n1 - c2/n2| over every range's extreme points, offsets added."""
    n_features = len(n1)
    below1 = np.zeros(n_features, dtype=np.int64)
    below2 = np.zeros(n_features, dtype=np.int64)
    d = np.zeros(n_features)
    for res in results:  # one step per range
        c1 = res.ks_c1 + below1[res.ks_rows]
        c2 = res.ks_c2 + below2[res.ks_rows]
        np.maximum.at(d, res.ks_rows, np.abs(c1 / n1[res.ks_rows] - c2 / n2[res.ks_rows]))
        below1 += res.n_ref
        below2 += res.n_cur
    return d


def cvm_u_from_ranges(results: list[RangeResult], n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """U = nx sum (r_i - i)^2 + ny sum (s_j - j)^2 per feature, from exact per-range sums, rounded once.

    Within a range, a reference element's global ``r - i`` is the current count below the range plus half its
    local offset ``a``; so ``4 sum (r - i)^2 = 4 m C^2 + 4 C sum a + sum a^2`` exactly (C: current values below).
    """
    n_features = len(n1)
    sx = [0] * n_features  # 4 * sum (r_i - i)^2, exact
    sy = [0] * n_features
    below1 = [0] * n_features
    below2 = [0] * n_features
    for res in results:
        for f in range(n_features):  # Python ints: exact beyond 64 bits; a few operations per feature and range
            mx, my = int(res.n_ref[f]), int(res.n_cur[f])
            c2, c1 = below2[f], below1[f]
            sx[f] += 4 * mx * c2 * c2 + 4 * c2 * res.cvm_ref[0][f] + res.cvm_ref[1][f]
            sy[f] += 4 * my * c1 * c1 + 4 * c1 * res.cvm_cur[0][f] + res.cvm_cur[1][f]
            below1[f] += mx
            below2[f] += my
    u = np.empty(n_features)
    for f in range(n_features):
        u[f] = int(n1[f]) * float(Fraction(sx[f], 4)) + int(n2[f]) * float(Fraction(sy[f], 4))
    return u
