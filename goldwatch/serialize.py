"""Turning typed results (dataclasses, numpy arrays and scalars, paths, enums) into JSON-ready data.

Results in goldwatch are dataclasses; this one function is how any of them becomes ``--json`` output, a JSON
verdict or an alert's ``custom_details``.

>>> import dataclasses, numpy as np
>>> @dataclasses.dataclass
... class R:
...     ok: bool
...     pvalue: np.ndarray
>>> to_jsonable(R(ok=np.bool_(True), pvalue=np.array([0.5, np.nan])))
{'ok': True, 'pvalue': [0.5, None]}
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

__all__ = ["to_jsonable"]


def _float(value: float) -> float | None:
    # JSON has no NaN/Infinity; null is the portable spelling, and the check that produced it reports why.
    return value if math.isfinite(value) else None


def to_jsonable(obj: Any) -> Any:
    """Recursively convert ``obj`` into dicts, lists, str, int, float (finite) , bool and None."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _float(obj)
    if hasattr(obj, "to_dict") and callable(obj.to_dict) and not isinstance(obj, type):
        return to_jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = [f.name for f in dataclasses.fields(obj) if not f.name.startswith("_")]
        return {name: to_jsonable(getattr(obj, name)) for name in fields}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return obj.hex()
    # numpy (and torch, via .tolist()) without importing either
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return to_jsonable(obj.item())
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")
