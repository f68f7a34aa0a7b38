"""Feature blocks on all cores: run a per-block function over slices of the feature axis in threads.

numpy's sorts, argsorts and large elementwise operations release the GIL, so blocks of features processed in
threads use every core; sizing the blocks by a working-set budget keeps the memory of a wide, tall input bounded
(one block per thread in flight, not every feature at once).

>>> import numpy as np
>>> map_column_blocks(lambda cols: np.arange(cols.start, cols.stop) * 2.0, 5, 10, budget_elems=20).tolist()
[0.0, 2.0, 4.0, 6.0, 8.0]
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["map_column_blocks"]


def map_column_blocks(
    func: Callable[[slice], np.ndarray], n_features: int, n_rows: int, *, budget_elems: int, threads: int | None = None
) -> np.ndarray:
    """``func(cols) -> values`` for blocks of at most ``budget_elems // n_rows`` features (at least one), on
    ``threads`` threads (default: every core); the values are stitched back in feature order."""
    cores = threads or os.cpu_count() or 1
    step = max(1, budget_elems // max(n_rows, 1))
    if cores > 1 and n_features > 1:
        step = min(step, -(-n_features // (2 * cores)))  # two blocks per core: no core idles at the end
    blocks = [slice(lo, min(lo + step, n_features)) for lo in range(0, n_features, step)]
    out = np.empty(n_features)
    if cores <= 1 or len(blocks) <= 1:
        for cols in blocks:
            out[cols] = func(cols)
        return out
    with ThreadPoolExecutor(max_workers=min(cores, len(blocks))) as pool:
        for cols, values in zip(blocks, pool.map(func, blocks)):
            out[cols] = values
    return out
