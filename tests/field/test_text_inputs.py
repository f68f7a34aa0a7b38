"""Finding 9: golden sets built from sentences with --tokenizer DIR (Hugging Face tokenizers, built in code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.examples.encoder import EncoderArtifacts
from goldwatch.golden_sets import GoldenSet, build_golden_set, replay

pytest.importorskip("tokenizers", reason="the text extra (Hugging Face tokenizers) is not installed")


def test_build_from_sentences_stores_the_tokens_the_model_was_given(encoder: EncoderArtifacts,
                                                                     tmp_path: Path) -> None:
    assert encoder.tokenizer is not None
    args = ["golden", "build", "--model", str(encoder.onnx), "--inputs", str(encoder.sentences),
            "--tokenizer", str(encoder.tokenizer), "--out", str(tmp_path / "g"), "--repeats", "1"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    golden = GoldenSet.load(tmp_path / "g")
    with np.load(encoder.inputs) as pre_tokenized:
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            np.testing.assert_array_equal(golden.inputs[name], pre_tokenized[name])
            assert golden.inputs[name].dtype == np.int64
    text = golden.provenance["text_inputs"]
    assert text["texts"] == 128
    assert len(text["tokenizer_sha256"]) == 64
    assert replay(encoder.models["export"], golden).ok


def test_max_length_and_text_tables(encoder: EncoderArtifacts, tmp_path: Path) -> None:
    table = tmp_path / "texts.csv"
    table.write_text("id,text\n1,the model checks a golden answer\n2,every server keeps the weights on disk\n")
    golden = build_golden_set(encoder.onnx, table, None, tokenizer=encoder.tokenizer, max_length=6, repeats=1)
    assert golden.inputs["input_ids"].shape == (2, 6)
    assert golden.inputs["attention_mask"].tolist() == [[1] * 6, [1] * 6]  # truncated


def test_text_without_a_tokenizer_says_how(encoder: EncoderArtifacts, tmp_path: Path) -> None:
    table = tmp_path / "texts.csv"
    table.write_text("text\nthe model checks a golden answer\n")
    args = ["golden", "build", "--model", str(encoder.onnx), "--inputs", str(table), "--out", str(tmp_path / "g")]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 2
    assert "--tokenizer DIR" in result.output
    missing = CliRunner().invoke(main, [*args, "--tokenizer", str(tmp_path)], catch_exceptions=False)
    assert missing.exit_code == 2
    assert "no tokenizer.json" in missing.output
