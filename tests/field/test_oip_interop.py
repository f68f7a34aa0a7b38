"""Interoperability of the OIP v2 client: loopback never through a proxy, server errors on one line, and servers
whose metadata lists no inputs (KServe's default). Real HTTP on 127.0.0.1 (threaded stdlib servers)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import numpy as np
import pytest

from goldwatch._http import client as http_client
from goldwatch.errors import DataError, GoldenSetError
from goldwatch.golden_sets import build_golden_set, replay
from goldwatch.runtimes import ModelIdentity, Signature, TensorSpec
from goldwatch.runtimes.oip import OipRuntime


class _Oip(BaseHTTPRequestHandler):
    """A model answering y = x.sum(axis=1, keepdims=True), with or without input metadata."""

    publish_inputs = True

    def log_message(self, *args: object) -> None:  # keep the test output clean
        return

    def _send(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v2/models/m":
            inputs = [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}] if self.publish_inputs else []
            outputs = [{"name": "y", "datatype": "FP64", "shape": [-1, 1]}] if self.publish_inputs else []
            self._send(200, {"name": "m", "platform": "", "inputs": inputs, "outputs": outputs})
        else:
            self._send(200, {})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        tensor = body["inputs"][0]
        if tensor["name"] != "x":
            self._send(400, {"error": f"unknown input {tensor['name']!r}\nTraceback (most recent call last):\n"
                                      "  File \"server.py\", line 1\nValueError:   bad input"})
            return
        x = np.asarray(tensor["data"], np.float64).reshape(tensor["shape"])
        y = x.sum(axis=1, keepdims=True)
        self._send(200, {"outputs": [{"name": "y", "datatype": "FP64", "shape": list(y.shape),
                                      "data": y.reshape(-1).tolist()}]})


class _Proxy(BaseHTTPRequestHandler):
    """A proxy that cannot reach anything: it records the request and answers 502."""

    seen: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        return

    def _refuse(self) -> None:
        self.seen.append(self.path)
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_CONNECT = _refuse


def _serve(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[str]:
    server = ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def oip_server() -> Iterator[str]:
    _Oip.publish_inputs = True
    yield from _serve(_Oip)


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    _Proxy.seen = []
    for gen in (_serve(_Proxy),):
        url = next(gen)
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(var, url)
        for var in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(var, raising=False)
        yield _Proxy.seen
        gen.close()


def test_loopback_never_goes_through_the_environments_proxy(oip_server: str, proxy: list[str]) -> None:
    rt = OipRuntime(f"{oip_server}/v2/models/m", timeout=5.0)
    out = rt.run({"x": np.ones((2, 3), np.float32)})
    assert out["y"].tolist() == [[3.0], [3.0]]
    rt.close()
    assert proxy == []


def test_any_loopback_address_is_direct_and_remote_hosts_keep_the_proxy(proxy: list[str]) -> None:
    for url in _serve(_Oip, host="127.0.0.2"):  # not one of the usual names: found from the URL
        with http_client(urls=[url], timeout=5.0) as client:
            assert client.get(f"{url}/v2/models/m").status_code == 200
    assert proxy == []
    with http_client(timeout=5.0) as client:
        assert client.get("http://models.example.invalid/v2/health/ready").status_code == 502  # the proxy's answer
    assert proxy == ["http://models.example.invalid/v2/health/ready"]


def test_reload_adapter_and_alert_sinks_share_the_rule(oip_server: str, proxy: list[str]) -> None:
    from goldwatch.watchdog.registry.reload import _client

    with _client(5.0, oip_server) as client:
        assert client.get(f"{oip_server}/v2/health/ready").status_code == 200
    assert proxy == []


def test_a_servers_error_body_becomes_one_line(oip_server: str) -> None:
    rt = OipRuntime(f"{oip_server}/v2/models/m", timeout=5.0)
    rt.signature = Signature(inputs=(TensorSpec("z", "float32", (None, 3)),), outputs=rt.signature.outputs)
    with pytest.raises(DataError) as info:
        rt.run({"z": np.ones((1, 3), np.float32)})
    text = str(info.value)
    assert "\n" not in text
    assert "unknown input 'z' Traceback (most recent call last): File \"server.py\", line 1 ValueError: bad input" \
        in text


def test_a_server_without_input_metadata_replays_with_the_golden_signature(oip_server: str, tmp_path) -> None:
    url = f"{oip_server}/v2/models/m"
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    golden = build_golden_set(OipRuntime(url, timeout=5.0), {"x": x}, tmp_path / "golden", repeats=1)
    _Oip.publish_inputs = False
    bare = OipRuntime(url, timeout=5.0)
    assert bare.signature.inputs == ()
    assert bare.publishes_inputs is False
    report = replay(bare, golden)
    assert report.ok, [(c.name, c.summary) for c in report.checks if not c.ok]
    (note,) = [c for c in report.checks if c.name == "golden:signature"]
    assert "the server publishes no input metadata" in note.summary
    assert "x float32" in note.summary


def test_a_local_model_without_inputs_gets_the_no_metadata_message(tmp_path) -> None:
    class Bare:
        kind, device = "custom", "cpu"
        signature = Signature(inputs=(), outputs=(TensorSpec("y"),))
        identity = ModelIdentity(kind="custom", source="bare")

        def run(self, inputs):  # type: ignore[no-untyped-def]
            return {"y": np.zeros((len(inputs["x"]), 1))}

        def close(self) -> None:
            return None

    class Described(Bare):
        signature = Signature(inputs=(TensorSpec("x", "float32", (None, 3)),), outputs=(TensorSpec("y"),))

    golden = build_golden_set(Described(), {"x": np.ones((8, 3), np.float32)}, tmp_path / "g", repeats=1)
    with pytest.raises(GoldenSetError, match="publishes no input metadata"):
        replay(Bare(), golden)


def test_http_client_with_a_given_transport_uses_it_for_loopback_too() -> None:
    seen = []
    transport = httpx.MockTransport(lambda request: seen.append(str(request.url)) or httpx.Response(204))
    with http_client(transport=transport) as client:
        client.get("http://127.0.0.1:1/x")
    assert seen == ["http://127.0.0.1:1/x"]


def test_a_golden_set_can_be_built_against_a_server_without_metadata(oip_server: str, tmp_path) -> None:
    _Oip.publish_inputs = False
    x = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", x=x)
    golden = build_golden_set(f"{oip_server}/v2/models/m", tmp_path / "inputs.npz", tmp_path / "g", repeats=1)
    assert golden.signature.input_names == ["x"]
    assert golden.signature.inputs[0].dtype == "float32"
    assert golden.output_names == ["y"]
    np.testing.assert_allclose(golden.expected["y"][:, 0], x.astype(np.float64).sum(axis=1), rtol=1e-6)
    assert replay(f"{oip_server}/v2/models/m", tmp_path / "g").ok
