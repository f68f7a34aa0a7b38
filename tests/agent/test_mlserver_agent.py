"""The agent inside a real MLServer worker, reporting to the real sidecar (``goldwatch serve``), paging the strict
PagerDuty stand-in.

A bit flipped in a resident parameter (the drill runtime's hook) is reported within one agent interval with the
right tensor and block; the sidecar rolls back through the registry and MLServer's repository API; the reloaded
worker's agent verifies clean; the incident resolves -- one PagerDuty incident, triggered then resolved. An agent
that stops reporting is a stale warning, never a rollback. A model whose file fails its manifest refuses to load,
with goldwatch's message.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from goldwatch.golden_sets import build_golden_set
from goldwatch.runtimes import load_model
from goldwatch.runtimes.mlserver_testing import (
    MLServerProcess,
    free_ports,
    mlserver_available,
    start_mlserver,
    write_model_settings,
)
from goldwatch.watchdog.alerts.dedup import dedup_key
from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub, incidents_for
from goldwatch.watchdog.registry import Registry, Serving, make_pointer
from goldwatch.watchdog.sidecar.process import SidecarProcess, start_sidecar
from tests.agent.agent_support import flip_file_byte, write_model_dir
from tests.sidecar.support import ROUTING_KEY, toml

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not mlserver_available(), reason="mlserver is not installed (pip install 'goldwatch[dev]')"),
]

TOKEN = "agent-test-token-7f3a"
INTERVAL_S = 1.0
FAULTS = "goldwatch.watchdog.agent.mlserver_faults.FaultInjectingModel"
T = TypeVar("T")


def _infer(server: MLServerProcess, model: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.model_url(model)}/infer", json=body, timeout=30, trust_env=False)


def _predict(server: MLServerProcess, model: str, x: np.ndarray) -> np.ndarray:
    body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    resp = _infer(server, model, body)
    assert resp.status_code == 200, resp.text
    out = resp.json()["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


def _fault(server: MLServerProcess, fault: dict[str, Any]) -> dict[str, Any]:
    resp = _infer(server, "fraud", {"inputs": [], "parameters": {"goldwatch_fault": fault}})
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


def _wait(what: str, probe: Callable[[], T | None], *, sidecar: SidecarProcess, timeout: float = 40.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{sidecar.log()[-4000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two releases (each with its golden set) in a registry, version 2 served by a real MLServer through the
    ``current`` link, the agent in its worker reporting to a real ``goldwatch serve`` that pages the PagerDuty
    stand-in (one server, one sidecar for the module's tests)."""
    tmp_path = tmp_path_factory.mktemp("agent-mlserver")
    repo = tmp_path / "repo"
    sidecar_port = free_ports(1)[0]
    sidecar_url = f"http://127.0.0.1:{sidecar_port}"
    folder = write_model_settings(repo, "fraud", implementation=FAULTS, extra={"parameters": {
        "uri": "./current",
        "extra": {"goldwatch": {"interval_s": INTERVAL_S, "duty_cycle": 1.0, "sidecar_url": sidecar_url}},
    }})
    x = np.random.default_rng(3).standard_normal((32, 8)).astype(np.float32)
    with Registry.open(tmp_path / "reg") as reg:
        reg.attach("fraud", Serving(make_pointer("current-link", folder)))
        for seed in (1, 2):
            model_dir = write_model_dir(tmp_path / "src" / str(seed) / "model", seed=seed, hidden=600,
                                        manifest=False)
            golden = build_golden_set(load_model(model_dir), {"x": x}, tmp_path / "golden" / str(seed), repeats=2)
            mv = reg.add("fraud", model_dir, golden=[golden.path])
            reg.promote("fraud", mv.version, reason="release")
    config = tmp_path / "goldwatch.toml"
    config.write_text(toml({
        "registry": {"root": tmp_path / "reg", "ready_timeout_s": 60.0},
        "alerts": {"outbox_path": tmp_path / "alerts.sqlite", "retry_base_s": 0.05, "retry_max_delay_s": 0.2},
        "serve": {"host": "127.0.0.1", "port": sidecar_port, "journal": tmp_path / "sidecar.sqlite", "jitter": 0.05,
                  "watch": [{"name": "fraud", "url": "http://127.0.0.1:0/v2/models/fraud", "serving_dir": folder,
                             "server_down_grace_s": 5.0,
                             "files": {"interval_s": 1.0, "sha256_interval_s": 0.0},
                             "golden_replay": {"interval_s": 2.0, "batch_size": 32},
                             "readiness": {"interval_s": 1.0, "timeout_s": 2.0},
                             "version": {"interval_s": 2.0, "timeout_s": 2.0},
                             "rollback_readiness": {"interval_s": 10.0}}]},
    }))
    # the server inherits these (the token, and the drill runtime's permission to flip bits)
    env = {"GOLDWATCH_SERVE_TOKEN": TOKEN, "GOLDWATCH_FAULT_INJECTION": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(start_mlserver(repo, timeout=120))
            server.wait_ready(model="fraud")
            text = config.read_text().replace("http://127.0.0.1:0/v2/models/fraud", server.model_url("fraud"))
            config.write_text(text)
            pagerduty = stack.enter_context(PagerDutyStub())
            sidecar = start_sidecar(config, url=sidecar_url, token=TOKEN, timeout=90, env={
                "GOLDWATCH_PAGERDUTY_ROUTING_KEY": ROUTING_KEY, "GOLDWATCH_PAGERDUTY_EVENTS_URL": pagerduty.url})
            stack.callback(sidecar.terminate)
            yield {"server": server, "sidecar": sidecar, "pagerduty": pagerduty, "repo": repo, "tmp": tmp_path,
                   "x": x}
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _resident(sidecar: SidecarProcess) -> dict[str, Any]:
    (model,) = sidecar.status()["models"]
    return model["checks"].get("resident") or {}


def _incident(sidecar: SidecarProcess, cls: str, state: str | None = None) -> dict[str, Any] | None:
    found = [i for i in sidecar.incidents(model="fraud") if i["check_class"] == cls
             and (state is None or i["state"] == state)]
    return found[0] if found else None


def _metrics(url: str, prefix: str) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10, trust_env=False).text):
        for sample in family.samples:
            if sample.name.startswith(prefix) and sample.labels.get("model") == "fraud":
                out[(sample.name, sample.labels.get("how") or sample.labels.get("outcome") or "")] = sample.value
    return out


