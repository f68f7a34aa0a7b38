"""Replay through every runtime, mismatch errors, cross-device mode, and the CUDA path."""

from __future__ import annotations

import numpy as np
import pytest

from goldwatch.errors import DataError, GoldenSetError
from goldwatch.examples import KINDS, ExampleArtifacts, train_example_model
from goldwatch.golden_sets import GoldenSet, build_golden_set, replay
from goldwatch.golden_sets.inputs import load_inputs
from goldwatch.runtimes import load_model
from goldwatch.runtimes.torch import TorchRuntime


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "state_dict"])
def test_every_format_of_the_approved_model_passes(tabular: ExampleArtifacts, tabular_golden: GoldenSet,
                                                   fmt: str) -> None:
    """The golden set was built with ONNX Runtime; torch runs of the same weights agree within the tolerance."""
    report = replay(tabular.models[fmt], tabular_golden.path)  # type: ignore[arg-type]
    assert report.ok, [c for c in report.checks if not c.ok]
    assert report.n_samples == 256
    assert report.device == "cpu"
    assert report.same_model_digest is (fmt == "onnx")
    names = {c.name for c in report.checks}
    assert {"golden:logits:max_abs_error", "golden:logits:top1_agreement", "golden:logits:label_accuracy",
            "golden:logits:nonfinite", "golden:logits:distribution"} <= names


def test_conv_export_program_passes_in_batches(conv: ExampleArtifacts, conv_golden: GoldenSet) -> None:
    report = replay(conv.models["export"], conv_golden, batch_size=50)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert report.outputs["logits"].shape == (256, 4)


def test_a_retrained_model_fails_with_numbers(tabular_golden: GoldenSet) -> None:
    model, _ = train_example_model("tabular", seed=7)
    runtime = TorchRuntime.from_module(model, KINDS["tabular"].signature)
    report = replay(runtime, tabular_golden)
    assert not report.ok
    failed = {c.name: c for c in report.checks if c.status == "fail"}
    check = failed["golden:logits:max_abs_error"]
    assert check.measured["value"] > check.threshold["limit"]  # type: ignore[operator]


def test_golden_set_for_another_model_is_an_input_error(tabular: ExampleArtifacts, conv_golden: GoldenSet) -> None:
    with pytest.raises(GoldenSetError, match=r"inputs do not match.*missing \['x'\].*extra \['image'\]"):
        replay(tabular.onnx, conv_golden)  # type: ignore[arg-type]


def test_dtype_and_shape_mismatch_are_input_errors(tabular: ExampleArtifacts, tabular_golden: GoldenSet) -> None:
    as64 = GoldenSet(**{**tabular_golden.__dict__, "inputs": {"x": tabular_golden.inputs["x"].astype(np.float64)}})
    with pytest.raises(GoldenSetError, match="expects float32, the golden set holds float64"):
        replay(tabular.onnx, as64)  # type: ignore[arg-type]
    wide = GoldenSet(**{**tabular_golden.__dict__, "inputs": {"x": np.zeros((256, 9), np.float32)}})
    with pytest.raises(GoldenSetError, match="expects shape"):
        replay(tabular.onnx, wide)  # type: ignore[arg-type]


def test_cross_device_without_gpu_is_skipped_with_reason(tabular: ExampleArtifacts, tabular_golden: GoldenSet) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the cuda-marked tests cover cross-device replay")
    report = replay(tabular.onnx, tabular_golden, cross_device=True)  # type: ignore[arg-type]
    skipped = [c for c in report.checks if c.name == "golden:cross_device"]
    assert report.ok
    assert skipped[0].status == "skip"
    assert "no CUDA GPU" in skipped[0].summary


def test_inputs_from_csv_and_parquet_and_errors(tabular: ExampleArtifacts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    sig = load_model(tabular.onnx).signature  # type: ignore[arg-type]
    x = np.load(tabular.inputs)["x"]
    pd.DataFrame(x, columns=[f"f{i}" for i in range(8)]).to_csv(tmp_path / "x.csv", index=False)
    np.testing.assert_allclose(load_inputs(tmp_path / "x.csv", sig)["x"], x, rtol=1e-6)
    pd.DataFrame(x, columns=[f"f{i}" for i in range(8)]).to_parquet(tmp_path / "x.parquet")
    np.testing.assert_array_equal(load_inputs(tmp_path / "x.parquet", sig)["x"], x)
    np.save(tmp_path / "x.npy", x)
    np.testing.assert_array_equal(load_inputs(tmp_path / "x.npy", sig)["x"], x)
    np.savez(tmp_path / "extra.npz", x=x, y=x)
    with pytest.raises(DataError, match=r"unexpected input\(s\) \['y'\]"):
        load_inputs(tmp_path / "extra.npz", sig)
    np.savez(tmp_path / "f64.npz", x=x.astype(np.float64))
    with pytest.raises(DataError, match="dtype float64, the model expects float32"):
        load_inputs(tmp_path / "f64.npz", sig)
    pd.DataFrame(x[:, :5]).to_csv(tmp_path / "narrow.csv", index=False)
    with pytest.raises(DataError, match="shape"):
        load_inputs(tmp_path / "narrow.csv", sig)
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(DataError, match="unsupported"):
        load_inputs(tmp_path / "x.txt", sig)


def test_build_refuses_nan_answers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    spec = KINDS["tabular"]
    model = torch.nn.Sequential(torch.nn.Linear(8, 3))
    x = np.ones((4, 8), np.float32)
    x[2, 0] = np.nan
    with pytest.raises(GoldenSetError, match=r"NaN/Inf on 1 sample\(s\) \(first: \[2\]\)"):
        build_golden_set(TorchRuntime.from_module(model, spec.signature), {"x": x}, tmp_path / "g", repeats=1)
    assert not (tmp_path / "g").exists()


@pytest.mark.cuda
def test_cuda_build_calibrates_both_devices_and_cross_device_replay_passes(
    tabular: ExampleArtifacts, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    golden = build_golden_set(tabular.models["state_dict"], tabular.inputs, tmp_path / "g", labels=tabular.labels,
                              repeats=3)
    tol = golden.tolerances["logits"]
    assert tol.derivation["devices"] == ["cpu", "cuda"]
    assert tol.derivation["per_device"]["cuda"]["runs"] == 3
    report = replay(tabular.models["state_dict"], tmp_path / "g", cross_device=True)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert set(report.device_outputs) == {"cpu", "cuda"}
    assert any(c.name.startswith("golden[cuda]:") for c in report.checks)
    assert any(c.name.endswith("cross_device_max_abs_error") for c in report.checks)
    on_gpu = replay(tabular.models["torchscript"], tmp_path / "g", device="cuda")
    assert on_gpu.ok
    assert on_gpu.device == "cuda"


@pytest.mark.cuda
def test_cuda_replay_catches_a_corrupted_gpu_copy(tabular: ExampleArtifacts, tabular_golden: GoldenSet) -> None:
    """Weights corrupted after they reach the GPU: the CUDA replay fails although the file on disk is fine."""
    import torch

    runtime = load_model(tabular.models["state_dict"], device="cuda")
    assert isinstance(runtime, TorchRuntime)
    with torch.no_grad():
        runtime.module[2].weight.mul_(1.01)
    report = replay(runtime, tabular_golden)
    assert not report.ok
    assert report.device == "cuda"
