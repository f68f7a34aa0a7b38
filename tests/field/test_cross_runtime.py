"""Finding 4: a golden set built from the ONNX export replays through the TorchScript and .pt2 exports, whose single
output is called ``output`` -- matched by position, or named with --output-map."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.examples.encoder import EncoderArtifacts
from goldwatch.golden_sets import GoldenSet, replay
from goldwatch.runtimes import load_model
from goldwatch.watchdog.gate.runner import run_gate


@pytest.mark.parametrize("fmt", ["torchscript", "export"])
def test_single_output_models_match_by_position(encoder: EncoderArtifacts, encoder_golden: GoldenSet,
                                                fmt: str) -> None:
    assert load_model(encoder.models[fmt]).signature.output_names == ["output"]
    report = replay(encoder.models[fmt], encoder_golden)
    assert report.ok, [(c.name, c.summary) for c in report.checks if not c.ok]
    (note,) = [c for c in report.checks if c.name == "golden:output_map"]
    assert note.summary == "outputs matched by position (one output each): model 'output' -> golden 'embedding'"
    assert list(report.outputs) == ["embedding"]


def test_output_map_option_on_the_cli(encoder: EncoderArtifacts, encoder_golden: GoldenSet) -> None:
    base = ["golden", "replay", "--model", str(encoder.models["torchscript"]), "--golden", str(encoder_golden.path)]
    ok = CliRunner().invoke(main, [*base, "--output-map", "output=embedding", "--json"], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
    names = [c["name"] for c in json.loads(ok.output)["checks"]]
    assert "golden:output_map" in names
    bad = CliRunner().invoke(main, [*base, "--output-map", "logits=embedding"], catch_exceptions=False)
    assert bad.exit_code == 2
    assert "--output-map names model output(s) ['logits'] the model does not have" in bad.output
    malformed = CliRunner().invoke(main, [*base, "--output-map", "output"], catch_exceptions=False)
    assert malformed.exit_code == 2
    assert "expected MODEL_OUTPUT=GOLDEN_OUTPUT" in malformed.output


def test_gate_compares_an_onnx_candidate_with_a_torchscript_baseline(encoder: EncoderArtifacts,
                                                                     encoder_golden: GoldenSet) -> None:
    verdict = run_gate(encoder.onnx, [encoder_golden.path], baseline=encoder.models["torchscript"],  # type: ignore[list-item]
                       latency=False)
    assert verdict.verdict == "pass", [(c.name, c.summary) for c in verdict.checks if not c.ok]
    assert any(c.name == "baseline:golden:embedding:cosine" for c in verdict.checks)
