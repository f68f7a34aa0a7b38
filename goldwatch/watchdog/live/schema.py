"""Which named columns a model's live traffic is read into: the schema of the drift windows.

A :class:`Column` is one feature: a name, a kind (``numeric`` or ``categorical``), and where it sits in a request or
response -- the Open Inference Protocol v2 tensor (``tensor``) and its index along the last axis (``index``; None
when the tensor is the column itself). Requests fill the ``inputs`` columns, responses the ``outputs`` columns
(prediction drift). A schema comes from the configuration, from a golden set's signature
(:meth:`Schema.from_signature`), or from the first request seen (:meth:`Schema.infer`); columns of a multi-column
tensor are named ``tensor[i]`` in the last two cases.

>>> from goldwatch.runtimes.base import Signature, TensorSpec
>>> sig = Signature(inputs=(TensorSpec("x", "float32", (None, 3)),),
...                 outputs=(TensorSpec("scores", "float32", (None, 2)),))
>>> schema = Schema.from_signature(sig)
>>> [c.name for c in schema.inputs], [c.name for c in schema.outputs]
(['x[0]', 'x[1]', 'x[2]'], ['scores[0]', 'scores[1]', 'scores:argmax'])
>>> schema.outputs[-1].kind, schema.outputs[-1].derive
('categorical', 'argmax')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from goldwatch.errors import ConfigError

__all__ = ["Column", "ColumnKind", "Schema", "tensor_columns"]

ColumnKind = Literal["numeric", "categorical"]
_BYTES = ("BYTES", "object", "str", "bytes", "<U", "|S", "|O")


@dataclasses.dataclass(frozen=True)
class Column:
    """One feature. ``derive = "argmax"``: the index of the largest value of ``tensor`` per row (a classifier's
    predicted class, from its scores), a categorical column."""

    name: str
    kind: ColumnKind = "numeric"
    tensor: str | None = None
    index: int | None = None
    derive: Literal["argmax"] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Column:
        return cls(name=str(data["name"]), kind=data.get("kind", "numeric"), tensor=data.get("tensor"),
                   index=data.get("index"), derive=data.get("derive"))


def tensor_columns(
    name: str, shape: Sequence[int | None] | None, datatype: str, *, scores: bool = False
) -> list[Column]:
    """The columns of one tensor: ``name`` for a (N,) or (N, 1) tensor, ``name[i]`` for (N, k); BYTES/strings are
    categorical. ``scores``: add ``name:argmax``, the predicted class, for a (N, k > 1) output."""
    kind: ColumnKind = "categorical" if datatype.startswith(_BYTES) else "numeric"
    width = None if shape is None or len(shape) < 2 else shape[-1]
    if shape is not None and len(shape) > 2:
        raise ConfigError(f"tensor {name!r} has shape {list(shape)}: drift windows take (N,) or (N, k) tensors",
                          where="schema", hint="list the columns to watch explicitly, or watch another tensor")
    if width is None or width == 1:
        return [Column(name, kind, tensor=name, index=None if width is None else 0)]
    cols = [Column(f"{name}[{i}]", kind, tensor=name, index=i) for i in range(width)]
    if scores and kind == "numeric":
        cols.append(Column(f"{name}:argmax", "categorical", tensor=name, derive="argmax"))
    return cols


@dataclasses.dataclass(frozen=True)
class Schema:
    """The input columns (from requests) and output columns (from responses) of one model."""

    inputs: tuple[Column, ...]
    outputs: tuple[Column, ...] = ()

    def __post_init__(self) -> None:
        for part, cols in (("inputs", self.inputs), ("outputs", self.outputs)):
            names = [c.name for c in cols]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ConfigError(f"column names must be unique within {part}, repeated: {', '.join(dup)}",
                                  where=f"schema.{part}")

    @property
    def empty(self) -> bool:
        return not self.inputs and not self.outputs

    def part(self, name: Literal["inputs", "outputs"]) -> tuple[Column, ...]:
        return self.inputs if name == "inputs" else self.outputs

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [c.to_dict() for c in self.inputs], "outputs": [c.to_dict() for c in self.outputs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        return cls(inputs=tuple(Column.from_dict(c) for c in data.get("inputs", ())),
                   outputs=tuple(Column.from_dict(c) for c in data.get("outputs", ())))

    @classmethod
    def from_columns(cls, inputs: Iterable[Column], outputs: Iterable[Column] = ()) -> Schema:
        return cls(inputs=tuple(inputs), outputs=tuple(outputs))

    @classmethod
    def from_signature(cls, signature: Any) -> Schema:
        """From a :class:`~goldwatch.runtimes.base.Signature` (a golden set's): every input and output tensor."""
        inputs = [c for t in signature.inputs for c in tensor_columns(t.name, t.shape, t.dtype or "float64")]
        outputs = [c for t in signature.outputs
                   for c in tensor_columns(t.name, t.shape, t.dtype or "float64", scores=True)]
        return cls(inputs=tuple(inputs), outputs=tuple(outputs))

    @classmethod
    def infer(cls, request_tensors: Sequence[tuple[str, Sequence[int] | None, str]],
              response_tensors: Sequence[tuple[str, Sequence[int] | None, str]] = ()) -> Schema:
        """From the tensors (name, shape, datatype) of the first request and response seen."""
        inputs = [c for name, shape, dt in request_tensors for c in tensor_columns(name, shape, dt)]
        outputs = [c for name, shape, dt in response_tensors for c in tensor_columns(name, shape, dt, scores=True)]
        return cls(inputs=tuple(inputs), outputs=tuple(outputs))
