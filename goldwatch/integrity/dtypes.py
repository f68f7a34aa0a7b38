"""One spelling for element types across safetensors, ONNX, torch and numpy (torch's names, e.g. ``bfloat16``).

A manifest written from a safetensors file (``BF16``) must compare equal to the tensor loaded by torch
(``torch.bfloat16``); both become ``"bfloat16"``.

>>> canonical_dtype("BF16"), canonical_dtype("FLOAT"), canonical_dtype("torch.float8_e4m3fn")
('bfloat16', 'float32', 'float8_e4m3fn')
"""

from __future__ import annotations

from typing import Any

__all__ = ["canonical_dtype", "dtype_of"]

_SAFETENSORS = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16", "I32": "int32", "U32": "uint32",
    "I64": "int64", "U64": "uint64", "F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu", "C64": "complex64",
}
_ONNX = {
    "FLOAT": "float32", "UINT8": "uint8", "INT8": "int8", "UINT16": "uint16", "INT16": "int16", "INT32": "int32",
    "INT64": "int64", "BOOL": "bool", "FLOAT16": "float16", "DOUBLE": "float64", "UINT32": "uint32",
    "UINT64": "uint64", "COMPLEX64": "complex64", "COMPLEX128": "complex128", "BFLOAT16": "bfloat16",
    "FLOAT8E4M3FN": "float8_e4m3fn", "FLOAT8E4M3FNUZ": "float8_e4m3fnuz", "FLOAT8E5M2": "float8_e5m2",
    "FLOAT8E5M2FNUZ": "float8_e5m2fnuz", "UINT4": "uint4", "INT4": "int4", "FLOAT4E2M1": "float4_e2m1fn_x2",
}
_NUMPY = {"float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "bfloat16"}


def canonical_dtype(name: str) -> str:
    """Map a safetensors, ONNX, torch (``torch.x``) or numpy dtype name to torch's spelling without ``torch.``."""
    if name in _SAFETENSORS:
        return _SAFETENSORS[name]
    if name in _ONNX:
        return _ONNX[name]
    name = name.removeprefix("torch.")
    return {"bool_": "bool", "half": "float16", "float": "float32", "double": "float64"}.get(name, name)


def dtype_of(tensor: Any) -> str:
    """The canonical dtype name of a torch tensor or numpy array (ml_dtypes' bfloat16/float8 included)."""
    dtype = tensor.dtype
    name = getattr(dtype, "name", None) if not hasattr(dtype, "is_floating_point") else None
    if name is None or name in _NUMPY:
        return canonical_dtype(str(dtype))
    return canonical_dtype(str(name))
