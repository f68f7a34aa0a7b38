"""load_model dispatch, signatures, the ONNX and torch runtimes, and their error messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from goldwatch.errors import ArtifactError, DataError, InvalidInputError
from goldwatch.examples import ExampleArtifacts
from goldwatch.runtimes import DeviceUnavailableError, Runtime, load_model, normalize_device


def _x(art: ExampleArtifacts) -> dict[str, np.ndarray]:
    return dict(np.load(art.inputs, allow_pickle=False))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "state_dict", "export"])
def test_every_format_loads_with_the_same_signature_and_answers(tabular_rt: ExampleArtifacts, fmt: str) -> None:
    runtime = load_model(tabular_rt.models[fmt])
    try:
        assert isinstance(runtime, Runtime)
        assert runtime.signature == tabular_rt.signature
        assert runtime.identity.digest
        assert runtime.identity.digest.startswith("sha256:")
        out = runtime.run(_x(tabular_rt))
        assert out["logits"].shape == (256, 3)
        assert out["logits"].dtype == np.float32
        reference = load_model(tabular_rt.models["torchscript"]).run(_x(tabular_rt))["logits"]
        np.testing.assert_allclose(out["logits"], reference, rtol=1e-5, atol=1e-4)
    finally:
        runtime.close()


def test_inputs_are_checked_before_running(tabular_rt: ExampleArtifacts) -> None:
    runtime = load_model(tabular_rt.onnx)  # type: ignore[arg-type]
    x = _x(tabular_rt)["x"]
    with pytest.raises(DataError, match=r"missing input\(s\) \['x'\]"):
        runtime.run({"features": x})
    with pytest.raises(DataError, match=r"unexpected input\(s\) \['y'\]"):
        runtime.run({"x": x, "y": x})
    with pytest.raises(DataError, match="dtype float64"):
        runtime.run({"x": x.astype(np.float64)})
    with pytest.raises(DataError, match=r"shape \(256, 7\)"):
        runtime.run({"x": x[:, :7]})


def test_dispatch_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="model not found"):
        load_model(tmp_path / "missing.onnx")
    (tmp_path / "m.h5").write_bytes(b"x")
    with pytest.raises(ArtifactError, match=r"unknown model format '\.h5'"):
        load_model(tmp_path / "m.h5")
    with pytest.raises(ArtifactError, match=r"goldwatch-model\.json"):
        load_model(tmp_path)
    with pytest.raises(InvalidInputError, match="not an Open Inference Protocol v2 model URL"):
        load_model("http://127.0.0.1:1/v1/models/x")
    with pytest.raises(InvalidInputError, match="unknown device"):
        normalize_device("gpu")


def test_truncated_files_are_artifact_errors(tabular_rt: ExampleArtifacts, tmp_path: Path) -> None:
    for fmt, name in (("onnx", "m.onnx"), ("torchscript", "m.pt"), ("export", "m.pt2")):
        data = tabular_rt.models[fmt].read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        with pytest.raises(ArtifactError, match=r"(cannot load|not a loadable)"):
            load_model(tmp_path / name)


def _descriptor_copy(art: ExampleArtifacts, tmp_path: Path) -> Path:
    return Path(shutil.copytree(art.models["state_dict"], tmp_path / "model"))


def test_descriptor_errors(tabular_rt: ExampleArtifacts, tmp_path: Path) -> None:
    model = _descriptor_copy(tabular_rt, tmp_path)
    desc_path = model / "goldwatch-model.json"
    desc = json.loads(desc_path.read_text())
    for change, message in (
        ({"factory": "no_such_pkg.models:build"}, "is not trusted"),
        ({"factory": "goldwatch.examples.models.nope:build"}, "cannot import the factory module"),
        ({"factory": "goldwatch.examples.models"}, "must be written 'module:function'"),
        ({"factory": "goldwatch.examples.models:small_cnn"}, "do not fit the factory's module"),
        ({"weights": "../outside.safetensors"}, "inside the model directory"),
        ({"format": "other"}, "not a goldwatch model descriptor"),
    ):
        desc_path.write_text(json.dumps({**desc, **change}))
        with pytest.raises(ArtifactError, match=message):
            load_model(model)


def test_weights_are_never_unpickled(tabular_rt: ExampleArtifacts, tmp_path: Path) -> None:
    """A torch.save file holding an arbitrary object is refused by weights_only=True."""
    torch = pytest.importorskip("torch")
    model = _descriptor_copy(tabular_rt, tmp_path)

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("pwned",))

    torch.save({"0.weight": Evil()}, model / "weights.pt")
    desc = json.loads((model / "goldwatch-model.json").read_text())
    (model / "goldwatch-model.json").write_text(json.dumps({**desc, "weights": "weights.pt"}))
    with pytest.raises(ArtifactError, match="cannot load the weights"):
        load_model(model)


@pytest.mark.filterwarnings("ignore:.*torch.jit.script.*is deprecated:DeprecationWarning")
def test_plain_pt_state_dict_and_torchscript_without_signature(tabular_rt: ExampleArtifacts, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from goldwatch.runtimes.torch import load_state_dict

    model = _descriptor_copy(tabular_rt, tmp_path)
    state = load_state_dict(model / "weights.safetensors")
    torch.save(state, model / "weights.pt")
    desc = json.loads((model / "goldwatch-model.json").read_text())
    (model / "goldwatch-model.json").write_text(json.dumps({**desc, "weights": "weights.pt"}))
    assert load_model(model).run(_x(tabular_rt))["logits"].shape == (256, 3)
    scripted = torch.jit.script(torch.nn.Linear(8, 2))
    scripted.save(str(tmp_path / "bare.pt"))
    runtime = load_model(tmp_path / "bare.pt")
    assert runtime.signature.input_names == ["input"]
    assert runtime.signature.output_names == ["output"]
    assert runtime.run({"input": np.ones((3, 8), np.float32)})["output"].shape == (3, 2)


def test_cuda_request_without_gpu_is_refused(tabular_rt: ExampleArtifacts) -> None:
    import onnxruntime
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the cuda-marked tests cover the CUDA path")
    with pytest.raises(DeviceUnavailableError, match="torch sees no CUDA GPU"):
        load_model(tabular_rt.models["state_dict"], device="cuda")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(DeviceUnavailableError, match="no CUDA execution provider"):
            load_model(tabular_rt.onnx, device="cuda")  # type: ignore[arg-type]


@pytest.mark.cuda
@pytest.mark.parametrize("fmt", ["torchscript", "state_dict", "export"])
def test_torch_formats_run_on_cuda_and_agree_with_cpu(tabular_rt: ExampleArtifacts, fmt: str) -> None:
    cpu = load_model(tabular_rt.models[fmt]).run(_x(tabular_rt))["logits"]
    runtime = load_model(tabular_rt.models[fmt], device="cuda")
    assert runtime.device == "cuda"
    assert next(runtime.module.parameters()).is_cuda  # type: ignore[attr-defined]
    gpu = runtime.run(_x(tabular_rt))["logits"]
    np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-2)  # TF32 and other kernels: close, not identical


@pytest.mark.cuda
def test_onnx_cuda_execution_provider(tabular_rt: ExampleArtifacts) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime here is the CPU build (install onnxruntime-gpu for its CUDA execution provider)")
    runtime = load_model(tabular_rt.onnx, device="cuda")  # type: ignore[arg-type]
    out = runtime.run(_x(tabular_rt))["logits"]
    cpu = load_model(tabular_rt.onnx).run(_x(tabular_rt))["logits"]  # type: ignore[arg-type]
    np.testing.assert_allclose(out, cpu, rtol=1e-3, atol=1e-2)
