"""Manifests (build, save, load, damage) and verification of artifacts on disk and of tensors in memory."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goldwatch.checks import CheckReport
from goldwatch.errors import ArtifactError, DataError, InvalidInputError, StateError
from goldwatch.integrity import (
    ArtifactManifest,
    build_manifest,
    fingerprint_module,
    verify_artifact,
    verify_module,
    verify_tensors,
)
from goldwatch.integrity.digest import file_digest
from goldwatch.integrity.fingerprint import BLOCK_BYTES
from goldwatch.integrity.safetensors_parser import read_safetensors_header
from goldwatch.serialize import to_jsonable

from .conftest import flip_bit, write_linear_onnx


def test_manifest_describes_every_file_and_tensor(model_dir: Path) -> None:
    import hashlib

    m = build_manifest(model_dir)
    assert [f.path for f in m.files] == ["config.json", "linear.data", "linear.onnx", "model.safetensors"]
    by_path = {f.path: f for f in m.files}
    assert [f.format for f in m.files] == ["file", "file", "onnx", "safetensors"]
    st = by_path["model.safetensors"]
    assert st.digest == hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    embed = next(t for t in st.tensors if t.name == "embed.weight")
    assert (embed.dtype, embed.shape, embed.nbytes, len(embed.fingerprint.blocks)) == ("float32", (600, 500),
                                                                                        1_200_000, 2)
    onnx_w = next(t for t in by_path["linear.onnx"].tensors if t.name == "W")
    assert (onnx_w.source, onnx_w.offset, onnx_w.dtype) == ("linear.data", 0, "float32")


@pytest.mark.parametrize("algorithm", ["sha256", "blake3", "xxh3"])
def test_roundtrip_and_intact_artifact(model_dir: Path, tmp_path: Path, algorithm: str) -> None:
    m = build_manifest(model_dir, digest=algorithm)
    m.save(tmp_path / "m.json")
    loaded = ArtifactManifest.load(tmp_path / "m.json")
    assert loaded == m
    report = verify_artifact(model_dir, tmp_path / "m.json")
    assert report.ok
    assert report.files_checked == 4
    assert CheckReport(report.to_checks()).ok
    json.dumps(to_jsonable(report))


def test_a_flipped_bit_is_located_to_tensor_block_and_file_range(model_dir: Path) -> None:
    m = build_manifest(model_dir)
    path = model_dir / "model.safetensors"
    embed = next(t for t in read_safetensors_header(path).tensors if t.name == "embed.weight")
    flip_bit(path, embed.start + BLOCK_BYTES + 12, bit=6)
    report = verify_artifact(model_dir, m)
    assert not report.ok
    kinds = [(x.kind, x.file, x.tensor, x.block) for x in report.mismatches]
    assert kinds == [("digest", "model.safetensors", None, None), ("block", "model.safetensors", "embed.weight", 1)]
    block = report.mismatches[1]
    assert (block.start, block.stop) == (BLOCK_BYTES, 1_200_000)
    assert (block.file_start, block.file_stop) == (embed.start + BLOCK_BYTES, embed.stop)
    checks = {c.name: c for c in report.to_checks()}
    assert checks["integrity:model.safetensors"].status == "fail"
    assert checks["integrity:config.json"].status == "pass"
    assert "embed.weight" in str(checks["integrity:model.safetensors"].details)


def test_onnx_external_data_corruption_is_located(model_dir: Path) -> None:
    m = build_manifest(model_dir / "linear.onnx")  # a single file brings its external data along
    assert [f.path for f in m.files] == ["linear.onnx", "linear.data"]
    flip_bit(model_dir / "linear.data", 100)
    report = verify_artifact(model_dir / "linear.onnx", m)
    assert [x.kind for x in report.mismatches] == ["digest", "block"]
    assert report.mismatches[0].file == "linear.data"
    assert report.mismatches[1].tensor == "W"
    assert report.mismatches[1].file == "linear.data"


def test_missing_unexpected_and_resized_files(model_dir: Path) -> None:
    m = build_manifest(model_dir)
    (model_dir / "config.json").unlink()
    (model_dir / "extra.py").write_text("import os")
    path = model_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-4])
    report = verify_artifact(model_dir, m)
    kinds = sorted((x.kind, x.file) for x in report.mismatches)
    assert ("missing", "config.json") in kinds
    assert ("unexpected", "extra.py") in kinds
    assert ("size", "model.safetensors") in kinds
    assert ("unreadable", "model.safetensors") in kinds  # truncated: no longer parses -- evidence, not an error


def test_renamed_single_file_is_verified_by_content(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"weights")
    m = build_manifest(tmp_path / "a.bin", digest="blake3")
    (tmp_path / "a.bin").rename(tmp_path / "b.bin")
    assert verify_artifact(tmp_path / "b.bin", m).ok
    with pytest.raises(ArtifactError, match="describes a single file"):
        verify_artifact(tmp_path, m)


def test_damaged_manifests_are_refused(model_dir: Path, tmp_path: Path) -> None:
    m = build_manifest(model_dir)
    good = m.to_dict()
    path = tmp_path / "m.json"

    def load(data: object) -> ArtifactManifest:
        path.write_text(json.dumps(data))
        return ArtifactManifest.load(path)

    with pytest.raises(StateError, match="newer"):
        load({**good, "format_version": 99})
    with pytest.raises(ArtifactError, match="not a goldwatch artifact manifest"):
        load({"hello": 1})
    bad_file = json.loads(json.dumps(good))
    bad_file["files"][0]["path"] = "../../etc/passwd"
    with pytest.raises(ArtifactError, match="inside the artifact"):
        load(bad_file)
    tampered = json.loads(json.dumps(good))
    st = next(f for f in tampered["files"] if f["path"] == "model.safetensors")
    st["tensors"][0]["blocks"][0] = "0" * 32
    with pytest.raises(ArtifactError, match="summary fingerprint does not match"):
        load(tampered)
    path.write_text("{")
    with pytest.raises(ArtifactError, match="not readable JSON"):
        ArtifactManifest.load(path)
    with pytest.raises(ArtifactError, match="not found"):
        ArtifactManifest.load(tmp_path / "none.json")


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "w.bin").write_bytes(b"x")
    m = build_manifest(tmp_path / "w.bin")
    target = tmp_path / "m.json"
    target.write_text("previous")

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        m.save(target)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == sorted(["w.bin", "m.json"]) or set(
        p.name for p in tmp_path.iterdir()) == {"w.bin", "m.json"}


def test_symlinks_leaving_the_artifact_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "model"
    root.mkdir()
    (tmp_path / "secret").write_text("x")
    (root / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(ArtifactError, match="points outside"):
        build_manifest(root)


def test_digest_algorithms(tmp_path: Path) -> None:
    p = tmp_path / "e"
    p.write_bytes(b"")
    assert file_digest(p, "sha256") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert len(file_digest(p, "blake3")) == 64
    assert len(file_digest(p, "xxh3")) == 32
    with pytest.raises(InvalidInputError, match="unknown digest"):
        file_digest(p, "md5")


# ------------------------------------------------------------------------------------------------ resident


def test_resident_tensors_match_the_file(model_dir: Path, state_dict: dict[str, object]) -> None:
    import torch
    from safetensors.torch import load_file

    m = build_manifest(model_dir / "model.safetensors")
    loaded = load_file(str(model_dir / "model.safetensors"))
    assert verify_tensors(loaded, m).ok
    numpy_view = {k: v.view(torch.uint8).numpy() if v.dtype == torch.bfloat16 else v.numpy() for k, v in loaded.items()}
    report = verify_tensors({"embed.weight": numpy_view["embed.weight"]}, m, strict=False)
    assert report.ok
    assert report.tensors_checked == 1

    loaded["embed.weight"].view(torch.int32).view(-1)[290_000] ^= 1 << 30  # an exponent bit at byte 1_160_000
    loaded["extra"] = torch.ones(1)
    del loaded["mask"]
    report = verify_tensors(loaded, m)
    found = sorted((x.kind, x.tensor, x.block) for x in report.mismatches)
    assert found == [("block", "embed.weight", 1), ("missing", "mask", None), ("unexpected", "extra", None)]
    block = next(x for x in report.mismatches if x.kind == "block")
    assert (block.start, block.stop) == (BLOCK_BYTES, 1_200_000)
    assert not CheckReport(report.to_checks()).ok


def test_dtype_and_shape_changes_are_reported(model_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file

    m = build_manifest(model_dir / "model.safetensors")
    loaded = load_file(str(model_dir / "model.safetensors"))
    loaded["head.weight"] = loaded["head.weight"].float()
    loaded["norm.bias"] = loaded["norm.bias"].reshape(7, 1)
    kinds = sorted((x.kind, x.tensor) for x in verify_tensors(loaded, m).mismatches)
    assert ("dtype", "head.weight") in kinds
    assert ("shape", "norm.bias") in kinds
    assert ("block", "head.weight") in kinds
    assert torch.is_tensor(loaded["mask"])


def test_verify_module_and_ambiguous_sources(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_model

    model = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    save_model(model, str(tmp_path / "model.safetensors"))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    m = build_manifest(tmp_path)
    with pytest.raises(ArtifactError, match="several files"):
        verify_module(model, m)
    assert verify_module(model, m, source="model.safetensors").ok
    assert verify_module(model, m, source="model.pt").ok
    with torch.no_grad():
        model[2].bias[1] += 1
    report = verify_module(model, m, source="model.pt")
    assert [(x.kind, x.tensor) for x in report.mismatches] == [("block", "2.bias")]
    assert set(fingerprint_module(model)) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    with pytest.raises(DataError, match="none of the"):
        verify_tensors({"other": np.zeros(3)}, m, strict=False, source="model.pt")
    with pytest.raises(DataError, match=r"torch.nn.Module"):
        verify_module(object(), m)


def test_onnx_initializers_verify_against_numpy_arrays(tmp_path: Path) -> None:
    w = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    b = np.arange(4, dtype=np.float32)
    path = write_linear_onnx(tmp_path / "m.onnx", w, b)
    m = build_manifest(path)
    assert verify_tensors({"W": w, "b": b}, m).ok
    assert not verify_tensors({"W": w.T.copy().T, "b": b + 1}, m).ok


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**40) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200)
@given(junk=_json, key=st.sampled_from(["format_version", "kind", "digest", "files", "fingerprint", "created"]))
def test_fuzz_manifest_json_gives_clear_errors_only(junk: object, key: str) -> None:
    base = {
        "format": "goldwatch-artifact-manifest", "format_version": 1, "kind": "file", "digest": "sha256",
        "fingerprint": {"algorithm": "gw-mlh64x2-v1", "block_bytes": BLOCK_BYTES},
        "files": [{"path": "a.bin", "size": 1, "digest": "00", "format": "file", "tensors": []}],
    }
    with contextlib.suppress(ArtifactError, StateError):
        ArtifactManifest.from_dict({**base, key: junk})


def test_renamed_tensor_in_a_safetensors_file(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file({"alpha": torch.ones(4), "beta": torch.zeros(2)}, str(path))
    m = build_manifest(path)
    path.write_bytes(path.read_bytes().replace(b'"alpha"', b'"alphx"'))
    kinds = sorted((x.kind, x.tensor) for x in verify_artifact(path, m).mismatches)
    assert kinds == [("digest", None), ("missing", "alpha"), ("unexpected", "alphx")]
