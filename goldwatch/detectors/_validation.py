"""Shape, dtype and NaN checks for every detector, in one place.

Detectors accept ``(n_samples, n_features)`` arrays (a 1-D array is one feature), pandas frames/series, lists, or
torch tensors (see :mod:`goldwatch.detectors._backend`). Everything that is wrong with an input is reported here,
as a :class:`~goldwatch.errors.DataError` (a ``ValueError``) that names the argument, what was expected and what
was received.

Non-finite values (NaN, +inf, -inf) follow an explicit policy, because a NaN must never silently read as
"no drift":

* ``nan_policy="raise"`` (default): refuse the input, saying how many non-finite values each argument holds.
* ``nan_policy="omit"``: drop them per feature (each feature keeps its own finite values) and report the counts.

>>> import numpy as np
>>> as_samples([1.0, 2.0, 3.0], name="reference").shape
(3, 1)
>>> check_pair(np.zeros((4, 2)), np.zeros((5, 3)))
Traceback (most recent call last):
...
goldwatch.errors.DataError: current: expected 2 features (like reference, shape (4, 2)), got shape (5, 3) ...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from goldwatch.errors import DataError

__all__ = [
    "NanPolicy",
    "as_samples",
    "check_pair",
    "check_some_finite",
    "feature_names_of",
    "finite_groups",
    "nonfinite_error",
]

NanPolicy = Literal["raise", "omit"]


def feature_names_of(data: Any, n_features: int) -> list[str]:
    """Column names of a DataFrame (or a Series name); ``f0, f1, ...`` for plain arrays."""
    columns = getattr(data, "columns", None)
    if columns is not None and len(columns) == n_features:
        return [str(c) for c in columns]
    name = getattr(data, "name", None)
    if n_features == 1 and name is not None and not callable(name):
        return [str(name)]
    return [f"f{i}" for i in range(n_features)]


def as_samples(data: Any, *, name: str, numeric: bool = True, min_samples: int = 1) -> np.ndarray:
    """Return ``data`` as a 2-D ``(n_samples, n_features)`` array (float64 when ``numeric``).

    Raises :class:`DataError` for wrong dimensionality, too few samples, zero features, or (``numeric``)
    a non-numeric dtype.
    """
    if hasattr(data, "to_numpy") and not isinstance(data, np.ndarray):
        data = data.to_numpy()
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise DataError(f"cannot be read as an array ({exc})", where=name) from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(
            f"expected a 1-D (n_samples,) or 2-D (n_samples, n_features) array, got {arr.ndim}-D shape {arr.shape}",
            where=name,
            hint="reshape it to (n_samples, n_features)",
        )
    if arr.shape[1] == 0:
        raise DataError(f"expected at least one feature, got shape {arr.shape}", where=name)
    if arr.shape[0] < min_samples:
        raise DataError(
            f"expected at least {min_samples} sample(s), got shape {arr.shape}",
            where=name,
            hint="pass a non-empty window of data",
        )
    if numeric:
        if arr.dtype.kind == "b":
            arr = arr.astype(np.float64)
        if arr.dtype.kind not in "iuf":
            raise DataError(
                f"expected numeric data (int or float), got dtype {arr.dtype}",
                where=name,
                hint="encode categorical columns or use a categorical test such as 'chi2'",
            )
        arr = np.asarray(arr, dtype=np.float64)
    return arr


def check_pair(reference: np.ndarray, current: np.ndarray) -> None:
    """Reference and current must have the same number of features."""
    if reference.shape[1] != current.shape[1]:
        raise DataError(
            f"expected {reference.shape[1]} features (like reference, shape {reference.shape}), "
            f"got shape {current.shape}",
            where="current",
            hint="pass the same columns, in the same order, as the reference",
        )


def _nonfinite_counts(arr: np.ndarray) -> np.ndarray:
    return np.count_nonzero(~np.isfinite(arr), axis=0)


@dataclass(frozen=True)
class FiniteGroup:
    """Features whose finite values have the same counts: dense, finite blocks a test can run on at once."""

    features: np.ndarray  # indices into the original feature axis
    reference: np.ndarray  # (n1, len(features)), finite
    current: np.ndarray  # (n2, len(features)), finite


def _compact(arr: np.ndarray, n_keep: int) -> np.ndarray:
    # Sorting moves NaN to the end; +-inf are mapped to NaN first so they go there too. Two-sample tests are
    # invariant to the order within a sample, so the sorted, truncated columns are the finite values.
    work = np.where(np.isfinite(arr), arr, np.nan)
    return np.sort(work, axis=0)[:n_keep]


def nonfinite_error(bad_ref: np.ndarray, bad_cur: np.ndarray) -> DataError:
    """The error of ``nan_policy="raise"``: how many non-finite values each side holds, per feature."""
    parts = []
    for label, bad in (("reference", bad_ref), ("current", bad_cur)):
        if bad.any():
            cols = np.flatnonzero(bad)
            shown = ", ".join(f"feature {c}: {bad[c]}" for c in cols[:5]) + (" ..." if len(cols) > 5 else "")
            parts.append(f"{label} has {int(bad.sum())} non-finite value(s) (NaN/inf) ({shown})")
    return DataError(
        "; ".join(parts),
        where="nan_policy='raise'",
        hint="clean the data, or pass nan_policy='omit' to drop non-finite values per feature",
    )


def check_some_finite(keep_ref: np.ndarray, keep_cur: np.ndarray) -> None:
    """``nan_policy="omit"`` must leave at least one finite value per feature on each side."""
    empty = np.flatnonzero((keep_ref == 0) | (keep_cur == 0))
    if empty.size:
        raise DataError(
            f"feature(s) {empty[:10].tolist()} have no finite value left in reference or current",
            where="nan_policy='omit'",
            hint="drop those features or fix the upstream data",
        )


def finite_groups(
    reference: np.ndarray, current: np.ndarray, *, nan_policy: NanPolicy
) -> tuple[list[FiniteGroup], np.ndarray, np.ndarray]:
    """Apply the NaN policy; return dense finite groups and the per-feature dropped counts (reference, current).

    With no non-finite value there is exactly one group holding every feature (the common case costs one
    ``isfinite`` pass). With ``omit``, features are grouped by their (finite reference, finite current) counts,
    so the number of groups is the number of distinct count pairs, not the number of features.
    """
    if nan_policy not in ("raise", "omit"):
        raise DataError(f"expected 'raise' or 'omit', got {nan_policy!r}", where="nan_policy")
    bad_ref = _nonfinite_counts(reference)
    bad_cur = _nonfinite_counts(current)
    if not bad_ref.any() and not bad_cur.any():
        return [FiniteGroup(np.arange(reference.shape[1]), reference, current)], bad_ref, bad_cur
    if nan_policy == "raise":
        raise nonfinite_error(bad_ref, bad_cur)
    keep_ref = reference.shape[0] - bad_ref
    keep_cur = current.shape[0] - bad_cur
    check_some_finite(keep_ref, keep_cur)
    pairs = np.stack([keep_ref, keep_cur], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    groups = []
    for g, (n1, n2) in enumerate(uniq):
        cols = np.flatnonzero(inverse.reshape(-1) == g)
        groups.append(
            FiniteGroup(cols, _compact(reference[:, cols], int(n1)), _compact(current[:, cols], int(n2)))
        )
    return groups, bad_ref, bad_cur


def iter_feature_chunks(n_features: int, n_rows: int, *, budget_elems: int = 8_000_000) -> Iterator[slice]:
    """Slices of the feature axis so that one chunk of ``n_rows x chunk`` stays under ``budget_elems``."""
    step = max(1, budget_elems // max(n_rows, 1))
    for start in range(0, n_features, step):
        yield slice(start, min(start + step, n_features))
