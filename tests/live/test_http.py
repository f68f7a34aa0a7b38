"""The routes over real HTTP (uvicorn on 127.0.0.1): the KServe sink, observe, the JSON and HTML drift views,
Prometheus metrics, and a sender far faster than the consumer."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pytest

pytest.importorskip("starlette", reason="the routes need the serve extra (starlette, uvicorn)")
pytest.importorskip("uvicorn", reason="the routes need the serve extra (starlette, uvicorn)")

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from goldwatch.config import LiveDriftModelConfig, LiveDriftSection
from goldwatch.watchdog.live import LiveDrift, LiveDriftCollector, ReferenceStore
from goldwatch.watchdog.live.payload import Tensor, Tensors
from goldwatch.watchdog.live.reference import build_reference
from goldwatch.watchdog.live.routes import live_drift_routes
from tests.live.support import kserve_headers, serve, v2_request, v2_response

F = 4


def make_live(**overrides) -> LiveDrift:
    cfg = {"name": "fraud", "aliases": ["fraud-isvc"], "window_rows": 400, "min_window_rows": 100,
           "metrics_features": ["x1"],
           "inputs": [{"name": f"x{i}", "tensor": "input-0", "index": i} for i in range(F)],
           "outputs": [{"name": "p", "tensor": "output-0", "index": 1}]} | overrides
    live = LiveDrift.from_config(LiveDriftSection(models=[LiveDriftModelConfig(**cfg)]))
    rng = np.random.default_rng(0)
    mon = live.monitor("fraud")
    mon.references = ReferenceStore.fixed(build_reference(
        Tensors({"input-0": Tensor(rng.normal(size=(20_000, F)), "FP64")}),
        Tensors({"output-0": Tensor(rng.random(size=(20_000, 2)), "FP64")}), mon.schema, version=None,
        source="generated"))
    return live


def app_for(live: LiveDrift) -> Starlette:
    registry = CollectorRegistry()
    registry.register(LiveDriftCollector(live))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    async def authorize(request: Request) -> Response | None:
        if request.headers.get("authorization") != "Bearer s3cret":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return None

    return Starlette(routes=[*live_drift_routes(live, authorize=authorize), Route("/metrics", metrics)])


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_kserve_events_over_http_fill_windows_and_show_in_json_html_and_metrics() -> None:
    live = make_live()
    live.start()
    rng = np.random.default_rng(2)
    try:
        with serve(app_for(live)) as url, httpx.Client(base_url=url, timeout=10) as client:
            latencies = []
            for i in range(10):
                ce_id = f"6a572f54-{i:04d}"
                x = rng.normal(0.6 if i >= 5 else 0.0, 1.0, size=(80, F))  # the second half drifts
                for kind, body in (("response", v2_response(rng.random(size=(80, 2)))), ("request", v2_request(x))):
                    path = "/v1/cloudevents" if i % 2 else "/v1/models/fraud-isvc/cloudevents"
                    t0 = time.perf_counter()
                    r = client.post(path, content=body, headers=kserve_headers(ce_id, kind))
                    latencies.append(time.perf_counter() - t0)
                    assert (r.status_code, r.content) == (200, b"")
            wait_for(lambda: live.monitor("fraud").state.windows >= 2)
            assert sorted(latencies)[len(latencies) // 2] < 0.1  # the sink answers without waiting for the tests
            status = client.get("/v1/models/fraud/drift").json()
            assert status["ingest"]["pairs"] == 10
            assert status["ingest"]["rows"] == 800
            assert [w["index"] for w in status["windows"]] == [1, 0]
            assert status["windows"][1]["drifted"] is False
            assert status["windows"][0]["drifted"] is True
            assert status["version"] == "1"
            page = client.get("/v1/models/fraud/drift.html")
            assert page.headers["content-type"].startswith("text/html")
            assert page.text.count("<svg") >= 2
            assert "x1" in page.text
            families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
            samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for f in families.values() for s in f.samples}
            assert samples[("goldwatch_live_drift_events_total", (("model", "fraud"), ("outcome", "pairs")))] == 10
            assert samples[("goldwatch_live_drift_drifted", (("model", "fraud"), ("part", "inputs")))] == 1
            assert ("goldwatch_live_drift_feature_statistic",
                    (("feature", "x1"), ("model", "fraud"), ("part", "inputs"))) in samples
            features = {dict(k[1]).get("feature") for k in samples if k[0].startswith("goldwatch_live_drift_feature")}
            assert features == {"x1"}  # per-feature series only for the configured features
            assert client.get("/v1/models/nope/drift").status_code == 404
    finally:
        live.stop()


def test_sink_answers_errors_with_one_line() -> None:
    live = make_live(max_queue_events=5)
    with serve(app_for(live)) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.post("/v1/cloudevents", content=b"{}").status_code == 400  # no ce-* headers
        headers = dict(kserve_headers("x", "request", model="other"))
        r = client.post("/v1/cloudevents", content=b"{}", headers=headers)
        assert r.status_code == 404
        assert "not watched" in r.json()["error"]
        headers = dict(kserve_headers("x", "request"))
        headers["Ce-Type"] = "dev.knative.apiserver.resource.add"  # another event type on a shared broker
        assert client.post("/v1/cloudevents", content=b"{}", headers=headers).status_code == 200
        big = b"x" * (live.max_body_bytes + 1)
        assert client.post("/v1/cloudevents", content=big, headers=kserve_headers("big", "request")).status_code \
            == 413
        structured = {"specversion": "1.0", "id": "s-1", "source": "http://x/",
                      "type": "org.kubeflow.serving.inference.request", "inferenceservicename": "fraud",
                      "datacontenttype": "application/json", "data": json.loads(v2_request(np.zeros((2, F))))}
        r = client.post("/v1/cloudevents", content=json.dumps(structured),
                        headers={"content-type": "application/cloudevents+json"})
        assert (r.status_code, r.content) == (200, b"")
    counts = live.counters.snapshot()
    assert counts["unparseable:not_cloudevent"] == 1
    assert counts["unknown_model"] == 1
    assert counts["unparseable:unknown_type"] == 1
    assert counts["unparseable:too_large"] == 1


def test_observe_endpoint_takes_columns_or_oip_tensors_behind_the_token() -> None:
    live = make_live()
    rng = np.random.default_rng(2)
    with serve(app_for(live)) as url, httpx.Client(base_url=url, timeout=10) as client:
        auth = {"authorization": "Bearer s3cret"}
        x = rng.normal(size=(200, F))
        assert client.post("/v1/models/fraud/observe", json={"inputs": {}}).status_code == 401
        body = {"inputs": [{"name": "input-0", "shape": [200, F], "datatype": "FP64", "data": x.ravel().tolist()}],
                "outputs": {"p": rng.random(200).tolist()}, "version": "1"}
        assert client.post("/v1/models/fraud/observe", json=body, headers=auth).status_code == 202
        cols = {"inputs": {f"x{i}": x[:, i].tolist() for i in range(F)}}
        assert client.post("/v1/models/fraud/observe", json=cols, headers=auth).status_code == 202
        assert client.post("/v1/models/fraud/observe", content=b"{", headers=auth).status_code == 400
        r = client.post("/v1/models/fraud/observe", json={"inputs": {}, "extra": 1}, headers=auth)
        assert r.status_code == 400
        assert "extra" in r.json()["error"]
        assert client.post("/v1/models/nope/observe", json=cols, headers=auth).status_code == 404
    (window,) = live.process()
    assert window.rows == 400
    assert window.outputs is not None
    assert window.outputs.n_rows == 200


def test_a_sender_far_faster_than_the_consumer_over_http() -> None:
    """The worker is not running (a stalled consumer); 600 events arrive over HTTP. Every one is answered 200
    at once -- KServe's agent must never back up -- the queue keeps its bound and the rest are counted as dropped."""
    live = make_live(max_queue_events=50)
    body = v2_request(np.zeros((32, F)))
    with serve(app_for(live)) as url, httpx.Client(base_url=url, timeout=10) as client:
        statuses = [client.post("/v1/cloudevents", content=body, headers=kserve_headers(f"e{i}", "request")).status_code
                    for i in range(600)]
    mon = live.monitor("fraud")
    assert set(statuses) == {200}
    assert len(mon.queue) == 50
    assert mon.queue.dropped == 550
    assert mon.counters.snapshot()["dropped_queue_full"] == 550


