"""The reference a model's live windows are tested against, per served version.

A :class:`PartReference` is what the window tests need from the reference rows of one part (inputs, or outputs for
prediction drift), computed once: the numeric columns as a :class:`~goldwatch.detectors.ReferenceSummary` (sorted
columns and the KS grid: a window is counted against it without reading the reference again), category counts of
the categorical columns, and the reference's own data-quality rates -- NaN and inf shares, the share outside its
0.1%-99.9% quantile range, missing values, and (Good-Turing) the chance that a value is a category the reference
never saw. A :class:`LiveReference` holds both parts and the version it belongs to.

References come from a file (``.csv``, ``.parquet``, ``.npz`` -- columns by name, or tensors split as the schema
says), from a golden set (its inputs and expected outputs), or from the golden sets a registry version links;
:class:`ReferenceStore` resolves and caches them by served version, so that when the served version changes (a
rollback), the next window is tested against the reference of the version now served.

>>> import numpy as np
>>> from goldwatch.watchdog.live.payload import Frame
>>> rng = np.random.default_rng(0)
>>> frame = Frame(rng.normal(size=(1000, 2)), np.array([["a"], ["b"]] * 500, dtype=object))
>>> ref = PartReference.fit(frame, numeric_names=["x", "y"], categorical_names=["c"])
>>> ref.summary.feature_names, ref.categories[0], ref.nan_rate.tolist()
(['x', 'y'], {'a': 500, 'b': 500}, [0.0, 0.0])
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from goldwatch.detectors._ks_counts import ReferenceGrid
from goldwatch.detectors.reference import ReferenceSummary
from goldwatch.errors import ConfigError, DataError
from goldwatch.watchdog.live.payload import Frame, PayloadError, Tensor, Tensors, extract
from goldwatch.watchdog.live.schema import Column, Schema

__all__ = ["LiveReference", "PartReference", "ReferenceStore", "load_reference", "reference_from_golden"]

RANGE_QUANTILES = (0.001, 0.999)
MISSING = None


@dataclasses.dataclass(frozen=True)
class PartReference:
    """The reference of one part. Per numeric column: ``nan_rate``, ``inf_rate``, ``low``/``high`` (its 0.1% and
    99.9% quantiles) and ``out_rate`` (its own share outside them). Per categorical column: ``categories``
    (counts), ``missing_rate``, ``unseen_rate`` (singletons / values: the chance the next value is new)."""

    numeric_names: list[str]
    categorical_names: list[str]
    n_rows: int
    summary: ReferenceSummary | None
    nan_rate: np.ndarray
    inf_rate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    out_rate: np.ndarray
    categories: list[dict[str, int]]
    missing_rate: np.ndarray
    unseen_rate: np.ndarray

    @classmethod
    def fit(cls, frame: Frame, *, numeric_names: Sequence[str], categorical_names: Sequence[str]) -> PartReference:
        n = frame.n_rows
        if n < 2:
            raise DataError(f"the reference has {n} row(s); at least 2 are needed", where="reference")
        x = frame.numeric
        nan = np.isnan(x)
        inf = np.isinf(x)
        finite = ~(nan | inf)
        empty = [numeric_names[int(j)] for j in np.flatnonzero(finite.sum(axis=0) < 2)]
        if empty:
            raise DataError(f"reference column(s) {', '.join(empty[:10])} hold fewer than 2 finite values",
                            where="reference", hint="use a reference with real values in every watched column")
        summary = None
        low = high = out = np.zeros(0)
        if x.shape[1]:
            summary = ReferenceSummary.fit(np.where(finite, x, np.nan), feature_names=list(numeric_names),
                                           nan_policy="omit")
            low, high = _finite_quantiles(summary.sorted_values, summary.n_finite)
            inside = (x >= low) & (x <= high)
            out = ((finite & ~inside).sum(axis=0) / np.maximum(finite.sum(axis=0), 1)).astype(np.float64)
        cats = frame.categorical
        categories, missing, unseen = [], [], []
        for j in range(cats.shape[1]):  # once per reference and categorical column, not per window
            values = [v for v in cats[:, j].tolist() if v is not None]
            counts = Counter(values)
            categories.append(dict(sorted(counts.items())))
            missing.append(1.0 - len(values) / n)
            unseen.append(sum(1 for c in counts.values() if c == 1) / max(len(values), 1))
        return cls(numeric_names=list(numeric_names), categorical_names=list(categorical_names), n_rows=n,
                   summary=summary, nan_rate=nan.mean(axis=0), inf_rate=inf.mean(axis=0), low=low, high=high,
                   out_rate=out, categories=categories, missing_rate=np.array(missing),
                   unseen_rate=np.array(unseen))

    @cached_property
    def category_table(self) -> Any:
        """The reference's category counts as one pandas Series indexed by (categorical column, category)."""
        import pandas as pd

        keys = [(j, c) for j, counts in enumerate(self.categories) for c in counts]
        values = [n for counts in self.categories for n in counts.values()]
        index = pd.MultiIndex.from_tuples(keys, names=["feature", "category"]) if keys else pd.MultiIndex.from_arrays(
            [[], []], names=["feature", "category"])
        return pd.Series(values, index=index, dtype=np.float64)

    @cached_property
    def clean_columns(self) -> np.ndarray:
        """Numeric columns whose reference values are all finite: their KS runs on the grid, without NaN."""
        if self.summary is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.summary.n_finite == self.n_rows)

    @cached_property
    def clean_sorted(self) -> np.ndarray:
        """The sorted reference columns of :attr:`clean_columns` (the summary's own array when all are clean)."""
        assert self.summary is not None
        if self.clean_columns.size == self.summary.n_features:
            return self.summary.sorted_values
        return np.ascontiguousarray(self.summary.sorted_values[:, self.clean_columns])

    def warm(self) -> None:
        """Do now what the first window would: the clean columns' sorted copy, the KS grid, the category table."""
        if self.summary is not None and self.clean_columns.size:
            _ = self.grid
        if self.categorical_names:
            _ = self.category_table

    @cached_property
    def grid(self) -> ReferenceGrid:
        """The KS grid of :attr:`clean_sorted`, fitted once (on first use) per reference."""
        s = self.clean_sorted
        return ReferenceGrid.fit(s, lo=s[0], hi=s[-1])

    def histogram(self, name: str, edges: np.ndarray) -> np.ndarray:
        """Reference counts of numeric column ``name`` in the bins ``edges`` (finite values; the outer bins are
        open): from the sorted column, no pass over the data."""
        j = self.numeric_names.index(name)
        assert self.summary is not None
        col = self.summary.sorted_values[: int(self.summary.n_finite[j]), j]
        cuts = np.searchsorted(col, edges[1:-1], side="left")
        return np.diff(np.concatenate([[0], cuts, [col.size]]))


