"""The ONNX golden probe, and loading a served model: manifest discovery (registry copy, beside the model),
verification at load, options, bf16 serving and the fault hook, without a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from goldwatch.errors import ArtifactError, ConfigError
from goldwatch.examples import ExampleArtifacts, write_example
from goldwatch.golden_sets.build import build_golden_set
from goldwatch.integrity import build_manifest
from goldwatch.runtimes import load_model
from goldwatch.watchdog.agent import CallbackReporter, Evidence, ResidentAgent, watch_onnx
from goldwatch.watchdog.agent.faults import flip_resident_bit
from goldwatch.watchdog.agent.serving import ServedModel, resolve_served, serving_options
from goldwatch.watchdog.registry import Registry, Serving, make_pointer
from tests.agent.agent_support import flip_file_byte, write_model_dir

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExampleArtifacts, ExampleArtifacts, Path]:
    """Two tabular models trained from different seeds (ONNX) and a golden set captured from the first."""
    root = tmp_path_factory.mktemp("probe")
    first = write_example("tabular", root / "a", formats=("onnx",), seed=0)
    other = write_example("tabular", root / "b", formats=("onnx",), seed=1)
    build_golden_set(first.onnx, first.inputs, root / "golden", labels=first.labels, repeats=2)
    return first, other, root / "golden"


def test_the_onnx_probe_passes_on_the_approved_model_and_fails_on_another(tabular: Any) -> None:
    first, other, golden = tabular
    seen: list[Evidence] = []
    manifest = build_manifest(first.onnx)
    agent = watch_onnx(first.onnx, golden=golden, model="fraud", manifest=manifest, samples=8, start=False,
                       reporter=CallbackReporter(seen.append), metrics_registry=CollectorRegistry())
    good = agent.check_now()
    assert (good.name, good.status, good.measured["samples"]) == ("resident:golden_probe", "pass", 8)
    assert "does not expose resident initializers" in good.details["note"]
    swapped = watch_onnx(load_model(other.onnx), golden=golden, model="fraud", samples=64, start=False)
    bad = swapped.check_now()
    assert bad.status == "fail"
    assert bad.summary.startswith("golden probe (64 rows): golden:logits")
    assert [e.checks[0].status for e in seen] == ["pass"]


def test_the_onnx_file_is_verified_before_the_probe_starts(tabular: Any, tmp_path: Path) -> None:
    first, _, golden = tabular
    copy = tmp_path / "model.onnx"
    copy.write_bytes(first.onnx.read_bytes())
    manifest = build_manifest(copy)
    flip_file_byte(copy, copy.stat().st_size - 64)
    with pytest.raises(ArtifactError, match="do not match their manifest"):
        watch_onnx(copy, golden=golden, model="fraud", manifest=manifest, start=False)


def test_a_registry_served_copy_finds_its_manifest_and_version(tmp_path: Path) -> None:
    reg = Registry.open(tmp_path / "reg")
    pointer = make_pointer("current-link", tmp_path / "serve")
    reg.attach("fraud", Serving(pointer))
    for seed in (1, 2):
        mv = reg.add("fraud", write_model_dir(tmp_path / "src" / str(seed) / "model", seed=seed, manifest=False))
        reg.promote("fraud", mv.version, reason="release")
    served = resolve_served(tmp_path / "serve" / "current")
    assert served.version == "2"
    assert served.label == "fraud:2"
    assert served.manifest == reg.get("fraud", "2").manifest_path
    assert served.path.name == "model"
    assert served.path.is_dir()
    assert ".goldwatch-versions" in served.path.parts
    reg.close()


def test_serving_verifies_at_load_and_watches_what_it_serves(tmp_path: Path) -> None:
    model_dir = write_model_dir(tmp_path / "model", seed=3, hidden=600)
    options = serving_options({"interval_s": 5, "dtype": "bfloat16"}, where="test")
    seen: list[Evidence] = []
    served = ServedModel.load(model_dir, name="fraud", options=options, metrics_registry=CollectorRegistry(),
                              start=False)
    try:
        assert isinstance(served.agent, ResidentAgent)
        assert served.artifact.version is None
        served.agent.reporter = CallbackReporter(seen.append)
        assert {t.how for t in served.agent.coverage.tensors} == {"derived"}
        out = served.predict({"x": np.ones((3, 8), dtype=np.float64)})  # JSON numbers arrive as float64
        assert out["logits"].dtype == np.float32
        assert out["logits"].shape == (3, 3)
        assert served.agent.check_now().status == "pass"
        flip_resident_bit(served.module, "4.weight", byte=500_000, bit=0)
        check = served.agent.check_now()
        assert check.status == "fail"
        assert check.details["mismatches"][0]["tensor"] == "4.weight"
    finally:
        served.close()
    flip_file_byte(model_dir / "weights.safetensors", 1_500_000)
    with pytest.raises(ArtifactError, match=r"do not match their manifest.*tensor '4.weight' block 0 bytes"):
        ServedModel.load(model_dir, name="fraud", options=options, start=False)


def test_serving_refuses_what_it_cannot_verify_or_configure(tmp_path: Path) -> None:
    model_dir = write_model_dir(tmp_path / "model", seed=4, manifest=False)
    with pytest.raises(ArtifactError, match="no manifest for the model"):
        resolve_served(model_dir)
    with pytest.raises(ConfigError, match="duty_cycle"):
        serving_options({"duty_cycle": 2}, where="model fraud: parameters.extra.goldwatch")
    with pytest.raises(ConfigError, match="unknown_key"):
        serving_options({"unknown_key": 1}, where="model fraud: parameters.extra.goldwatch")
