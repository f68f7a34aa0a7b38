"""A small MLServer runtime that serves an ONNX model with ONNX Runtime (CPU).

Used by the tests (and by anyone who wants a real Open Inference Protocol v2 endpoint for a goldwatch example) as
``"implementation": "goldwatch.runtimes.mlserver_onnx.OnnxModel"`` with ``parameters.uri`` naming the ``.onnx``
file. It imports mlserver at module level, so only an MLServer process imports this module: goldwatch itself
never does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor

from goldwatch.runtimes.oip import numpy_to_oip

__all__ = ["OnnxModel", "tensor_metadata"]


class OnnxModel(MLModel):
    """Serve ``settings.parameters.uri`` (an ONNX file); metadata comes from the ONNX graph."""

    async def load(self) -> bool:
        from goldwatch.runtimes.onnx import OnnxRuntime

        uri = self.settings.parameters.uri if self.settings.parameters else None
        if not uri:
            raise ValueError("model-settings.json must set parameters.uri to the .onnx file")
        self._runtime = OnnxRuntime(uri, threads=1)
        sig = self._runtime.signature
        self.inputs = [tensor_metadata(t) for t in sig.inputs]
        self.outputs = [tensor_metadata(t) for t in sig.outputs]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feed = {inp.name: NumpyCodec.decode_input(inp) for inp in payload.inputs}
        # the JSON encoding carries float64-looking numbers; cast to the graph's declared dtypes
        for spec in self._runtime.signature.inputs:
            if spec.name in feed and spec.dtype:
                feed[spec.name] = np.asarray(feed[spec.name]).astype(spec.dtype, copy=False)
        outputs = self._runtime.run(feed)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(name, value) for name, value in outputs.items()],
        )


def tensor_metadata(spec: Any) -> MetadataTensor:
    shape = [-1 if d is None else int(d) for d in (spec.shape or ())]
    return MetadataTensor(name=spec.name, datatype=numpy_to_oip(spec.dtype or "float32"), shape=shape)
