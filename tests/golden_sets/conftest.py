"""Example models and golden sets shared by the golden-set tests (built once per session: training takes seconds)."""

from __future__ import annotations

import pytest

from goldwatch.examples import ExampleArtifacts, write_example
from goldwatch.golden_sets import GoldenSet, build_golden_set


@pytest.fixture(scope="session")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> ExampleArtifacts:
    return write_example("tabular", tmp_path_factory.mktemp("tabular"), seed=0, formats=("onnx", "torch"))


@pytest.fixture(scope="session")
def conv(tmp_path_factory: pytest.TempPathFactory) -> ExampleArtifacts:
    return write_example("conv", tmp_path_factory.mktemp("conv"), seed=0, formats=("onnx", "torch", "export"))


@pytest.fixture(scope="session")
def tabular_golden(tabular: ExampleArtifacts) -> GoldenSet:
    """Built from the ONNX file, with labels; read-only for tests (copy it before tampering)."""
    assert tabular.onnx is not None
    return build_golden_set(tabular.onnx, tabular.inputs, tabular.out_dir / "golden", labels=tabular.labels, repeats=3)


@pytest.fixture(scope="session")
def conv_golden(conv: ExampleArtifacts) -> GoldenSet:
    assert conv.onnx is not None
    return build_golden_set(conv.onnx, conv.inputs, conv.out_dir / "golden", labels=conv.labels, repeats=3)

