"""A sentence-embedding transformer as a user meets one (goldwatch.examples.encoder), exported once per session.

``encoder``: the published model in every format, its sentences, tokens and tokenizer; ``encoder_fp16``: the same
model with every weight rounded to fp16 (a harmless candidate); ``encoder_other``: another seed (a genuinely
different model); ``encoder_golden``: the golden set built from ``encoder``'s ONNX file.
"""

from __future__ import annotations

import pytest

from goldwatch.examples.encoder import EncoderArtifacts, write_sentence_encoder
from goldwatch.golden_sets import GoldenSet, build_golden_set


@pytest.fixture(scope="session")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> EncoderArtifacts:
    return write_sentence_encoder(tmp_path_factory.mktemp("encoder"), seed=0)


@pytest.fixture(scope="session")
def encoder_fp16(tmp_path_factory: pytest.TempPathFactory) -> EncoderArtifacts:
    return write_sentence_encoder(tmp_path_factory.mktemp("encoder-fp16"), seed=0, fp16=True, formats=("onnx",),
                                  tokenizer=False)


@pytest.fixture(scope="session")
def encoder_other(tmp_path_factory: pytest.TempPathFactory) -> EncoderArtifacts:
    return write_sentence_encoder(tmp_path_factory.mktemp("encoder-other"), seed=1, formats=("onnx",),
                                  tokenizer=False)


@pytest.fixture(scope="session")
def encoder_golden(encoder: EncoderArtifacts) -> GoldenSet:
    """Built from the ONNX file; read-only for tests (copy it before tampering)."""
    return build_golden_set(encoder.onnx, encoder.inputs, encoder.out_dir / "golden", repeats=2)