def _finite_quantiles(sorted_values: np.ndarray, n_finite: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the 0.1% and 99.9% quantiles of its finite (sorted, NaN-last) values."""
    cols = np.arange(sorted_values.shape[1])
    lo_idx = np.floor(RANGE_QUANTILES[0] * (n_finite - 1)).astype(np.int64)
    hi_idx = np.ceil(RANGE_QUANTILES[1] * (n_finite - 1)).astype(np.int64)
    return sorted_values[lo_idx, cols], sorted_values[hi_idx, cols]


@dataclasses.dataclass(frozen=True)
class LiveReference:
    """The reference of one served version: inputs, and outputs when prediction drift is watched."""

    version: str | None
    source: str
    inputs: PartReference
    outputs: PartReference | None

    def part(self, name: str) -> PartReference | None:
        return self.inputs if name == "inputs" else self.outputs


def _names(columns: Sequence[Column], kind: str) -> list[str]:
    return [c.name for c in columns if c.kind == kind]


def _frame_of(tensors: Tensors, columns: Sequence[Column], *, where: str) -> Frame:
    try:
        return extract(tensors, columns)
    except PayloadError as exc:
        raise DataError(f"the reference does not fit the schema: {exc.what}", where=where,
                        hint="give the reference the model's columns (names as in the schema)") from None


def build_reference(inputs: Tensors, outputs: Tensors | None, schema: Schema, *, version: str | None,
                    source: str) -> LiveReference:
    """A :class:`LiveReference` from reference tensors (file columns, golden inputs/expected)."""
    in_frame = _frame_of(inputs, schema.inputs, where=f"{source} (inputs)")
    part_in = PartReference.fit(in_frame, numeric_names=_names(schema.inputs, "numeric"),
                                categorical_names=_names(schema.inputs, "categorical"))
    part_out = None
    if schema.outputs and outputs is not None and outputs.tensors:
        out_frame = _frame_of(outputs, schema.outputs, where=f"{source} (outputs)")
        part_out = PartReference.fit(out_frame, numeric_names=_names(schema.outputs, "numeric"),
                                     categorical_names=_names(schema.outputs, "categorical"))
    return LiveReference(version=version, source=source, inputs=part_in, outputs=part_out)


def _tensors_of(arrays: Mapping[str, np.ndarray]) -> Tensors:
    out = {}
    for name, arr in arrays.items():
        a = np.asarray(arr)
        datatype = "BYTES" if a.dtype.kind in "USO" else "FP64"
        out[name] = Tensor(a.astype(object) if datatype == "BYTES" else a.astype(np.float64), datatype)
    return Tensors(out)


def _split(tensors: Tensors, schema: Schema) -> tuple[Tensors, Tensors | None]:
    """Split a file's columns into the inputs' and the outputs' (a file may hold both)."""
    def wanted(cols: Sequence[Column]) -> set[str]:
        return {c.tensor or c.name for c in cols} | {c.name for c in cols}

    outs = {k: v for k, v in tensors.tensors.items() if k in wanted(schema.outputs)}
    ins = {k: v for k, v in tensors.tensors.items() if k not in outs or k in wanted(schema.inputs)}
    return Tensors(ins), (Tensors(outs) if outs else None)


def load_reference(path: str | os.PathLike[str], schema: Schema, *, version: str | None = None) -> LiveReference:
    """A reference file: ``.csv``/``.parquet`` (one column per feature, by name) or ``.npz`` (arrays named like the
    schema's tensors or columns). Output columns in the same file enable prediction drift."""
    from goldwatch.detectors.io import load_table

    p = Path(path)
    if p.suffix.lower() == ".npz":
        try:
            with np.load(p, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except FileNotFoundError:
            raise DataError("reference file not found", where=str(p)) from None
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the reference ({exc})", where=str(p)) from None
        tensors = _tensors_of(arrays)
    else:
        table = load_table(p)
        if not hasattr(table, "columns"):
            raise DataError("a .npy reference has no column names", where=str(p),
                            hint="use .csv, .parquet, or a .npz with named arrays")
        tensors = _tensors_of({str(c): table[c].to_numpy() for c in table.columns})
    ins, outs = _split(tensors, schema)
    return build_reference(ins, outs, schema, version=version, source=str(p))


def reference_from_golden(golden: Any, schema: Schema, *, version: str | None = None) -> LiveReference:
    """A golden set's inputs and expected outputs (one :class:`~goldwatch.golden_sets.GoldenSet`, or several, whose
    rows are concatenated)."""
    sets = list(golden) if isinstance(golden, (list, tuple)) else [golden]
    if not sets:
        raise ConfigError("no golden set to take the reference from", where="reference")
    inputs = {k: np.concatenate([np.asarray(g.inputs[k]) for g in sets]) for k in sets[0].inputs}
    expected = {k: np.concatenate([np.asarray(g.expected[k]) for g in sets]) for k in sets[0].expected}
    source = ", ".join(str(g.path or "golden set") for g in sets)
    return build_reference(_tensors_of(inputs), _tensors_of(expected), schema, version=version,
                           source=f"golden: {source}")


class ReferenceStore:
    """References by served version: ``resolve(version)`` builds one (a file, a golden set, the registry's), the
    store keeps it. ``None`` is the reference used when the version is unknown."""

    def __init__(self, resolve: Callable[[str | None], LiveReference]) -> None:
        self._resolve = resolve
        self._cache: dict[str | None, LiveReference] = {}
        self._lock = threading.Lock()

    def get(self, version: str | None) -> LiveReference:
        with self._lock:
            ref = self._cache.get(version)
        if ref is None:
            ref = self._resolve(version)
            with self._lock:
                self._cache[version] = ref
        return ref

    def put(self, reference: LiveReference) -> None:
        with self._lock:
            self._cache[reference.version] = reference

    @classmethod
    def fixed(cls, reference: LiveReference) -> ReferenceStore:
        """The same reference whatever the version."""
        return cls(lambda version: reference)
