"""Finding 7: artifact reports on the encoder's ONNX export -- one corruption is one failure named after the
candidate file, ONNX mismatches carry file byte ranges and readable tensor names, swapped tensors read as a swap."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from goldwatch.examples.encoder import EncoderArtifacts
from goldwatch.integrity import build_manifest
from goldwatch.integrity.onnx_parser import read_onnx_tensors
from goldwatch.integrity.verify import verify_artifact, verify_tensors
from goldwatch.watchdog.gate._adapters import artifact_checks


@pytest.fixture(scope="module")
def approved(encoder: EncoderArtifacts, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("approved")
    model = folder / "model.onnx"
    shutil.copy(encoder.onnx, model)
    manifest = folder / "model.manifest.json"
    build_manifest(model).save(manifest)
    return model, manifest


def _exporter_tensor(model: Path):  # type: ignore[no-untyped-def]
    tensors = [t for t in read_onnx_tensors(model) if t.name.startswith("onnx::") and t.offset is not None]
    assert tensors, "the TorchScript-based exporter names some initializers onnx::..."
    return tensors[0]


def test_a_renamed_corrupted_candidate_is_one_failure_named_after_it(approved: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    model, manifest = approved
    candidate = tmp_path / "candidate-v2.onnx"
    shutil.copy(model, candidate)
    tensor = _exporter_tensor(model)
    data = bytearray(candidate.read_bytes())
    data[tensor.offset + 1000] ^= 0x01  # type: ignore[operator]
    candidate.write_bytes(bytes(data))
    checks = artifact_checks(candidate, manifest)
    failed = [c for c in checks if c.status == "fail"]
    assert [c.name for c in failed] == ["artifact:candidate-v2.onnx"]
    assert all("model.onnx" not in c.name for c in checks)
    (check,) = failed
    assert check.summary.startswith(f"candidate-v2.onnx: tensor {tensor.name!r} (read by /")
    start = tensor.offset  # the byte range inside the .onnx file, not only inside the tensor
    assert f"file bytes [{start}, " in check.summary
    digest = next(m for m in check.details["mismatches"] if m["kind"] == "digest")
    assert digest["message"].startswith("candidate-v2.onnx: sha256 digest differs from the approved model.onnx's")


def test_swapped_tensors_are_reported_as_a_swap(approved: tuple[Path, Path], tmp_path: Path) -> None:
    model, manifest = approved
    tensors = read_onnx_tensors(model)
    by_shape: dict[tuple[int, ...], list] = {}  # type: ignore[type-arg]
    for t in tensors:
        if t.offset is not None and t.nbytes > 100_000:
            by_shape.setdefault(t.shape, []).append(t)
    a, b = next(group for group in by_shape.values() if len(group) >= 2)[:2]
    candidate = tmp_path / "model.onnx"
    data = bytearray(model.read_bytes())
    first, second = bytes(data[a.offset:a.offset + a.nbytes]), bytes(data[b.offset:b.offset + b.nbytes])
    data[a.offset:a.offset + a.nbytes], data[b.offset:b.offset + b.nbytes] = second, first
    candidate.write_bytes(bytes(data))
    report = verify_artifact(candidate, manifest)
    kinds = [m.kind for m in report.mismatches]
    assert kinds == ["digest", "swapped"]  # not 2 x (blocks per tensor) block mismatches
    swap = report.mismatches[1]
    assert {swap.tensor, swap.actual} == {a.name, b.name}
    assert "were swapped" in swap.message


def test_resident_tensors_swapped_in_memory(encoder: EncoderArtifacts) -> None:
    from safetensors.torch import load_file

    weights = encoder.models["state_dict"] / "weights.safetensors"
    manifest = build_manifest(weights)
    state = load_file(str(weights))
    q, k = "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.key.weight"
    state[q], state[k] = state[k], state[q]
    report = verify_tensors(state, manifest)
    assert [m.kind for m in report.mismatches] == ["swapped"]
    assert {report.mismatches[0].tensor, report.mismatches[0].actual} == {q, k}
    state = load_file(str(weights))
    state[q] = state[k].clone()  # both hold key's bytes: query was overwritten
    report = verify_tensors(state, manifest)
    assert [(m.kind, m.tensor, m.actual) for m in report.mismatches] == [("copied", q, k)]
