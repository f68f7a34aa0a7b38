"""Helpers for the live-drift tests: CloudEvents exactly as KServe's agent sends them, bodies, a real HTTP server.

KServe's logger (pkg/logger/worker.go, cloudevents sdk-go v2 in binary mode, Go's net/http client) sends, for each
logged request and response, a POST whose headers are written by sdk-go's ``httpRequestWriter``: the CloudEvents
attributes as ``Ce-`` headers in Go's canonical case (``textproto.CanonicalMIMEHeaderKey`` for the spec attributes;
extensions capitalised after the prefix), ``Ce-Time`` and ``Ce-Recordedtime`` in RFC 3339 with nanoseconds (UTC),
``Ce-Metadata`` the JSON of the forwarded headers, ``Content-Type`` the inference request's own; Go's client adds
``User-Agent: Go-http-client/1.1`` and ``Accept-Encoding: gzip``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from goldwatch.runtimes.mlserver_testing import free_ports


def rfc3339_nano(ts: float) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zeros of the fraction dropped."""
    whole = int(ts)
    nanos = round((ts - whole) * 1e9)
    base = dt.datetime.fromtimestamp(whole, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{nanos:09d}".rstrip("0")
    return base + (f".{frac}" if frac else "") + "Z"


def kserve_headers(ce_id: str, kind: str, *, model: str = "fraud", when: float | None = None,
                   content_type: str = "application/json", annotations: dict[str, str] | None = None
                   ) -> list[tuple[str, str]]:
    """The headers of one event as the agent sends it (a list: the order and case Go writes)."""
    when = time.time() if when is None else when
    headers = [
        ("Host", "goldwatch.default.svc.cluster.local:9180"),
        ("User-Agent", "Go-http-client/1.1"),
        ("Ce-Component", "predictor"),
        ("Ce-Endpoint", "default"),
        ("Ce-Id", ce_id),
        ("Ce-Inferenceservicename", model),
        ("Ce-Metadata", json.dumps({"X-Request-Id": [ce_id]}, separators=(",", ":"))),
        ("Ce-Namespace", "default"),
        ("Ce-Recordedtime", rfc3339_nano(when + 0.000123)),
        ("Ce-Source", "http://localhost:9081/"),
        ("Ce-Specversion", "1.0"),
        ("Ce-Time", rfc3339_nano(when)),
        ("Ce-Type", f"org.kubeflow.serving.inference.{kind}"),
        ("Content-Type", content_type),
        ("Accept-Encoding", "gzip"),
    ]
    if annotations:
        headers.insert(2, ("Ce-Annotations", json.dumps(annotations, separators=(",", ":"))))
    return headers


def seldon_headers(ce_id: str, request_id: str, kind: str, *, model: str = "fraud") -> list[tuple[str, str]]:
    """Seldon's executor: a Ce-Id per event, the pair joined by Ce-Requestid."""
    return [("Ce-Id", ce_id), ("Ce-Specversion", "1.0"), ("Ce-Source", "http://:8000/"),
            ("Ce-Type", f"io.seldon.serving.inference.{kind}"), ("Ce-Requestid", request_id),
            ("Ce-Modelid", f"{model}-predictor"), ("Ce-Inferenceservicename", model), ("Ce-Namespace", "seldon"),
            ("Ce-Endpoint", "default"), ("Ce-Time", rfc3339_nano(time.time())), ("Content-Type", "application/json")]


def lower(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """What an ASGI server hands the sink: lower-case header names."""
    return {k.lower(): v for k, v in headers}


def v2_request(x: np.ndarray, *, name: str = "input-0", parameters: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"id": "1", "inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                                                  "data": x.ravel().tolist()}]}
    if parameters:
        body["parameters"] = parameters
    return json.dumps(body).encode()


def v2_response(p: np.ndarray, *, version: str | None = "1", name: str = "output-0") -> bytes:
    body: dict[str, Any] = {"model_name": "fraud", "id": "1",
                            "outputs": [{"name": name, "shape": list(p.shape), "datatype": "FP32",
                                         "data": p.ravel().tolist()}]}
    if version is not None:
        body["model_version"] = version
    return json.dumps(body).encode()


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """A real uvicorn server on a free 127.0.0.1 port in a thread; yields its base URL, stops it after."""
    import uvicorn

    port = free_ports(1)[0]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def write_golden(path: Any, *, shift: float = 0.0, n: int = 2000, seed: int = 0) -> Any:
    """A golden set of ``n`` rows (3 inputs, 2 class scores), no model needed; ``shift`` moves the inputs."""
    from goldwatch.golden_sets import GoldenSet
    from goldwatch.golden_sets.calibrate import calibrate
    from goldwatch.runtimes import ModelIdentity, Signature, TensorSpec

    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, size=(n, 3)).astype(np.float32)
    logits = np.column_stack([x[:, 0], -x[:, 0]]).astype(np.float32)
    GoldenSet(
        model=ModelIdentity(kind="test", source="mem"),
        signature=Signature(inputs=(TensorSpec("x", "float32", (None, 3)),),
                            outputs=(TensorSpec("scores", "float32", (None, 2)),)),
        inputs={"x": x}, expected={"scores": logits},
        tolerances=calibrate({"scores": logits}, [("cpu", {"scores": logits})], safety_factor=4.0),
        roles={"scores": "scores"},
    ).save(path)
    return path
