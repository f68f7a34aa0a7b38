"""Did a model's outputs move? Two models' answers to the *same* inputs, column by column, with an effect floor.

A candidate and its baseline (or a replay and the golden answers) answer the same inputs, so their outputs are
paired samples. Three numbers per output column decide whether it drifted:

* **a paired test** -- the paired t-test on the per-sample differences ``current - reference``: a systematic shift
  shows up in it far sooner than in a comparison of the two marginal distributions, since the inputs' own spread
  cancels out of the differences;
* **a distribution test** -- the two-sample Kolmogorov-Smirnov test with the asymptotic p-value (chosen: the exact
  one costs O(n*m) per column, and with ties -- common in model outputs -- scipy gives up on it and warns), which
  catches changes of shape (a squashed or split distribution) that leave the mean where it was;
* **the size of the shift, in the output's own units** -- the Wasserstein-1 distance between the column's two
  distributions (the mean absolute difference of their sorted values), held against an effect floor:
  ``min_effect`` times the output's scale (the standard deviation of all the reference's values).

A column drifts when it is significant -- the smaller of its two p-values, doubled for having two tests
(Bonferroni), then corrected across the columns tested -- *and* it moved by more than the floor. The floor is what
keeps a harmless candidate passing: with hundreds of paired samples every numeric change is significant, down to an
output dimension that is nearly constant (spread 1e-9) and so shifts completely when the weights are rounded to
fp16. Such a column is reported as *detectable but negligible*, with its size, and fails nothing.

Wide outputs (feature maps) are tested on at most :data:`MAX_TESTED_COLUMNS` evenly spaced columns; every caller
(golden replay, the gate) tests the same columns. Everything is vectorized over columns.

>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(300, 4))
>>> cur = ref + np.array([0.0, 1e-7, 0.5, 0.0])          # column 1: a tiny, column 2: a real shift
>>> shift = paired_output_shift(ref, cur, alpha=0.01)
>>> shift.drifted.tolist(), shift.significant.tolist()
([False, False, True, False], [False, True, True, False])
>>> round(float(shift.effect[2]), 3), round(shift.effect_floor, 4)
(0.5, 0.0098)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from goldwatch.errors import DataError

__all__ = ["DEFAULT_MIN_EFFECT", "MAX_TESTED_COLUMNS", "OutputShift", "paired_output_shift", "columns_tested"]

#: columns tested per output; wider outputs are subsampled at an even stride (the same columns everywhere)
MAX_TESTED_COLUMNS = 512
#: default effect floor: 1% of the output's scale (the standard deviation of all its reference values)
DEFAULT_MIN_EFFECT = 0.01


def columns_tested(total: int, *, max_columns: int = MAX_TESTED_COLUMNS) -> np.ndarray:
    """Indices of the columns tested out of ``total``: all of them, or ``max_columns`` evenly spaced.

    >>> columns_tested(384).size, columns_tested(4096)[:3].tolist()
    (384, [0, 8, 16])
    """
    if total <= max_columns:
        return np.arange(total)
    return np.unique(np.linspace(0, total - 1, max_columns).round().astype(np.int64))


@dataclasses.dataclass(frozen=True)
class OutputShift:
    """Per tested column: the tests' p-values, the shift's size, and the decision. ``columns`` are indices into
    the output's flattened columns (``total_columns`` of them)."""

    columns: np.ndarray
    total_columns: int
    ks_statistic: np.ndarray
    ks_pvalue: np.ndarray
    paired_pvalue: np.ndarray
    adjusted_pvalue: np.ndarray  # min of the two, x2, then corrected across columns
    effect: np.ndarray  # Wasserstein-1 distance, in the output's units
    mean_shift: np.ndarray  # mean of current - reference
    significant: np.ndarray
    drifted: np.ndarray  # significant and effect > effect_floor
    scale: float
    min_effect: float
    effect_floor: float
    alpha: float
    correction: str
    n_samples: int

    @property
    def n_drifted(self) -> int:
        return int(np.count_nonzero(self.drifted))

    @property
    def negligible(self) -> np.ndarray:
        """Significant, but moved by no more than the effect floor."""
        return self.significant & ~self.drifted

    @property
    def min_adjusted_pvalue(self) -> float:
        return float(self.adjusted_pvalue.min()) if self.adjusted_pvalue.size else 1.0

    def shifts(self, mask: np.ndarray, *, limit: int = 100) -> list[dict[str, Any]]:
        """The columns under ``mask``, largest effect first: column, effect, mean shift, adjusted p, the test."""
        idx = np.flatnonzero(mask)
        idx = idx[np.argsort(-self.effect[idx], kind="stable")][:limit]
        return [
            {
                "column": int(self.columns[i]),
                "effect": float(self.effect[i]),
                "mean_shift": float(self.mean_shift[i]),
                "adjusted_pvalue": float(self.adjusted_pvalue[i]),
                "sharper_test": "paired t" if self.paired_pvalue[i] <= self.ks_pvalue[i] else "KS",
            }
            for i in idx
        ]

    def describe(self, *, limit: int = 3) -> str:
        """One line: what moved, by how much, against which floor."""
        floor = (f"effect floor {self.effect_floor:.2g} = {self.min_effect:g} x output scale {self.scale:.3g}")
        tested = len(self.columns)
        of = f"{tested} of {self.total_columns}" if tested < self.total_columns else f"{tested}"
        if self.n_drifted:
            top = ", ".join(f"col {s['column']} by {s['effect']:.3g}" for s in self.shifts(self.drifted, limit=limit))
            more = f", +{self.n_drifted - limit} more" if self.n_drifted > limit else ""
            return (f"{self.n_drifted} of {of} columns shifted beyond the {floor}: {top}{more} "
                    f"(min adjusted p {self.min_adjusted_pvalue:.3g} < {self.alpha:g})")
        n_small = int(np.count_nonzero(self.negligible))
        if n_small:
            biggest = float(self.effect[self.negligible].max())
            return (f"no column drifted: {n_small} of {of} moved detectably (min adjusted p "
                    f"{self.min_adjusted_pvalue:.3g}) but by at most {biggest:.3g}, within the {floor}")
        return f"no column of {of} moved detectably (min adjusted p {self.min_adjusted_pvalue:.3g} >= {self.alpha:g})"


