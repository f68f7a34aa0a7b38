"""Reading golden-set inputs and labels from .npz / .npy / .parquet / .csv, matched to a model's signature.

``.npz`` files are keyed by input name (a single unnamed array fits a single-input model). ``.npy``, ``.csv`` and
``.parquet`` hold one table, so they fit single-input models only; CSV and Parquet carry no exact dtype, so their
values are converted to the input's dtype and reshaped to its known shape. Arrays from ``.npz``/``.npy`` must
already have the model's dtype: converting silently would hide a real mismatch.

>>> import tempfile, os
>>> from goldwatch.runtimes.base import Signature, TensorSpec
>>> sig = Signature(inputs=(TensorSpec("x", "float32", (None, 2)),), outputs=(TensorSpec("y"),))
>>> p = os.path.join(tempfile.mkdtemp(), "in.csv")
>>> _ = open(p, "w").write("a,b\\n1,2\\n3,4\\n")
>>> load_inputs(p, sig)["x"]
array([[1., 2.],
       [3., 4.]], dtype=float32)
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from goldwatch.errors import DataError
from goldwatch.runtimes.base import Signature, TensorSpec

__all__ = ["load_inputs", "load_labels"]

_TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def _read_table(path: Path) -> np.ndarray:
    import pandas as pd

    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"cannot read the table ({exc})", where=str(path)) from None
    if frame.empty:
        raise DataError("the table has no rows", where=str(path))
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise DataError(f"non-numeric column(s) {non_numeric[:5]}", where=str(path),
                        hint="keep numeric features only; for a text model, pass the texts with --tokenizer DIR "
                             "(goldwatch[text]) and they are tokenized into its inputs")
    return frame.to_numpy()


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        if suffix == ".npy":
            return {"": np.load(path, allow_pickle=False)}
    except FileNotFoundError:
        raise DataError("file not found", where=str(path)) from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        # allow_pickle=False turns object arrays into a ValueError: that is the point
        raise DataError(f"cannot read the arrays ({exc})", where=str(path), hint="save plain numeric arrays") from None
    if suffix in _TABLE_SUFFIXES:
        if not path.exists():
            raise DataError("file not found", where=str(path))
        return {"": _read_table(path)}
    raise DataError(
        f"unsupported input file type {suffix or '(none)'!r}", where=str(path), hint="use .npz, .npy, .csv or .parquet"
    )


def _fit_table(array: np.ndarray, spec: TensorSpec, where: str) -> np.ndarray:
    dtype = np.dtype(spec.dtype or "float32")
    out = array.astype(dtype)
    if spec.shape is not None and len(spec.shape) != 2:
        tail = spec.shape[1:]
        if None in tail:
            raise DataError(f"cannot reshape a table to {spec.shape}", where=where, hint="use .npz for tensors")
        size = int(np.prod([int(d) for d in tail if d is not None]))
        if out.shape[1] != size:
            raise DataError(
                f"the table has {out.shape[1]} columns, input {spec.name!r} needs {size} per row "
                f"for shape {spec.shape}",
                where=where,
            )
        out = out.reshape((out.shape[0], *[int(d) for d in tail if d is not None]))
    return out


def load_inputs(path: str | os.PathLike[str], signature: Signature) -> dict[str, np.ndarray]:
    """Arrays for ``signature``'s inputs from ``path``; checked against its names, dtypes and shapes."""
    path = Path(path)
    where = str(path)
    arrays = _read_arrays(path)
    names = signature.input_names
    is_table = path.suffix.lower() in _TABLE_SUFFIXES
    if set(arrays) == {""} or (len(arrays) == 1 and len(names) == 1 and names[0] not in arrays):
        if len(names) != 1:
            raise DataError(
                f"one unnamed array, but the model takes {len(names)} inputs {names}",
                where=where,
                hint="save an .npz with one array per input name",
            )
        (array,) = arrays.values()
        arrays = {names[0]: _fit_table(array, signature.inputs[0], where) if is_table else array}
    signature.check_inputs(arrays, where=where)
    sizes = {k: (v.shape[0] if v.ndim else 0) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1 or 0 in sizes.values():
        raise DataError(f"inputs must share a non-empty batch dimension, got {sizes}", where=where)
    return arrays


def load_labels(path: str | os.PathLike[str], *, n_samples: int) -> np.ndarray:
    """Integer class labels, one per sample, from .npy / single-array .npz / one-column .csv or .parquet."""
    path = Path(path)
    arrays = _read_arrays(path)
    if len(arrays) != 1:
        raise DataError(f"expected one labels array, found {sorted(arrays)}", where=str(path))
    labels = np.asarray(next(iter(arrays.values())))
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != n_samples:
        raise DataError(f"labels have shape {labels.shape}, expected ({n_samples},)", where=str(path))
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise DataError("labels must be whole class indices", where=str(path))
    elif labels.dtype.kind not in "iu":
        raise DataError(f"labels have dtype {labels.dtype}, expected integers", where=str(path))
    return labels.astype(np.int64)

