"""Example models for the runtime tests, and one MLServer per session serving the tabular ONNX model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from goldwatch.examples import ExampleArtifacts, write_example
from goldwatch.runtimes.mlserver_testing import MLServerProcess, start_mlserver, write_model_settings


@pytest.fixture(scope="session")
def tabular_rt(tmp_path_factory: pytest.TempPathFactory) -> ExampleArtifacts:
    return write_example("tabular", tmp_path_factory.mktemp("rt-tabular"), formats=("onnx", "torch", "export"))


@pytest.fixture(scope="session")
def mlserver(tabular_rt: ExampleArtifacts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServerProcess]:
    """A real MLServer on 127.0.0.1 (free HTTP, gRPC, metrics ports) serving ``tabular`` and ``tabular-v``."""
    repo = tmp_path_factory.mktemp("mlserver-repo")
    write_model_settings(repo, "tabular", uri=tabular_rt.onnx)
    write_model_settings(repo, "tabular-v", uri=tabular_rt.onnx, version="v2")
    server = start_mlserver(repo, timeout=120)
    try:
        server.wait_ready(model="tabular")
        yield server
    finally:
        server.stop()
