"""The sidecar end to end: a real MLServer on 127.0.0.1, the strict PagerDuty stand-in, the real ``goldwatch serve``.

One MLServer serves a model per scenario and one sidecar process watches them all (a second MLServer serves the
model whose server gets killed; the crash scenario runs a sidecar of its own). Times are asserted loosely; the
benchmark measures them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from goldwatch.cli import main
from goldwatch.runtimes.mlserver_testing import MLServerProcess, free_ports, mlserver_available, start_mlserver
from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub, incidents_for
from goldwatch.watchdog.registry import Registry, Serving, make_pointer
from goldwatch.watchdog.sidecar.process import SidecarProcess, start_sidecar
from tests.sidecar.support import TOKEN, fast_watch, served_registry, sidecar_config, sidecar_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not mlserver_available(), reason="mlserver is not installed (pip install 'goldwatch[demo]')"),
]

MODELS = ("flip", "wrong", "observe", "paused", "skew", "flap")
T = TypeVar("T")


@dataclasses.dataclass
class World:
    root: Path
    server: MLServerProcess
    down_server: MLServerProcess
    down_ports: dict[str, int]
    pagerduty: PagerDutyStub
    sidecar: SidecarProcess
    serving: dict[str, Path]


def _wait(what: str, probe: Callable[[], T | None], *, timeout: float = 40.0, world: World | None = None) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    tail = world.sidecar.log()[-4000:] if world else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def _incident(sidecar: SidecarProcess, model: str, cls: str, state: str | None = None) -> dict[str, Any] | None:
    found = [i for i in sidecar.incidents(model=model) if i["check_class"] == cls
             and (state is None or i["state"] == state)]
    return found[0] if found else None


def _flip(serving: Path) -> None:
    served = Path(os.path.realpath(serving / "current" / "weights.npz"))
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0x40
    served.write_bytes(bytes(data))


def _weights(root: Path, model: str, version: str) -> np.ndarray:
    with np.load(root / "src" / model / version / "weights.npz") as data:
        return np.asarray(data["w"])


def _infer(server: MLServerProcess, model: str, x: np.ndarray, **parameters: Any) -> np.ndarray:
    body: dict[str, Any] = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                        "data": x.ravel().tolist()}]}
    if parameters:
        body["parameters"] = parameters
    resp = httpx.post(f"{server.model_url(model)}/infer", json=body, timeout=30, trust_env=False)
    assert resp.status_code == 200, resp.text
    out = resp.json()["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


def _serving_version(root: Path, model: str) -> str | None:
    with Registry.open(root / "registry") as reg:
        target = reg.serving_target(model)
    return None if target is None else target[0]


def _decisions(sidecar: SidecarProcess, model: str) -> list[dict[str, Any]]:
    return [d for d in sidecar.decisions() if d["model"] == model]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("sidecar-e2e")
    repo, down_repo = root / "repo", root / "repo-down"
    serving = {m: served_registry(root, repo, m, stamp=(m == "skew"), base_seed=10 * i)
               for i, m in enumerate(MODELS)}
    serving["down"] = served_registry(root, down_repo, "down", base_seed=100)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(start_mlserver(repo))
        http, grpc, metrics = free_ports(3)
        down_ports = {"http_port": http, "grpc_port": grpc, "metrics_port": metrics}
        down = start_mlserver(down_repo, settings=down_ports)
        pagerduty = stack.enter_context(PagerDutyStub())
        port = free_ports(1)[0]
        watches = [fast_watch(m, server.model_url(m), serving[m]) for m in MODELS]
        watches[MODELS.index("observe")]["mode"] = "observe"
        watches[MODELS.index("flap")]["max_rollbacks_per_hour"] = 1
        watches.append(fast_watch("down", down.model_url("down"), serving["down"]))
        config = sidecar_config(root, port=port, watches=watches)
        sidecar = start_sidecar(config, url=f"http://127.0.0.1:{port}", env=sidecar_env(pagerduty.url), token=TOKEN)
        w = World(root, server, down, down_ports, pagerduty, sidecar, serving)
        stack.callback(lambda: w.down_server.stop())  # the test restarts it: stop whichever runs at the end
        stack.callback(sidecar.terminate)
        yield w


def test_a_flipped_byte_is_detected_rolled_back_reloaded_verified_and_resolved(world: World) -> None:
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    flipped_at = time.time()
    _flip(world.serving["flip"])
    inc = _wait("the integrity incident of 'flip' to resolve",
                lambda: _incident(world.sidecar, "flip", "integrity", "resolved"), world=world)
    assert inc["severity"] == "critical"
    assert inc["action"]["kind"] == "rollback"
    assert (inc["action"]["from"], inc["action"]["to"]) == ("3", "2")
    assert inc["checks"][0]["name"] == "integrity:weights.npz"
    assert inc["checks"][0]["status"] == "fail"
    assert inc["detected_at"] - flipped_at < 0.5 + 5.0, "within one files interval (0.5 s), loosely"
    assert 0 < inc["ttr_s"] < 20.0
    assert inc["within_rto"] is True
    # MLServer reloaded what the registry serves now, and the golden replay passed on it after the rollback
    np.testing.assert_allclose(_infer(world.server, "flip", x), x @ _weights(world.root, "flip", "2"), rtol=1e-5)
    golden = world.sidecar.status()["models"][MODELS.index("flip")]["checks"]["golden"]
    assert golden["status"] == "pass"
    assert golden["last_pass_at"] > inc["acted_at"]
    assert golden["version"] == "2"
    assert _serving_version(world.root, "flip") == "2"
    with Registry.open(world.root / "registry") as reg:
        assert reg.get("flip", "3").state == "quarantined"
    # PagerDuty: one incident, triggered (detected, then updated with the rollback) and resolved
    (pd,) = incidents_for(world.pagerduty, "goldwatch/flip/integrity")
    actions = [e["event_action"] for e in pd.events]
    assert pd.state == "resolved"
    assert actions[0] == "trigger"
    assert actions[-1] == "resolve"
    assert "rolled back flip 3 -> 2" in pd.events[-2]["payload"]["summary"]
    assert world.pagerduty.violations == []


def test_a_silently_wrong_model_is_caught_by_golden_replay_and_healed_by_the_reload(world: World) -> None:
    x = np.random.default_rng(2).standard_normal((2, 16)).astype(np.float32)
    _infer(world.server, "wrong", x, goldwatch_test_perturb=0.25)  # weights change in memory; files intact
    inc = _wait("the golden incident of 'wrong' to resolve",
                lambda: _incident(world.sidecar, "wrong", "golden", "resolved"), world=world)
    assert inc["action"]["kind"] == "rollback"
    assert inc["action"]["to"] == "2"
    assert _incident(world.sidecar, "wrong", "integrity") is None, "the files never changed"
    assert any(d["action"] == "confirm" for d in _decisions(world.sidecar, "wrong")), "confirmed before acting"
    np.testing.assert_allclose(_infer(world.server, "wrong", x), x @ _weights(world.root, "wrong", "2"), rtol=1e-5)
    (pd,) = incidents_for(world.pagerduty, "goldwatch/wrong/golden")
    assert pd.state == "resolved"
    assert pd.events[0]["payload"]["severity"] == "critical"


def test_observe_mode_pages_and_never_acts(world: World) -> None:
    _flip(world.serving["observe"])
    inc = _wait("an open integrity incident of 'observe'",
                lambda: _incident(world.sidecar, "observe", "integrity", "open"), world=world)
    assert "observe mode" in inc["summary"]
    assert inc["action"] is None
    time.sleep(1.5)  # three more files intervals: still no action
    assert _serving_version(world.root, "observe") == "3"
    assert not any(d["action"] in ("rollback", "rolled-back") for d in _decisions(world.sidecar, "observe"))
    (pd,) = incidents_for(world.pagerduty, "goldwatch/observe/integrity")
    assert pd.state == "triggered"
    _flip(world.serving["observe"])  # the byte is put back: the checks pass, the incident resolves
    _wait("the observe incident to resolve", lambda: _incident(world.sidecar, "observe", "integrity", "resolved"),
          world=world)
    _wait("the resolve to reach PagerDuty", lambda: pd.state == "resolved")


def test_pause_holds_action_and_pages_and_resume_acts(world: World) -> None:
    paused = world.sidecar.post("/v1/models/paused/pause", {"reason": "deploying v4", "for_s": 600})
    assert paused.status_code == 200, paused.text
    _flip(world.serving["paused"])
    _wait("the paused model's files check to fail",
          lambda: world.sidecar.status()["models"][MODELS.index("paused")]["checks"]["files"]["status"] == "fail")
    time.sleep(1.0)
    assert _incident(world.sidecar, "paused", "integrity") is None
    assert incidents_for(world.pagerduty, "goldwatch/paused/integrity") == []
    assert _serving_version(world.root, "paused") == "3"
    assert any(d["action"] == "hold" and "paused" in d["reason"] for d in _decisions(world.sidecar, "paused"))
    assert world.sidecar.post("/v1/models/paused/resume", {}).status_code == 200
    inc = _wait("the rollback after resume", lambda: _incident(world.sidecar, "paused", "integrity", "resolved"),
                world=world)
    assert inc["action"]["to"] == "2"


def test_version_skew_gets_a_reload_never_a_rollback(world: World) -> None:
    # an operator switches the pointer without telling the server: the registry serves 2, the server still runs 3
    with Registry.open(world.root / "registry") as reg:
        reg.attach("skew", Serving(make_pointer("current-link", world.serving["skew"])))
        assert reg.rollback("skew", actor="ops", reason="manual switch, reload forgotten",
                            quarantine_current=False).to_version == "2"
    inc = _wait("the version incident of 'skew' to resolve",
                lambda: _incident(world.sidecar, "skew", "version", "resolved"), world=world)
    assert inc["action"]["kind"] == "reload"
    assert inc["severity"] == "error"
    meta = httpx.get(world.server.model_url("skew"), timeout=10).json()
    assert meta["versions"] == ["2"], "the server was told to load what the registry serves"
    decisions = _decisions(world.sidecar, "skew")
    assert any(d["action"] == "reloaded" for d in decisions)
    assert not any(d["action"] in ("rollback", "rolled-back") for d in decisions)
    with Registry.open(world.root / "registry") as reg:
        assert reg.get("skew", "3").state == "known-good", "the sidecar quarantined nothing"


def test_the_flap_guard_stops_acting_pages_that_it_stopped_and_resume_acts_again(world: World) -> None:
    _flip(world.serving["flap"])
    first = _wait("the first rollback of 'flap'", lambda: _incident(world.sidecar, "flap", "integrity", "resolved"),
                  world=world)
    assert first["action"]["to"] == "2"
    assert _serving_version(world.root, "flap") == "2"
    _flip(world.serving["flap"])  # version 2's served copy goes bad too: a second rollback within the hour
    guard = _wait("the flap-guard incident", lambda: _incident(world.sidecar, "flap", "flap-guard", "open"),
                  world=world)
    assert guard["severity"] == "critical"
    assert "max_rollbacks_per_hour = 1" in guard["summary"]
    model = world.sidecar.status()["models"][MODELS.index("flap")]
    assert model["stopped"] is not None
    assert model["healthy"] is False
    integrity = _incident(world.sidecar, "flap", "integrity", "open")
    assert integrity is not None
    assert "flap guard" in integrity["summary"]
    assert _serving_version(world.root, "flap") == "2"
    _wait("the flap-guard page", lambda: incidents_for(world.pagerduty, "goldwatch/flap/flap-guard"))
    assert world.sidecar.post("/v1/models/flap/resume", {"reason": "looked at it"}).status_code == 200
    _wait("the flap-guard incident to resolve", lambda: _incident(world.sidecar, "flap", "flap-guard", "resolved"))
    second = integrity["id"]
    inc = _wait("the rollback after resume", lambda: [i for i in world.sidecar.incidents(model="flap")
                                                      if i["id"] == second and i["state"] == "resolved"],
                world=world)[0]
    assert inc["action"]["to"] == "1"
    assert _serving_version(world.root, "flap") == "1"


def test_a_killed_server_pages_an_error_never_rolls_back_and_resolves_when_back(world: World) -> None:
    os.killpg(world.down_server.process.pid, signal.SIGKILL)
    world.down_server.process.wait(10)
    inc = _wait("the server incident of 'down'", lambda: _incident(world.sidecar, "down", "server", "open"),
                world=world)
    assert inc["severity"] == "error"
    assert _incident(world.sidecar, "down", "golden") is None, "golden replay could not run: the same incident"
    assert not any(d["action"] in ("rollback", "rolled-back") for d in _decisions(world.sidecar, "down"))
    assert _serving_version(world.root, "down") == "3"
    world.down_server = start_mlserver(world.down_server.repository, settings=world.down_ports)
    _wait("the server incident to resolve", lambda: _incident(world.sidecar, "down", "server", "resolved"),
          world=world)
    (pd,) = incidents_for(world.pagerduty, "goldwatch/down/server")
    _wait("the resolve to reach PagerDuty", lambda: pd.state == "resolved")
    assert pd.events[0]["payload"]["severity"] == "error"


def test_metrics_and_goldwatch_status_of_the_running_sidecar(world: World) -> None:
    text = httpx.get(world.sidecar.url + "/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    rollbacks = {(s.labels["model"], s.labels["outcome"]): s.value for s in families["goldwatch_rollbacks"].samples
                 if s.name == "goldwatch_rollbacks_total"}
    assert rollbacks[("flip", "ok")] == 1
    (ttr,) = [s for s in families["goldwatch_time_to_recover_seconds"].samples if s.name.endswith("_count")]
    assert ttr.value >= 5, "flip, wrong, observe, paused and flap recovered at least once each"
    assert not any(name.endswith("_created") for name in (s.name for f in families.values() for s in f.samples))
    healthy = {s.labels["model"]: s.value for s in families["goldwatch_model_healthy"].samples}
    assert healthy["flip"] == 1.0
    result = CliRunner().invoke(main, ["status", "--url", world.sidecar.url, "--json"])
    data = __import__("json").loads(result.stdout)
    assert result.exit_code == (0 if all(m["healthy"] for m in data["models"]) else 1)
    human = CliRunner().invoke(main, ["status", "--url", world.sidecar.url])
    assert "flip: healthy, serving 2" in human.stdout
    gone = CliRunner().invoke(main, ["status", "--url", f"http://127.0.0.1:{free_ports(1)[0]}"])
    assert gone.exit_code == 2
    assert "cannot read the sidecar's status" in gone.stderr


def test_sigkill_during_a_rollback_then_restart_finishes_it_without_losing_or_doubling_the_page(
        world: World, tmp_path: Path) -> None:
    """A sidecar of its own (its registry, journal and outbox), SIGKILLed right after the pointer switch."""
    serving = served_registry(tmp_path, world.server.repository, "crash", base_seed=300)
    world.server.load("crash")
    port = free_ports(1)[0]
    config = sidecar_config(tmp_path, port=port, watches=[fast_watch("crash", world.server.model_url("crash"),
                                                                     serving)])
    env = sidecar_env(world.pagerduty.url)
    url = f"http://127.0.0.1:{port}"
    first = start_sidecar(config, url=url, env={**env, "GOLDWATCH_TEST_CRASH_AT": "rollback:switched"},
                          token=TOKEN, log_path=tmp_path / "first.log")
    try:
        _flip(serving)
        assert first.process.wait(30) == -signal.SIGKILL, first.log()[-3000:]
    finally:
        first.kill()
    # killed mid-rollback: the pointer serves 2, the registry's database does not know yet
    second = start_sidecar(config, url=url, env=env, token=TOKEN, log_path=tmp_path / "second.log")
    try:
        inc = _wait("the crash incident to resolve", lambda: _incident(second, "crash", "integrity", "resolved"))
        assert inc["action"]["kind"] == "rollback"
        assert inc["action"]["to"] == "2"
        assert [i["check_class"] for i in second.incidents(model="crash")] == ["integrity"], "no duplicate"
        recovered = [d for d in second.decisions() if d["action"] == "rollback-recovered"]
        assert recovered
        assert "the switch to 2 stands" in recovered[0]["reason"]
        x = np.ones((1, 16), np.float32)
        np.testing.assert_allclose(_infer(world.server, "crash", x), x @ _weights(tmp_path, "crash", "2"), rtol=1e-5)
        with Registry.open(tmp_path / "registry") as reg:
            assert reg.serving_target("crash")[0] == "2"  # type: ignore[index]
            assert reg.get("crash", "3").state == "quarantined"
        (pd,) = incidents_for(world.pagerduty, "goldwatch/crash/integrity")
        _wait("the resolve to reach PagerDuty", lambda: pd.state == "resolved")
        assert pd.events[0]["event_action"] == "trigger", "the page queued before the rollback was not lost"
    finally:
        exit_s = second.terminate()
    assert exit_s < 10.0, "SIGTERM: out within 10 s"
