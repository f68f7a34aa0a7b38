"""Evidence is answered at once and decided on right after: a reporter never waits for the rollback it caused.

The in-process agent posts with a 5 s timeout (``agent.report_timeout_s``). A failed resident check makes the
sidecar roll back, and a rollback takes as long as the server's reload -- here a reload command that takes 2 s. The
report is answered 202 once validated and journaled; reports that arrive while the rollback runs are answered just
as fast and decided on, in order, after it. The agent's full-pass numbers reach the sidecar's /metrics.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from goldwatch.config import parse_config
from goldwatch.runtimes.mlserver_testing import free_ports
from goldwatch.watchdog.sidecar.service import SidecarService
from tests.sidecar.support import running, served_registry, toml

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

TOKEN = "async-evidence-token-8c1f"
ENV = "GOLDWATCH_TEST_ASYNC_EVIDENCE_TOKEN"
RELOAD_S = 2.0


def _report(status: str, *, version: str = "3", **measured: Any) -> dict[str, Any]:
    details = {"tensor": "w", "block": 0, "start": 0, "stop": 256} if status == "fail" else {}
    return {"source": "agent:pod-1:4242", "kind": "resident", "version": version, "interval_s": 1.0,
            "checks": [{"name": "resident:fingerprint", "status": status, "summary": f"resident check {status}",
                        "measured": measured, "details": details}]}


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[tuple[str, SidecarService]]:
    serving = served_registry(tmp_path, tmp_path / "repo", "fraud")
    slow_reload = [sys.executable, "-c", f"import time; time.sleep({RELOAD_S})"]
    config = parse_config(toml({
        "registry": {"root": tmp_path / "registry"},
        "alerts": {"outbox_path": tmp_path / "alerts.sqlite"},
        "serve": {"host": "127.0.0.1", "port": 0, "token_env": ENV, "journal": tmp_path / "sidecar.sqlite",
                  "watch": [{"name": "fraud", "url": f"http://127.0.0.1:{free_ports(1)[0]}/v2/models/fraud",
                             "serving_dir": serving, "reload": "command", "reload_command": slow_reload,
                             "files": {"interval_s": 5.0}, "readiness": {"interval_s": 5.0, "timeout_s": 0.5},
                             "golden_replay": {"enabled": False}, "version": {"enabled": False},
                             "rollback_readiness": {"enabled": False}}]},
    }))
    os.environ[ENV] = TOKEN
    try:
        service = SidecarService(config, sinks=[])
    finally:
        del os.environ[ENV]
    with running(service) as url:
        yield url, service


def _post(url: str, body: dict[str, Any], *, path: str = "/v1/models/fraud/evidence") -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    resp = httpx.post(url + path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    return resp, time.monotonic() - t0


def _journal(url: str) -> list[dict[str, Any]]:
    return [d for d in httpx.get(url + "/v1/journal", params={"limit": 1000}).json()["decisions"]
            if d["model"] == "fraud"]


def test_a_report_is_answered_at_once_while_the_rollback_it_caused_runs(sidecar: tuple[str, SidecarService]) -> None:
    url, _service = sidecar
    passed, _ = _post(url, _report("pass", bytes_per_s=2.5e9, duty_cycle=0.01, bytes_checked=4096,
                                      mismatched_blocks=0, wall_s=0.2))
    assert passed.status_code == 202, passed.text
    failed, _ = _post(url, _report("fail", mismatched_blocks=1))
    assert failed.status_code == 202, failed.text
    assert failed.json()["status"] == "fail"
    # answered before the rollback it causes has finished (its reload alone takes RELOAD_S)
    assert not any(d["action"] == "rolled-back" for d in _journal(url))
    # journaled before the answer: the failure is on record whatever happens next
    assert any(d["action"] == "evidence" and d["detail"]["failed"][0]["details"]["tensor"] == "w"
               for d in _journal(url))
    deadline = time.monotonic() + 10
    while not any(d["action"] == "rollback" for d in _journal(url)):
        assert time.monotonic() < deadline, _journal(url)
        time.sleep(0.02)
    # the rollback (its reload takes RELOAD_S) is running: more reports are answered just as fast
    during = [_post(url, _report("fail", mismatched_blocks=1)) for _ in range(3)]
    # all answered while it still runs: none waited for it
    assert not any(d["action"] == "rolled-back" for d in _journal(url)), "the rollback should still be running"
    for resp, _ in during:
        assert resp.status_code == 202, resp.text
    deadline = time.monotonic() + 30
    while not any(d["action"] == "rolled-back" for d in _journal(url)):
        assert time.monotonic() < deadline, _journal(url)
        time.sleep(0.05)
    journal = _journal(url)
    rolled = next(d for d in journal if d["action"] == "rolled-back")
    assert rolled["detail"]["from"] == "3"
    assert rolled["detail"]["to"] == "2"
    # the reports queued during the rollback were decided on after it: about version 3, no longer served
    ignored = [d for d in journal if d["action"] == "ignore" and d["id"] > rolled["id"]]
    assert ignored
    assert "3, but 2 is served now" in ignored[0]["reason"]
    assert sum(1 for d in journal if d["action"] == "rollback") == 1
    # ?wait=true answers with the decisions
    waited, _ = _post(url, _report("pass", version="2", bytes_per_s=3.0e9, duty_cycle=0.02, bytes_checked=8192,
                                   mismatched_blocks=0), path="/v1/models/fraud/evidence?wait=true")
    assert waited.status_code == 200, waited.text
    assert "decisions" in waited.json()
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(url + "/metrics").text)}

    def value(name: str, sample: str | None = None, **labels: str) -> float:
        return next(s.value for s in families[name].samples
                    if s.name == (sample or name) and all(s.labels.get(k) == v for k, v in labels.items()))

    assert value("goldwatch_resident_check_bytes_per_second", model="fraud") == 3.0e9
    assert value("goldwatch_resident_duty_cycle", model="fraud") == 0.02
    assert value("goldwatch_resident_mismatched_blocks", model="fraud") == 0
    assert value("goldwatch_resident_bytes_checked", "goldwatch_resident_bytes_checked_total", model="fraud") == \
        4096 + 8192
    assert value("goldwatch_resident_last_full_pass_timestamp_seconds", model="fraud") > time.time() - 60
    assert value("goldwatch_evidence_last_report_timestamp_seconds", model="fraud", kind="resident") > \
        time.time() - 60


def test_a_full_queue_answers_429_for_the_reporter_to_retry(sidecar: tuple[str, SidecarService]) -> None:
    url, service = sidecar
    ctx = service.model("fraud")
    assert ctx.reports is not None
    loop = service._loop
    assert loop is not None
    assert ctx.lock is not None

    async def hold_and_fill() -> None:
        # hold the model's lock (as a long action does) so nothing is decided, and fill the queue
        from goldwatch.watchdog.sidecar.evidence import parse_report

        await ctx.lock.acquire()
        ev = parse_report(_report("pass"), kinds=service.kinds).evidence("fraud", received_at=time.time())
        for _ in range(3):  # the decider takes one item and then waits for the lock
            while not ctx.reports.full():
                ctx.reports.put_nowait((ev, None))
            await asyncio.sleep(0.05)

    asyncio.run_coroutine_threadsafe(hold_and_fill(), loop).result(5)
    try:
        resp, _ = _post(url, _report("pass"))  # answered while the model's lock is held: it waited for nothing
        assert resp.status_code == 429, resp.text
        assert resp.headers["retry-after"] == "2"
        assert "waiting to be decided on" in resp.json()["error"]
    finally:
        loop.call_soon_threadsafe(ctx.lock.release)
    deadline = time.monotonic() + 20
    while not ctx.reports.empty():  # once the lock is free, every queued report is decided on
        assert time.monotonic() < deadline
        time.sleep(0.05)
    resp, _ = _post(url, _report("pass"))
    assert resp.status_code == 202
