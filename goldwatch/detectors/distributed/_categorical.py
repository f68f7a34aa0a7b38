"""Chi-squared on Dask inputs: category counts per chunk (a pandas group-by), summed in a tree, tested here.

Counts of (feature, category) add up over chunks exactly, and so do the "holds a non-integral float" flags (an OR)
and the row counts, so the table the driver tests is the table the in-memory test would build.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from goldwatch.detectors.distributed._inputs import Operand, as_block, as_operand, check_features

__all__ = ["chi2_counts"]


@dataclasses.dataclass(frozen=True)
class CategoryCounts:
    counts: Any  # pandas Series indexed by (feature, category)
    fractional: np.ndarray
    n_rows: int


def count_categories(block: Any) -> CategoryCounts:
    """Category counts of one chunk (runs on a worker)."""
    from goldwatch.detectors.categorical import _fractional_floats, category_counts

    x = as_block(block, numeric=False)
    if x.shape[0] == 0:
        import pandas as pd

        empty = pd.Series([], dtype=np.int64, index=pd.MultiIndex.from_arrays([[], []], names=["feature", "category"]))
        return CategoryCounts(empty, np.zeros(x.shape[1], dtype=bool), 0)
    return CategoryCounts(category_counts(x), _fractional_floats(x), x.shape[0])


def add_categories(*parts: CategoryCounts) -> CategoryCounts:
    counts, fractional, n_rows = parts[0].counts, parts[0].fractional.copy(), parts[0].n_rows
    for p in parts[1:]:
        counts = counts.add(p.counts, fill_value=0)
        fractional |= p.fractional
        n_rows += p.n_rows
    return CategoryCounts(counts.astype(np.int64).sort_index(), fractional, n_rows)


def _side(op: Operand) -> Any:
    import dask

    from goldwatch.detectors.distributed._execution import tree_sum

    if op.local is not None:
        return dask.delayed(count_categories, pure=True)(op.local)
    return tree_sum([dask.delayed(count_categories, pure=True)(c) for c in op.chunks], add_categories)


def chi2_counts(reference: Any, current: Any, *, alpha: float = 0.05) -> Any:
    """The chi-squared test of every categorical feature of two (dask) samples."""
    from goldwatch.detectors.categorical import chi2_from_counts
    from goldwatch.detectors.distributed._execution import compute
    from goldwatch.errors import DataError

    ref = as_operand(reference, name="reference", numeric=False)
    cur = as_operand(current, name="current", numeric=False)
    check_features(ref, cur)
    ref_counts, cur_counts = compute(_side(ref), _side(cur), what="counting categories")
    for label, counted in (("reference", ref_counts), ("current", cur_counts)):
        if counted.n_rows == 0:
            raise DataError("expected at least 1 sample, got 0 rows", where=label, hint="pass a non-empty window")
    result = chi2_from_counts(
        ref_counts.counts, cur_counts.counts, n_reference=ref_counts.n_rows, n_current=cur_counts.n_rows,
        n_features=ref.n_features, names=ref.feature_names, fractional=ref_counts.fractional | cur_counts.fractional,
        alpha=alpha,
    )
    return dataclasses.replace(result, result=dataclasses.replace(result.result, strategy="dask:broadcast"))
