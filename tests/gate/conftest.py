"""Fixtures of the gate tests: tiny real ONNX classifiers (built in milliseconds, no training) and golden sets.

The example models of goldwatch.examples take tens of seconds to train; the gate's logic does not need trained
models, only real runtimes with known weights, so most tests use a linear classifier written with onnx.helper.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

N_FEATURES, N_CLASSES, N_SAMPLES = 8, 3, 96


def write_linear_onnx(path: Path, weights: np.ndarray, bias: np.ndarray, *, input_name: str = "x") -> Path:
    """A real ONNX model: logits = x @ weights + bias."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_in, n_out = weights.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", [input_name, "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["logits"])],
        "linear",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_out])],
        initializer=[numpy_helper.from_array(weights.astype(np.float32), "W"),
                     numpy_helper.from_array(bias.astype(np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@dataclasses.dataclass(frozen=True)
class GateWorld:
    """A candidate, baselines and a golden set on disk."""

    root: Path
    weights: np.ndarray
    bias: np.ndarray
    candidate: Path
    same: Path          # identical weights, another file: the baseline in production
    shifted: Path       # same classes mostly, shifted logits: drift without disagreement on most samples
    other: Path         # unrelated weights: disagrees with the candidate
    nan_model: Path     # outputs NaN
    wrong_input: Path   # another input name: a golden set built for another signature
    golden: Path
    inputs: np.ndarray
    labels: np.ndarray

    def model(self, name: str, weights: np.ndarray, bias: np.ndarray) -> Path:
        return write_linear_onnx(self.root / f"{name}.onnx", weights, bias)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> GateWorld:
    from goldwatch.golden_sets import build_golden_set

    root = tmp_path_factory.mktemp("gate-world")
    rng = np.random.default_rng(7)
    weights = rng.normal(size=(N_FEATURES, N_CLASSES)).astype(np.float32)
    bias = rng.normal(scale=0.1, size=N_CLASSES).astype(np.float32)
    inputs = rng.normal(size=(N_SAMPLES, N_FEATURES)).astype(np.float32)
    labels = np.argmax(inputs @ weights + bias, axis=1).astype(np.int64)
    labels[:5] = (labels[:5] + 1) % N_CLASSES  # not a perfect model: accuracy < 1
    candidate = write_linear_onnx(root / "candidate.onnx", weights, bias)
    same = write_linear_onnx(root / "same.onnx", weights, bias)
    shifted = write_linear_onnx(root / "shifted.onnx", weights, bias + 5.0)
    other = write_linear_onnx(root / "other.onnx", rng.normal(size=(N_FEATURES, N_CLASSES)), bias)
    nan_w = weights.copy()
    nan_w[0, 0] = np.nan
    nan_model = write_linear_onnx(root / "nan.onnx", nan_w, bias)
    wrong_input = write_linear_onnx(root / "wrong_input.onnx", weights, bias, input_name="features")
    golden = root / "golden"
    build_golden_set(candidate, {"x": inputs}, golden, labels=labels, repeats=2)
    return GateWorld(root, weights, bias, candidate, same, shifted, other, nan_model, wrong_input, golden, inputs,
                     labels)
