"""``goldwatch doctor`` against a real ``goldwatch serve``: the sidecar the config names is reached, live and ready."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from goldwatch.runtimes.mlserver_testing import free_ports
from goldwatch.watchdog.sidecar.process import start_sidecar
from tests.sidecar.support import TOKEN, fast_watch, served_registry, sidecar_config


@pytest.mark.integration
def test_doctor_reaches_the_configured_sidecar(tmp_path: Path) -> None:
    serving = served_registry(tmp_path, tmp_path / "repo", "m", releases=1)
    port = free_ports(1)[0]
    config = sidecar_config(tmp_path, port=port, watches=[
        fast_watch("m", f"http://127.0.0.1:{free_ports(1)[0]}/v2/models/m", serving)])

    def doctor() -> dict:  # type: ignore[type-arg]
        done = subprocess.run([sys.executable, "-m", "goldwatch", "--config", str(config), "doctor", "--json"],
                              capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, "GOLDWATCH_PAGERDUTY_ROUTING_KEY": ""})
        return {c["name"]: c for c in json.loads(done.stdout)["checks"]}

    down = doctor()["sidecar"]
    assert down["status"] == "fail"
    assert f"http://127.0.0.1:{port}" in down["summary"]
    assert "is not reachable" in down["summary"]
    sidecar = start_sidecar(config, url=f"http://127.0.0.1:{port}", token=TOKEN,
                            env={"GOLDWATCH_PAGERDUTY_ROUTING_KEY": ""})
    try:
        checks = doctor()
    finally:
        sidecar.terminate()
        sidecar.kill()
    assert checks["sidecar"]["status"] == "pass"
    assert checks["sidecar"]["summary"] == f"http://127.0.0.1:{port} ([serve]): live and ready"
    assert checks["registry"]["status"] == "pass"
    assert "SQLite, readable, integrity ok" in checks["registry"]["summary"]
