"""The agent inside a real MLServer worker: a bit flipped in a resident parameter is reported within one agent
interval with the right tensor and block; the sidecar rolls back; the reloaded worker verifies clean; the incident
resolves. Also: a model whose file fails its manifest refuses to load, with goldwatch's message.

The sidecar (``goldwatch serve``, issue 12) is stood in for by a strict local implementation of its evidence
endpoint (tests/agent/agent_support.py: the contract's body, bearer token, 202) whose policy for a failed resident
check is the registry's verified rollback through MLServer's repository API -- what the sidecar does.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from goldwatch.runtimes.mlserver_testing import (
    MLServerProcess,
    mlserver_available,
    start_mlserver,
    write_model_settings,
)
from goldwatch.watchdog.registry import OipReloader, Registry, Serving, make_pointer
from tests.agent.agent_support import EvidenceStandIn, flip_file_byte, write_model_dir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not mlserver_available(), reason="mlserver is not installed (pip install 'goldwatch[dev]')"),
]

TOKEN = "agent-test-token-7f3a"
INTERVAL_S = 1.0
FAULTS = "goldwatch.watchdog.agent.mlserver_faults.FaultInjectingModel"


def _infer(server: MLServerProcess, model: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.model_url(model)}/infer", json=body, timeout=30, trust_env=False)


def _predict(server: MLServerProcess, model: str, x: np.ndarray) -> np.ndarray:
    body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    resp = _infer(server, model, body)
    assert resp.status_code == 200, resp.text
    out = resp.json()["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two releases in a registry, version 2 served by a real MLServer through the `current` link, and the stand-in
    sidecar whose policy rolls back through MLServer's repository API (one server for the module's tests)."""
    tmp_path = tmp_path_factory.mktemp("agent-mlserver")
    reg = Registry.open(tmp_path / "reg")
    repo = tmp_path / "repo"
    folder = write_model_settings(repo, "fraud", implementation=FAULTS, extra={"parameters": {
        "uri": "./current",
        "extra": {"goldwatch": {"interval_s": INTERVAL_S, "duty_cycle": 1.0}},
    }})
    pointer = make_pointer("current-link", folder)
    reg.attach("fraud", Serving(pointer))
    for seed in (1, 2):
        mv = reg.add("fraud", write_model_dir(tmp_path / "src" / str(seed) / "model", seed=seed, hidden=600,
                                              manifest=False))
        reg.promote("fraud", mv.version, reason="release")
    stand_in = EvidenceStandIn(token=TOKEN)
    settings = json.loads((folder / "model-settings.json").read_text())
    settings["parameters"]["extra"]["goldwatch"]["sidecar_url"] = stand_in.url
    (folder / "model-settings.json").write_text(json.dumps(settings))
    # the server inherits these (the token, and the drill runtime's permission to flip bits)
    env = {"GOLDWATCH_SERVE_TOKEN": TOKEN, "GOLDWATCH_FAULT_INJECTION": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with start_mlserver(repo, timeout=120) as server:
            server.wait_ready(model="fraud")
            reloader = OipReloader(server.base_url, model_name="fraud")
            reg.attach("fraud", Serving(pointer, reloader=reloader, ready_timeout_s=60))

            def rollback(model: str, body: dict[str, Any]) -> None:
                check = body["checks"][0]
                result = reg.rollback(model, actor="sidecar", reason=check["summary"], evidence=check["details"])
                assert result.ok, result.error

            stand_in.on_fail = rollback
            yield {"server": server, "registry": reg, "stand_in": stand_in, "repo": repo, "tmp": tmp_path}
            reloader.close()
    finally:
        stand_in.close()
        reg.close()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _metrics(server: MLServerProcess) -> dict[tuple[str, str], float]:
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10, trust_env=False).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("goldwatch_agent_") and sample.labels.get("model") == "fraud":
                out[(sample.name, sample.labels.get("how", ""))] = sample.value
    return out


