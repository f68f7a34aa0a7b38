"""Live drift inside the real ``goldwatch serve`` process: config, routes, evidence, incidents, journal, metrics.

One sidecar process watches a registry-served model (no inference server: the checks that need one are off) with a
``[serve.watch.drift]`` table. KServe's payload-logger events go to the sink on the API port and on the
``[live_drift] sink_port``; drift pages a warning and never rolls back, data quality pages an error, a clean window
resolves; SIGTERM in the middle of a window and a restart continue it from the journal; a rollback switches the
reference to the version now served.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from goldwatch.runtimes.mlserver_testing import free_ports
from goldwatch.watchdog.sidecar.process import SidecarProcess, start_sidecar
from tests.live.support import kserve_headers, v2_request, v2_response
from tests.sidecar.support import TOKEN, fast_watch, served_registry, toml

pytestmark = pytest.mark.integration

F = 4
WINDOW = 400


def _config(root: Path, *, port: int, sink_port: int, serving: Path, refs: dict[str, Path]) -> Path:
    off = {"enabled": False}
    watch = fast_watch("fraud", f"http://127.0.0.1:{free_ports(1)[0]}/v2/models/fraud", serving, reload="none",
                       golden_replay=off, readiness=off, version=off,
                       drift={"reference_versions": {k: str(v) for k, v in refs.items()},
                              "window_rows": WINDOW, "min_window_rows": 100, "window_seconds": 3600.0,
                              "aliases": ["fraud-isvc"], "metrics_features": ["f0"],
                              "inputs": [{"name": f"f{i}", "tensor": "input-0", "index": i} for i in range(F)],
                              "outputs": [{"name": "score", "tensor": "output-0", "index": 0}]})
    text = toml({
        "registry": {"root": root / "registry", "ready_timeout_s": 30.0},
        "alerts": {"outbox_path": root / "alerts.sqlite", "rto_seconds": 60.0},
        "serve": {"host": "127.0.0.1", "port": port, "journal": root / "sidecar.sqlite", "jitter": 0.05,
                  "shutdown_timeout_s": 8.0, "watch": [watch]},
        "live_drift": {"sink_port": sink_port},
    })
    path = root / "goldwatch.toml"
    path.write_text(text)
    return path


def _reference(path: Path, *, shift: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5000, F))
    x[:, 0] += shift
    np.savez(path, **{f"f{i}": x[:, i] for i in range(F)}, score=rng.random(5000))
    return path


def _send(url: str, rows: np.ndarray, *, rng: np.random.Generator, per_event: int = 40,
          model: str = "fraud-isvc") -> None:
    """``rows`` as KServe's agent logs them: a request event and a response event per inference, same Ce-Id."""
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        for lo in range(0, len(rows), per_event):
            x = rows[lo: lo + per_event]
            ce_id = str(uuid.uuid4())
            for kind, body in (("request", v2_request(x)),
                               ("response", v2_response(rng.random((len(x), 2)), version="server-7"))):
                resp = client.post(url, content=body, headers=kserve_headers(ce_id, kind, model=model))
                assert resp.status_code == 200, resp.text
                assert resp.content == b""


