"""Request and response bodies to rows of named columns: Open Inference Protocol v2, v1 and Seldon's protocol.

:func:`decode_body` reads one body into :class:`Tensors` -- named arrays with their OIP datatype, the model version a
response names, whether the body carries goldwatch's probe mark -- and :func:`extract` takes the schema's columns
out of them as a :class:`Frame` (a float64 matrix of the numeric columns, an object matrix of the categorical ones).
What is understood:

* OIP v2 (KServe v2, Triton, MLServer): ``{"inputs"|"outputs": [{"name", "shape", "datatype", "data"}],
  "model_version", "parameters"}``, ``data`` flat (row-major) or nested;
* OIP v1 (KServe v1, TF Serving): ``{"instances": [...]}`` / ``{"predictions": [...]}``, rows as lists, scalars or
  objects (an object's keys are the columns); v1's columnar ``{"inputs": {...}}``;
* Seldon: ``{"data": {"names": [...], "ndarray": [[...]]}}`` or ``{"data": {"tensor": {"shape", "values"}}}``.

A body that cannot be used raises :class:`PayloadError` with one of a fixed set of reasons, which the caller counts
(``malformed_json``, ``binary_tensor`` -- the OIP binary data extension, whose tensors are raw bytes after the JSON
header --, ``unknown_format``, ``wrong_shape``, ``missing_tensor``, ``bad_datatype``, ``empty``).

>>> body = b'{"model_name": "m", "model_version": "7", "outputs": [{"name": "p", "shape": [2, 2],'
>>> body += b' "datatype": "FP32", "data": [0.1, 0.9, 0.8, 0.2]}]}'
>>> t = decode_body(body)
>>> t.version, t.tensors["p"].array.tolist()
('7', [[0.1, 0.9], [0.8, 0.2]])
>>> from goldwatch.watchdog.live.schema import Column
>>> f = extract(t, [Column("p[1]", tensor="p", index=1), Column("cls", "categorical", tensor="p", derive="argmax")])
>>> f.numeric.tolist(), f.categorical.tolist()
([[0.9], [0.2]], [['1'], ['0']])
>>> decode_body(b'{"instances": [[1, 2], [3')
Traceback (most recent call last):
...
goldwatch.watchdog.live.payload.PayloadError: malformed_json: ...
"""

from __future__ import annotations

import dataclasses
import json as _json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from goldwatch.errors import DataError
from goldwatch.probe import is_probe_body
from goldwatch.watchdog.live.schema import Column

__all__ = ["REASONS", "ExtractPlan", "Frame", "PayloadError", "Tensor", "Tensors", "decode_body", "extract", "loads"]

REASONS = ("malformed_json", "binary_tensor", "unknown_format", "wrong_shape", "missing_tensor", "bad_datatype",
           "empty")

_NUMERIC_TYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
    "FP32": np.float32, "FP64": np.float64,
}
MAX_ROWS = 1_000_000  # one body: more rows than this is not one inference request
_UNNAMED = frozenset({"instances", "predictions", "data"})  # tensors of bodies that name no columns


class PayloadError(DataError):
    """A body that cannot be read into rows; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, what: str) -> None:
        self.reason = reason
        super().__init__(what, where=reason)


try:  # orjson parses an OIP body ~15x faster than the standard library; it is optional (the serve extra)
    import orjson as _orjson

    def loads(data: bytes | str) -> Any:
        """Parse JSON (orjson when installed). Python servers write NaN/Infinity as bare words, which strict JSON
        (orjson) refuses: such a body is read by the standard library, which takes them."""
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            return _json.loads(data)

    _JSON_ERRORS: tuple[type[Exception], ...] = (_orjson.JSONDecodeError, ValueError, TypeError)
except ImportError:  # pragma: no cover - exercised without the serve extra

    def loads(data: bytes | str) -> Any:
        """Parse JSON (orjson when installed)."""
        return _json.loads(data)

    _JSON_ERRORS = (ValueError, TypeError)


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One named array of a body, batch first, with its OIP datatype (``BYTES`` for strings)."""

    array: np.ndarray
    datatype: str


