"""The HTTP API over real HTTP (uvicorn in a thread): auth, body limits, clear 4xx, metrics, status, evidence."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from goldwatch.config import parse_config
from goldwatch.integrity import build_manifest
from goldwatch.runtimes.mlserver_testing import free_ports
from goldwatch.watchdog.sidecar.evidence import EvidenceKind
from goldwatch.watchdog.sidecar.runner import bind, serve_forever
from goldwatch.watchdog.sidecar.service import SidecarService
from tests.sidecar.support import toml

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

TOKEN = "api-test-token-0d9c2b7e4f"
ENV = "GOLDWATCH_TEST_SIDECAR_API_TOKEN"


class DriftExtension:
    """A stand-in for issue 14's extension: a kind of its own and a route of its own."""

    name = "test-drift"

    def setup(self, service: SidecarService) -> None:
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        service.register_kind(EvidenceKind("drift", "drift", "warning", consecutive=2, external=True))

        async def windows(request: Request) -> JSONResponse:
            denied = service.authorize(request.headers.get("authorization"))
            if denied:
                return JSONResponse({"error": denied[1]}, status_code=denied[0])
            return JSONResponse({"windows": service.journal.checkpoints("drift")})

        service.add_routes([Route("/v1/drift/windows", windows, methods=["GET"])])


