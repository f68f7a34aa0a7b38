"""The weights of an ONNX model: initializers embedded in the protobuf or stored as external data.

External-data locations come from the file, so they are checked, never trusted: absolute paths, ``..`` that climbs
out of the model's directory, symlinks that resolve outside it, missing files, and byte ranges beyond the end of the
external file are all refused with an :class:`~goldwatch.errors.ArtifactError`. The protobuf is parsed without
loading external data (``onnx.load(..., load_external_data=False)``); nothing is executed or unpickled.

Initializers of subgraphs (``If``/``Loop``/``Scan`` bodies) are included, named ``<node>/<attribute>/<name>``.
String tensors carry no weights and are skipped.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "w.data").write_bytes(bytes(8))
>>> resolve_external_path(d, "w.data", where="m.onnx").name
'w.data'
>>> resolve_external_path(d, "../w.data", where="m.onnx")
Traceback (most recent call last):
...
goldwatch.errors.ArtifactError: m.onnx: external data location '../w.data' leaves the model directory ...
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from goldwatch._optional import require
from goldwatch.errors import ArtifactError
from goldwatch.integrity.dtypes import canonical_dtype

__all__ = [
    "OnnxTensor", "external_data_files", "initializer_consumers", "raw_data_offsets", "read_onnx_tensors",
    "resolve_external_path",
]

_PACKED_4BIT = {"INT4", "UINT4", "FLOAT4E2M1"}


@dataclasses.dataclass(frozen=True)
class OnnxTensor:
    """One initializer. ``location`` is the external file (relative, POSIX) or None when embedded; ``offset`` is
    where its bytes start in that external file, or in the ``.onnx`` file itself for embedded raw data."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    location: str | None
    offset: int | None
    _embedded: bytes | None = dataclasses.field(default=None, repr=False, compare=False)

    def read(self, model_dir: Path) -> np.ndarray:
        """The tensor's raw bytes as a uint8 array (a memory map of the external file's byte range)."""
        if self.location is None:
            return np.frombuffer(self._embedded or b"", dtype=np.uint8)
        if self.nbytes == 0:
            return np.zeros(0, dtype=np.uint8)
        path = resolve_external_path(model_dir, self.location, where=self.name)
        return np.memmap(path, dtype=np.uint8, mode="r", offset=self.offset or 0, shape=(self.nbytes,))


def resolve_external_path(model_dir: Path, location: str, *, where: str) -> Path:
    """``model_dir / location`` if it stays inside ``model_dir`` (symlinks resolved), else ArtifactError."""
    hint = "external data must be a relative path inside the model's directory; re-export the model"
    if not location or "\0" in location:
        raise ArtifactError(f"external data location {location!r} is empty or invalid", where=where, hint=hint)
    if PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute() or PureWindowsPath(
        location
    ).drive:
        raise ArtifactError(f"external data location {location!r} is an absolute path", where=where, hint=hint)
    base = model_dir.resolve()
    target = (base / location).resolve()
    if not target.is_relative_to(base):
        raise ArtifactError(
            f"external data location {location!r} leaves the model directory (resolves to {target})",
            where=where, hint=hint,
        )
    if not target.is_file():
        raise ArtifactError(f"external data file {location!r} not found", where=where, hint=hint)
    return target


def _subgraphs(graph: Any, prefix: str) -> Iterator[tuple[Any, str]]:
    yield graph, prefix
    for node in graph.node:
        for attr in node.attribute:
            label = f"{prefix}{node.name or node.op_type}/{attr.name}/"
            if attr.HasField("g"):
                yield from _subgraphs(attr.g, label)
            for i, sub in enumerate(attr.graphs):
                yield from _subgraphs(sub, f"{label}{i}/")


