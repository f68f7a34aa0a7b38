"""The agent's in-process observe(): served batches reach the sidecar's live drift over real HTTP, goldwatch's probes
never do, and a sidecar that is away or slow costs rows (counted), never the server's time."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

pytest.importorskip("starlette", reason="the sidecar's routes need the serve extra (starlette, uvicorn)")
pytest.importorskip("uvicorn", reason="the sidecar's routes need the serve extra (starlette, uvicorn)")

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from goldwatch.config import LiveDriftModelConfig, LiveDriftSection
from goldwatch.errors import ConfigError
from goldwatch.watchdog.agent.observer import HttpObserver
from goldwatch.watchdog.agent.serving import ServedModel, serving_options
from goldwatch.watchdog.live import LiveDrift, ReferenceStore
from goldwatch.watchdog.live.payload import Tensor, Tensors
from goldwatch.watchdog.live.reference import build_reference
from tests.live.support import serve

TOKEN = "0bserve-t0ken"


def sidecar_app(live: LiveDrift) -> Starlette:
    from goldwatch.watchdog.live.routes import live_drift_routes

    async def authorize(request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return None

    return Starlette(routes=live_drift_routes(live, authorize=authorize))


def counted(registry: CollectorRegistry, outcome: str) -> float:
    return registry.get_sample_value("goldwatch_agent_observed_rows_total",
                                     {"model": "fraud", "outcome": outcome}) or 0.0


def test_served_batches_reach_live_drift_and_probes_do_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from tests.agent.agent_support import write_model_dir

    model_dir = write_model_dir(tmp_path / "model", seed=5)
    live = LiveDrift.from_config(LiveDriftSection(models=[LiveDriftModelConfig(
        name="fraud", window_rows=300, min_window_rows=100,
        inputs=[{"name": f"x{i}", "tensor": "x", "index": i} for i in range(8)],
        outputs=[{"name": "class", "tensor": "logits", "derive": "argmax", "kind": "categorical"}])]))
    monitor = live.monitor("fraud")
    rng = np.random.default_rng(1)
    monitor.references = ReferenceStore.fixed(build_reference(
        Tensors({"x": Tensor(rng.normal(size=(5000, 8)), "FP64")}),
        Tensors({"logits": Tensor(rng.normal(size=(5000, 3)), "FP64")}), monitor.schema, version=None,
        source="generated"))
    monkeypatch.setenv("GOLDWATCH_SERVE_TOKEN", TOKEN)
    registry = CollectorRegistry()
    with serve(sidecar_app(live)) as url:
        options = serving_options({"sidecar_url": url, "observe": True, "watch": False, "observe_flush_s": 0.05},
                                  where="test")
        served = ServedModel.load(model_dir, name="fraud", options=options, metrics_registry=registry)
        try:
            for _ in range(10):
                served.predict({"x": rng.normal(size=(32, 8))})
            served.predict({"x": np.full((50, 8), 9.0)}, probe=True)  # goldwatch's golden replay: left out
        finally:
            served.close()
    assert counted(registry, "delivered") == 320
    assert counted(registry, "dropped") == counted(registry, "failed") == counted(registry, "rejected") == 0
    results = live.flush()
    assert monitor.counters.snapshot()["rows"] == 320
    assert [r.rows for r in results] == [300, 20]
    assert results[0].inputs.tested
    assert results[0].outputs is not None
    assert results[0].outputs.tested


def test_observe_needs_a_sidecar_and_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from tests.agent.agent_support import write_model_dir

    model_dir = write_model_dir(tmp_path / "model", seed=6)
    with pytest.raises(ConfigError, match="no sidecar_url"):
        ServedModel.load(model_dir, name="fraud", options=serving_options({"observe": True}, where="t"), start=False)
    monkeypatch.delenv("GOLDWATCH_SERVE_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="no bearer token"):
        HttpObserver("http://127.0.0.1:9", "fraud")


def test_a_sidecar_that_does_not_answer_costs_rows_counted_never_the_servers_time() -> None:
    registry = CollectorRegistry()
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        obs = HttpObserver(f"http://127.0.0.1:{port}", "fraud", token=TOKEN, max_rows=100, batch_rows=40,
                           flush_s=30.0, timeout_s=0.3, metrics_registry=registry)
        try:
            # 40 rows wake the thread, which sends them and waits 0.3 s for an answer; meanwhile the buffer fills
            kept = [obs.observe({"x": np.ones((20, 2))}, {"y": np.zeros(20)}) for _ in range(2)]
            deadline = time.monotonic() + 10
            while obs.buffered_rows and time.monotonic() < deadline:  # the thread took them and is waiting
                time.sleep(0.005)
            kept += [obs.observe({"x": np.ones((20, 2))}, {"y": np.zeros(20)}) for _ in range(10)]
            assert kept == [True] * 7 + [False] * 5
            assert not obs.observe({"x": np.ones((3, 2))}, {"y": np.zeros(4)})  # rows that do not line up
        finally:
            obs.close(timeout_s=10.0)
    assert counted(registry, "rejected") == 4
    assert counted(registry, "delivered") == 0
    assert (counted(registry, "failed"), counted(registry, "dropped")) == (140, 100)


def test_mlserver_requests_marked_as_probes_are_recognised() -> None:
    pytest.importorskip("mlserver")
    from mlserver.types import InferenceRequest

    from goldwatch.probe import new_probe_id
    from goldwatch.watchdog.agent.mlserver import is_probe_request

    plain = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    assert not is_probe_request(InferenceRequest.model_validate(plain))
    assert not is_probe_request(InferenceRequest.model_validate(plain | {"parameters": {"headers": {"ce-id": "u-1"}}}))
    assert is_probe_request(InferenceRequest.model_validate(plain | {"parameters": {"goldwatch_probe": True}}))
    assert is_probe_request(InferenceRequest.model_validate(
        plain | {"parameters": {"headers": {"ce-id": new_probe_id()}}}))
