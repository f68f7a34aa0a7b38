"""Write a ``torch.nn.Sequential`` of Linear/Conv2d/ReLU/MaxPool2d/Flatten layers as an ONNX graph.

Built with ``onnx.helper`` straight from the weights: no tracing, no exporter dependency (torch's dynamo exporter
needs onnxscript), fast and byte-for-byte deterministic for the same weights.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from goldwatch._optional import require
from goldwatch.errors import ArtifactError

__all__ = ["OPSET", "sequential_to_onnx"]

OPSET = 17


def sequential_to_onnx(
    model: Any,
    path: str | os.PathLike[str],
    *,
    input_name: str,
    output_name: str,
    input_shape: tuple[int, ...],
    n_outputs: int,
    graph_name: str,
) -> None:
    """Save ``model`` (eval-mode semantics) to ``path``; ``input_shape`` excludes the batch dimension."""
    onnx = require("onnx", purpose="writing ONNX example models")
    nn = require("torch.nn", purpose="writing ONNX example models")
    helper, TensorProto = onnx.helper, onnx.TensorProto
    nodes, inits = [], []
    current = input_name
    layers = list(model)
    for i, layer in enumerate(layers):
        out = output_name if i == len(layers) - 1 else f"t{i}"

        def weight(name: str, tensor: Any, _i: int = i) -> str:
            array = tensor.detach().cpu().numpy().astype(np.float32)
            inits.append(onnx.numpy_helper.from_array(array, name=f"layer{_i}.{name}"))
            return f"layer{_i}.{name}"

        if isinstance(layer, nn.Linear):
            nodes.append(
                helper.make_node(
                    "Gemm", [current, weight("weight", layer.weight), weight("bias", layer.bias)], [out], transB=1
                )
            )
        elif isinstance(layer, nn.Conv2d):
            pad_h, pad_w = layer.padding
            nodes.append(
                helper.make_node(
                    "Conv",
                    [current, weight("weight", layer.weight), weight("bias", layer.bias)],
                    [out],
                    kernel_shape=list(layer.kernel_size),
                    pads=[pad_h, pad_w, pad_h, pad_w],
                    strides=list(layer.stride),
                )
            )
        elif isinstance(layer, nn.ReLU):
            nodes.append(helper.make_node("Relu", [current], [out]))
        elif isinstance(layer, nn.MaxPool2d):
            k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
            s = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
            nodes.append(helper.make_node("MaxPool", [current], [out], kernel_shape=[k, k], strides=[s, s]))
        elif isinstance(layer, nn.Flatten):
            nodes.append(helper.make_node("Flatten", [current], [out], axis=1))
        else:
            raise ArtifactError(f"cannot write layer {i} ({type(layer).__name__}) as ONNX", where=graph_name)
        current = out
    graph = helper.make_graph(
        nodes,
        graph_name,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", *input_shape])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", n_outputs])],
        initializer=inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="goldwatch")
    proto.ir_version = 8  # readable by every onnxruntime >= 1.14
    onnx.checker.check_model(proto)
    onnx.save(proto, os.fspath(path))
