"""``alerts.resolve_after_s`` in the sidecar: a flapping check keeps one PagerDuty incident; the resolve goes out
once the checks have passed that long (the journal still records each episode and its times)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from goldwatch.config import parse_config
from goldwatch.integrity import build_manifest
from goldwatch.runtimes.mlserver_testing import free_ports
from goldwatch.watchdog.alerts import PagerDutySink
from goldwatch.watchdog.sidecar.service import SidecarService
from tests.sidecar.support import ROUTING_KEY, running, toml

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

TOKEN = "resolve-after-token-2e7a"
ENV = "GOLDWATCH_TEST_RESOLVE_AFTER_TOKEN"
HOLD_S = 2.0


def _report(status: str) -> dict[str, Any]:
    return {"source": "agent:pod-1:7", "kind": "resident", "version": None, "interval_s": 60.0,
            "checks": [{"name": "resident:fingerprint", "status": status, "summary": f"resident {status}"}]}


def test_a_flapping_check_keeps_one_incident_until_it_passed_long_enough(tmp_path: Path) -> None:
    sent: list[dict[str, Any]] = []

    def pagerduty(request: httpx.Request) -> httpx.Response:
        sent.append({**json.loads(request.content), "received_at": time.time()})
        return httpx.Response(202, json={"status": "success", "dedup_key": sent[-1]["dedup_key"]})

    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(2048))
    build_manifest(model).save(tmp_path / "model.manifest.json")
    config = parse_config(toml({
        "registry": {"root": tmp_path / "registry"},
        "alerts": {"outbox_path": tmp_path / "alerts.sqlite", "resolve_after_s": HOLD_S},
        "serve": {"host": "127.0.0.1", "port": 0, "token_env": ENV, "journal": tmp_path / "sidecar.sqlite",
                  "watch": [{"name": "fraud", "url": f"http://127.0.0.1:{free_ports(1)[0]}/v2/models/fraud",
                             "served_path": model, "manifest": tmp_path / "model.manifest.json",
                             "readiness": {"enabled": False}, "golden_replay": {"enabled": False},
                             "version": {"enabled": False}, "rollback_readiness": {"enabled": False}}]},
    }))
    os.environ[ENV] = TOKEN
    try:
        service = SidecarService(config, sinks=[PagerDutySink(ROUTING_KEY, transport=httpx.MockTransport(pagerduty),
                                                              rate_limit_per_minute=None)])
    finally:
        del os.environ[ENV]
    with running(service) as url:
        def post(status: str) -> list[str]:
            resp = httpx.post(url + "/v1/models/fraud/evidence?wait=true", json=_report(status),
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            assert resp.status_code == 200, resp.text
            return [d["action"] for d in resp.json()["decisions"]]

        def actions() -> list[str]:
            time.sleep(0.2)  # delivery runs on its own task
            return [e["event_action"] for e in sent]

        assert post("fail") == ["page"]
        assert actions() == ["trigger"]
        assert post("pass") == ["resolve"]  # the episode is over in the journal; the page stays open ...
        assert post("fail") == ["page"]  # ... so a flap back is the same page: nothing new is sent
        assert actions() == ["trigger"]
        passed_at = time.time()  # the pass is recorded after this
        assert post("pass") == ["resolve"]
        deadline = time.monotonic() + 15
        while actions() != ["trigger", "resolve"]:
            assert time.monotonic() < deadline, sent
        assert sent[1]["received_at"] - passed_at >= HOLD_S  # not before it passed for resolve_after_s
        time.sleep(1.2)
        assert actions() == ["trigger", "resolve"]  # once
        incidents = httpx.get(url + "/v1/incidents", params={"model": "fraud"}).json()["incidents"]
        assert [i["state"] for i in incidents if i["check_class"] == "resident"] == ["resolved", "resolved"]