def _wait(what: str, probe: Callable[[], Any], *, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


def _drift(sidecar: SidecarProcess) -> dict[str, Any]:
    out: dict[str, Any] = sidecar.get("/v1/models/fraud/drift")
    return out


def _windows(sidecar: SidecarProcess, n: int) -> list[dict[str, Any]]:
    return _wait(f"{n} window(s)", lambda: (d := _drift(sidecar))["state"]["windows"] >= n and d["windows"])


def _incident(sidecar: SidecarProcess, check_class: str, state: str = "open") -> dict[str, Any] | None:
    return next((i for i in sidecar.incidents(model="fraud") if i["check_class"] == check_class
                 and i["state"] == state), None)


def test_live_drift_in_the_real_sidecar(tmp_path: Path) -> None:
    serving = served_registry(tmp_path, tmp_path / "repo", "fraud", releases=2)  # versions 1 and 2; 2 is served
    refs = {"2": _reference(tmp_path / "ref-v2.npz", shift=0.0, seed=1),
            "1": _reference(tmp_path / "ref-v1.npz", shift=1.0, seed=2)}  # version 1 saw other inputs
    port, sink_port = free_ports(2)
    config = _config(tmp_path, port=port, sink_port=sink_port, serving=serving, refs=refs)
    api, sink = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sink_port}/v1/cloudevents"
    env = {"GOLDWATCH_PAGERDUTY_ROUTING_KEY": ""}
    rng = np.random.default_rng(7)
    sidecar = start_sidecar(config, url=api, token=TOKEN, env=env)
    try:
        _wait("the served version", lambda: _drift(sidecar)["version"] == "2")
        # a stable window through the SinkServer port: tested against version 2's reference, passes
        _send(sink, rng.normal(size=(WINDOW, F)), rng=rng)
        (first,) = _windows(sidecar, 1)
        assert (first["version"], first["tested"], first["drifted"]) == ("2", True, False)
        assert "ref-v2.npz" in first["reference"]
        # two shifted windows through the API port's route: the first holds, the second pages a warning
        shifted = rng.normal(size=(WINDOW, F))
        shifted[:, 0] += 1.0
        _send(api + "/v1/cloudevents", shifted, rng=rng)
        _windows(sidecar, 2)
        time.sleep(0.5)
        assert _incident(sidecar, "drift") is None, "one drifted window does not page (consecutive = 2)"
        _send(api + "/v1/models/fraud/cloudevents", shifted, rng=rng, model="anything")  # the path names it
        incident = _wait("the drift incident", lambda: _incident(sidecar, "drift"))
        assert incident["severity"] == "warning"
        assert not any(d["action"] == "rollback" for d in sidecar.decisions()), "drift never rolls back"
        # a clean window with a NaN spike: drift resolves, data quality pages an error
        spiky = rng.normal(size=(WINDOW, F))
        spiky[rng.random(WINDOW) < 0.15, 1] = np.nan
        _send(sink, spiky, rng=rng)
        _wait("the drift incident resolved", lambda: _incident(sidecar, "drift", "resolved"))
        quality = _wait("the data-quality incident", lambda: _incident(sidecar, "data-quality"))
        assert quality["severity"] == "error"
        metrics = httpx.get(api + "/metrics", timeout=10.0, trust_env=False).text
        assert 'goldwatch_live_drift_windows_total{model="fraud"} 4.0' in metrics
        assert 'feature="f0"' in metrics
        assert 'feature="f1"' not in metrics, "per feature only as configured"
        page = httpx.get(api + "/v1/models/fraud/drift.html", timeout=10.0, trust_env=False)
        assert page.status_code == 200
        assert "<svg" in page.text
        denied = httpx.post(api + "/v1/models/fraud/observe", json={"inputs": {"f0": [1.0]}}, timeout=10.0,
                            trust_env=False)
        assert denied.status_code == 401
        # half a window, then SIGTERM: the rows being windowed are checkpointed in the journal
        _send(sink, rng.normal(size=(WINDOW // 2, F)), rng=rng)
        _wait("the half window", lambda: _drift(sidecar)["window"]["rows"] == WINDOW // 2)
        assert sidecar.terminate() < 10.0
        assert sidecar.process.returncode == 0, sidecar.log()[-3000:]
    finally:
        sidecar.kill()

    sidecar = start_sidecar(config, url=api, token=TOKEN, env=env)
    try:
        state = _drift(sidecar)
        assert state["window"]["rows"] == WINDOW // 2, "the restart continues the window"
        assert state["state"]["windows"] == 4
        _send(sink, rng.normal(size=(WINDOW // 2, F)), rng=rng)
        fifth = _windows(sidecar, 5)[0]
        assert (fifth["rows"], fifth["drifted"], fifth["quality_failed"]) == (WINDOW, False, False)
        _wait("the data-quality incident resolved", lambda: _incident(sidecar, "data-quality", "resolved"))
        # a rollback to version 1: the same traffic is now tested against version 1's reference
        done = sidecar.post("/v1/models/fraud/rollback", {"reason": "live drift test"})
        assert done.status_code == 200, done.text
        assert done.json()["to_version"] == "1"
        _wait("the served version after the rollback", lambda: _drift(sidecar)["version"] == "1")
        _send(sink, rng.normal(size=(WINDOW, F)), rng=rng)
        last = _wait("a window of version 1", lambda: next(
            (w for w in _drift(sidecar)["windows"] if w["version"] == "1" and w["tested"]), None))
        assert last["drifted"]
        assert "ref-v1.npz" in last["reference"]
        observed = sidecar.post("/v1/models/fraud/observe", {"inputs": {f"f{i}": [0.0] * 10 for i in range(F)}})
        assert observed.status_code == 202, observed.text
    finally:
        sidecar.terminate()
        sidecar.kill()


@pytest.mark.parametrize("where", ["section", "both"])
def test_live_drift_config_problems_stop_the_sidecar_before_anything_starts(tmp_path: Path, where: str) -> None:
    from click.testing import CliRunner

    from goldwatch.cli import main

    serving = served_registry(tmp_path, tmp_path / "repo", "fraud", releases=1)
    watch = fast_watch("fraud", "http://127.0.0.1:1/v2/models/fraud", serving,
                       **({"drift": {"reference": str(tmp_path / "ref.npz")}} if where == "both" else {}))
    models = [{"name": "fraud"}] if where == "both" else [{"name": "ghost"}]
    config = tmp_path / "goldwatch.toml"
    config.write_text(toml({"registry": {"root": tmp_path / "registry"},
                            "serve": {"port": 0, "journal": tmp_path / "sidecar.sqlite", "watch": [watch]},
                            "live_drift": {"models": models}}))
    result = CliRunner().invoke(main, ["--config", str(config), "serve"])
    assert result.exit_code == 2, result.output
    expected = ("also has a [serve.watch.drift] table" if where == "both"
                else "no [[serve.watch]] watches 'ghost'")
    assert expected in result.stderr
    assert not (tmp_path / "sidecar.sqlite").exists(), "nothing started"
