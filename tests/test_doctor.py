"""``goldwatch doctor``: on this machine (no GPU, everything else installed), without the optional extras (their
imports blocked in a subprocess, as in a venv that lacks them), and with a broken setup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from goldwatch.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXTRAS_MODULES = ("torch", "safetensors", "onnxruntime", "onnx", "evidently", "starlette", "uvicorn", "mlflow",
                  "pyarrow", "tokenizers", "triton", "mlserver", "dask", "distributed", "psycopg")
# Imports of these fail in the child, the way they fail where the package is not installed.
BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv.pop(1).split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
from goldwatch.cli import main
try:
    main(prog_name="goldwatch")
finally:
    loaded = sorted(m for m in BLOCKED if m in sys.modules)
    sys.stderr.write("LOADED " + ",".join(loaded) + "\\n")
"""


def _doctor(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    done = subprocess.run([sys.executable, "-c", BLOCKER, ",".join(EXTRAS_MODULES), *args, "doctor", "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    return done.returncode, json.loads(done.stdout), done.stderr


def _by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_doctor_on_this_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GOLDWATCH_PAGERDUTY_ROUTING_KEY", raising=False)
    result = CliRunner().invoke(main, ["doctor", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    checks = _by_name(report)
    assert report["ok"]
    assert {c["status"] for c in report["checks"]} <= {"pass", "skip"}
    for name in ("goldwatch", "python", "cpu", "cuda", "triton", "onnxruntime", "mlserver", "chromium", "config",
                 "registry", "alerts", "sidecar"):
        assert name in checks, name
    for extra in ("torch", "onnx", "reports", "serve", "parquet"):  # what the dev environment installs
        assert checks[f"extra:{extra}"]["status"] == "pass", checks[f"extra:{extra}"]
    assert checks["onnxruntime"]["details"]["providers"][-1] == "CPUExecutionProvider"
    assert checks["mlserver"]["status"] == "pass"
    import torch

    if not torch.cuda.is_available():  # this machine: CPU only, and doctor says what that rules out
        assert checks["cuda"]["status"] == "skip"
        assert "GPU fingerprints are unavailable" in checks["cuda"]["summary"]
        assert checks["triton"]["status"] == "skip"
    else:  # a GPU machine: the Triton kernel must compile and agree with the CPU
        assert checks["cuda"]["status"] == "pass"
        assert checks["triton"]["status"] in ("pass", "skip")
    assert checks["config"]["summary"].startswith("no goldwatch.toml here")
    assert checks["alerts"]["status"] == "skip"
    assert "GOLDWATCH_PAGERDUTY_ROUTING_KEY" in checks["alerts"]["summary"]
    assert list(tmp_path.iterdir()) == []  # doctor created nothing: no registry, no outbox

    text = CliRunner().invoke(main, ["doctor"], catch_exceptions=False)
    assert text.exit_code == 0
    assert "problem(s)" in text.stdout.splitlines()[-1]


def test_doctor_without_the_extras(tmp_path: Path) -> None:
    code, report, err = _doctor(tmp_path)
    assert code == 0, err  # missing extras limit what goldwatch can do; nothing is broken
    checks = _by_name(report)
    assert checks["extra:torch"]["status"] == "skip"
    assert "pip install 'goldwatch[torch]'" in checks["extra:torch"]["summary"]
    assert set(checks["extra:torch"]["details"]["missing"]) == {"torch", "safetensors"}
    assert checks["extra:onnx"]["status"] == "skip"
    assert checks["cuda"]["summary"].startswith("torch is not installed")
    assert checks["onnxruntime"]["status"] == "skip"
    assert checks["mlserver"]["status"] == "skip"
    assert checks["cpu"]["status"] == "pass"
    assert checks["registry"]["status"] == "pass"
    assert err.strip().splitlines()[-1] == "LOADED"  # and none of them was imported after all


def test_doctor_finds_a_broken_setup(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    (tmp_path / "goldwatch.toml").write_text(
        f'[registry]\nroot = "{blocker}/registry"\n'
        f'[alerts.pagerduty]\nrouting_key_file = "{tmp_path}/missing-key"\n'
    )
    code, report, _ = _doctor(tmp_path, env={"GOLDWATCH_PAGERDUTY_ROUTING_KEY": ""})
    assert code == 1
    checks = _by_name(report)
    assert checks["config"]["status"] == "pass"
    assert checks["registry"]["status"] == "fail"
    assert "cannot be created" in checks["registry"]["summary"]
    assert checks["alerts"]["status"] == "fail"
    assert "missing-key" in checks["alerts"]["summary"]
    assert report["counts"]["fail"] == 2

    (tmp_path / "goldwatch.toml").write_text("[registry]\nroots = 1\n")
    code, report, _ = _doctor(tmp_path)
    assert code == 1
    assert "registry.roots: unknown key" in _by_name(report)["config"]["summary"]


def test_doctor_sees_the_alert_path_without_sending(tmp_path: Path) -> None:
    env = {"GOLDWATCH_PAGERDUTY_ROUTING_KEY": "r" * 32, "GOLDWATCH_PAGERDUTY_EVENTS_URL": "http://127.0.0.1:9"}
    code, report, _ = _doctor(tmp_path, env=env)
    alerts = _by_name(report)["alerts"]
    assert (code, alerts["status"]) == (0, "pass")
    assert "pagerduty (http://127.0.0.1:9)" in alerts["summary"]
    assert "nothing sent" in alerts["summary"]
    assert "r" * 32 not in json.dumps(report)  # the key is never shown
    assert list(tmp_path.iterdir()) == []  # no outbox was created
    code, report, _ = _doctor(tmp_path, env={**env, "GOLDWATCH_PAGERDUTY_ROUTING_KEY": "short"})
    assert code == 1
    assert "32" in _by_name(report)["alerts"]["summary"]


class _Probes(BaseHTTPRequestHandler):
    ready = True

    def do_GET(self) -> None:
        code = 200 if self.path == "/livez" or (self.path == "/readyz" and _Probes.ready) else 503
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}' if code == 200 else b'{"reasons": ["first round of checks"]}')

    def log_message(self, *args: object) -> None:
        pass


def test_doctor_probes_the_configured_sidecar(tmp_path: Path, free_port: int) -> None:
    from goldwatch.doctor import diagnose

    config = tmp_path / "goldwatch.toml"
    config.write_text(f'[agent]\nsidecar_url = "http://127.0.0.1:{free_port}"\n')
    (missing,) = diagnose(str(config), only=["sidecar"]).checks
    assert missing.status == "fail"
    assert "is not reachable" in missing.summary
    server = ThreadingHTTPServer(("127.0.0.1", free_port), _Probes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _Probes.ready = False
        (starting,) = diagnose(str(config), only=["sidecar"]).checks
        assert starting.status == "fail"
        assert "alive but not ready (503)" in starting.summary
        _Probes.ready = True
        (ok,) = diagnose(str(config), only=["sidecar"]).checks
        assert ok.status == "pass"
        assert ok.summary == f"http://127.0.0.1:{free_port} ([agent] sidecar_url): live and ready"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    config.write_text("")
    (none,) = diagnose(str(config), only=["sidecar"]).checks
    assert none.status == "skip"