@dataclasses.dataclass(frozen=True)
class Tensors:
    """What one body holds: its tensors, the model version it names (responses), its probe mark, its format."""

    tensors: dict[str, Tensor]
    version: str | None = None
    probe: bool = False
    format: str = "v2"

    @property
    def n_rows(self) -> int:
        return next(iter(self.tensors.values())).array.shape[0] if self.tensors else 0

    def signature(self) -> list[tuple[str, tuple[int, ...], str]]:
        """(name, shape, datatype) of every tensor, for :meth:`~goldwatch.watchdog.live.schema.Schema.infer`."""
        return [(n, tuple(t.array.shape), t.datatype) for n, t in self.tensors.items()]


@dataclasses.dataclass(frozen=True)
class Frame:
    """Rows of one part (inputs or outputs): ``numeric`` (n, numeric columns) float64, ``categorical`` (n,
    categorical columns) object (strings; None for a missing value)."""

    numeric: np.ndarray
    categorical: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.numeric.shape[0])

    @classmethod
    def empty(cls, n_numeric: int, n_categorical: int) -> Frame:
        return cls(np.empty((0, n_numeric)), np.empty((0, n_categorical), dtype=object))


def decode_body(body: bytes | str | Mapping[str, Any], *, content_type: str = "application/json") -> Tensors:
    """Read one request or response body (bytes, text, or already-parsed JSON) into :class:`Tensors`."""
    if isinstance(body, Mapping):
        data: Any = body
    else:
        if not body:
            raise PayloadError("empty", "the body is empty")
        if content_type.startswith("application/octet-stream"):
            raise PayloadError("binary_tensor", "the body is the OIP binary data extension (octet-stream)")
        try:
            data = loads(body)
        except _JSON_ERRORS as exc:
            if _binary_extension_header(body):
                raise PayloadError("binary_tensor", "the body holds tensors as raw bytes after a JSON header "
                                                    "(OIP binary data extension)") from None
            raise PayloadError("malformed_json", f"not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(data, Mapping):
        raise PayloadError("unknown_format", f"expected a JSON object, got {type(data).__name__}")
    probe = is_probe_body(data)
    version = data.get("model_version")
    version = str(version) if version is not None and version != "" else None
    for key in ("inputs", "outputs"):
        tensors = data.get(key)
        if isinstance(tensors, list):
            return Tensors(_v2_tensors(tensors, key), version=version, probe=probe, format="v2")
    if "instances" in data or "predictions" in data:
        key = "instances" if "instances" in data else "predictions"
        return Tensors(_v1_rows(data[key], key), version=version, probe=probe, format="v1")
    if isinstance(data.get("inputs"), Mapping):  # v1 columnar: {"inputs": {"a": [...], "b": [...]}}
        return Tensors(_v1_columns(data["inputs"]), version=version, probe=probe, format="v1")
    if isinstance(data.get("data"), Mapping):
        return Tensors(_seldon(data["data"]), version=version, probe=probe, format="seldon")
    keys = ", ".join(sorted(map(str, data))[:8])
    raise PayloadError("unknown_format", f"no 'inputs'/'outputs' (OIP v2), 'instances'/'predictions' (v1) or "
                                         f"'data' (Seldon) in the body (keys: {keys})")


def _binary_extension_header(body: bytes | str) -> bool:
    """Whether the body starts with a JSON header whose tensors use ``binary_data_size`` (raw bytes follow)."""
    import json

    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        header, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return False
    tensors = header.get("inputs") or header.get("outputs") if isinstance(header, dict) else None
    return isinstance(tensors, list) and any(
        isinstance(t, Mapping) and isinstance(t.get("parameters"), Mapping) and "binary_data_size" in t["parameters"]
        for t in tensors)


def _as_array(values: Any, datatype: str, *, where: str) -> np.ndarray:
    if datatype == "BYTES":
        arr = np.asarray(values, dtype=object)
        return np.vectorize(_text, otypes=[object])(arr) if arr.size else arr
    dtype = _NUMERIC_TYPES.get(datatype)
    if dtype is None:
        raise PayloadError("bad_datatype", f"{where}: unknown datatype {datatype!r}")
    if isinstance(values, list):
        try:  # the common case, a flat list of numbers: a third faster than asarray
            return np.fromiter(values, dtype=np.float64, count=len(values))
        except (TypeError, ValueError):
            pass
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise PayloadError("bad_datatype", f"{where}: {datatype} data holds non-numbers or ragged rows") from None
    return arr


def _text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):  # None, or a NaN from a table: missing
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _v2_tensors(items: list[Any], key: str) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    if not items:
        raise PayloadError("empty", f"'{key}' is an empty list")
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise PayloadError("unknown_format", f"{where}: expected an object with a name")
        name, datatype, shape = item["name"], str(item.get("datatype", "")).upper(), item.get("shape")
        params = item.get("parameters")
        if isinstance(params, Mapping) and "binary_data_size" in params:
            raise PayloadError("binary_tensor", f"{where} ({name!r}): sent as raw bytes (binary data extension)")
        if "data" not in item:
            raise PayloadError("missing_tensor", f"{where} ({name!r}): no 'data'")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape) and shape):
            raise PayloadError("wrong_shape", f"{where} ({name!r}): shape must be a non-empty list of sizes")
        arr = _as_array(item["data"], datatype, where=f"{where} ({name!r})")
        size = math.prod(shape)
        if arr.size != size:
            raise PayloadError("wrong_shape", f"{where} ({name!r}): shape {shape} holds {size} values, data has "
                                              f"{arr.size}")
        if len(shape) > 2:
            raise PayloadError("wrong_shape", f"{where} ({name!r}): shape {shape}; drift takes (N,) or (N, k)")
        if shape[0] > MAX_ROWS:
            raise PayloadError("wrong_shape", f"{where} ({name!r}): {shape[0]} rows in one body")
        out[name] = Tensor(arr.reshape(shape), datatype)
    rows = {t.array.shape[0] for t in out.values()}
    if len(rows) > 1:
        raise PayloadError("wrong_shape", f"'{key}' tensors disagree on the batch size: {sorted(rows)}")
    return out


