"""A fleet: three ``goldwatch serve`` processes (pods) on one PostgreSQL registry, one strict PagerDuty stand-in.

Each pod has its own serving pointer, journal and alert outbox, and a name of its own (``$GOLDWATCH_HOST``); the
registry's database and artifact store are shared. ``goldwatch registry show`` says which pods serve the version
and when each was last seen (their heartbeats). When every pod finds the same corrupted files, PagerDuty gets one
trigger; pods recovering one by one leave the incident open until the last one recovers, which sends the one
resolve. A pod that vanishes while it still sees the problem stops counting once its heartbeat is old: the others
resolve the incident for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.runtimes.mlserver_testing import free_ports
from goldwatch.watchdog.alerts.dedup import dedup_key
from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub, incidents_for
from goldwatch.watchdog.registry import Registry, Serving, make_pointer
from goldwatch.watchdog.sidecar.process import SidecarProcess, start_sidecar
from tests.sidecar.support import TOKEN, release, sidecar_env, toml

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

PODS = ("pod-a", "pod-b", "pod-c")
HEARTBEAT_S = 0.5  # a pod silent for 1.5 s has vanished
KEY = dedup_key("fraud", "integrity")
T = TypeVar("T")


def _wait(what: str, probe: Callable[[], T | None], *, timeout: float = 40.0,
          pods: dict[str, SidecarProcess] | None = None) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    logs = "\n".join(f"--- {name}\n{p.log()[-2500:]}" for name, p in (pods or {}).items())
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def _served_file(serving: Path) -> Path:
    return Path(os.path.realpath(serving / "current" / "weights.npz"))


def _open_incident(pod: SidecarProcess) -> dict[str, Any] | None:
    found = [i for i in pod.incidents(model="fraud", state="open") if i["check_class"] == "integrity"]
    return found[0] if found else None


@pytest.fixture
def fleet(tmp_path: Path, postgres_server: Any, postgres_url: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    shared = tmp_path / "shared"  # the volume every pod mounts: the artifact store
    monkeypatch.setenv("GOLDWATCH_DATABASE_URL", postgres_url)
    with Registry.open(shared, host="ci") as reg:
        for v in ("1", "2"):
            mv = reg.add("fraud", release(tmp_path / "src" / v, int(v)), version=v, actor="ci")
            reg.promote("fraud", mv.version, actor="ci", reason="release", serve=False)
    serving = {}
    for pod in PODS:  # each pod deploys v2 through its own pointer (the registry records it per host)
        serving[pod] = tmp_path / pod / "models" / "fraud"
        with Registry.open(shared, host=pod, serving={"fraud": Serving(make_pointer("current-link",
                                                                                      serving[pod]))}) as reg:
            reg.promote("fraud", "2", actor="deploy", reason="rollout")
    with contextlib.ExitStack() as stack:
        pagerduty = stack.enter_context(PagerDutyStub())
        pods: dict[str, SidecarProcess] = {}
        ports = free_ports(len(PODS) + 1)
        for pod, port in zip(PODS, ports):
            local = tmp_path / pod  # the pod's own disk (an emptyDir): journal and outbox
            config = local / "goldwatch.toml"
            config.write_text(toml({
                "registry": {"root": shared, "ready_timeout_s": 10.0},
                "alerts": {"outbox_path": local / "alerts.sqlite", "retry_base_s": 0.05, "retry_max_delay_s": 0.2},
                "serve": {"host": "127.0.0.1", "port": port, "journal": local / "sidecar.sqlite", "jitter": 0.05,
                          "heartbeat_s": HEARTBEAT_S, "watch": [{
                              "name": "fraud", "url": f"http://127.0.0.1:{ports[-1]}/v2/models/fraud",
                              "serving_dir": serving[pod], "mode": "observe",
                              "files": {"interval_s": 0.3, "timeout_s": 20.0, "sha256_interval_s": 0.0},
                              "golden_replay": {"enabled": False}, "readiness": {"enabled": False},
                              "version": {"enabled": False}, "rollback_readiness": {"enabled": False}}]},
            }))
            env = {**sidecar_env(pagerduty.url), "GOLDWATCH_HOST": pod, "GOLDWATCH_DATABASE_URL": postgres_url}
            if pod == "pod-c":  # the URL in the config without its password, the password in a secret file
                bare = postgres_url.replace(f":{quote(postgres_server.password, safe='')}@", "@")
                assert postgres_server.password not in bare
                (local / "db-password").write_text(postgres_server.password + "\n")
                text = config.read_text().replace("[registry]\n", f'[registry]\ndatabase_url = "{bare}"\n'
                                                  f'database_password_file = "{local / "db-password"}"\n', 1)
                config.write_text(text)
                env.update(GOLDWATCH_DATABASE_URL="", PGPASSFILE=str(local / "no-pgpass"), PGPASSWORD="")
            pods[pod] = start_sidecar(config, url=f"http://127.0.0.1:{port}", env=env, token=TOKEN, wait=False)
            stack.callback(pods[pod].terminate)
        for pod in PODS:
            pods[pod].wait_ready(timeout=90)
        yield {"pods": pods, "serving": serving, "pagerduty": pagerduty, "shared": shared,
               "password": postgres_server.password}


def _show(shared: Path) -> dict[str, Any]:
    done = CliRunner().invoke(main, ["registry", "--registry-root", str(shared), "show", "fraud", "2", "--json"])
    assert done.exit_code == 0, done.output
    return json.loads(done.output)


def test_a_fleet_pages_once_and_resolves_when_the_last_pod_recovers(fleet: dict[str, Any]) -> None:
    pods, serving, pagerduty = fleet["pods"], fleet["serving"], fleet["pagerduty"]
    # which pods serve v2, and their heartbeats
    first = {s["host"]: s for s in _show(fleet["shared"])["served_by"]}
    assert set(first) == set(PODS)
    assert all(first[p]["version"] == "2" for p in PODS)
    time.sleep(3 * HEARTBEAT_S)
    later = {s["host"]: s for s in _show(fleet["shared"])["served_by"]}
    assert all(later[p]["last_seen"] > first[p]["last_seen"] for p in PODS), "each sidecar heartbeats"

    # every pod's copy is corrupted: every pod sees it, PagerDuty gets ONE trigger
    originals = {p: _served_file(serving[p]).read_bytes() for p in PODS}
    for p in PODS:
        data = bytearray(originals[p])
        data[len(data) // 2] ^= 0x40
        _served_file(serving[p]).write_bytes(bytes(data))
    for p in PODS:
        _wait(f"{p} to see the corruption", lambda p=p: _open_incident(pods[p]), pods=pods)
    time.sleep(1.0)  # several more failing evaluations on every pod
    incidents = incidents_for(pagerduty, KEY)
    assert len(incidents) == 1
    assert [e["event_action"] for e in incidents[0].events] == ["trigger"]
    trigger = incidents[0].events[0]
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["custom_details"]["fleet"]["incident"] == 1

    # pods recover one by one: the incident stays open while any pod still sees the problem
    for p in PODS[:2]:
        _served_file(serving[p]).write_bytes(originals[p])
        _wait(f"{p} to recover", lambda p=p: _open_incident(pods[p]) is None, pods=pods)
    time.sleep(1.0)
    assert [e["event_action"] for e in incidents_for(pagerduty, KEY)[0].events] == ["trigger"]
    assert incidents_for(pagerduty, KEY)[0].state == "triggered"
    _served_file(serving["pod-c"]).write_bytes(originals["pod-c"])  # the last one: the one resolve
    _wait("the fleet's resolve", lambda: incidents_for(pagerduty, KEY)[0].state == "resolved", pods=pods)
    time.sleep(0.5)
    (incident,) = incidents_for(pagerduty, KEY)
    assert [e["event_action"] for e in incident.events] == ["trigger", "resolve"]

    # again, and the last pod that sees it vanishes (SIGKILL) before it recovers: the others resolve it for it
    for p in ("pod-a", "pod-c"):
        data = bytearray(originals[p])
        data[len(data) // 3] ^= 0x08
        _served_file(serving[p]).write_bytes(bytes(data))
    for p in ("pod-a", "pod-c"):
        _wait(f"{p} to see it again", lambda p=p: _open_incident(pods[p]), pods=pods)
    _served_file(serving["pod-a"]).write_bytes(originals["pod-a"])
    _wait("pod-a to recover", lambda: _open_incident(pods["pod-a"]) is None, pods=pods)
    time.sleep(0.5)
    assert [len(i.events) for i in incidents_for(pagerduty, KEY)] == [2, 1]  # pod-c still sees it: open
    pods["pod-c"].kill()
    _wait("the vanished pod's incident to be resolved",
          lambda: incidents_for(pagerduty, KEY)[1].state == "resolved", pods=pods)
    time.sleep(0.5)
    second = incidents_for(pagerduty, KEY)[1]
    assert [e["event_action"] for e in second.events] == ["trigger", "resolve"]
    assert pagerduty.violations == []
    triggers = [r for r in pagerduty.accepted if r.body.get("event_action") == "trigger"]
    resolves = [r for r in pagerduty.accepted if r.body.get("event_action") == "resolve"]
    assert (len(triggers), len(resolves)) == (2, 2)  # one of each per incident, for three pods
    assert not any(fleet["password"] in p.log() for p in pods.values())  # the database password: never logged


def test_a_fleet_sidecar_keeps_its_journal_and_outbox_off_the_shared_volume(tmp_path: Path, postgres_url: str,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from goldwatch.config import parse_config
    from goldwatch.errors import ConfigError
    from goldwatch.watchdog.sidecar.service import SidecarService

    monkeypatch.setenv("GOLDWATCH_DATABASE_URL", postgres_url)
    config = parse_config(toml({
        "registry": {"root": tmp_path / "shared"},
        "serve": {"watch": [{"name": "fraud", "url": "http://127.0.0.1:1/v2/models/fraud",
                             "serving_dir": tmp_path / "models" / "fraud"}]},
    }))
    with pytest.raises(ConfigError) as err:
        SidecarService(config, sinks=[])
    text = str(err.value)
    assert "serve.journal and alerts.outbox_path" in text
    assert "pod-local path" in text
