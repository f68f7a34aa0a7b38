"""Running a whole input set in batches: the answers of batch-by-batch ``run``, inputs checked once, clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from goldwatch.errors import DataError, InvalidInputError
from goldwatch.examples import ExampleArtifacts
from goldwatch.runtimes import ModelIdentity, Signature, TensorSpec, load_model, run_batches


def _x(art: ExampleArtifacts) -> np.ndarray:
    return np.asarray(np.load(art.inputs, allow_pickle=False)["x"])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "state_dict", "export"])
@pytest.mark.parametrize("batch", [1, 7, 64, 256, 1000, None])
def test_batches_give_the_answers_of_batch_by_batch_runs(
    tabular_rt: ExampleArtifacts, fmt: str, batch: int | None
) -> None:
    runtime = load_model(tabular_rt.models[fmt])
    x = _x(tabular_rt)
    try:
        got = run_batches(runtime, {"x": x}, batch_size=batch)["logits"]
        step = batch or len(x)
        expected = np.concatenate([runtime.run({"x": x[s : s + step]})["logits"] for s in range(0, len(x), step)])
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    finally:
        runtime.close()


def test_non_contiguous_inputs_are_fed_as_contiguous_batches(tabular_rt: ExampleArtifacts) -> None:
    runtime = load_model(tabular_rt.onnx)  # type: ignore[arg-type]
    x = _x(tabular_rt)
    strided = np.asfortranarray(x)
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(
        run_batches(runtime, {"x": strided}, batch_size=50)["logits"],
        run_batches(runtime, {"x": x}, batch_size=50)["logits"],
    )


def test_inputs_are_checked_once_with_a_clear_error(tabular_rt: ExampleArtifacts) -> None:
    runtime = load_model(tabular_rt.models["state_dict"])
    x = _x(tabular_rt)
    with pytest.raises(DataError, match="dtype float64"):
        run_batches(runtime, {"x": x.astype(np.float64)}, batch_size=16)
    with pytest.raises(DataError, match=r"unexpected input\(s\) \['y'\]"):
        run_batches(runtime, {"x": x, "y": x[:10]}, batch_size=16)
    with pytest.raises(InvalidInputError, match="batch size must be >= 1, got 0"):
        run_batches(runtime, {"x": x}, batch_size=0)


class _TwoInputs:
    """A runtime that is not one of goldwatch's: only ``run``, so ``run_batches`` calls it batch by batch."""

    kind = "custom"
    device = "cpu"
    signature = Signature(inputs=(TensorSpec("a"), TensorSpec("b")), outputs=(TensorSpec("sum"),))
    identity = ModelIdentity(kind="custom", source="<test>")

    def __init__(self) -> None:
        self.batches: list[int] = []

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.signature.check_inputs(inputs, where="<test>")
        self.batches.append(len(inputs["a"]))
        return {"sum": inputs["a"] + inputs["b"]}

    def close(self) -> None:
        pass


def test_any_runtime_runs_in_batches_through_run() -> None:
    runtime = _TwoInputs()
    a, b = np.arange(10.0), np.arange(10.0) * 10
    out = run_batches(runtime, {"a": a, "b": b}, batch_size=4)
    np.testing.assert_array_equal(out["sum"], a + b)
    assert runtime.batches == [4, 4, 2]
    with pytest.raises(DataError, match=r"different numbers of samples: \{'a': 10, 'b': 9\}"):
        run_batches(runtime, {"a": a, "b": b[:9]}, batch_size=4)


def test_torch_outputs_that_require_grad_or_share_memory_come_back_as_arrays() -> None:
    torch = pytest.importorskip("torch")
    from goldwatch.runtimes.torch import TorchRuntime

    class ReturnsItsWeights(torch.nn.Module):  # type: ignore[misc]
        """Returns a parameter as-is (requires grad even under inference_mode) next to a computed output."""

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.arange(6.0).reshape(2, 3))

        def forward(self, x: object) -> tuple[object, object]:
            return x @ self.w, self.w

    sig = Signature(inputs=(TensorSpec("x", "float32", (None, 2)),), outputs=(TensorSpec("y"), TensorSpec("w")))
    runtime = TorchRuntime.from_module(ReturnsItsWeights(), sig)
    x = np.ones((2, 2), np.float32)
    out = runtime.run({"x": x})
    np.testing.assert_array_equal(out["y"], x @ np.arange(6.0, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(out["w"], np.arange(6.0, dtype=np.float32).reshape(2, 3))


def _two_input_onnx(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def value(name: str) -> object:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 3])

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["a", "b"], ["p"])],
        "two_inputs",
        [value("a"), value("b")],
        [value("s"), value("p")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_several_inputs_and_outputs_run_in_batches(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    from goldwatch.runtimes.torch import TorchRuntime

    class SumAndProduct(torch.nn.Module):  # type: ignore[misc]
        def forward(self, a: object, b: object) -> tuple[object, object]:
            return a + b, a * b  # type: ignore[operator]

    sig = Signature(
        inputs=(TensorSpec("a", "float32", (None, 3)), TensorSpec("b", "float32", (None, 3))),
        outputs=(TensorSpec("s"), TensorSpec("p")),
    )
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 50, 3)).astype(np.float32)
    for runtime in (load_model(_two_input_onnx(tmp_path / "two.onnx")), TorchRuntime.from_module(SumAndProduct(), sig)):
        out = run_batches(runtime, {"b": b, "a": a}, batch_size=8)  # any order of the named inputs
        np.testing.assert_array_equal(out["s"], a + b)
        np.testing.assert_array_equal(out["p"], a * b)


def test_a_model_working_in_place_changes_neither_the_inputs_nor_earlier_answers() -> None:
    """In-place preprocessing must not reach the caller's (a golden set's) inputs; a reused output buffer must not
    turn every earlier batch's answers into the last batch's."""
    torch = pytest.importorskip("torch")
    from goldwatch.runtimes.torch import TorchRuntime

    class InPlace(torch.nn.Module):  # type: ignore[misc]
        def forward(self, x: object) -> object:
            x.mul_(2.0)  # type: ignore[attr-defined]  # "normalises" its input in place
            return x.sum(dim=1, keepdim=True)  # type: ignore[attr-defined]

    class ReusesItsBuffer(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.buf = torch.zeros(16, 1)

        def forward(self, x: object) -> object:
            rows = x.shape[0]  # type: ignore[attr-defined]
            return self.buf[:rows].copy_(x.sum(dim=1, keepdim=True))  # type: ignore[attr-defined]

    sig = Signature(inputs=(TensorSpec("x", "float32", (None, 2)),), outputs=(TensorSpec("y"),))
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    x.flags.writeable = False
    before = x.copy()
    for module, factor in ((InPlace(), 2.0), (ReusesItsBuffer(), 1.0)):
        runtime = TorchRuntime.from_module(module, sig)
        expected = factor * before.sum(axis=1, keepdims=True)
        for batch in (4, None):
            np.testing.assert_array_equal(run_batches(runtime, {"x": x}, batch_size=batch)["y"], expected)
        first = runtime.run({"x": x[:4]})["y"]
        runtime.run({"x": x[4:8]})
        np.testing.assert_array_equal(first, expected[:4])  # an answer handed out stays what it was
        np.testing.assert_array_equal(x, before)