def _v1_rows(rows: Any, key: str) -> dict[str, Tensor]:
    if not isinstance(rows, list):
        raise PayloadError("unknown_format", f"'{key}' must be a list of rows")
    if not rows:
        raise PayloadError("empty", f"'{key}' is an empty list")
    if len(rows) > MAX_ROWS:
        raise PayloadError("wrong_shape", f"'{key}': {len(rows)} rows in one body")
    if all(isinstance(r, Mapping) for r in rows):
        names = list(dict.fromkeys(k for r in rows for k in r))
        return _v1_columns({n: [r.get(n) for r in rows] for n in names})
    if any(isinstance(r, Mapping) for r in rows):
        raise PayloadError("wrong_shape", f"'{key}' mixes objects and lists")
    arr = _numeric_or_text(rows, where=key)
    if arr.ndim > 2:
        raise PayloadError("wrong_shape", f"'{key}' rows have shape {list(arr.shape[1:])}; drift takes flat rows")
    if arr.dtype == object and arr.ndim == 2:  # mixed rows: one tensor per column, each typed on its own
        return {f"{key}[{j}]": _typed(arr[:, j]) for j in range(arr.shape[1])}
    return {key: _typed(arr)}


def _v1_columns(columns: Mapping[str, Any]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for name, values in columns.items():
        if not isinstance(values, list):
            raise PayloadError("unknown_format", f"column {name!r} must be a list")
        arr = _numeric_or_text(values, where=str(name))
        if arr.ndim != 1:
            raise PayloadError("wrong_shape", f"column {name!r} must hold one value per row")
        out[str(name)] = _typed(arr)
    if len({t.array.shape[0] for t in out.values()}) > 1:
        raise PayloadError("wrong_shape", "columns have different lengths")
    if not out:
        raise PayloadError("empty", "no columns")
    return out


def _numeric_or_text(values: Any, *, where: str) -> np.ndarray:
    """Numbers (None becomes NaN) as float64, else the values as they are in an object array (a column may hold
    numbers and another strings: each column is judged on its own by :func:`extract`)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
        return arr
    except (TypeError, ValueError):
        pass
    try:
        obj = np.asarray(values, dtype=object)
    except ValueError:
        raise PayloadError("wrong_shape", f"'{where}' rows have different lengths") from None
    if obj.ndim == 0 or (obj.ndim == 1 and obj.size and isinstance(obj[0], list)):
        raise PayloadError("wrong_shape", f"'{where}' rows have different lengths")
    if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in obj.ravel()):
        return np.array([np.nan if v is None else v for v in obj.ravel()], dtype=np.float64).reshape(obj.shape)
    return obj


def _numbers(values: np.ndarray) -> np.ndarray | None:
    """An object column as float64 when every value is a number or missing (None), else None."""
    out = np.empty(values.shape[0])
    for i, v in enumerate(values.tolist()):  # one column of one body
        if v is None:
            out[i] = np.nan
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[i] = v
        else:
            return None
    return out


def _typed(arr: np.ndarray) -> Tensor:
    if arr.dtype == object:
        numbers = _numbers(arr) if arr.ndim == 1 else None
        if numbers is not None:
            return Tensor(numbers, "FP64")
        return Tensor(arr, "BYTES")
    return Tensor(arr, "FP64")


def _seldon(data: Mapping[str, Any]) -> dict[str, Tensor]:
    names = data.get("names")
    if "ndarray" in data:
        arr = _numeric_or_text(data["ndarray"], where="data.ndarray")
    elif isinstance(data.get("tensor"), Mapping):
        tensor = data["tensor"]
        shape = tensor.get("shape")
        arr = _as_array(tensor.get("values"), "FP64", where="data.tensor")
        if not (isinstance(shape, list) and all(isinstance(d, int) for d in shape)) or math.prod(shape) != arr.size:
            raise PayloadError("wrong_shape", f"data.tensor: shape {shape} does not fit {arr.size} values")
        arr = arr.reshape(shape)
    else:
        raise PayloadError("unknown_format", "Seldon 'data' holds neither 'ndarray' nor 'tensor'")
    if arr.ndim == 1:
        arr = arr[:, None] if isinstance(names, list) and len(names) == 1 else arr
    if arr.ndim > 2:
        raise PayloadError("wrong_shape", f"Seldon data has shape {list(arr.shape)}; drift takes (N,) or (N, k)")
    if isinstance(names, list) and arr.ndim == 2 and len(names) == arr.shape[1]:
        return {str(n): _typed(arr[:, i]) for i, n in enumerate(names)}
    if arr.dtype == object and arr.ndim == 2:
        return {f"data[{j}]": _typed(arr[:, j]) for j in range(arr.shape[1])}
    return {"data": _typed(arr)}


@dataclasses.dataclass(frozen=True)
class ExtractPlan:
    """How a schema part's columns come out of a body, worked out once per schema: the numeric columns that sit
    in one 2-D tensor are taken with one gather per tensor (``blocks``: tensor, output positions, tensor
    indices, largest index); every other column one by one."""

    numeric: tuple[Column, ...]
    categorical: tuple[Column, ...]
    blocks: tuple[tuple[str, np.ndarray, np.ndarray, int], ...]

    @classmethod
    def of(cls, columns: Sequence[Column]) -> ExtractPlan:
        numeric = tuple(c for c in columns if c.kind == "numeric")
        groups: dict[str, tuple[list[int], list[int]]] = {}
        for j, c in enumerate(numeric):
            if c.tensor is not None and c.index is not None and c.derive is None:
                pos, idx = groups.setdefault(c.tensor, ([], []))
                pos.append(j)
                idx.append(c.index)
        blocks = tuple((name, np.array(pos), np.array(idx), max(idx)) for name, (pos, idx) in groups.items())
        return cls(numeric, tuple(c for c in columns if c.kind == "categorical"), blocks)


def extract(tensors: Tensors, columns: Sequence[Column] | ExtractPlan) -> Frame:
    """The schema's ``columns`` (or their :class:`ExtractPlan`) out of one body's tensors: numeric ones as float64
    (a missing value, None, is NaN), categorical ones as strings (None where missing)."""
    n = tensors.n_rows
    plan = columns if isinstance(columns, ExtractPlan) else ExtractPlan.of(columns)
    numeric = np.empty((n, len(plan.numeric)))
    categorical = np.empty((n, len(plan.categorical)), dtype=object)
    done: set[int] = set()
    for name, positions, indices, top in plan.blocks:
        tensor = tensors.tensors.get(name)
        arr = None if tensor is None else tensor.array
        if arr is not None and arr.ndim == 2 and arr.dtype != object and top < arr.shape[1]:
            numeric[:, positions] = arr[:, indices]
            done.update(positions.tolist())
    if len(done) < len(plan.numeric):
        for j, col in enumerate(plan.numeric):
            if j not in done:
                numeric[:, j] = _column(tensors, col)
    for j, col in enumerate(plan.categorical):
        categorical[:, j] = _column(tensors, col)
    return Frame(numeric, categorical)


def _column(tensors: Tensors, col: Column) -> np.ndarray:
    name = col.tensor
    if name is None:
        only = next(iter(tensors.tensors)) if len(tensors.tensors) == 1 else None
        if col.name in tensors.tensors:
            name = col.name
        elif only is not None and (col.index is not None or only in _UNNAMED):
            name = only  # a body with one unnamed tensor (v1 instances/predictions, Seldon data)
        else:
            raise PayloadError("missing_tensor", f"column {col.name!r} names no tensor and the body has "
                                                 f"{len(tensors.tensors)}: {sorted(tensors.tensors)}")
    tensor = tensors.tensors.get(name)
    if tensor is None:
        # mixed v1 rows arrive as one tensor per column, "instances[j]"; a reference table has one per feature
        for alt in ((f"{name}[{col.index}]",) if col.index is not None else ()) + (col.name,):
            if alt in tensors.tensors and col.derive is None:
                tensor, name, col = tensors.tensors[alt], alt, Column(col.name, col.kind)
                break
    if tensor is None:
        raise PayloadError("missing_tensor", f"column {col.name!r}: no tensor {name!r} in the body "
                                             f"(found {sorted(tensors.tensors)})")
    arr = tensor.array
    if col.derive == "argmax":
        if arr.ndim != 2 or arr.dtype == object:
            raise PayloadError("wrong_shape", f"column {col.name!r}: argmax needs a numeric (N, k) tensor")
        return np.argmax(arr, axis=1).astype(str).astype(object)
    if col.index is not None:
        if arr.ndim == 1 and col.index == 0:
            values = arr
        elif arr.ndim == 2 and col.index < arr.shape[1]:
            values = arr[:, col.index]
        else:
            raise PayloadError("wrong_shape", f"column {col.name!r}: index {col.index} outside tensor {name!r} of "
                                              f"shape {list(arr.shape)}")
    elif arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1):
        values = arr.reshape(-1)
    else:
        raise PayloadError("wrong_shape", f"column {col.name!r}: tensor {name!r} has shape {list(arr.shape)}; "
                                          "name an index")
    if col.kind == "numeric":
        if values.dtype == object:
            numbers = _numbers(values)
            if numbers is None:
                raise PayloadError("bad_datatype", f"column {col.name!r} is numeric, tensor {name!r} holds text")
            return numbers
        return values
    return np.array([_category(v) for v in values.tolist()], dtype=object)


def _category(value: Any) -> str | None:
    """A value as a category: integral numbers as "3" (not "3.0"), NaN and None as missing."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
