"""run_gate end to end on real ONNX models and golden sets: pass, each kind of failure, and each kind of error."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from goldwatch.config import GateConfig, GoldenConfig
from goldwatch.watchdog.gate.demo import corrupt_one_bit
from goldwatch.watchdog.gate.runner import GateThresholds, resolve_devices, run_gate
from tests.gate.conftest import GateWorld

FAST = {"latency": False}


def by_name(verdict, prefix: str):
    return [c for c in verdict.checks if c.name.startswith(prefix)]


def test_identical_baseline_passes_with_plots(world: GateWorld) -> None:
    v = run_gate(world.candidate, [world.golden], baseline=world.same)
    assert v.verdict == "pass", [(c.name, c.summary) for c in v.checks if not c.ok]
    names = [c.name for c in v.checks]
    assert "golden:golden:cpu:logits:max_abs_error" in names
    assert "baseline:golden:logits:top1_agreement" in names
    assert "baseline:golden:logits:accuracy" in names
    assert "drift:golden:logits" in names
    assert "finite:golden:cpu" in names
    assert "latency:golden:cpu" in names
    assert {h.group for h in v.histograms} == {"golden", "baseline"}
    assert {b.group for b in v.bars} == {"baseline", "drift", "latency"}
    assert v.candidate.runtime == "onnx"
    assert v.baseline.spec == str(world.same)
    hist = v.histograms[0]
    assert sum(hist.counts) == world.inputs.shape[0] * 3
    assert hist.counts[0] == sum(hist.counts)  # bit-exact replay: every error is 0


def test_disagreeing_baseline_fails_top1(world: GateWorld) -> None:
    v = run_gate(world.candidate, [world.golden], baseline=world.other, **FAST)
    assert v.verdict == "fail"
    (agree,) = by_name(v, "baseline:golden:logits:top1_agreement")
    assert agree.status == "fail"
    assert agree.measured["value"] < 0.99
    (bar,) = [b for b in v.bars if b.group == "baseline"]
    assert bar.flagged == [True]


def test_regressed_metric_fails_like_mlflow(world: GateWorld) -> None:
    # the unrelated model as candidate against the good one as baseline: accuracy drops
    v = run_gate(world.other, [world.golden], baseline=world.candidate, **FAST)
    (acc,) = by_name(v, "baseline:golden:logits:accuracy")
    assert acc.status == "fail"
    assert acc.measured["absolute_gain"] < 0
    # a tolerated regression large enough passes that check
    lenient = GateThresholds(metric_min_absolute_change=-1.0, metric_min_relative_change=-1.0)
    v2 = run_gate(world.other, [world.golden], baseline=world.candidate, thresholds=lenient, **FAST)
    assert by_name(v2, "baseline:golden:logits:accuracy")[0].status == "pass"


def test_shifted_outputs_drift_but_agree(world: GateWorld) -> None:
    v = run_gate(world.shifted, [world.golden], baseline=world.candidate, **FAST)
    assert by_name(v, "baseline:golden:logits:top1_agreement")[0].status == "pass"
    (drift,) = by_name(v, "drift:golden:logits")
    assert drift.status == "fail"
    assert drift.measured["drifted_columns"] == 3
    (bars,) = [b for b in v.bars if b.group == "drift"]
    assert all(bars.flagged)


def test_nan_outputs_fail(world: GateWorld) -> None:
    v = run_gate(world.nan_model, [world.golden], **FAST)
    assert v.verdict == "fail"
    (finite,) = by_name(v, "finite:golden:cpu")
    assert finite.status == "fail"
    assert finite.measured["nonfinite"] > 0
    assert v.histograms[0].labels[-1] == "NaN/Inf"


def test_golden_set_for_another_signature_is_an_error(world: GateWorld) -> None:
    v = run_gate(world.wrong_input, [world.golden], **FAST)
    assert (v.verdict, v.exit_code) == ("error", 2)
    assert v.error.kind == "GoldenSetError"
    assert "the model takes ['features'], the golden set has ['x']" in v.error.what


@pytest.mark.parametrize(
    ("kwargs", "kind", "fragment"),
    [
        ({"candidate": "missing.onnx"}, "ArtifactError", "model not found"),
        ({"golden": ["no-such-golden"]}, "GoldenSetError", "golden set directory not found"),
        ({"baseline": "nope.onnx"}, "ArtifactError", "model not found"),
        ({"golden": []}, "InvalidInputError", "no golden set given"),
        ({"device": "tpu"}, "InvalidInputError", "unknown device 'tpu'"),
    ],
)
def test_bad_input_gives_an_error_verdict(world: GateWorld, kwargs, kind, fragment) -> None:
    args = {"candidate": world.candidate, "golden": [world.golden], **kwargs}
    v = run_gate(args.pop("candidate"), args.pop("golden"), **args, **FAST)
    assert v.verdict == "error"
    assert v.error.kind == kind
    assert fragment in v.error.what


def test_artifact_verified_against_manifest(world: GateWorld, tmp_path) -> None:
    from goldwatch.integrity import build_manifest

    manifest = tmp_path / "candidate.manifest.json"
    build_manifest(world.candidate).save(manifest)
    ok = run_gate(world.candidate, [world.golden], manifest=manifest, **FAST)
    assert [c.status for c in by_name(ok, "artifact:")] == ["pass"]
    corrupted = tmp_path / "candidate.onnx"
    corrupt_one_bit(world.candidate, corrupted)  # one flipped bit in the weight matrix W
    bad = run_gate(corrupted, [world.golden], manifest=manifest, **FAST)
    assert bad.verdict == "fail"
    (art,) = by_name(bad, "artifact:")
    assert art.status == "fail"
    assert art.summary.startswith("candidate.onnx: tensor 'W' block 0")
    assert "digest differs" in art.summary
    assert by_name(bad, "golden:golden:cpu:logits:max_abs_error")[0].status == "fail"
    # the golden set was built from the approved bytes: the corrupted copy's other digest is the corruption the
    # artifact check names, not a golden set of another version (whose advice would be to rebuild the set)
    (note,) = by_name(bad, "golden:golden:built_from")
    assert note.status == "skip"
    assert "differ from its manifest" in note.summary
    assert "golden build" not in note.summary


def test_missing_manifest_is_an_error(world: GateWorld, tmp_path) -> None:
    v = run_gate(world.candidate, [world.golden], manifest=tmp_path / "none.json", **FAST)
    assert v.error.kind == "ArtifactError"
    assert v.error.what == "manifest not found"


def test_latency_budget(world: GateWorld) -> None:
    tight = GateThresholds(latency_budget_ms_p95=1e-6, latency_repeats=3)
    v = run_gate(world.candidate, [world.golden], thresholds=tight)
    (lat,) = by_name(v, "latency:")
    assert lat.status == "fail"
    assert lat.threshold == {"max_p95_ms": 1e-6}
    assert lat.measured["repeats"] == 3


def test_device_all_without_gpu_skips_cuda_with_reason(world: GateWorld, monkeypatch) -> None:
    import goldwatch.runtimes.base as base

    monkeypatch.setattr(base, "cuda_available", lambda: False)
    devices, skipped = resolve_devices("all")
    assert devices == ["cpu"]
    assert skipped[0].status == "skip"
    assert "no CUDA GPU" in skipped[0].summary
    v = run_gate(world.candidate, [world.golden], device="cuda", **FAST)
    assert v.error.kind == "DeviceUnavailableError"


@pytest.mark.cuda
def test_device_all_on_gpu_compares_cpu_and_cuda(world: GateWorld, tmp_path) -> None:
    # TorchScript, so the CUDA path runs wherever torch sees a GPU (ONNX would need onnxruntime-gpu)
    import torch

    from goldwatch.golden_sets import build_golden_set

    linear = torch.nn.Linear(world.weights.shape[0], world.weights.shape[1])
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(world.weights.T.copy()))
        linear.bias.copy_(torch.from_numpy(world.bias))
    model = tmp_path / "linear.pt"
    torch.jit.trace(linear.eval(), torch.from_numpy(world.inputs[:2])).save(str(model))
    golden = tmp_path / "golden-ts"
    # the traced module's input is named after forward's argument; build the golden set with the model's own name
    from goldwatch.runtimes import load_model

    rt = load_model(model)
    name = rt.signature.input_names[0]
    rt.close()
    build_golden_set(model, {name: world.inputs}, golden, labels=world.labels, repeats=3)
    v = run_gate(model, [golden], device="all", baseline=model)
    assert v.error is None, v.error
    assert v.devices == ["cpu", "cuda"]
    assert by_name(v, "golden:golden-ts:cuda:")
    assert all(c.ok for c in by_name(v, "golden:golden-ts:cuda:")), [c.summary for c in v.checks if not c.ok]
    assert [c.status for c in by_name(v, "device:golden-ts:")] == ["pass", "pass"]  # top-1 and max |diff|
    assert any(h.group == "device" for h in v.histograms)
    assert any(c.name == "latency:golden-ts:cuda" for c in v.checks)


def test_several_golden_sets(world: GateWorld, tmp_path) -> None:
    second = tmp_path / "second"
    shutil.copytree(world.golden, second)
    v = run_gate(world.candidate, [world.golden, second], **FAST)
    assert v.verdict == "pass"
    assert by_name(v, "golden:second:cpu:")
    assert v.golden_sets == [str(world.golden), str(second)]


def test_golden_sets_with_the_same_folder_name_get_distinct_checks(world: GateWorld, tmp_path) -> None:
    twin = tmp_path / "golden"
    shutil.copytree(world.golden, twin)
    v = run_gate(world.candidate, [world.golden, twin], **FAST)
    names = [c.name for c in v.checks]
    assert len(names) == len(set(names))
    assert by_name(v, "golden:golden#2:cpu:")


def test_thresholds_from_config_and_flags() -> None:
    th = GateThresholds.from_config(GateConfig(min_top1_agreement=0.5, latency_repeats=7),
                                    GoldenConfig(min_cosine=0.9), min_top1_agreement=0.8)
    assert (th.min_top1_agreement, th.latency_repeats, th.golden_min_cosine) == (0.8, 7, 0.9)


def test_promote_then_gate_against_registry(world: GateWorld, tmp_path) -> None:
    from goldwatch.watchdog.registry import Registry

    root = tmp_path / "registry"
    v = run_gate(world.candidate, [world.golden], registry_root=root, promote=True, promote_model="clf", **FAST)
    assert v.verdict == "pass", v.error
    assert v.promotion is not None
    assert v.promotion.state == "known-good"
    reg = Registry.open(root)
    try:
        good = reg.known_good("clf")
        assert good is not None
        assert good.version == v.promotion.version
    finally:
        reg.close()
    again = run_gate(world.other, [world.golden], baseline_registry="clf", registry_root=root, **FAST)
    assert again.baseline.spec == "registry:clf"
    assert again.baseline.version == v.promotion.version
    assert by_name(again, "baseline:golden:logits:top1_agreement")[0].status == "fail"


def test_failed_gate_is_not_promoted(world: GateWorld, tmp_path) -> None:
    root = tmp_path / "registry"
    v = run_gate(world.nan_model, [world.golden], registry_root=root, promote=True, promote_model="clf", **FAST)
    assert v.verdict == "fail"
    assert v.promotion is None


def test_unknown_baseline_in_registry_is_an_error(world: GateWorld, tmp_path) -> None:
    run_gate(world.candidate, [world.golden], registry_root=tmp_path / "r", promote=True, promote_model="clf", **FAST)
    v = run_gate(world.candidate, [world.golden], baseline_registry="nosuch", registry_root=tmp_path / "r", **FAST)
    assert v.error.kind == "RegistryError"
    missing = run_gate(world.candidate, [world.golden], baseline_registry="clf", registry_root=tmp_path / "x", **FAST)
    assert missing.error.kind == "RegistryError"
    assert not (tmp_path / "x").exists()  # looking up a baseline never creates a registry


def test_outputs_observer_sees_both_models(world: GateWorld) -> None:
    seen = []
    run_gate(world.candidate, [world.golden], baseline=world.same, on_compare=lambda g, c, b: seen.append((g, c, b)),
             **FAST)
    ((name, cand, base),) = seen
    assert name == "golden"
    np.testing.assert_array_equal(cand["logits"], base["logits"])


def test_nan_candidate_against_baseline_fails_rather_than_errors(world: GateWorld) -> None:
    v = run_gate(world.nan_model, [world.golden], baseline=world.candidate, **FAST)
    assert v.verdict == "fail"
    (drift,) = by_name(v, "drift:golden:logits")
    assert drift.status == "skip"
    assert "NaN/Inf" in drift.summary


def test_device_all_when_the_runtime_cannot_use_the_gpu(world: GateWorld, monkeypatch) -> None:
    import goldwatch.runtimes as runtimes
    import goldwatch.runtimes.base as base

    real = runtimes.load_model

    def load(spec, *, device="cpu", **kw):
        if device != "cpu":
            raise base.DeviceUnavailableError("onnxruntime has no CUDAExecutionProvider", where=str(spec))
        return real(spec, device=device, **kw)

    monkeypatch.setattr(base, "cuda_available", lambda: True)
    monkeypatch.setattr(runtimes, "load_model", load)
    v = run_gate(world.candidate, [world.golden], device="all", **FAST)
    assert v.verdict == "pass"
    assert v.devices == ["cpu"]
    (skip,) = by_name(v, "device:cuda")
    assert skip.status == "skip"
    assert "no CUDAExecutionProvider" in skip.summary
    strict = run_gate(world.candidate, [world.golden], device="cuda", **FAST)
    assert strict.error.kind == "DeviceUnavailableError"


def test_unloadable_candidate_with_failed_manifest_is_a_fail(world: GateWorld, tmp_path) -> None:
    from goldwatch.integrity import build_manifest

    manifest = tmp_path / "m.json"
    build_manifest(world.candidate).save(manifest)
    broken = tmp_path / "candidate.onnx"
    broken.write_bytes(world.candidate.read_bytes()[:-40])  # truncated: no longer a valid ONNX file
    v = run_gate(broken, [world.golden], manifest=manifest, **FAST)
    assert (v.verdict, v.error) == ("fail", None)
    (loadable,) = by_name(v, "artifact:loadable")
    assert loadable.status == "fail"
    # without a manifest there is no proof of corruption: a model that does not load is bad input
    assert run_gate(broken, [world.golden], **FAST).verdict == "error"