def test_resident_bit_flip_is_reported_rolled_back_and_resolved(served: dict[str, Any]) -> None:
    server, stand_in, reg = served["server"], served["stand_in"], served["registry"]
    x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(2, 8)
    before = _predict(server, "fraud", x)
    # the worker's agent has verified version 2 in memory and says so
    first = stand_in.wait_for(lambda: [b for b in stand_in.bodies("fraud") if b["checks"][0]["status"] == "pass"],
                              timeout=30)
    assert first, stand_in.received
    assert first[0]["version"] == "2"
    assert first[0]["checks"][0]["name"] == "resident:fingerprint"
    n_floats = 8 * 600 + 600 + 2 * (600 * 600 + 600) + 600 * 3 + 3
    assert first[0]["checks"][0]["details"]["coverage"]["bytes"] == {"file": 4 * n_floats}
    # flip one bit of byte 1,100,000 of the second hidden layer's weight (block 1 of its 1.44 MB)
    flip = _infer(server, "fraud", {"inputs": [], "parameters": {
        "goldwatch_fault": {"tensor": "2.weight", "byte": 1_100_000, "bit": 6}}})
    assert flip.status_code == 200, flip.text
    flipped_at = time.monotonic()
    assert flip.json()["outputs"][0]["data"] == [1]
    last_reported = max(b["checks"][0]["details"]["pass"] for b in stand_in.bodies("fraud"))

    def failed() -> list[tuple[float, dict[str, Any]]]:
        return [(t, b) for t, _, code, b in stand_in.received
                if code == 202 and b is not None and t >= flipped_at and b["checks"][0]["status"] == "fail"]

    reports = stand_in.wait_for(failed, timeout=30)
    assert reports, stand_in.received[-3:]
    arrived, body = reports[0]
    check = body["checks"][0]
    # within one agent interval: passes start every interval, so at the latest the pass after the one that may
    # have been running at the flip (not yet reported) finds it; the same in seconds, with slack for a loaded
    # machine and the report's trip
    assert check["details"]["pass"] <= last_reported + 2
    assert arrived - flipped_at <= INTERVAL_S + 3.0
    assert body["version"] == "2"
    mismatch = check["details"]["mismatches"][0]
    assert (mismatch["tensor"], mismatch["block"], mismatch["start"], mismatch["stop"]) == (
        "2.weight", 1, 1 << 20, 600 * 600 * 4)
    assert mismatch["how"] == "file"
    assert mismatch["file"] == "weights.safetensors"
    assert mismatch["file_stop"] - mismatch["file_start"] == mismatch["stop"] - mismatch["start"]
    assert (check["details"]["tensor"], check["details"]["block"]) == ("2.weight", 1)  # also at the top level
    assert "'2.weight'" in check["summary"]
    assert "block 1" in check["summary"]

    # the stand-in's policy rolls back through the registry and MLServer; the reloaded worker verifies clean
    resolved = stand_in.wait_for(lambda: stand_in.incidents.get("fraud", {}).get("state") == "resolved", timeout=60)
    incident = stand_in.incidents["fraud"]
    assert resolved, incident
    assert incident["action"] == "done"
    assert incident["resolved_by"]["version"] == "1"
    assert incident["resolved_by"]["checks"][0]["status"] == "pass"
    assert reg.serving_target("fraud")[0] == "1"
    assert reg.get("fraud", "2").state == "quarantined"  # the version rolled back from
    after = _predict(server, "fraud", x)
    assert not np.array_equal(before, after)  # version 1's weights answer now
    metrics = _metrics(server)
    assert metrics[("goldwatch_agent_covered_bytes", "file")] > 2 * 600 * 600 * 4
    assert metrics[("goldwatch_agent_mismatched_blocks", "")] == 0
    assert metrics[("goldwatch_agent_last_full_pass_timestamp_seconds", "")] > time.time() - 60
    assert metrics[("goldwatch_agent_bytes_checked_total", "")] > 0


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
