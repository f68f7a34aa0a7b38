"""Hostile and truncated inputs: safetensors headers, ONNX external data, torch pickles. Fuzzed with hypothesis."""

from __future__ import annotations

import contextlib
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goldwatch.errors import ArtifactError
from goldwatch.integrity.manifest import build_manifest
from goldwatch.integrity.onnx_parser import read_onnx_tensors, resolve_external_path
from goldwatch.integrity.safetensors_parser import parse_safetensors_header, read_safetensors_header

from .conftest import raw_safetensors, write_linear_onnx

F32x2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def _parse(blob: bytes) -> object:
    return parse_safetensors_header(blob, file_size=len(blob), where="t.safetensors")


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x01\x02", "too short"),
        (raw_safetensors({"w": F32x2}, bytes(8), length=10**9), "beyond the file"),
        (raw_safetensors(b"{not json", bytes(8)), "not UTF-8 JSON"),
        (raw_safetensors(b"\xff\xfe{}", b""), "not UTF-8 JSON"),
        (raw_safetensors([1, 2], b""), "JSON object"),
        (raw_safetensors({"w": {**F32x2, "dtype": "F33"}}, bytes(8)), "unknown dtype"),
        (raw_safetensors({"w": {**F32x2, "shape": [-2]}}, bytes(8)), "non-negative"),
        (raw_safetensors({"w": {**F32x2, "shape": [2.0]}}, bytes(8)), "non-negative"),
        (raw_safetensors({"w": {**F32x2, "data_offsets": [0]}}, bytes(8)), "two integers"),
        (raw_safetensors({"w": {**F32x2, "data_offsets": [8, 0]}}, bytes(8)), "reversed"),
        (raw_safetensors({"w": {**F32x2, "data_offsets": [0, 16]}}, bytes(8)), "beyond the data section"),
        (raw_safetensors({"w": {**F32x2, "shape": [3]}}, bytes(8)), "needs 12"),
        (raw_safetensors({"w": F32x2, "v": {**F32x2, "data_offsets": [4, 12]}}, bytes(12)), "overlaps"),
        (raw_safetensors({"w": {**F32x2, "data_offsets": [4, 12]}}, bytes(12)), "belong to no tensor"),
        (raw_safetensors({"w": F32x2}, bytes(9)), "belong to no tensor"),
        (raw_safetensors({"w": F32x2, "__metadata__": {"a": 1}}, bytes(8)), "__metadata__"),
        (raw_safetensors({"w": {**F32x2, "extra": 1}}, bytes(8)), "expected keys"),
    ],
)
def test_hostile_safetensors_headers_are_refused(blob: bytes, message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        _parse(blob)


def test_duplicate_tensor_names_are_refused() -> None:
    entry = json.dumps(F32x2)
    header = f'{{"w": {entry}, "w": {entry}}}'.encode()
    with pytest.raises(ArtifactError, match="duplicate key"):
        _parse(struct.pack("<Q", len(header)) + header + bytes(8))


def test_truncated_safetensors_file(tmp_path: Path, state_dict: dict[str, object]) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file(state_dict, str(path))  # type: ignore[arg-type]
    info = read_safetensors_header(path)
    assert {t.name for t in info.tensors} == set(state_dict)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match="beyond the data section"):
        read_safetensors_header(path)
    with pytest.raises(ArtifactError, match=r"m.safetensors"):
        build_manifest(path)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_never_crash_the_parser(blob: bytes) -> None:
    try:
        info = _parse(blob)
    except ArtifactError:
        return
    assert all(t.stop <= len(blob) for t in info.tensors)  # type: ignore[attr-defined]