def test_the_sink_middleware_answers_before_the_app() -> None:
    from goldwatch.watchdog.live.routes import SinkMiddleware

    live = make_live()
    app = SinkMiddleware(app_for(live), live)
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        for kind in ("request", "response"):
            body = v2_request(np.zeros((4, F))) if kind == "request" else v2_response(np.zeros((4, 2)))
            r = client.post("/v1/models/fraud/cloudevents", content=body, headers=kserve_headers("m-1", kind))
            assert (r.status_code, r.content) == (200, b"")
        r = client.post("/v1/models/nope/cloudevents", content=b"{}", headers=kserve_headers("m-2", "request"))
        assert r.status_code == 404
        assert client.get("/v1/models/fraud/drift").status_code == 200  # everything else reaches the app
    live.process()
    assert live.monitor("fraud").counters.snapshot()["pairs"] == 1


@pytest.fixture
def sink_server():
    """A SinkServer on its own event loop in a thread (as it runs on the sidecar's loop), with its LiveDrift."""
    import asyncio
    import threading

    from goldwatch.watchdog.live.sinkserver import SinkServer

    pytest.importorskip("httptools", reason="the sink server needs the serve extra (httptools)")
    live = make_live()
    live.max_body_bytes = 64 * 1024
    loop = asyncio.new_event_loop()
    server = SinkServer(live, port=0)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield live, server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_the_sink_server_takes_kserve_events_keep_alive_pipelined_and_chunked(sink_server) -> None:
    import socket

    live, server = sink_server
    url = f"http://127.0.0.1:{server.port}"
    with httpx.Client(base_url=url, timeout=10) as client:  # keep-alive: one connection
        for i in range(3):
            for kind, body in (("request", v2_request(np.zeros((4, F)))), ("response", v2_response(np.zeros((4, 2))))):
                r = client.post("/v1/models/fraud/cloudevents", content=body, headers=kserve_headers(f"k{i}", kind))
                assert (r.status_code, r.content) == (200, b"")

        def chunks():
            body = v2_request(np.ones((4, F)))
            yield body[:10]
            yield body[10:]

        r = client.post("/v1/cloudevents", content=chunks(), headers=kserve_headers("chunked", "request"))
        assert r.status_code == 200  # a chunked body, reassembled
        assert client.get("/v1/cloudevents").status_code == 405
        assert client.post("/v1/other", content=b"{}").status_code == 404
        big = client.post("/v1/cloudevents", content=b"x" * (70 * 1024), headers=kserve_headers("big", "request"))
        assert big.status_code == 413
    # two requests in one write (pipelining), then garbage
    head = "".join(f"{k}: {v}\r\n" for k, v in kserve_headers("p-1", "request")
                   if k not in ("Host",)).encode()
    body = v2_request(np.zeros((2, F)))
    one = b"POST /v1/cloudevents HTTP/1.1\r\nHost: x\r\n" + head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(one + one.replace(b"p-1", b"p-2"))
        answers = b""
        while answers.count(b"HTTP/1.1 200 OK") < 2:
            answers += sock.recv(4096)
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        rest = sock.recv(4096)
    assert rest.startswith(b"HTTP/1.1 400 Bad Request")
    live.process()
    counts = live.monitor("fraud").counters.snapshot()
    assert counts["pairs"] == 3
    assert counts["events"] == 3 * 2 + 1 + 2
    assert live.counters.snapshot()["unparseable:too_large"] == 1