def _config(root: Path, *, token_env: str, port: int) -> Any:
    model = root / "model.bin"
    model.write_bytes(os.urandom(4096))
    build_manifest(model).save(root / "model.manifest.json")
    # a server that is not there: readiness fails (held for the start grace), files pass, no golden set
    return parse_config(toml({
        "registry": {"root": root / "registry"},
        "alerts": {"outbox_path": root / "alerts.sqlite"},
        "serve": {"host": "127.0.0.1", "port": port, "token_env": token_env, "journal": root / "sidecar.sqlite",
                  "max_body_bytes": 4096,
                  "watch": [{"name": "fraud", "url": f"http://127.0.0.1:{free_ports(1)[0]}/v2/models/fraud",
                             "served_path": model, "manifest": root / "model.manifest.json",
                             "files": {"interval_s": 0.2}, "readiness": {"interval_s": 0.2, "timeout_s": 0.5},
                             "golden_replay": {"interval_s": 0.2}, "version": {"interval_s": 0.2}}]},
    }))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SidecarService]]:
    root = tmp_path_factory.mktemp("api")
    os.environ[ENV] = TOKEN
    try:
        service = SidecarService(_config(root, token_env=ENV, port=0), sinks=[], extensions=[DriftExtension()])
    finally:
        del os.environ[ENV]
    sock = bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete,
                              args=(serve_forever(service, sock, stop=stop),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    yield url, service
    loop.call_soon_threadsafe(stop.set)
    thread.join(15)
    assert not thread.is_alive()


def _post(url: str, path: str, *, token: str | None = TOKEN, **kwargs: Any) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(url + path, headers=headers, timeout=30, **kwargs)


def test_probes_status_incidents_journal(api: tuple[str, SidecarService]) -> None:
    url, _ = api
    assert httpx.get(url + "/livez").json()["status"] == "alive"
    assert httpx.get(url + "/startupz").status_code == 200
    ready = httpx.get(url + "/readyz")
    assert ready.status_code == 200, ready.text
    status = httpx.get(url + "/v1/status").json()
    (model,) = status["models"]
    assert model["name"] == "fraud"
    assert model["registry"] is False
    assert model["checks"]["files"]["status"] == "pass"
    assert model["checks"]["golden"]["status"] == "skip"
    assert model["checks"]["readiness"]["status"] == "fail", "nothing listens at the model's URL"
    assert model["incidents"] == [], "a server never seen ready is within its start grace"
    assert httpx.get(url + "/v1/incidents?state=open").json() == {"incidents": []}
    assert httpx.get(url + "/v1/incidents?state=maybe").status_code == 400
    decisions = httpx.get(url + "/v1/journal?after=0").json()["decisions"]
    assert any(d["action"] == "start" for d in decisions)


def test_state_changing_endpoints_need_the_token(api: tuple[str, SidecarService]) -> None:
    url, _ = api
    missing = _post(url, "/v1/models/fraud/check", token=None)
    assert missing.status_code == 401
    assert "missing bearer token" in missing.json()["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = _post(url, "/v1/models/fraud/pause", token="not-the-token", json={"reason": "x"})
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "wrong bearer token"}
    basic = _post(url, "/v1/models/fraud/resume", token=None, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    ok = _post(url, "/v1/models/fraud/check", json={"checks": ["files"], "sha256": True})
    assert ok.status_code == 200, ok.text
    assert ok.json()["runs"]["files"]["status"] == "pass"


def test_without_a_configured_token_state_changes_are_forbidden_and_say_why(tmp_path: Path) -> None:
    from goldwatch.watchdog.sidecar.api import build_app

    service = SidecarService(_config(tmp_path, token_env="GOLDWATCH_TEST_UNSET_TOKEN_VAR", port=0), sinks=[])

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=build_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://sidecar") as client:
            return await client.post("/v1/models/fraud/rollback", json={"reason": "x"},
                                     headers={"Authorization": "Bearer x"})

    resp = asyncio.run(call())
    assert resp.status_code == 403
    assert "no API token is configured (set $GOLDWATCH_TEST_UNSET_TOKEN_VAR" in resp.json()["error"]
    service.journal.close()
    service.alerts.close()


@pytest.mark.parametrize(("path", "kwargs", "status", "message"), [
    ("/v1/models/fraud/pause", {"content": b"{not json"}, 400, "not valid JSON"),
    ("/v1/models/fraud/pause", {"json": [1, 2]}, 400, "must be a JSON object, got list"),
    ("/v1/models/fraud/pause", {"json": {"reason": "x", "for_s": "soon"}}, 400, "for_s: expected int or float"),
    ("/v1/models/fraud/pause", {"json": {"reason": "x", "for_s": 10**9}}, 400, "for_s must be in"),
    ("/v1/models/fraud/pause", {"json": {"reason": "x", "why": 1}}, 400, "unknown field(s) ['why']"),
    ("/v1/models/fraud/pause", {"content": b"x" * 5000, "headers": {"Content-Type": "application/json"}}, 413,
     "at most 4096 are accepted"),
    ("/v1/models/fraud/pause", {"content": b"reason=x", "headers": {"Content-Type": "text/plain"}}, 415,
     "Content-Type must be application/json"),
    ("/v1/models/nope/pause", {"json": {"reason": "x"}}, 404, "does not watch 'nope'"),
    ("/v1/models/fraud/rollback", {"json": {"reason": "x"}}, 409, "nothing to roll back to"),
    ("/v1/models/fraud/rollback", {"json": {}}, 400, "reason: required"),
    ("/v1/models/fraud/check", {"json": {"checks": ["nope"]}}, 400, "unknown check(s) ['nope']"),
    ("/v1/models/fraud/evidence", {"json": {"source": "agent:h:1", "kind": "resident", "checks": []}}, 400,
     "checks: List should have at least 1 item"),
    ("/v1/models/fraud/evidence", {"json": {"kind": "resident"}}, 400, "source: Field required"),
])
def test_bad_bodies_get_a_clear_4xx(api: tuple[str, SidecarService], path: str, kwargs: dict,  # type: ignore[type-arg]
                                    status: int, message: str) -> None:
    url, _ = api
    resp = _post(url, path, **kwargs)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]


def test_chunked_oversized_body_is_refused_without_reading_it_all(api: tuple[str, SidecarService]) -> None:
    url, _ = api

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    resp = _post(url, "/v1/models/fraud/evidence", content=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 413


def test_pause_resume_and_external_evidence_round_trip(api: tuple[str, SidecarService]) -> None:
    url, service = api
    paused = _post(url, "/v1/models/fraud/pause", json={"reason": "deploying v8", "for_s": 600})
    assert paused.status_code == 200
    assert paused.json()["reason"] == "deploying v8"
    model = httpx.get(url + "/v1/status").json()["models"][0]
    assert model["paused"]["reason"] == "deploying v8"
    report = {"source": "agent:pod-1:99", "kind": "resident", "version": None, "interval_s": 60,
              "checks": [{"name": "resident:fingerprint", "status": "fail", "summary": "tensor 'w' block 0 differs",
                          "details": {"tensor": "w", "block": 0}}]}
    held = _post(url, "/v1/models/fraud/evidence?wait=true", json=report).json()
    assert held["status"] == "fail"
    assert [d["action"] for d in held["decisions"]] == ["hold"]
    assert _post(url, "/v1/models/fraud/resume", json={}).json()["paused"] is True
    acted = _post(url, "/v1/models/fraud/evidence?wait=true", json=report).json()
    # no registry: a resident mismatch pages critical and says why it cannot roll back
    assert [(d["action"], d["check_class"]) for d in acted["decisions"]] == [("page", "resident")]
    assert "rollback is off" in acted["decisions"][0]["reason"]
    incidents = httpx.get(url + "/v1/incidents?state=open&model=fraud").json()["incidents"]
    (inc,) = [i for i in incidents if i["check_class"] == "resident"]
    assert inc["severity"] == "critical"
    assert inc["checks"][0]["details"] == {"tensor": "w", "block": 0}
    good = {**report, "checks": [{"name": "resident:fingerprint", "status": "pass"}]}
    resolved = _post(url, "/v1/models/fraud/evidence?wait=true", json=good).json()
    assert [(d["action"], d["check_class"]) for d in resolved["decisions"]] == [("resolve", "resident")]
    sources = httpx.get(url + "/v1/status").json()["models"][0]["sources"]
    assert [s["source"] for s in sources] == ["agent:pod-1:99"]
    # the same contract in-process, from another thread
    result = service.submit_evidence_threadsafe("fraud", good)
    assert result["status"] == "pass"


def test_extension_kind_and_route_are_live(api: tuple[str, SidecarService]) -> None:
    url, service = api
    service.journal.put_checkpoint("drift", "fraud/w1", {"n": 3})
    assert httpx.get(url + "/v1/drift/windows").status_code == 401
    windows = httpx.get(url + "/v1/drift/windows", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert windows == {"windows": {"fraud/w1": {"n": 3}}}
    report = {"source": "drift-sink", "kind": "drift", "checks": [{"name": "drift:x", "status": "fail"}]}
    first = _post(url, "/v1/models/fraud/evidence?wait=true", json=report).json()
    second = _post(url, "/v1/models/fraud/evidence?wait=true", json=report).json()
    assert [d["action"] for d in first["decisions"]] == ["hold"]
    assert [(d["action"], d["check_class"]) for d in second["decisions"]] == [("page", "drift")]
    inc = [i for i in httpx.get(url + "/v1/incidents?state=open").json()["incidents"] if i["check_class"] == "drift"]
    assert inc[0]["severity"] == "warning"


def test_metrics_parse_with_prometheus_clients_parser(api: tuple[str, SidecarService]) -> None:
    url, _ = api
    resp = httpx.get(url + "/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    for name in ("goldwatch_check_runs", "goldwatch_check_duration_seconds",
                 "goldwatch_check_last_success_timestamp_seconds", "goldwatch_model_healthy",
                 "goldwatch_incidents_open", "goldwatch_time_to_detect_seconds", "goldwatch_time_to_recover_seconds",
                 "goldwatch_build_info", "goldwatch_check_lateness_seconds", "goldwatch_model_paused"):
        assert name in families, name
    runs = {(s.labels["check"], s.labels["status"]): s.value for s in families["goldwatch_check_runs"].samples
            if s.name == "goldwatch_check_runs_total" and s.labels["model"] == "fraud"}
    assert runs[("files", "pass")] >= 1
    assert runs[("readiness", "fail")] >= 1
    assert families["goldwatch_build_info"].samples[0].labels["version"]
    om = httpx.get(url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")


def test_the_token_never_appears_in_responses_or_logs(api: tuple[str, SidecarService],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    url, _ = api
    with caplog.at_level(logging.DEBUG, logger="goldwatch"):
        bodies = [httpx.get(url + p).text for p in ("/v1/status", "/v1/journal", "/v1/incidents", "/metrics")]
        bodies.append(_post(url, "/v1/models/fraud/pause", token="x" + TOKEN, json={"reason": "x"}).text)
    assert not any(TOKEN in b for b in bodies)
    assert TOKEN not in caplog.text


def test_the_in_process_agents_own_report_is_accepted_as_is(api: tuple[str, SidecarService]) -> None:
    """The contract both sides build to: the agent's Evidence.to_json() (goldwatch.watchdog.agent) posted as it is."""
    from goldwatch.checks import Check
    from goldwatch.watchdog.agent.results import Evidence as AgentEvidence

    url, _ = api
    report = AgentEvidence(model="fraud", source="agent:pod-9:31337", version=None, interval_s=30.0, checks=(
        Check(name="resident:fingerprint", status="pass", summary="every block matches",
              measured={"mismatched_blocks": 0, "pass": 1}, threshold={"mismatched_blocks": 0},
              details={"tensors": 3}),))
    resp = _post(url, "/v1/models/fraud/evidence", json=report.to_json())
    assert resp.status_code == 202, resp.text  # validated and queued: decided on right after, never waited for
    assert resp.json()["status"] == "pass"
    assert "decisions" not in resp.json()
    deadline = time.monotonic() + 10
    sources: set[str] = set()
    while "agent:pod-9:31337" not in sources and time.monotonic() < deadline:
        sources = {s["source"] for s in httpx.get(url + "/v1/status").json()["models"][0]["sources"]}
        time.sleep(0.05)
    assert "agent:pod-9:31337" in sources
