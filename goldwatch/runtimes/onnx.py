"""ONNX Runtime behind the :class:`~goldwatch.runtimes.base.Runtime` interface (CPU; CUDA execution provider).

onnxruntime is imported when a model is loaded, never at import time of goldwatch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from goldwatch._optional import require
from goldwatch.errors import ArtifactError
from goldwatch.runtimes.base import (
    BatchedRuntime,
    DeviceUnavailableError,
    ModelIdentity,
    Signature,
    TensorSpec,
    digest_path,
    normalize_device,
)

__all__ = ["ONNX_TO_NUMPY", "OnnxRuntime"]

# ONNX Runtime's type strings -> numpy dtype names
ONNX_TO_NUMPY = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}


def _spec(arg: Any) -> TensorSpec:
    # symbolic dims ("batch") and unknown dims come back as str/None: both are dynamic
    shape = None if arg.shape is None else tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
    return TensorSpec(name=arg.name, dtype=ONNX_TO_NUMPY.get(arg.type, ""), shape=shape)


class OnnxRuntime(BatchedRuntime):
    """An ONNX model in an ``onnxruntime.InferenceSession``.

    ``device="cuda[:N]"`` uses the CUDA execution provider and refuses to silently fall back to CPU (a replay
    "on CUDA" that really ran on CPU would prove nothing about the GPU).
    """

    kind = "onnx"

    def __init__(self, path: str | os.PathLike[str], *, device: str = "cpu", threads: int | None = None) -> None:
        ort = require("onnxruntime", purpose="running ONNX models")
        self.path = Path(path)
        self.device = normalize_device(device)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT's warnings are about graph optimisation, not the user
        if threads:
            options.intra_op_num_threads = threads
        providers: list[Any]
        if self.device == "cpu":
            providers = ["CPUExecutionProvider"]
        else:
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise DeviceUnavailableError(
                    "onnxruntime has no CUDA execution provider here",
                    where=str(self.path),
                    hint="install onnxruntime-gpu on a machine with a CUDA GPU, or use --device cpu",
                )
            index = int(self.device.split(":")[1]) if ":" in self.device else 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for every malformed file
            raise ArtifactError(
                f"ONNX Runtime cannot load the model ({str(exc).splitlines()[0][:300]})",
                where=str(self.path),
                hint="check that the file is a complete, valid ONNX model",
            ) from None
        if self.device != "cpu" and "CUDAExecutionProvider" not in self._session.get_providers():
            raise DeviceUnavailableError(
                "ONNX Runtime could not initialise the CUDA execution provider", where=str(self.path)
            )
        self.signature = Signature(
            inputs=tuple(_spec(a) for a in self._session.get_inputs()),
            outputs=tuple(_spec(a) for a in self._session.get_outputs()),
        )
        self._input_names = self.signature.input_names
        self._output_names = self.signature.output_names
        meta = self._session.get_modelmeta()
        self.identity = ModelIdentity(
            kind=self.kind,
            source=str(self.path),
            digest=digest_path(self.path),
            name=meta.graph_name or self.path.stem,
            # ORT reports an unset model_version as 0 or INT64_MAX
            version=str(meta.version) if 0 < meta.version < 2**63 - 1 else None,
        )

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One checked batch through ``InferenceSession.run`` (see :class:`BatchedRuntime` for ``run``)."""
        feed = {name: np.ascontiguousarray(inputs[name]) for name in self._input_names}
        outputs = self._session.run(self._output_names, feed)
        return {name: np.asarray(out) for name, out in zip(self._output_names, outputs)}

    def infer_batches(
        self, inputs: Mapping[str, np.ndarray], starts: Iterable[int], batch_size: int
    ) -> dict[str, np.ndarray]:
        """The batch loop with nothing but ``InferenceSession.run`` in it (inputs checked and contiguous)."""
        run, names = self._session.run, self._output_names
        items = [(name, inputs[name]) for name in self._input_names]
        if len(items) == 1:  # the common case, with the least work per batch
            ((only, x),) = items
            chunks = [run(names, {only: x[s : s + batch_size]}) for s in starts]
        else:
            chunks = [run(names, {name: array[s : s + batch_size] for name, array in items}) for s in starts]
        return {name: np.concatenate([c[i] for c in chunks]) for i, name in enumerate(names)}

    def close(self) -> None:
        # InferenceSession frees its memory when dropped; there is no explicit close in the API
        self._session = None

    def __repr__(self) -> str:
        return f"OnnxRuntime({str(self.path)!r}, device={self.device!r})"