def _tensor(init: Any, prefix: str, model_dir: Path, where: str) -> OnnxTensor | None:
    onnx = require("onnx", purpose="reading ONNX models")
    from onnx import numpy_helper

    type_name = onnx.TensorProto.DataType.Name(init.data_type) if init.data_type else "UNDEFINED"
    name = prefix + init.name
    if type_name == "STRING":
        return None
    if type_name == "UNDEFINED" or canonical_dtype(type_name) == type_name:
        raise ArtifactError(f"initializer {name!r}: unsupported data type {type_name}", where=where)
    shape = tuple(int(d) for d in init.dims)
    if any(d < 0 for d in shape):
        raise ArtifactError(f"initializer {name!r}: negative dimension in {shape}", where=where)
    numel = math.prod(shape)
    if type_name in _PACKED_4BIT:
        nbytes = (numel + 1) // 2
    else:
        nbytes = numel * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
    tensor_where = f"{where}: initializer {name!r}"
    if init.data_location == onnx.TensorProto.EXTERNAL:
        info = {entry.key: entry.value for entry in init.external_data}
        location = info.get("location", "")
        path = resolve_external_path(model_dir, location, where=tensor_where)
        try:
            offset = int(info.get("offset", "0"))
            length = int(info.get("length", str(nbytes)))
        except ValueError:
            raise ArtifactError(f"external data offset/length are not integers: {info}", where=tensor_where) from None
        size = path.stat().st_size
        if offset < 0 or length != nbytes or offset + length > size:
            raise ArtifactError(
                f"external data [{offset}, {offset + length}) of {location!r} ({size} bytes) does not hold the "
                f"{nbytes} bytes that {type_name} x {list(shape)} needs",
                where=tensor_where, hint="the external data file is truncated or does not belong to this model",
            )
        return OnnxTensor(name, canonical_dtype(type_name), shape, nbytes, PurePosixPath(location).as_posix(), offset)
    if init.HasField("raw_data"):
        raw = bytes(init.raw_data)
    else:
        try:
            raw = numpy_helper.to_array(init).tobytes()
        except Exception as exc:  # onnx raises assorted errors on inconsistent typed fields
            raise ArtifactError(f"cannot decode the tensor ({exc})", where=tensor_where) from None
    if len(raw) != nbytes:
        raise ArtifactError(
            f"{len(raw)} bytes of data, but {type_name} x {list(shape)} needs {nbytes}", where=tensor_where
        )
    return OnnxTensor(name, canonical_dtype(type_name), shape, nbytes, None, None, raw)


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: memoryview, start: int, stop: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value stop) of each field of a protobuf message in data[start:stop];
    for varints and fixed-size values, start is where the value begins."""
    pos = start
    while pos < stop:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, end = _varint(data, pos)
        elif wire == 1:
            end = pos + 8
        elif wire == 5:
            end = pos + 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            end = pos + length
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if end > stop:
            raise ValueError("field runs past its message")
        yield number, wire, pos, end
        pos = end


def raw_data_offsets(path: str | os.PathLike[str]) -> dict[str, int]:
    """Where in the file each top-level initializer's ``raw_data`` bytes start (name -> byte offset), read from the
    protobuf wire format (ModelProto.graph = 7, GraphProto.initializer = 5, TensorProto.name = 8, raw_data = 9),
    so that a changed embedded weight is reported with its byte range in the ``.onnx`` file. Empty when the file
    cannot be walked (the tensors are still compared, without file ranges).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.onnx"
    >>> _ = p.write_bytes(bytes([0x3A, 9, 0x2A, 7, 0x42, 1, 0x77, 0x4A, 2, 0xAB, 0xCD]))
    >>> raw_data_offsets(p)
    {'w': 9}
    """
    import mmap

    offsets: dict[str, int] = {}
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            data = memoryview(mapped)
            try:
                for number, wire, start, stop in _fields(data, 0, len(data)):
                    if number != 7 or wire != 2:
                        continue
                    for g_number, g_wire, g_start, g_stop in _fields(data, start, stop):
                        if g_number != 5 or g_wire != 2:
                            continue
                        name, raw = None, None
                        for t_number, t_wire, t_start, t_stop in _fields(data, g_start, g_stop):
                            if t_number == 8 and t_wire == 2:
                                name = bytes(data[t_start:t_stop]).decode("utf-8", "replace")
                            elif t_number == 9 and t_wire == 2:
                                raw = t_start
                        if name is not None and raw is not None:
                            offsets[name] = raw
            finally:
                data.release()
    except (OSError, ValueError):
        return {}
    return offsets


def initializer_consumers(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """initializer name -> the names (or op types) of the top-level nodes that read it: what makes an exporter's
    ``onnx::MatMul_769`` readable (``/encoder/layer.0/attention/self/query/MatMul``). Empty if unreadable."""
    onnx = require("onnx", purpose="reading ONNX models")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # the file no longer parses: the mismatch is reported without readable names
        return {}
    inits = {init.name for init in model.graph.initializer}
    used: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            if name in inits:
                used.setdefault(name, []).append(node.name or node.op_type)
    return used


def read_onnx_tensors(path: str | os.PathLike[str]) -> list[OnnxTensor]:
    """Parse the ONNX model at ``path`` and return its initializers with external data checked; an embedded
    initializer's ``offset`` is where its raw bytes start in the ``.onnx`` file (None where they are not stored as
    raw bytes)."""
    onnx = require("onnx", purpose="reading ONNX models")
    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends: the file is not a valid ONNX model
        raise ArtifactError(
            f"not a readable ONNX model ({type(exc).__name__}: {exc})".rstrip(": )") + ")",
            where=str(path), hint="the file is truncated, corrupted or not an ONNX model",
        ) from None
    tensors = []
    for graph, prefix in _subgraphs(model.graph, ""):
        for init in graph.initializer:
            tensor = _tensor(init, prefix, path.parent, str(path))
            if tensor is not None:
                tensors.append(tensor)
    if any(t.location is None and t.nbytes for t in tensors):
        offsets = raw_data_offsets(path)
        size = path.stat().st_size
        located = []
        with open(path, "rb") as fh:
            for t in tensors:
                start = offsets.get(t.name) if t.location is None else None
                # only where the bytes there are the tensor's own (typed fields, duplicates, subgraphs: no range)
                if start is not None and start + t.nbytes <= size and t._embedded is not None:
                    fh.seek(start)
                    if fh.read(t.nbytes) == t._embedded:
                        t = dataclasses.replace(t, offset=start)
                located.append(t)
        tensors = located
    return tensors


def external_data_files(tensors: list[OnnxTensor]) -> list[str]:
    """The distinct external data files the tensors live in (relative POSIX paths, sorted)."""
    return sorted({t.location for t in tensors if t.location is not None})
