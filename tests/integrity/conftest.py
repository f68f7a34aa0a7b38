"""Fixtures of the integrity tests: small real artifacts (safetensors, ONNX with external data, torch checkpoints)
written in milliseconds, and a raw safetensors writer for hostile headers."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest


def raw_safetensors(header: object, data: bytes, *, length: int | None = None) -> bytes:
    """A safetensors file from an arbitrary header object (nothing checked: for hostile cases)."""
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def write_linear_onnx(path: Path, weights: np.ndarray, bias: np.ndarray, *, external: str | None = None) -> Path:
    """A real ONNX model (logits = x @ W + b); with ``external``, W is stored in that external data file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(weights.astype(np.float32), "W")
    b = numpy_helper.from_array(bias.astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["logits"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", weights.shape[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", weights.shape[1]])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if external is not None:
        (path.parent / external).write_bytes(b"")
        onnx.external_data_helper.convert_model_to_external_data(
            model, all_tensors_to_one_file=True, location=external, size_threshold=64
        )
    onnx.save_model(model, str(path))
    return path


@pytest.fixture
def state_dict() -> dict[str, object]:
    """Tensors of several dtypes and odd sizes; one is > 1 MiB so it has two blocks."""
    import torch

    g = torch.Generator().manual_seed(0)
    return {
        "embed.weight": torch.randn(600, 500, generator=g),  # 1.2 MB: two blocks
        "norm.bias": torch.randn(7, generator=g).to(torch.bfloat16),  # 14 bytes: odd word count
        "head.weight": torch.randn(3, 5, generator=g).to(torch.float16),
        "mask": torch.tensor([True, False, True]),  # 3 bytes: a partial word
        "scale": torch.tensor(0.5),  # 0-d
    }


@pytest.fixture
def model_dir(tmp_path: Path, state_dict: dict[str, object]) -> Path:
    """A directory with a safetensors file, an ONNX model with external data and a config file."""
    from safetensors.torch import save_file

    root = tmp_path / "model"
    root.mkdir()
    save_file(state_dict, str(root / "model.safetensors"))  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    write_linear_onnx(root / "linear.onnx", rng.standard_normal((16, 4)), rng.standard_normal(4),
                      external="linear.data")
    (root / "config.json").write_text('{"hidden": 500}')
    return root


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    """Flip one bit of a file in place."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))