def test_resident_bit_flip_is_reported_rolled_back_and_resolved(served: dict[str, Any]) -> None:
    server, sidecar, pagerduty = served["server"], served["sidecar"], served["pagerduty"]
    x = served["x"][:2]
    before = _predict(server, "fraud", x)
    # the worker's agent has verified version 2 in memory and told the sidecar so
    _wait("a passing resident report", lambda: _resident(sidecar).get("status") == "pass", sidecar=sidecar)
    (model,) = sidecar.status()["models"]
    assert model["served_version"] == "2"
    (source,) = [s for s in model["sources"] if s["kind"] == "resident"]
    assert source["source"].startswith("agent:")
    assert source["interval_s"] == INTERVAL_S
    last_reported = model["checks"]["resident"]["checks"][0]["measured"]["pass"]
    # flip one bit of byte 1,100,000 of the second hidden layer's weight (block 1 of its 1.44 MB)
    flip = _fault(server, {"tensor": "2.weight", "byte": 1_100_000, "bit": 6})
    flipped_at = time.time()
    assert flip["outputs"][0]["data"] == [1]

    incident = _wait("the resident incident", lambda: _incident(sidecar, "resident"), sidecar=sidecar)
    # within one agent interval: passes start every interval, so at the latest the pass after the one that may have
    # been running at the flip (not yet reported) finds it; the same in seconds, with slack for a loaded machine and
    # the report's trip
    assert incident["checks"][0]["details"]["pass"] <= last_reported + 2
    assert incident["detected_at"] - flipped_at <= INTERVAL_S + 3.0
    assert incident["severity"] == "critical"
    assert incident["served_version"] == "2"
    (check,) = incident["checks"]
    assert check["name"] == "resident:fingerprint"
    mismatch = check["details"]["mismatches"][0]
    assert (mismatch["tensor"], mismatch["block"], mismatch["start"], mismatch["stop"]) == (
        "2.weight", 1, 1 << 20, 600 * 600 * 4)
    assert mismatch["how"] == "file"
    assert mismatch["file"] == "weights.safetensors"
    assert (check["details"]["tensor"], check["details"]["block"]) == ("2.weight", 1)
    assert "'2.weight'" in check["summary"]
    assert "block 1" in check["summary"]

    # the sidecar rolls back through the registry and MLServer; the reloaded worker's agent verifies clean
    done = _wait("the incident to resolve", lambda: _incident(sidecar, "resident", "resolved"), sidecar=sidecar,
                 timeout=60)
    assert done["action"]["kind"] == "rollback"
    assert (done["action"]["from"], done["action"]["to"]) == ("2", "1")
    assert done["ttr_s"] is not None
    resident = _resident(sidecar)
    assert (resident["status"], resident["version"]) == ("pass", "1")
    with Registry.open(served["tmp"] / "reg") as reg:
        assert reg.serving_target("fraud")[0] == "1"  # type: ignore[index]
        assert reg.get("fraud", "2").state == "quarantined"  # the version rolled back from
    rollbacks = [d for d in sidecar.decisions() if d["action"] == "rolled-back"]
    assert len(rollbacks) == 1
    after = _predict(server, "fraud", x)
    assert not np.array_equal(before, after)  # version 1's weights answer now
    # one PagerDuty incident: triggered (then updated with the rollback), then resolved
    _wait("the resolve at PagerDuty",
          lambda: [i for i in incidents_for(pagerduty, dedup_key("fraud", "resident")) if i.state == "resolved"],
          sidecar=sidecar)
    (pd,) = incidents_for(pagerduty, dedup_key("fraud", "resident"))
    actions = [e["event_action"] for e in pd.events]
    assert actions[0] == "trigger"
    assert actions[-1] == "resolve"
    assert set(actions[:-1]) == {"trigger"}
    assert "2.weight" in json.dumps(pd.events[0]["payload"]["custom_details"])
    assert pagerduty.violations == []
    # the agent's reports all reached the sidecar (answered at once, whatever the sidecar was doing)
    agent = _metrics(f"http://127.0.0.1:{server.metrics_port}/metrics", "goldwatch_agent_")
    assert agent[("goldwatch_agent_covered_bytes", "file")] > 2 * 600 * 600 * 4
    assert agent[("goldwatch_agent_mismatched_blocks", "")] == 0
    assert agent[("goldwatch_agent_last_full_pass_timestamp_seconds", "")] > time.time() - 60
    assert agent[("goldwatch_agent_reports_total", "delivered")] > 0
    assert agent.get(("goldwatch_agent_reports_total", "failed"), 0) == 0
    assert agent.get(("goldwatch_agent_reports_total", "rejected"), 0) == 0
    # and the sidecar shows the agent's numbers itself
    mirrored = _metrics(sidecar.url + "/metrics", "goldwatch_resident_")
    assert mirrored[("goldwatch_resident_check_bytes_per_second", "")] > 0
    assert mirrored[("goldwatch_resident_last_full_pass_timestamp_seconds", "")] > time.time() - 60


