"""Finding 8: a golden set belongs to the version it was built from; the gate says so when it is not the
candidate's, and the documented workflow (the candidate's own set + --baseline) passes a harmless candidate."""

from __future__ import annotations

from pathlib import Path

from goldwatch.examples.encoder import EncoderArtifacts
from goldwatch.golden_sets import GoldenSet
from goldwatch.watchdog.gate.runner import run_gate


def test_gating_a_candidate_with_the_old_versions_golden_set_says_why_it_fails(
    encoder_fp16: EncoderArtifacts, encoder_golden: GoldenSet, encoder: EncoderArtifacts
) -> None:
    verdict = run_gate(encoder_fp16.onnx, [Path(encoder_golden.path)], baseline=encoder.onnx,  # type: ignore[arg-type]
                       latency=False)
    assert verdict.verdict == "fail"  # exact answers of another model: the fp16 copy is outside their tolerance
    (note,) = [c for c in verdict.checks if c.name == "golden:golden:built_from"]
    assert note.status == "fail"
    assert "was built from another model" in note.summary
    assert str(encoder.onnx) in note.summary
    assert "goldwatch golden build --model CANDIDATE" in note.summary
    assert note.measured["failed_golden_checks"] > 0


def test_another_file_with_the_same_answers_is_noted_not_failed(encoder: EncoderArtifacts,
                                                                encoder_golden: GoldenSet) -> None:
    verdict = run_gate(encoder.models["export"], [Path(encoder_golden.path)], latency=False)  # type: ignore[arg-type]
    assert verdict.verdict == "pass", [(c.name, c.summary) for c in verdict.checks if not c.ok]
    (note,) = [c for c in verdict.checks if c.name == "golden:golden:built_from"]
    assert note.status == "pass"
    assert "reproduces its answers" in note.summary


def test_the_candidates_own_golden_set_has_no_such_note(encoder: EncoderArtifacts,
                                                        encoder_golden: GoldenSet) -> None:
    verdict = run_gate(encoder.onnx, [Path(encoder_golden.path)], latency=False)  # type: ignore[arg-type]
    assert not [c for c in verdict.checks if c.name.endswith(":built_from")]
