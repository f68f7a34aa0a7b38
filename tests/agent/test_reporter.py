"""The HTTP reporter over an injected httpx transport: the contract's body and header, bounded retries, no retry
on a rejection, a full queue that keeps failures, a token that never reaches a log, and a report() that never
waits for the network."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from goldwatch.checks import Check
from goldwatch.errors import ConfigError
from goldwatch.logs import configure_logging
from goldwatch.watchdog.agent import Evidence, HttpReporter
from tests.agent.agent_support import body_problems

TOKEN = "tok-9c1e-report-test"


def _evidence(status: str = "pass", model: str = "fraud/v2") -> Evidence:
    check = Check(name="resident:fingerprint", status=status, summary=f"{status} summary",  # type: ignore[arg-type]
                  measured={"mismatched_blocks": 0 if status == "pass" else 1}, threshold={"mismatched_blocks": 0},
                  details={"mismatches": [] if status == "pass" else [{"tensor": "w", "block": 3}]})
    return Evidence(model=model, source="agent:host:123", version="2", interval_s=30.0, checks=(check,))


def _reporter(handler, **kw) -> tuple[HttpReporter, CollectorRegistry]:  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    rep = HttpReporter("http://sidecar.test:9090/", token=TOKEN, transport=httpx.MockTransport(handler),
                       backoff_s=0.01, metrics_registry=registry, **kw)
    return rep, registry


def _outcomes(registry: CollectorRegistry, model: str = "fraud/v2") -> dict[str, float]:
    return {o: registry.get_sample_value("goldwatch_agent_reports_total", {"model": model, "outcome": o}) or 0.0
            for o in ("delivered", "rejected", "failed", "dropped")}


def test_the_body_url_and_header_follow_the_contract() -> None:
    requests: list[httpx.Request] = []

    def sidecar(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(202, json={"accepted": True})

    rep, registry = _reporter(sidecar)
    rep.report(_evidence("fail"))
    rep.close()
    (req,) = requests
    assert req.method == "POST"
    assert str(req.url) == "http://sidecar.test:9090/v1/models/fraud%2Fv2/evidence"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.headers["content-type"] == "application/json"
    body = json.loads(req.content)
    assert body_problems(body) == []
    assert body["checks"][0]["details"]["mismatches"] == [{"tensor": "w", "block": 3}]
    assert (body["version"], body["interval_s"], body["kind"]) == ("2", 30.0, "resident")
    assert _outcomes(registry)["delivered"] == 1


def test_transient_failures_are_retried_a_bounded_number_of_times() -> None:
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(503) if len(calls) == 2 else httpx.Response(202)

    rep, registry = _reporter(flaky, retries=3)
    rep.report(_evidence())
    rep.close()
    assert len(calls) == 3
    assert _outcomes(registry)["delivered"] == 1

    calls.clear()
    down, registry = _reporter(lambda r: httpx.Response(500), retries=2)
    down.report(_evidence())
    down.close()
    assert _outcomes(registry)["failed"] == 1


def test_a_rejection_is_not_retried_and_the_token_never_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def reject(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(401, text=f"bad token {TOKEN}")  # a server that echoes it back

    configure_logging(level="info")
    logger = logging.getLogger("goldwatch")
    logger.propagate = True  # let caplog see the records, through goldwatch's redacting handler's filter
    try:
        with caplog.at_level(logging.INFO, logger="goldwatch"):
            rep, registry = _reporter(reject, retries=3)
            rep.report(_evidence())
            rep.close()
    finally:
        logger.propagate = False
    assert len(calls) == 1
    assert _outcomes(registry)["rejected"] == 1
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "rejected" in text
    assert "HTTP 401" in text
    assert TOKEN not in text


def test_report_never_waits_for_the_network_and_a_full_queue_keeps_failures() -> None:
    release = threading.Event()

    def stuck(request: httpx.Request) -> httpx.Response:
        release.wait(10)
        return httpx.Response(202)

    rep, registry = _reporter(stuck, queue_size=3)
    t0 = time.perf_counter()
    rep.report(_evidence("pass"))  # taken by the sender, which blocks on the network
    time.sleep(0.1)
    rep.report(_evidence("fail"))
    for _ in range(5):
        rep.report(_evidence("pass"))
    assert time.perf_counter() - t0 < 0.5
    queued = [e.status for e in rep._queue]
    assert queued == ["fail", "pass", "pass"]
    assert _outcomes(registry)["dropped"] == 3
    release.set()
    rep.close()
    assert _outcomes(registry)["delivered"] == 4


def test_a_missing_token_or_bad_url_is_a_configuration_error(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOLDWATCH_SERVE_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"no bearer token.*GOLDWATCH_SERVE_TOKEN"):
        HttpReporter("http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="must start with http"):
        HttpReporter("127.0.0.1:1", token=TOKEN)
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    seen = []
    rep = HttpReporter("http://127.0.0.1:1", token_env=None, token_file=secret,
                       transport=httpx.MockTransport(lambda r: seen.append(r.headers["authorization"])
                                                     or httpx.Response(202)))
    rep.report(_evidence())
    rep.close()
    assert seen == [f"Bearer {TOKEN}"]
