"""A fleet on one registry: many hosts promoting, quarantining and rolling back the same model, each switching its
own pointer -- no lost update, a complete audit trail, every pointer switch matching a recorded decision.

Runs on both backends (the conftest parametrizes ``database_backend``); the interleavings that SQLite's registry
lock makes impossible (one writer at a time) run on PostgreSQL only.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from goldwatch.errors import ConcurrentChangeError
from goldwatch.watchdog.registry import Registry, Serving, journal, make_pointer
from goldwatch.watchdog.registry.journal import open_intents
from tests.registry.fleet_worker import run_host
from tests.registry.registry_helpers import write_weights


def _host(root: Path, serve: Path, host: str) -> Registry:
    return Registry.open(root, host=host, serving={"m": Serving(make_pointer("current-link", serve / host))})


def _seed(root: Path, src: Path, n: int = 2) -> None:
    with Registry.open(root, host="ci") as reg:
        for i in range(1, n + 1):
            reg.promote("m", reg.add("m", write_weights(src / str(i), i, n=4), actor="ci").version,
                        actor="ci", reason="release", serve=False)


def assert_fleet_consistent(reg: Registry, serve: Path, hosts: list[str]) -> list:
    """The invariants of a fleet registry; returns the events."""
    events = reg.history("m")
    state: dict[str, str] = {}
    state_changes = 0
    for e in events:
        if e.to_state is not None:
            # every state change starts from the state the previous one left: none was lost or overwritten
            assert e.from_state == state.get(e.version), (e, state.get(e.version))
            state[e.version] = e.to_state
            state_changes += 1
        elif e.action == "serve" and e.version is not None:
            # a host only ever switched to a version that was known-good at that point of the trail
            assert state[e.version] == "known-good", e
    assert {v.version: v.state for v in reg.list("m")} == state  # one state per version: the trail's last word
    assert reg.db.one("SELECT rev FROM models WHERE name = 'm'")[0] == state_changes  # each change bumped it once
    assert open_intents(reg.db) == []
    assert reg.db.integrity_problems() == []
    for host in hosts:
        served = reg.serving_target("m", host=host)
        serves = [e for e in events if e.action == "serve" and e.evidence.get("host") == host]
        if served is None:
            assert serves == []
            continue
        pointer = make_pointer("current-link", serve / host).read()
        assert pointer is not None
        assert str(pointer.source) == served[1] == serves[-1].evidence["target"]
        assert served[0] == serves[-1].version
    return events


@pytest.mark.slow
def test_many_hosts_promote_quarantine_and_roll_back_the_same_model(tmp_path: Path, database_backend: str) -> None:
    root, serve = tmp_path / "reg", tmp_path / "serve"
    _seed(root, tmp_path / "src")
    hosts = [f"pod-{i}" for i in range(6)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=run_host, args=(str(root), str(serve), h, i + 1, 10, str(tmp_path / f"{h}.jsonl")))
             for i, h in enumerate(hosts)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    records = [json.loads(line) for h in hosts for line in (tmp_path / f"{h}.jsonl").read_text().splitlines()]
    assert len(records) == 60
    with Registry.open(root, host="auditor") as reg:
        events = assert_fleet_consistent(reg, serve, hosts)
        for host in hosts:
            # every switch a host reports is one recorded serve decision of that host, in the same order
            switched = [r["switched"] for r in records if r["host"] == host and r["outcome"] == "ok"
                        and r.get("switched")]
            recorded = [e.version for e in events if e.action == "serve" and e.evidence.get("host") == host]
            assert recorded == switched, host
        ok = [r for r in records if r["outcome"] == "ok"]
        quarantined = {r["version"] for r in ok if r["op"] == "quarantine"}
        assert all(reg.get("m", v).state in ("quarantined", "retired") for v in quarantined)
        assert len(ok) >= 30  # most operations went through; the rest lost a race cleanly
        assert all(r["outcome"] in ("ok", "conflict", "refused", "nothing") for r in records)


def test_each_host_serves_its_own_pointer_and_show_says_who_serves_what(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from goldwatch.cli import main

    root, serve = tmp_path / "reg", tmp_path / "serve"
    _seed(root, tmp_path / "src", n=3)
    with _host(root, serve, "pod-a") as a, _host(root, serve, "pod-b") as b, _host(root, serve, "pod-c") as c:
        a.promote("m", "3", reason="canary")
        b.promote("m", "2", reason="stay")
        c.promote("m", "3", reason="canary")
        assert [(s.host, s.version) for s in a.served_by("m", version="3")] == [("pod-a", "3"), ("pod-c", "3")]
        assert a.serving_target("m")[0] == "3"
        assert b.serving_target("m")[0] == "2"
        assert a.get("m", "3").serving
        assert not b.get("m", "3").serving
        result = a.rollback("m", reason="v3 answers wrong on pod-a")  # pod-a's pointer only
        assert (result.from_version, result.to_version) == ("3", "2")
        assert make_pointer("current-link", serve / "pod-c").read().source == c.get("m", "3").path.resolve()
        assert c.serving_target("m")[0] == "3"  # still recorded as serving v3 (now quarantined): c checks next
    shown = CliRunner().invoke(main, ["registry", "--registry-root", str(root), "show", "m", "2", "--json"])
    assert shown.exit_code == 0, shown.output
    assert sorted(s["host"] for s in json.loads(shown.output)["served_by"]) == ["pod-a", "pod-b"]
    text = CliRunner().invoke(main, ["registry", "--registry-root", str(root), "show", "m", "3"])
    assert "served by (1 host serving m 3)" in text.output
    assert "pod-c" in text.output
    with Registry.open(root, host="ops") as reg:
        seen = {s.host: s.last_seen for s in reg.served_by("m")}
        with _host(root, serve, "pod-a") as a:
            a.heartbeat()
        assert {s.host: s.last_seen for s in reg.served_by("m")}["pod-a"] > seen["pod-a"]
        with _host(root, serve, "pod-c") as c:  # pod-c dies mid-promote, never to come back
            journal.begin(c.db, op="promote", model="m", payload={"transitions": [], "source": "/x"})
        assert reg.forget_host("pod-c", reason="pod deleted") == 1
        assert reg.served_by("m", version="3") == []
        assert open_intents(reg.db) == []
        assert [e.action for e in reg.history("m")][-2:] == ["forget-host", "forget-host"]


BACKENDS_PG = ["postgresql"]


@pytest.mark.parametrize("database_backend", BACKENDS_PG, indirect=True)
def test_a_promote_loses_to_a_quarantine_that_commits_first(tmp_path: Path, database_backend: str) -> None:
    root, serve = tmp_path / "reg", tmp_path / "serve"
    _seed(root, tmp_path / "src", n=1)
    with _host(root, serve, "pod-a") as a, _host(root, serve, "pod-b") as b:
        a.promote("m", "1", reason="first")
        v2 = b.add("m", write_weights(tmp_path / "src" / "2", 2, n=4)).version
        pointer = a.serving_for("m").pointer
        stage = pointer.stage

        def stage_while_b_quarantines(*args, **kwargs):
            staged = stage(*args, **kwargs)  # a has verified v2 and staged it; b proves it bad and commits first
            b.quarantine("m", v2, actor="pod-b", reason="golden replay failed on pod-b")
            return staged

        pointer.stage = stage_while_b_quarantines
        with pytest.raises(ConcurrentChangeError, match="changed underneath you") as err:
            a.promote("m", v2, actor="pod-a", reason="gate passed")
        assert "by pod-b" in str(err.value)
        assert "nothing was changed" in str(err.value)
        assert a.get("m", v2).state == "quarantined"
        assert a.serving_target("m")[0] == "1"
        assert pointer.read().source == a.get("m", "1").path.resolve()  # never switched
        actions = [(e.action, e.version) for e in a.history("m")]
        assert ("promote", v2) not in actions
        assert ("quarantine", v2) in actions
        assert [e.reason for e in a.history("m")][-1] == "interrupted promote: reverted"
        assert_fleet_consistent(a, serve, ["pod-a", "pod-b"])


@pytest.mark.parametrize("database_backend", BACKENDS_PG, indirect=True)
def test_a_rollback_decides_again_when_its_target_is_quarantined_meanwhile(tmp_path: Path,
                                                                          database_backend: str) -> None:
    root, serve = tmp_path / "reg", tmp_path / "serve"
    _seed(root, tmp_path / "src", n=3)
    with _host(root, serve, "pod-a") as a, _host(root, serve, "pod-b") as b:
        a.promote("m", "3", reason="serve v3")
        pointer = a.serving_for("m").pointer
        stage, calls = pointer.stage, []

        def stage_while_b_quarantines_the_target(source, *, label):
            calls.append(label)
            if len(calls) == 1:  # a chose v2; before it commits, pod-b proves v2 bad and quarantines it
                b.quarantine("m", "2", actor="pod-b", reason="golden replay failed on pod-b")
            return stage(source, label=label)

        pointer.stage = stage_while_b_quarantines_the_target
        result = a.rollback("m", actor="pod-a", reason="v3 corrupted")
        assert calls == ["m:2", "m:1"]  # decided again, on the model as it now is
        assert (result.from_version, result.to_version, result.ok) == ("3", "1", True)
        assert [a.get("m", v).state for v in ("1", "2", "3")] == ["known-good", "quarantined", "quarantined"]
        reverted = [e for e in a.history("m") if e.reason == "interrupted rollback: reverted"]
        assert len(reverted) == 1
        # a promote committed meanwhile does not: the rollback simply happened first
        a.promote("m", a.add("m", write_weights(tmp_path / "src" / "4", 4, n=4)).version, reason="v4", serve=False)
        assert_fleet_consistent(a, serve, ["pod-a", "pod-b"])