def paired_output_shift(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float,
    min_effect: float = DEFAULT_MIN_EFFECT,
    correction: Literal["bonferroni", "bh", "none"] = "bonferroni",
    max_columns: int = MAX_TESTED_COLUMNS,
) -> OutputShift:
    """Test every column of ``current`` against the same column of ``reference`` (finite ``(n, ...)`` arrays of
    the same shape, row i of both answering the same input); see the module docstring."""
    from scipy import stats

    from goldwatch.detectors.multiple_testing import adjust_pvalues

    ref = np.asarray(reference)
    cur = np.asarray(current)
    if ref.shape != cur.shape or ref.ndim == 0 or ref.shape[0] < 2:
        raise DataError(f"paired outputs must have the same shape with >= 2 samples, got {ref.shape} and "
                        f"{cur.shape}", where="paired_output_shift")
    if not 0 < alpha < 1 or min_effect < 0:
        raise DataError(f"need 0 < alpha < 1 and min_effect >= 0, got {alpha}, {min_effect}",
                        where="paired_output_shift")
    n = ref.shape[0]
    ref2 = ref.reshape(n, -1)
    total = ref2.shape[1]
    cols = columns_tested(total, max_columns=max_columns)
    a = ref2[:, cols].astype(np.float64)
    b = cur.reshape(n, -1)[:, cols].astype(np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("NaN or inf in the outputs", where="paired_output_shift",
                        hint="the non-finite check reports those; test the finite outputs")
    scale = float(a.std())
    if scale == 0.0:  # a constant output: take its magnitude, or 1, as its scale
        scale = float(np.abs(a).max()) or 1.0
    m = a.shape[1]
    if np.array_equal(a, b):  # the common healthy case: nothing moved, no test needed
        zeros, ones = np.zeros(m), np.ones(m)
        ks_stat, ks_p, t_p, adjusted, effect, mean_shift = zeros, ones, ones, ones, zeros, zeros
    else:
        d = b - a
        mean_shift = d.mean(axis=0)
        sd = d.std(axis=0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = mean_shift / (sd / np.sqrt(n))
        t_p = 2.0 * stats.t.sf(np.abs(t), df=n - 1)
        # no spread in the differences: every sample moved by exactly the same amount (certain), or none did
        t_p = np.where(sd == 0, np.where(mean_shift == 0, 1.0, 0.0), t_p)
        sa, sb = np.sort(a, axis=0), np.sort(b, axis=0)
        effect = np.abs(sa - sb).mean(axis=0)
        ks_stat = _ks_statistic(a, b)
        ks_p = np.minimum(stats.kstwo.sf(ks_stat, np.round(n / 2.0)), 1.0)  # scipy's asymptotic branch
        ks_p = np.where(ks_stat == 0, 1.0, ks_p)
        combined = np.minimum(2.0 * np.minimum(ks_p, t_p), 1.0)
        adjusted = np.asarray(adjust_pvalues(combined, correction), dtype=np.float64)
    significant = adjusted < alpha
    floor = min_effect * scale
    drifted = significant & (effect > floor)
    return OutputShift(
        columns=cols, total_columns=total, ks_statistic=np.asarray(ks_stat, float), ks_pvalue=np.asarray(ks_p, float),
        paired_pvalue=np.asarray(t_p, float), adjusted_pvalue=adjusted, effect=np.asarray(effect, float),
        mean_shift=np.asarray(mean_shift, float), significant=significant, drifted=drifted, scale=scale,
        min_effect=min_effect, effect_floor=floor, alpha=alpha, correction=correction, n_samples=n,
    )


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """max |F_a - F_b| per column, all columns at once (ties: only where the pooled value changes).

    >>> _ks_statistic(np.array([[0.0], [1.0]]), np.array([[1.0], [3.0]])).tolist()
    [0.5]
    """
    n, m = len(a), len(b)
    # columns as contiguous rows: sorting along the last axis is several times faster than along axis 0
    pooled = np.ascontiguousarray(np.concatenate([a, b]).T)
    order = np.argsort(pooled, axis=1)  # any order within ties: only the end of each run of equal values counts
    diff = np.abs(np.cumsum(np.where(order < n, 1.0 / n, -1.0 / m), axis=1))
    values = np.take_along_axis(pooled, order, axis=1)
    last_of_run = np.ones_like(values, dtype=bool)
    last_of_run[:, :-1] = values[:, 1:] != values[:, :-1]
    return np.where(last_of_run, diff, 0.0).max(axis=1)
