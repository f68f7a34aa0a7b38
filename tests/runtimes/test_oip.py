"""The Open Inference Protocol v2 runtime: protocol details against a mock transport, then a real MLServer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.errors import DataError, ServerUnreachableError
from goldwatch.examples import ExampleArtifacts
from goldwatch.golden_sets import build_golden_set, replay
from goldwatch.runtimes import load_model
from goldwatch.runtimes.mlserver_testing import MLServerProcess, free_ports
from goldwatch.runtimes.oip import OipRuntime

META = {
    "name": "m",
    "versions": ["1"],
    "platform": "test",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
    "outputs": [{"name": "y", "datatype": "INT64", "shape": [-1]}],
}


def _transport(infer_status: int = 200, seen: list[dict] | None = None) -> httpx.MockTransport:  # type: ignore[type-arg]
    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path == "/v2/models/m":
            return httpx.Response(200, json=META)
        if request.method == "GET" and path in ("/v2/health/ready", "/v2/models/m/ready"):
            return httpx.Response(200)
        if request.method == "POST" and path == "/v2/models/m/infer":
            body = json.loads(request.content)
            if seen is not None:
                seen.append(body)
            if infer_status != 200:
                return httpx.Response(infer_status, json={"error": "boom"})
            x = np.asarray(body["inputs"][0]["data"], np.float32).reshape(body["inputs"][0]["shape"])
            y = (x.sum(axis=1) > 0).astype(np.int64)
            return httpx.Response(200, json={"outputs": [{"name": "y", "datatype": "INT64", "shape": [len(y)],
                                                          "data": y.tolist()}]})
        return httpx.Response(404, json={"error": "unknown"})

    return httpx.MockTransport(handle)


def _runtime(**kwargs) -> OipRuntime:  # type: ignore[no-untyped-def]
    client = httpx.Client(base_url="http://server:8080", transport=_transport(**kwargs))
    return OipRuntime("http://server:8080/v2/models/m", client=client)


def test_signature_from_metadata_and_json_tensor_round_trip() -> None:
    seen: list[dict] = []  # type: ignore[type-arg]
    rt = _runtime(seen=seen)
    assert rt.signature.inputs[0].shape == (None, 2)
    assert rt.signature.outputs[0].dtype == "int64"
    x = np.array([[1.5, -3.25], [0.1, 0.2]], np.float32)
    out = rt.run({"x": x})
    assert out["y"].tolist() == [0, 1]
    assert out["y"].dtype == np.int64
    sent = seen[0]["inputs"][0]
    assert sent["datatype"] == "FP32"
    assert sent["shape"] == [2, 2]
    np.testing.assert_array_equal(np.asarray(sent["data"], np.float32), x.reshape(-1))  # float32 exact via JSON


def test_server_errors_are_unreachable_and_client_errors_are_input_errors() -> None:
    with pytest.raises(ServerUnreachableError, match="server error: HTTP 500"):
        _runtime(infer_status=500).run({"x": np.zeros((1, 2), np.float32)})
    with pytest.raises(DataError, match="refused the inference request: HTTP 400: boom"):
        _runtime(infer_status=400).run({"x": np.zeros((1, 2), np.float32)})


def test_unreachable_server_is_a_clear_error() -> None:
    (port,) = free_ports(1)
    with pytest.raises(ServerUnreachableError, match="server unreachable"):
        load_model(f"http://127.0.0.1:{port}/v2/models/m", timeout=2.0)


@pytest.mark.integration
class TestAgainstMLServer:
    def test_metadata_signature_and_answers_match_the_local_model(
        self, mlserver: MLServerProcess, tabular_rt: ExampleArtifacts
    ) -> None:
        remote = load_model(mlserver.model_url("tabular"))
        assert remote.signature == tabular_rt.signature
        assert remote.identity.kind == "oip"
        assert remote.identity.name == "tabular"
        x = dict(np.load(tabular_rt.inputs))
        local = load_model(tabular_rt.onnx).run(x)["logits"]  # type: ignore[arg-type]
        np.testing.assert_array_equal(remote.run(x)["logits"], local)  # same ORT, float32 exact through JSON
        remote.close()

    def test_versioned_url(self, mlserver: MLServerProcess) -> None:
        remote = load_model(mlserver.model_url("tabular-v", "v2"))
        assert remote.identity.version == "v2"
        assert remote.run({"x": np.zeros((2, 8), np.float32)})["logits"].shape == (2, 3)

    def test_golden_replay_over_oip_passes_and_unknown_model_is_unreachable(
        self, mlserver: MLServerProcess, tabular_rt: ExampleArtifacts, tmp_path: Path
    ) -> None:
        golden = build_golden_set(tabular_rt.models["state_dict"], tabular_rt.inputs, tmp_path / "g",
                                  labels=tabular_rt.labels, repeats=2)
        report = replay(mlserver.model_url("tabular"), golden, batch_size=100)
        assert report.ok, [c for c in report.checks if not c.ok]
        with pytest.raises(ServerUnreachableError, match="HTTP 404"):
            replay(mlserver.model_url("no-such-model"), golden)

    def test_unloaded_model_is_not_ready_then_ready_again(self, mlserver: MLServerProcess) -> None:
        remote = OipRuntime(mlserver.model_url("tabular-v"))
        mlserver.unload("tabular-v")
        try:
            assert not remote.is_ready()
            with pytest.raises(ServerUnreachableError):
                remote.run({"x": np.zeros((1, 8), np.float32)})
        finally:
            mlserver.load("tabular-v")
        assert remote.is_ready()

    def test_cli_replay_against_the_server(
        self, mlserver: MLServerProcess, tabular_rt: ExampleArtifacts, tmp_path: Path
    ) -> None:
        build_golden_set(tabular_rt.onnx, tabular_rt.inputs, tmp_path / "g", repeats=1)  # type: ignore[arg-type]
        ok = CliRunner().invoke(main, ["golden", "replay", "--model", mlserver.model_url("tabular"),
                                       "--golden", str(tmp_path / "g")])
        assert ok.exit_code == 0, ok.output
        (port,) = free_ports(1)
        exe = Path(sys.executable).with_name("goldwatch")
        down = subprocess.run(
            [str(exe), "golden", "replay", "--model", f"http://127.0.0.1:{port}/v2/models/tabular",
             "--golden", str(tmp_path / "g")],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert down.returncode == 2
        assert "server unreachable" in down.stderr
        assert down.stderr.count("\n") == 1
