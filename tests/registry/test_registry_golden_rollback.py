"""Rollback with golden replay: a backup whose bytes verify but whose answers are wrong is not served."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from goldwatch.watchdog.registry import Registry, Serving, make_pointer

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'goldwatch[onnx]')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'goldwatch[onnx]')")


def _matmul_model(path: Path, seed: int) -> Path:
    """A one-node ONNX model y = x @ W with W drawn from ``seed``."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(seed).standard_normal((4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        initializer=[numpy_helper.from_array(w, name="W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def _three_releases(tmp_path: Path) -> Registry:
    """Versions 1, 2, 3 of model "m", each promoted, each linked to v1's golden set; v2 and v3 answer differently
    (their bytes are intact, their answers are not)."""
    from goldwatch.golden_sets import build_golden_set

    models = [_matmul_model(tmp_path / f"v{seed}" / "model.onnx", seed) for seed in (1, 2, 3)]
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    golden = tmp_path / "golden-v1"
    build_golden_set(models[0], {"x": x}, golden, repeats=2)
    reg = Registry.open(tmp_path / "reg", serving={"m": Serving(make_pointer("current-link", tmp_path / "serve"))})
    for art in models:
        reg.promote("m", reg.add("m", art, golden=[golden]).version, reason="release")
    return reg


def test_golden_replay_rejects_a_wrong_backup(tmp_path: Path) -> None:
    reg = _three_releases(tmp_path)
    readiness = reg.check("m", golden=True)
    assert readiness.target == "2"
    assert [c.status for c in readiness.checks if c.name.endswith("target-golden")] == ["fail"], readiness.checks
    result = reg.rollback("m", reason="v3 bad", golden=True)
    assert result.ok
    assert result.to_version == "1"
    assert [(s.version, s.quarantined) for s in result.skipped] == [("2", True)]
    assert "golden replay of" in result.skipped[0].reason
    assert reg.get("m", "2").state == "quarantined"
    assert reg.check("m", golden=True).checks[0].status == "fail"  # nothing left behind v1
    reg.close()


def test_a_golden_set_edited_in_the_store_vouches_for_nothing(tmp_path: Path) -> None:
    """Loosening the stored tolerances would let a wrong backup pass its replay: the edit is found, nothing passes."""
    import json

    reg = _three_releases(tmp_path)
    stored = Path(reg.get("m", "2").golden[0]) / "golden.json"
    manifest = json.loads(stored.read_text())
    for output in manifest["outputs"].values():
        output["tolerance"].update(atol=1e30, rtol=1e30)  # v2's wrong answers would now be "within tolerance"
    stored.unlink()  # stored files are read-only hard links: an edit replaces the file
    stored.write_text(json.dumps(manifest))
    result = reg.rollback("m", reason="v3 bad", golden=True)
    assert result.to_version is None
    assert not result.ok
    assert [(s.version, s.quarantined) for s in result.skipped] == [("2", False), ("1", False)]
    assert all("cannot be trusted: its files no longer match" in s.reason for s in result.skipped)
    assert reg.get("m", "2").state == "known-good"  # the evidence is bad, not the model: nothing quarantined
    reg.close()
