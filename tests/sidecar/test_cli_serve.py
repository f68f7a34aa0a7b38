"""``goldwatch serve``: configuration problems before anything starts, ``--verify-first`` as a start-up gate, and
staying light to import."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.runtimes.mlserver_testing import free_ports
from goldwatch.watchdog.registry import Registry
from goldwatch.watchdog.sidecar.process import start_sidecar
from tests.sidecar.support import TOKEN, fast_watch, served_registry, sidecar_config, toml

LIGHT = ("torch", "onnxruntime", "evidently", "mlserver", "starlette", "uvicorn")


def test_the_sidecar_package_and_its_commands_import_nothing_heavy() -> None:
    code = (
        "import sys, contextlib, io\nimport goldwatch, goldwatch.watchdog.sidecar\n"
        "from goldwatch.cli import main\n"
        "for args in (['serve', '--help'], ['status', '--help'], ['demo', '--help'], ['demo', 'sidecar', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n            main(args)\n        except SystemExit as e:\n            assert e.code == 0, args\n"
        f"print(sorted(m for m in {LIGHT!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_every_configuration_problem_is_reported_at_once_and_nothing_starts(tmp_path: Path) -> None:
    served_registry(tmp_path, tmp_path / "repo", "known", releases=1)
    config = tmp_path / "bad.toml"
    config.write_text(toml({
        "registry": {"root": tmp_path / "registry"},
        "serve": {"port": 0, "journal": tmp_path / "sidecar.sqlite", "watch": [
            {"name": "ghost", "url": "http://127.0.0.1:1/v2/models/ghost", "serving_dir": tmp_path / "s"},
            {"name": "static", "url": "http://127.0.0.1:1/v2/models/static", "served_path": tmp_path / "nope.onnx",
             "manifest": tmp_path / "nope.json", "golden": [tmp_path / "no-golden"]},
            {"name": "known", "url": "http://127.0.0.1:1/v2/models/known"},
        ]},
    }))
    result = CliRunner().invoke(main, ["serve", "--config", str(config)])
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert "4 problem(s)" in err or "5 problem(s)" in err, err
    for expected in ("serve.watch[0] (ghost): ", "has no model 'ghost' (known: known)",
                     "serve.watch[1] (static).served_path", "serve.watch[1] (static).manifest",
                     "serve.watch[1] (static).golden", "serve.watch[2] (known): ",
                     "no serving directory"):
        assert expected in err, expected
    assert "Traceback" not in err
    assert not (tmp_path / "sidecar.sqlite").exists(), "nothing started: not even the journal was created"
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    nothing = CliRunner().invoke(main, ["--config", str(empty), "serve"])
    assert nothing.exit_code == 2
    assert "nothing to watch" in nothing.stderr


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    serving = served_registry(tmp_path, tmp_path / "repo", "m", releases=1)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        config = sidecar_config(tmp_path, port=port, watches=[fast_watch("m", "http://127.0.0.1:1/v2/models/m",
                                                                         serving)])
        result = CliRunner().invoke(main, ["--config", str(config), "serve"])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


@pytest.mark.integration
def test_sigterm_lets_a_rollback_in_progress_finish_and_exits_within_10_s(tmp_path: Path) -> None:
    """The reload takes 3 s (a command that sleeps); SIGTERM arrives in the middle of it."""
    serving = served_registry(tmp_path, tmp_path / "repo", "m", releases=2)
    port = free_ports(1)[0]
    watch = fast_watch("m", f"http://127.0.0.1:{free_ports(1)[0]}/v2/models/m", serving, reload="command",
                       reload_command=["sleep", "3"])
    config = sidecar_config(tmp_path, port=port, watches=[watch])
    sidecar = start_sidecar(config, url=f"http://127.0.0.1:{port}", token=TOKEN,
                            env={"GOLDWATCH_PAGERDUTY_ROUTING_KEY": ""})
    try:
        served = Path(os.path.realpath(serving / "current" / "weights.npz"))
        data = bytearray(served.read_bytes())
        data[-40] ^= 1
        served.write_bytes(bytes(data))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(d["action"] == "rollback" for d in sidecar.decisions()):
                break
            time.sleep(0.05)
        exit_s = sidecar.terminate()
    finally:
        sidecar.kill()
    assert sidecar.process.returncode == 0, sidecar.log()[-2000:]
    assert exit_s < 10.0
    from goldwatch.watchdog.sidecar.journal import Journal

    journal = Journal.open(tmp_path / "sidecar.sqlite")
    (rollback,) = journal.rollbacks(model="m")
    assert rollback.finished_at is not None, "the rollback was let finish, not cut off"
    assert (rollback.from_version, rollback.to_version, rollback.outcome) == ("2", "1", "ok")
    journal.close()


@pytest.mark.integration
def test_verify_first_rolls_back_a_corrupted_model_before_the_server_starts_and_gates_start_up(
        tmp_path: Path) -> None:
    """No inference server runs yet (a native sidecar starts first): the fixable model is rolled back without a
    reload; the one with nothing to roll back to keeps /startupz at 503, so its pod never starts serving."""
    repo = tmp_path / "repo"
    fixable = served_registry(tmp_path, repo, "fixable", releases=2)
    stuck = served_registry(tmp_path, repo, "stuck", releases=1, base_seed=50)
    for serving in (fixable, stuck):
        served = Path(os.path.realpath(serving / "current" / "weights.npz"))
        data = bytearray(served.read_bytes())
        data[-40] ^= 1
        served.write_bytes(bytes(data))
    port = free_ports(1)[0]
    server = f"http://127.0.0.1:{free_ports(1)[0]}"
    config = sidecar_config(tmp_path, port=port, watches=[
        fast_watch("fixable", f"{server}/v2/models/fixable", fixable),
        fast_watch("stuck", f"{server}/v2/models/stuck", stuck)])
    url = f"http://127.0.0.1:{port}"
    sidecar = start_sidecar(config, url=url, token=TOKEN, extra_args=("--verify-first",), wait=False,
                            env={"GOLDWATCH_PAGERDUTY_ROUTING_KEY": ""})
    try:
        deadline = time.monotonic() + 60
        body: dict = {}  # type: ignore[type-arg]
        while time.monotonic() < deadline:
            try:
                resp = httpx.get(url + "/startupz", timeout=2)
                body = resp.json()
                if body.get("status") != "verifying":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert resp.status_code == 503, body
        assert body["status"] == "failed", body
        assert "stuck: served files fail verification" in body["problem"]
        assert "fixable" not in body["problem"]
        assert httpx.get(url + "/livez", timeout=2).status_code == 200, "alive, only not started"
        ready = httpx.get(url + "/readyz", timeout=2)
        assert ready.status_code == 503
        assert "stuck" in json.dumps(ready.json())
        with Registry.open(tmp_path / "registry") as reg:
            assert reg.serving_target("fixable")[0] == "1"  # type: ignore[index]
            assert reg.get("fixable", "2").state == "quarantined"
            assert reg.serving_target("stuck")[0] == "1"  # type: ignore[index]
        status = sidecar.status()
        startup = {m["name"]: m["startup"] for m in status["models"]}
        assert startup["fixable"].startswith("verified after rolled back fixable 2 -> 1")
        incidents = {i["model"]: i for i in sidecar.incidents(state="open")}
        assert incidents["stuck"]["severity"] == "critical"
    finally:
        sidecar.terminate()
