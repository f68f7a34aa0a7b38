"""Dask inputs as row chunks: what a chunk task receives, and the checks done before anything runs.

A dask array ``(n, F)`` (1-D: one feature) or a dask dataframe/series is turned into a list of delayed row
chunks, each holding every feature (columns are never split across chunks here: the strategies decide how features
are grouped). Chunk sizes may be unknown (a dataframe read from parquet): the chunk tasks count their own rows.
numpy arrays, frames and lists on the other side of a test are wrapped as one in-memory operand.

Column names become feature names as in memory; dtypes are checked from the collection's metadata, so a text
column in a numeric test is refused before any worker reads a byte.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from goldwatch.detectors._backend import is_dask
from goldwatch.detectors._validation import as_samples, feature_names_of
from goldwatch.errors import DataError

__all__ = ["Operand", "as_block", "as_operand", "check_features"]


@dataclasses.dataclass(frozen=True)
class Operand:
    """One side of a test: a dask collection split into row chunks, or an in-memory array.

    ``chunks``: delayed objects, each a 2-D block of rows (numpy) or a pandas frame; ``local``: the in-memory
    array when the side is not a dask collection. ``n_rows``: the row count when known without reading the data.
    ``nbytes``: estimated size as float64 (None when the row count is unknown).
    """

    name: str
    feature_names: list[str]
    n_features: int
    n_rows: int | None
    chunks: tuple[Any, ...] = ()
    local: np.ndarray | None = None
    collection: Any = None

    @property
    def is_local(self) -> bool:
        return self.local is not None

    @property
    def nbytes(self) -> int | None:
        return None if self.n_rows is None else self.n_rows * self.n_features * 8

    def to_dask_array(self) -> Any:
        """A 2-D dask array of the side (float64 for numeric data), chunk sizes known."""
        import dask.array as da

        if self.local is not None:
            return da.from_array(self.local, chunks=(max(1, min(len(self.local), 1 << 20)), -1))
        coll = self.collection
        if hasattr(coll, "to_dask_array"):
            arr = coll.to_dask_array(lengths=True)
        else:
            arr = coll
        if arr.ndim == 1:
            arr = arr[:, None]
        if any(math.isnan(c) for c in arr.chunks[0]):
            arr = arr.compute_chunk_sizes()
        return arr.rechunk({1: -1})


def _numeric_dtype(dtype: Any) -> bool:
    """Numbers or booleans (numpy or pandas' nullable/arrow dtypes); text and categories are not."""
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        return False
    return bool(pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))


def as_operand(data: Any, *, name: str, numeric: bool = True) -> Operand:
    """Wrap ``data`` (dask array/dataframe/series or anything :func:`as_samples` takes) as an :class:`Operand`."""
    if not is_dask(data):
        arr = as_samples(data, name=name, numeric=numeric)
        return Operand(name=name, feature_names=feature_names_of(data, arr.shape[1]), n_features=arr.shape[1],
                       n_rows=arr.shape[0], local=arr)
    if hasattr(data, "columns"):  # dataframe
        names = [str(c) for c in data.columns]
        dtypes = list(data.dtypes)
        if numeric:
            bad = [f"{n} ({t})" for n, t in zip(names, dtypes) if not _numeric_dtype(t)]
            if bad:
                raise DataError(f"expected numeric columns, got {', '.join(bad[:5])}", where=name,
                                hint="encode categorical columns or use a categorical test such as 'chi2'")
        if not names:
            raise DataError("expected at least one column, got none", where=name)
        chunks = tuple(data.to_delayed())
        return Operand(name=name, feature_names=names, n_features=len(names), n_rows=None, chunks=chunks,
                       collection=data)
    if hasattr(data, "to_frame") and not hasattr(data, "chunks"):  # series
        return as_operand(data.to_frame(), name=name, numeric=numeric)
    arr = data
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"expected a 1-D or 2-D dask array, got {arr.ndim}-D shape {arr.shape}", where=name,
                        hint="reshape it to (n_samples, n_features)")
    if numeric and not _numeric_dtype(arr.dtype):
        raise DataError(f"expected numeric data (int or float), got dtype {arr.dtype}", where=name,
                        hint="encode categorical columns or use a categorical test such as 'chi2'")
    n_features = int(arr.shape[1])
    if n_features == 0:
        raise DataError(f"expected at least one feature, got shape {arr.shape}", where=name)
    arr = arr.rechunk({1: -1})
    n_rows = None if math.isnan(arr.shape[0]) else int(arr.shape[0])
    if n_rows == 0:
        raise DataError(f"expected at least 1 sample, got shape {arr.shape}", where=name,
                        hint="pass a non-empty window of data")
    return Operand(name=name, feature_names=[f"f{i}" for i in range(n_features)], n_features=n_features,
                   n_rows=n_rows, chunks=tuple(arr.to_delayed().ravel()), collection=arr)


def check_features(reference: Operand, current: Operand) -> None:
    """Both sides must have the same number of features."""
    if reference.n_features != current.n_features:
        raise DataError(
            f"expected {reference.n_features} features (like reference), got {current.n_features}",
            where="current", hint="pass the same columns, in the same order, as the reference",
        )


def as_block(block: Any, *, numeric: bool = True) -> np.ndarray:
    """One chunk as a 2-D array (float64 when ``numeric``); a pandas frame's columns in order. Runs on workers."""
    if hasattr(block, "to_numpy") and not isinstance(block, np.ndarray):
        if numeric:
            block = block.astype(np.float64) if hasattr(block, "astype") else block
            arr = block.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            arr = block.to_numpy()
    else:
        arr = np.asarray(block)
    if arr.ndim == 1:
        arr = arr[:, None]
    if numeric and arr.dtype != np.float64:
        arr = arr.astype(np.float64)
    return arr