def test_an_agent_that_stops_reporting_is_a_stale_warning_never_a_rollback(served: dict[str, Any]) -> None:
    server, sidecar, pagerduty = served["server"], served["sidecar"], served["pagerduty"]
    _wait("a passing resident report", lambda: _resident(sidecar).get("status") == "pass", sidecar=sidecar)
    served_before = sidecar.status()["models"][0]["served_version"]
    rollbacks_before = [d for d in sidecar.decisions() if d["action"] in ("rollback", "rolled-back")]
    assert _fault(server, {"agent": "stop"})["outputs"][0]["data"] == [0]
    stale = _wait("the stale warning", lambda: _incident(sidecar, "resident-stale", "open"), sidecar=sidecar,
                  timeout=30)
    assert stale["severity"] == "warning"
    assert "silent for" in stale["summary"]
    key = dedup_key("fraud", "resident-stale")
    _wait("the stale page", lambda: incidents_for(pagerduty, key), sidecar=sidecar)
    assert incidents_for(pagerduty, key)[0].events[0]["payload"]["severity"] == "warning"
    time.sleep(2 * INTERVAL_S)
    assert _fault(server, {"agent": "start"})["outputs"][0]["data"] == [1]
    _wait("the stale warning to resolve", lambda: _incident(sidecar, "resident-stale", "resolved"),
          sidecar=sidecar, timeout=30)
    _wait("the resolve at PagerDuty", lambda: incidents_for(pagerduty, key)[0].state == "resolved",
          sidecar=sidecar)
    # never a rollback: what is served did not move
    assert sidecar.status()["models"][0]["served_version"] == served_before
    assert [d for d in sidecar.decisions() if d["action"] in ("rollback", "rolled-back")] == rollbacks_before
    assert pagerduty.violations == []


def test_a_model_whose_file_fails_its_manifest_refuses_to_load(served: dict[str, Any], tmp_path: Path) -> None:
    server = served["server"]
    model_dir = write_model_dir(tmp_path / "bad" / "model", seed=5, hidden=600)  # manifest beside it
    flip_file_byte(model_dir / "weights.safetensors", 2_000_000)
    # the manifest named relative to model-settings.json, as MLServer resolves parameters.uri
    manifest = os.path.relpath(model_dir.parent / "model.manifest.json", served["repo"] / "bad")
    write_model_settings(served["repo"], "bad", implementation=FAULTS, extra={"parameters": {
        "uri": str(model_dir), "extra": {"goldwatch": {"interval_s": INTERVAL_S, "manifest": manifest}}}})
    resp = httpx.post(f"{server.base_url}/v2/repository/models/bad/load", timeout=60, trust_env=False)
    assert resp.status_code == 422, resp.text
    assert "goldwatch refused to load model 'bad'" in resp.text, resp.text
    assert "do not match their manifest" in resp.text, resp.text
    assert "weights.safetensors: tensor '4.weight' block 0" in resp.text, resp.text
    ready = httpx.get(f"{server.model_url('bad')}/ready", timeout=10, trust_env=False)
    assert ready.status_code != 200
    assert _predict(server, "fraud", np.zeros((1, 8), np.float32)).shape == (1, 3)  # the good model still serves
