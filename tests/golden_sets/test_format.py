"""The on-disk golden set: round trip, digests checked on load, atomic writes, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goldwatch.errors import GoldenSetError, StateError
from goldwatch.golden_sets import MANIFEST_NAME, GoldenSet, build_golden_set


def test_round_trip_keeps_every_array_and_tolerance(tabular_golden: GoldenSet) -> None:
    assert tabular_golden.path is not None
    loaded = GoldenSet.load(tabular_golden.path)
    assert loaded.n_samples == 256
    np.testing.assert_array_equal(loaded.inputs["x"], tabular_golden.inputs["x"])
    np.testing.assert_array_equal(loaded.expected["logits"], tabular_golden.expected["logits"])
    np.testing.assert_array_equal(loaded.labels, tabular_golden.labels)
    assert loaded.tolerances == tabular_golden.tolerances
    assert loaded.roles == {"logits": "scores"}
    assert loaded.model.digest == tabular_golden.model.digest
    assert loaded.model.digest is not None
    assert loaded.model.digest.startswith("sha256:")


def test_manifest_explains_tolerances_and_provenance(tabular_golden: GoldenSet) -> None:
    assert tabular_golden.path is not None
    manifest = json.loads((tabular_golden.path / MANIFEST_NAME).read_text())
    assert manifest["schema_version"] == 1
    assert manifest["signature"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": [None, 8]}]
    tol = manifest["outputs"]["logits"]["tolerance"]
    derivation = tol["derivation"]
    assert tol["atol"] == pytest.approx(max(derivation["observed_max_abs"] * 4.0, derivation["floor_abs"]))
    assert "safety_factor" in derivation["rule"]
    assert derivation["devices"] == ["cpu"]
    assert derivation["per_device"]["cpu"]["runs"] == 3
    assert manifest["provenance"]["versions"]["onnxruntime"]
    assert set(manifest["files"]) == {"inputs.npz", "expected.npz", "labels.npz"}
    assert manifest["baseline"]["logits"]["label_accuracy"] > 0.8


@pytest.fixture
def copy_of(tabular_golden: GoldenSet, tmp_path: Path) -> Path:
    assert tabular_golden.path is not None
    return Path(shutil.copytree(tabular_golden.path, tmp_path / "golden"))


def test_a_tampered_data_file_is_refused_with_its_name(copy_of: Path) -> None:
    data = bytearray((copy_of / "expected.npz").read_bytes())
    data[-40] ^= 0x01
    (copy_of / "expected.npz").write_bytes(bytes(data))
    with pytest.raises(GoldenSetError, match=r"expected\.npz: sha256 mismatch"):
        GoldenSet.load(copy_of)


def test_a_replaced_data_file_with_valid_npz_is_refused(copy_of: Path) -> None:
    with open(copy_of / "labels.npz", "wb") as fh:
        np.savez(fh, labels=np.zeros(256, np.int64))
    with pytest.raises(GoldenSetError, match="tampered"):
        GoldenSet.load(copy_of)


def test_missing_data_file(copy_of: Path) -> None:
    (copy_of / "inputs.npz").unlink()
    with pytest.raises(GoldenSetError, match="missing"):
        GoldenSet.load(copy_of)


def test_newer_schema_is_a_state_error(copy_of: Path) -> None:
    manifest = json.loads((copy_of / MANIFEST_NAME).read_text())
    manifest["schema_version"] = 99
    (copy_of / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(StateError, match="newer"):
        GoldenSet.load(copy_of)


@pytest.mark.parametrize("mutate", ["not json", "{}", '{"format": "goldwatch-golden-set", "schema_version": 1}'])
def test_malformed_manifest(copy_of: Path, mutate: str) -> None:
    (copy_of / MANIFEST_NAME).write_text(mutate)
    with pytest.raises(GoldenSetError):
        GoldenSet.load(copy_of)


def test_not_a_golden_set(tmp_path: Path) -> None:
    with pytest.raises(GoldenSetError, match="not a golden set"):
        GoldenSet.load(tmp_path)
    with pytest.raises(GoldenSetError, match="not found"):
        GoldenSet.load(tmp_path / "nope")


def test_pickled_object_arrays_are_never_loaded(copy_of: Path) -> None:
    """Even with a matching digest, an object array would need pickle: refused by allow_pickle=False."""
    import hashlib

    with open(copy_of / "inputs.npz", "wb") as fh:
        np.savez(fh, x=np.array([{"evil": 1}], dtype=object))
    manifest = json.loads((copy_of / MANIFEST_NAME).read_text())
    manifest["files"]["inputs.npz"] = hashlib.sha256((copy_of / "inputs.npz").read_bytes()).hexdigest()
    (copy_of / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(GoldenSetError, match="unreadable npz"):
        GoldenSet.load(copy_of)


def test_save_refuses_to_clobber_and_overwrites_atomically(tabular_golden: GoldenSet, tmp_path: Path) -> None:
    target = tmp_path / "g"
    tabular_golden_copy = GoldenSet.load(tabular_golden.path)  # type: ignore[arg-type]
    tabular_golden_copy.save(target)
    with pytest.raises(GoldenSetError, match="already exists"):
        tabular_golden_copy.save(target)
    tabular_golden_copy.save(target, overwrite=True)
    assert GoldenSet.load(target).n_samples == 256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]  # no temporary or aside directories left


def test_failed_build_writes_nothing(tabular, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad_labels = tmp_path / "labels.npy"
    np.save(bad_labels, np.zeros(3, np.int64))
    with pytest.raises(Exception, match="labels"):
        build_golden_set(tabular.onnx, tabular.inputs, tmp_path / "out", labels=bad_labels, repeats=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.npy"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=st.sampled_from(["float16", "float32", "float64", "int32", "int64", "uint8", "bool"]),
    n=st.integers(1, 20),
    width=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_any_arrays_round_trip_bit_exactly(tmp_path: Path, dtype: str, n: int, width: int, seed: int) -> None:
    from goldwatch.golden_sets.calibrate import calibrate
    from goldwatch.runtimes import ModelIdentity, Signature, TensorSpec

    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, width)) * 50).astype(dtype)
    y = (rng.normal(size=(n, 2)) * 50).astype(dtype)
    golden = GoldenSet(
        model=ModelIdentity(kind="test", source="mem"),
        signature=Signature(inputs=(TensorSpec("x", dtype, (None, width)),), outputs=(TensorSpec("y", dtype),)),
        inputs={"x": x},
        expected={"y": y},
        tolerances=calibrate({"y": y}, [("cpu", {"y": y})], safety_factor=4.0),
        roles={"y": "tensor"},
    )
    target = tmp_path / f"g-{dtype}-{n}-{width}-{seed}"
    golden.save(target)
    loaded = GoldenSet.load(target)
    assert loaded.inputs["x"].dtype == x.dtype
    assert loaded.expected["y"].dtype == y.dtype
    assert loaded.inputs["x"].tobytes() == x.tobytes()
    assert loaded.expected["y"].tobytes() == y.tobytes()
    assert loaded.tolerances == golden.tolerances
    assert loaded.labels is None


def test_labels_are_validated(tmp_path: Path) -> None:
    from goldwatch.errors import DataError
    from goldwatch.golden_sets.inputs import load_labels

    np.save(tmp_path / "ok.npy", np.array([0.0, 2.0, 1.0]))
    assert load_labels(tmp_path / "ok.npy", n_samples=3).tolist() == [0, 2, 1]
    for name, arr, message in (
        ("frac.npy", np.array([0.5, 1.0, 2.0]), "whole class indices"),
        ("short.npy", np.array([0, 1]), r"expected \(3,\)"),
        ("text.npy", np.array(["a", "b", "c"]), "expected integers"),
    ):
        np.save(tmp_path / name, arr)
        with pytest.raises(DataError, match=message):
            load_labels(tmp_path / name, n_samples=3)


def test_written_files_get_ordinary_permissions(tabular_golden: GoldenSet, tmp_path: Path) -> None:
    import os

    mask = os.umask(0o022)
    try:
        GoldenSet.load(tabular_golden.path).save(tmp_path / "g")  # type: ignore[arg-type]
    finally:
        os.umask(mask)
    assert (tmp_path / "g").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "g" / "golden.json").stat().st_mode & 0o777 == 0o644
