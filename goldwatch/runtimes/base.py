"""The one small interface every model runtime implements, and its signature and identity types.

A runtime takes named numpy arrays and returns named numpy arrays. What is behind it -- ONNX Runtime, a
TorchScript or ``torch.export`` program, a state dict plus factory, or a remote Open Inference Protocol v2 server --
lives in its own module (:mod:`.onnx`, :mod:`.torch`, :mod:`.oip`), each importing this one; choosing among them
from a model spec is :func:`goldwatch.runtimes.factory.load_model`'s job. This module imports no backend.

>>> sig = Signature(inputs=(TensorSpec("x", "float32", (None, 4)),), outputs=(TensorSpec("logits"),))
>>> sig.check_inputs({"x": np.zeros((2, 4), np.float32)}, where="test")
>>> sig.check_inputs({"x": np.zeros((2, 5), np.float32)}, where="test")
Traceback (most recent call last):
...
goldwatch.errors.DataError: test: input 'x' has shape (2, 5), the model expects (None, 4) ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from goldwatch import progress
from goldwatch.errors import DataError, InvalidInputError
from goldwatch.integrity.digest import file_digest

__all__ = [
    "DESCRIPTOR_NAME",
    "BatchedRuntime",
    "DeviceUnavailableError",
    "ModelIdentity",
    "Runtime",
    "Signature",
    "TensorSpec",
    "cuda_available",
    "digest_path",
    "normalize_device",
    "run_batches",
]

#: A directory holding this file is a "state dict + factory" torch model (see :mod:`goldwatch.runtimes.torch`).
DESCRIPTOR_NAME = "goldwatch-model.json"


class DeviceUnavailableError(InvalidInputError):
    """The requested device (e.g. ``cuda``) is not present or not supported by this runtime."""


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype name and shape of one model input or output.

    ``dtype`` is ``""`` when the runtime cannot tell; ``shape`` is ``None`` when the rank is unknown, and a ``None``
    dimension is dynamic (typically the batch).
    """

    name: str
    dtype: str = ""
    shape: tuple[int | None, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        shape = data.get("shape")
        return cls(
            name=str(data["name"]),
            dtype=str(data.get("dtype") or ""),
            shape=None if shape is None else tuple(None if d is None else int(d) for d in shape),
        )

    def problem_with(self, array: np.ndarray) -> str | None:
        """Why ``array`` cannot be fed as this tensor, or None if it fits."""
        if self.dtype and array.dtype != np.dtype(self.dtype):
            return f"has dtype {array.dtype}, the model expects {self.dtype}"
        if self.shape is not None and not shapes_compatible(self.shape, array.shape):
            return f"has shape {tuple(array.shape)}, the model expects {self.shape}"
        return None


def shapes_compatible(expected: Sequence[int | None], actual: Sequence[int | None]) -> bool:
    """Same rank and equal sizes wherever both are known.

    >>> shapes_compatible((None, 4), (10, 4)), shapes_compatible((None, 4), (10, 4, 1))
    (True, False)
    """
    if len(expected) != len(actual):
        return False
    return all(e is None or a is None or e == a for e, a in zip(expected, actual))


@dataclasses.dataclass(frozen=True)
class Signature:
    """The named inputs and outputs of a model."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def input(self, name: str) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)

    def output(self, name: str) -> TensorSpec:
        return next(t for t in self.outputs if t.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        return cls(
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
        )

    def check_inputs(self, inputs: Mapping[str, np.ndarray], *, where: str) -> None:
        """Raise :class:`DataError` naming every missing or extra input and the first dtype/shape mismatch."""
        missing = [n for n in self.input_names if n not in inputs]
        extra = [n for n in inputs if n not in self.input_names]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing input(s) {missing}")
            if extra:
                parts.append(f"unexpected input(s) {extra}")
            raise DataError(
                "; ".join(parts) + f" (the model takes {self.input_names})",
                where=where,
                hint="name the arrays exactly as the model's inputs",
            )
        for spec in self.inputs:
            problem = spec.problem_with(np.asarray(inputs[spec.name]))
            if problem:
                raise DataError(f"input {spec.name!r} {problem}", where=where, hint="convert or reshape the input")


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """What model a runtime serves: its kind, where it came from, and the digest of its bytes when known."""

    kind: str
    source: str
    digest: str | None = None
    name: str | None = None
    version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelIdentity:
        def text(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        return cls(
            kind=str(data["kind"]), source=str(data["source"]), digest=text("digest"), name=text("name"),
            version=text("version"),
        )


@runtime_checkable
class Runtime(Protocol):
    """A loaded model: ``run`` maps named input arrays (batch first) to named output arrays."""

    kind: str
    device: str
    signature: Signature
    identity: ModelIdentity

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


class BatchedRuntime:
    """What goldwatch's own runtimes share: inputs are checked against the signature once per call, then every
    batch goes straight to the library.

    A golden set is run in many batches of the same arrays; checking names, dtypes and shapes once for the whole
    set (its batch dimension is the only one that changes) instead of once per batch keeps what goldwatch adds to
    the library's own inference time to a slice and a dict per batch. Subclasses implement :meth:`infer` (one
    batch, already checked) and may hold a context open across batches with :meth:`batch_scope`.
    """

    signature: Signature
    identity: ModelIdentity

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch whose inputs have been checked against the signature."""
        raise NotImplementedError

    def batch_scope(self) -> contextlib.AbstractContextManager[object]:
        """A context entered once around all the batches of one call (e.g. torch's ``inference_mode``)."""
        return contextlib.nullcontext()

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; inputs are checked against the signature first (a clear error instead of the library's)."""
        self.signature.check_inputs(inputs, where=self.identity.source)
        with self.batch_scope():
            return self.infer(inputs)

    def run_batches(self, inputs: Mapping[str, np.ndarray], *, batch_size: int | None) -> dict[str, np.ndarray]:
        """Run ``inputs`` in batches of ``batch_size`` samples (all at once with None), checking them once."""
        self.signature.check_inputs(inputs, where=self.identity.source)
        n = _batch_length(inputs, batch_size, where=self.identity.source)
        with self.batch_scope():
            if batch_size is None or batch_size >= n:
                result = self.infer(inputs)
                progress.advance(n)
                return result
            # contiguous once, so that every batch is a contiguous slice the library can take without a copy
            whole = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
            return self.infer_batches(whole, progress.batch_starts(range(0, n, batch_size), n=n), batch_size)

    def infer_batches(
        self, inputs: Mapping[str, np.ndarray], starts: Iterable[int], batch_size: int
    ) -> dict[str, np.ndarray]:
        """Run the checked, contiguous ``inputs`` batch by batch (inside :meth:`batch_scope`) and join the outputs.
        Subclasses may override it with a tighter loop: on a small model, each batch's Python work is a visible share
        of its inference time."""
        parts = [self.infer({k: v[s : s + batch_size] for k, v in inputs.items()}) for s in starts]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _batch_length(inputs: Mapping[str, np.ndarray], batch_size: int | None, *, where: str) -> int:
    if batch_size is not None and batch_size < 1:
        raise InvalidInputError(f"batch size must be >= 1, got {batch_size}", where="--batch-size")
    lengths = {k: (v.shape[0] if v.ndim else 0) for k, v in inputs.items()}
    if not lengths:
        raise DataError("no inputs given", where=where, hint="pass at least one named input array")
    if len(set(lengths.values())) > 1:
        raise DataError(
            f"inputs have different numbers of samples: {lengths}",
            where=where,
            hint="every input must hold one entry per sample along its first axis",
        )
    return next(iter(lengths.values()))


def run_batches(runtime: Runtime, inputs: Mapping[str, np.ndarray], *, batch_size: int | None) -> dict[str, np.ndarray]:
    """Run ``inputs`` through ``runtime`` in batches of ``batch_size`` samples (all at once with None).

    Uses the runtime's own ``run_batches`` when it has one (goldwatch's runtimes check the inputs once, not per
    batch); any other :class:`Runtime` is called batch by batch through ``run``.
    """
    batched = getattr(runtime, "run_batches", None)
    if callable(batched):
        result: dict[str, np.ndarray] = batched(inputs, batch_size=batch_size)
        return result
    n = _batch_length(inputs, batch_size, where=runtime.identity.source)
    if batch_size is None or batch_size >= n:
        result = runtime.run(inputs)
        progress.advance(n)
        return result
    parts = [
        runtime.run({k: v[start : start + batch_size] for k, v in inputs.items()})
        for start in progress.batch_starts(range(0, n, batch_size), n=n)
    ]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def normalize_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; anything else is an input error.

    >>> normalize_device("CUDA:1"), normalize_device("cpu")
    ('cuda:1', 'cpu')
    """
    dev = device.strip().lower()
    if dev == "cpu" or dev == "cuda" or re.fullmatch(r"cuda:\d+", dev):
        return dev
    raise InvalidInputError(f"unknown device {device!r}", where="--device", hint="use cpu, cuda or cuda:N")


def cuda_available() -> bool:
    """True when torch sees a CUDA GPU or ONNX Runtime has its CUDA execution provider (imports them lazily)."""
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except ImportError:
        pass
    try:
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        return False


def digest_path(path: Path) -> str:
    """``sha256:<hex>`` of a file, or of a directory's sorted (relative path, file digest) list."""
    if path.is_file():
        return "sha256:" + file_digest(path, "sha256")
    lines = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        lines.append(f"{file.relative_to(path).as_posix()}\0{file_digest(file, 'sha256')}\n")
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()
