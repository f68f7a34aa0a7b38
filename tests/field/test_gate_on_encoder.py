"""Findings 1, 2, 3, 6 and 10 on the sentence encoder: drift with an effect floor, roles guessed from evidence,
role-aware baseline comparison, no latency timing without a budget, one column policy, no scipy warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from goldwatch.checks import Check
from goldwatch.cli import main
from goldwatch.detectors import paired_output_shift
from goldwatch.examples.encoder import NEAR_CONSTANT_DIMS, EncoderArtifacts
from goldwatch.golden_sets import GoldenSet, build_golden_set, replay
from goldwatch.watchdog.gate.runner import GateThresholds, run_gate


@pytest.fixture(scope="module")
def fp16_golden(encoder_fp16: EncoderArtifacts) -> Path:
    """The fp16 candidate's own golden set (a golden set belongs to the version it was built from)."""
    build_golden_set(encoder_fp16.onnx, encoder_fp16.inputs, encoder_fp16.out_dir / "golden", repeats=2)
    return encoder_fp16.out_dir / "golden"


@pytest.fixture(scope="module")
def other_golden(encoder_other: EncoderArtifacts) -> Path:
    build_golden_set(encoder_other.onnx, encoder_other.inputs, encoder_other.out_dir / "golden", repeats=2)
    return encoder_other.out_dir / "golden"


def _by_prefix(checks: list[Check], prefix: str) -> list[Check]:
    return [c for c in checks if c.name.startswith(prefix)]


def test_fp16_rounded_candidate_passes_the_gate_without_warnings(
    encoder: EncoderArtifacts, encoder_fp16: EncoderArtifacts, fp16_golden: Path
) -> None:
    seen = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's "Exact calculation unsuccessful" printed on every gate
        verdict = run_gate(encoder_fp16.onnx, [fp16_golden], baseline=encoder.onnx,
                           on_compare=lambda _g, cand, base: seen.update(cand=cand, base=base))
    assert verdict.verdict == "pass", [(c.name, c.summary) for c in verdict.checks if not c.ok]
    (drift,) = _by_prefix(verdict.checks, "drift:")
    assert drift.status == "pass"
    assert drift.measured["tested_columns"] == 384
    # the near-constant dimensions moved detectably (fp16 zeroes them) and are reported as negligible, with sizes
    assert drift.measured["negligible_columns"] > 0
    assert drift.measured["max_effect"] < drift.threshold["effect_floor"]
    assert "within the effect floor" in drift.summary
    shift = paired_output_shift(seen["base"]["embedding"], seen["cand"]["embedding"], alpha=0.01)
    near_constant = list(NEAR_CONSTANT_DIMS[:2])  # the third is an exact constant: fp16 maps it to another one
    assert shift.significant[near_constant].all()  # what failed the gate with p = 1e-100 and worse
    assert not shift.drifted[near_constant].any()
    (cosine,) = _by_prefix(verdict.checks, "baseline:golden:embedding:cosine")
    assert cosine.measured["value"] > 0.99999


def test_a_genuinely_different_model_fails_with_the_size_of_each_shift(
    encoder: EncoderArtifacts, encoder_other: EncoderArtifacts, other_golden: Path
) -> None:
    verdict = run_gate(encoder_other.onnx, [other_golden], baseline=encoder.onnx, latency=False)
    assert verdict.verdict == "fail"
    (drift,) = _by_prefix(verdict.checks, "drift:")
    assert drift.status == "fail"
    first = drift.details["shifts"][0]
    assert first["effect"] > 10 * drift.threshold["effect_floor"]
    assert f"col {first['column']} by {first['effect']:.3g}" in drift.summary
    assert _by_prefix(verdict.checks, "baseline:golden:embedding:cosine")[0].status == "fail"
    assert _by_prefix(verdict.checks, "baseline:golden:embedding:neighbor_agreement")[0].status == "fail"


def test_embedding_role_is_guessed_and_compared_by_cosine_not_argmax(
    encoder: EncoderArtifacts, encoder_fp16: EncoderArtifacts, fp16_golden: Path
) -> None:
    golden = GoldenSet.load(fp16_golden)
    assert golden.roles == {"embedding": "embedding"}
    assert "unit L2 norm" in golden.provenance["roles"]["embedding"]["evidence"]
    verdict = run_gate(encoder_fp16.onnx, [fp16_golden], baseline=encoder.onnx, latency=False)
    names = [c.name for c in verdict.checks]
    assert "baseline:golden:embedding:top1_agreement" not in names  # no argmax of embedding dimensions
    assert "baseline:golden:embedding:cosine" in names
    assert "baseline:golden:embedding:neighbor_agreement" in names
    assert "golden:golden:cpu:embedding:cosine" in names


def test_build_says_what_it_guessed_and_how_to_override(encoder: EncoderArtifacts, tmp_path: Path) -> None:
    args = ["golden", "build", "--model", str(encoder.onnx), "--inputs", str(encoder.inputs), "--repeats", "1"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "g")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "embedding [embedding]" in result.output
    assert "role embedding guessed: every row has unit L2 norm" in result.output
    assert "--role embedding=scores|tensor" in result.output
    forced = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "g2"), "--role", "embedding=tensor"],
                                catch_exceptions=False)
    assert forced.exit_code == 0, forced.output
    assert "embedding [tensor]" in forced.output
    assert "guessed" not in forced.output
    assert GoldenSet.load(tmp_path / "g2").provenance["roles"]["embedding"]["overridden"] is True


def test_no_latency_timing_without_a_budget(encoder: EncoderArtifacts, encoder_golden: GoldenSet,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from goldwatch.runtimes.onnx import OnnxRuntime

    calls = []
    real = OnnxRuntime.run

    def counting(self, inputs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(self, inputs)

    monkeypatch.setattr(OnnxRuntime, "run", counting)
    verdict = run_gate(encoder.onnx, [encoder_golden.path])  # type: ignore[list-item]
    (lat,) = _by_prefix(verdict.checks, "latency:")
    assert lat.status == "skip"
    assert "no latency budget set" in lat.summary
    assert lat.measured["repeats"] == 1
    assert calls == []  # the golden replay is the only inference
    budget = run_gate(encoder.onnx, [encoder_golden.path],  # type: ignore[list-item]
                      thresholds=GateThresholds(latency_budget_ms_p95=1e6, latency_repeats=3))
    (lat,) = _by_prefix(budget.checks, "latency:")
    assert lat.status == "pass"
    assert lat.measured["repeats"] == 3
    assert len(calls) == 3 + 2  # the timed batches and the warm-up


def test_golden_distribution_and_gate_drift_test_the_same_columns(
    encoder: EncoderArtifacts, encoder_fp16: EncoderArtifacts, encoder_golden: GoldenSet
) -> None:
    """Replaying the base set through the fp16 model puts answers outside tolerance: the distribution check runs,
    on all 384 columns like the gate's drift check, and calls the tiny shifts negligible."""
    report = replay(encoder_fp16.onnx, encoder_golden)
    (dist,) = [c for c in report.checks if c.name.endswith(":distribution")]
    assert dist.threshold["columns"] == 384
    assert dist.status == "pass", dist.summary
    assert dist.measured["negligible"] > 0
