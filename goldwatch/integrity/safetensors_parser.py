"""A bounds-checked reader of the safetensors header: offsets are checked, never trusted.

Layout: 8 bytes little-endian header length ``N``; ``N`` bytes of UTF-8 JSON mapping tensor names to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the data section that follows) plus an
optional ``"__metadata__"`` string map; then the data section. Every way a hostile or truncated file can lie is
refused with an :class:`~goldwatch.errors.ArtifactError` that names the file and the entry: a header length beyond
the file, malformed JSON, unknown dtypes, negative or non-integer shapes, offsets out of range, overlapping tensors,
bytes not covered by any tensor, and a byte size that disagrees with dtype x shape.

>>> import json, struct
>>> header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
>>> blob = struct.pack("<Q", len(header)) + header + bytes(8)
>>> info = parse_safetensors_header(blob[:8 + len(header)], file_size=len(blob), where="m.safetensors")
>>> [(t.name, t.dtype, t.shape, t.start, t.stop) for t in info.tensors]
[('w', 'F32', (2,), 69, 77)]
>>> parse_safetensors_header(blob[:8 + len(header)], file_size=len(blob) - 1, where="m.safetensors")
Traceback (most recent call last):
...
goldwatch.errors.ArtifactError: m.safetensors: tensor 'w': data_offsets [0, 8] end beyond the data section ...
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
from pathlib import Path
from typing import Any

from goldwatch.errors import ArtifactError

__all__ = ["DTYPE_SIZES", "SafetensorsInfo", "TensorRecord", "parse_safetensors_header", "read_safetensors_header"]

# bytes per element of every dtype the safetensors format defines (sub-byte types are refused: no byte size)
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "C64": 8,
    "I64": 8, "U64": 8, "F64": 8,
}
MAX_HEADER_BYTES = 100 << 20  # the reference implementation's limit; a larger header is refused before reading it


@dataclasses.dataclass(frozen=True)
class TensorRecord:
    """One tensor of a container file: ``start``/``stop`` are absolute byte offsets in the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    stop: int

    @property
    def nbytes(self) -> int:
        return self.stop - self.start


@dataclasses.dataclass(frozen=True)
class SafetensorsInfo:
    header_bytes: int
    metadata: dict[str, str]
    tensors: tuple[TensorRecord, ...]


def _fail(where: str, what: str) -> ArtifactError:
    return ArtifactError(what, where=where, hint="the file is truncated, corrupted or not a safetensors file")


def _check_entry(name: str, entry: Any, data_len: int, data_start: int, where: str) -> TensorRecord:
    if not isinstance(entry, dict) or set(entry) - {"dtype", "shape", "data_offsets"}:
        raise _fail(where, f"tensor {name!r}: expected keys dtype, shape, data_offsets, got {entry!r:.200}")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise _fail(where, f"tensor {name!r}: unknown dtype {dtype!r} (known: {', '.join(DTYPE_SIZES)})")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise _fail(where, f"tensor {name!r}: shape must be a list of non-negative integers, got {shape!r:.200}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(type(o) is int for o in offsets)
    ):
        raise _fail(where, f"tensor {name!r}: data_offsets must be two integers, got {offsets!r:.200}")
    begin, end = offsets
    if begin < 0 or end < begin:
        raise _fail(where, f"tensor {name!r}: data_offsets {offsets} are negative or reversed")
    if end > data_len:
        raise _fail(
            where, f"tensor {name!r}: data_offsets {offsets} end beyond the data section ({data_len} bytes)"
        )
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if end - begin != expected:
        raise _fail(
            where,
            f"tensor {name!r}: {end - begin} bytes at data_offsets {offsets}, but dtype {dtype} x shape {shape} "
            f"needs {expected}",
        )
    return TensorRecord(name, dtype, tuple(shape), data_start + begin, data_start + end)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            # json.loads would silently keep the last one: two entries for one name is a hostile or broken header
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def parse_safetensors_header(head: bytes, *, file_size: int, where: str) -> SafetensorsInfo:
    """Validate the header in ``head`` (the first ``8 + N`` bytes) against a file of ``file_size`` bytes."""
    if file_size < 8 or len(head) < 8:
        raise _fail(where, f"{file_size} bytes is too short for a safetensors file (8-byte header length missing)")
    (length,) = struct.unpack("<Q", head[:8])
    if length > MAX_HEADER_BYTES or 8 + length > file_size:
        raise _fail(where, f"header length {length} is beyond the file ({file_size} bytes) or the 100 MiB limit")
    if len(head) < 8 + length:
        raise _fail(where, f"header truncated: {len(head) - 8} of {length} bytes")
    try:
        header = json.loads(head[8 : 8 + length].decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _fail(where, f"header is not UTF-8 JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _fail(where, f"header must be a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _fail(where, "__metadata__ must map strings to strings")
    data_start = 8 + length
    data_len = file_size - data_start
    records = [_check_entry(name, entry, data_len, data_start, where) for name, entry in header.items()]
    ordered = sorted(records, key=lambda r: (r.start, r.stop))
    cursor = data_start
    for rec in ordered:
        if rec.start < cursor:
            raise _fail(where, f"tensor {rec.name!r} at bytes [{rec.start}, {rec.stop}) overlaps the previous tensor")
        if rec.start > cursor:
            raise _fail(where, f"bytes [{cursor}, {rec.start}) of the data section belong to no tensor")
        cursor = rec.stop
    if cursor != file_size:
        raise _fail(where, f"bytes [{cursor}, {file_size}) at the end of the file belong to no tensor")
    return SafetensorsInfo(header_bytes=length, metadata=dict(metadata), tensors=tuple(ordered))


def read_safetensors_header(path: str | os.PathLike[str]) -> SafetensorsInfo:
    """Read and validate the header of the safetensors file at ``path`` (reads only the header bytes)."""
    path = Path(path)
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise _fail(str(path), f"{size} bytes is too short for a safetensors file")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise _fail(str(path), f"header length {length} is beyond the file ({size} bytes) or the 100 MiB limit")
        head = prefix + fh.read(length)
    return parse_safetensors_header(head, file_size=size, where=str(path))