_entries = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "BF16", "I8", "BOOL", "X"]),
    "shape": st.lists(st.integers(-1, 4), max_size=3),
    "data_offsets": st.lists(st.integers(-2, 40), min_size=2, max_size=2),
})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.dictionaries(st.text(max_size=3), _entries, max_size=4), data=st.integers(0, 40))
def test_fuzz_structured_headers_accept_only_consistent_layouts(header: dict[str, dict], data: int) -> None:
    blob = raw_safetensors(header, bytes(data))
    try:
        info = _parse(blob)
    except ArtifactError:
        return
    # accepted: tensors tile the data section exactly, each the size its dtype and shape say
    sizes = {"F32": 4, "BF16": 2, "I8": 1, "BOOL": 1}
    cursor = len(blob) - data
    for t in info.tensors:  # type: ignore[attr-defined]
        assert t.start == cursor
        assert t.nbytes == int(np.prod(t.shape, dtype=np.int64)) * sizes[t.dtype]
        cursor = t.stop
    assert cursor == len(blob)


# ------------------------------------------------------------------------------------------------------ ONNX


def _with_location(model_path: Path, location: str) -> None:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    for init in model.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save_model(model, str(model_path))


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin", "", "link.bin"])
def test_onnx_external_data_may_not_leave_the_model_directory(tmp_path: Path, location: str) -> None:
    outside = tmp_path / "secret.bin"
    outside.write_bytes(bytes(4096))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "link.bin").symlink_to(outside)
    path = write_linear_onnx(model_dir / "m.onnx", np.ones((16, 4)), np.ones(4), external="w.data")
    _with_location(path, location)
    with pytest.raises(ArtifactError, match=r"leaves the model directory|absolute path|empty or invalid"):
        read_onnx_tensors(path)
    with pytest.raises(ArtifactError):
        build_manifest(path)


def test_onnx_truncated_external_data_and_bad_protobuf(tmp_path: Path) -> None:
    path = write_linear_onnx(tmp_path / "m.onnx", np.ones((16, 4)), np.ones(4), external="w.data")
    tensors = read_onnx_tensors(path)
    assert [(t.name, t.location, t.nbytes) for t in tensors] == [("W", "w.data", 256), ("b", None, 16)]
    (tmp_path / "w.data").write_bytes(bytes(100))
    with pytest.raises(ArtifactError, match="does not hold the 256 bytes"):
        read_onnx_tensors(path)
    (tmp_path / "w.data").unlink()
    with pytest.raises(ArtifactError, match="not found"):
        read_onnx_tensors(path)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07\x12\xff\xff\xff\xff\x0f garbage")
    with pytest.raises(ArtifactError, match="not a readable ONNX model"):
        read_onnx_tensors(bad)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_fuzz_onnx_bytes_give_artifact_errors_only(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "fuzz.onnx"
    path.write_bytes(blob)
    with contextlib.suppress(ArtifactError):
        read_onnx_tensors(path)


def test_resolve_external_path_accepts_inside_paths(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.bin").write_bytes(b"x")
    assert resolve_external_path(tmp_path, "sub/w.bin", where="t") == (tmp_path / "sub" / "w.bin").resolve()


# ----------------------------------------------------------------------------------------------------- torch


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("owned",))


def test_torch_checkpoints_are_never_unpickled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "payload": _Evil()}, path)
    with pytest.raises(ArtifactError, match="refusing to unpickle"):
        build_manifest(path)
    assert "owned" not in capsys.readouterr().out
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(ArtifactError, match=r"refusing to unpickle|cannot read"):
        build_manifest(legacy)
    assert "owned" not in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # TorchScript is deprecated, still in the wild
def test_torch_checkpoint_truncated_and_torchscript(tmp_path: Path, state_dict: dict[str, object]) -> None:
    import torch

    path = tmp_path / "ckpt.pt"
    torch.save({"model": state_dict, "epoch": 3}, path)
    manifest = build_manifest(path)
    assert {t.name for t in manifest.files[0].tensors} == {f"model.{k}" for k in state_dict}
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ArtifactError, match=r"ckpt.pt"):
        build_manifest(path)
    scripted = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(scripted))
    entry = build_manifest(scripted).files[0]
    assert (entry.format, entry.tensors) == ("torchscript", ())
