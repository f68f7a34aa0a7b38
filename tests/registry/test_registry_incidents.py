"""The fleet's shared incident book: one page per problem for the fleet, one resolve when the last pod recovers, a
vanished pod stops counting once its heartbeat is old, a decision never confirmed is sent again.

Runs on both backends (the conftest parametrizes ``database_backend``); hosts racing to open the same incident run on
PostgreSQL only (SQLite's one writer makes the race impossible).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from goldwatch.watchdog.registry import FleetDecision, Registry
from goldwatch.watchdog.registry.incidents import _iso

KEY = "goldwatch/fraud/integrity"
TTL = 90.0


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[dict[str, Registry]]:
    opened = {h: Registry.open(tmp_path / "reg", host=h) for h in ("pod-a", "pod-b", "pod-c")}
    yield opened
    for reg in opened.values():
        reg.close()


def _trigger(reg: Registry, *, now: float, fingerprint: str = "f1", severity: str = "critical",
             renotify_s: float = 3600.0) -> FleetDecision:
    return reg.incidents.trigger(KEY, model="fraud", check_class="integrity", severity=severity,
                                 summary="integrity:w: block 3 differs", fingerprint=fingerprint, now=now,
                                 renotify_s=renotify_s, ttl_s=TTL)


def _vanish(reg: Registry, host: str, *, seconds_ago: float) -> None:
    with reg.db.transaction():
        reg.db.execute("UPDATE hosts SET last_seen = ? WHERE host = ?", (_iso(time.time() - seconds_ago), host))


def test_one_page_for_the_fleet_and_one_resolve_when_the_last_pod_recovers(hosts: dict[str, Registry]) -> None:
    a, b, c = hosts["pod-a"], hosts["pod-b"], hosts["pod-c"]
    t = time.time()
    first = _trigger(a, now=t)
    assert (first.send, first.reason, first.number) == (True, "new", 1)
    a.incidents.confirm(KEY, number=1)
    assert [(_trigger(r, now=t + 1).send, _trigger(r, now=t + 1).reason) for r in (b, c)] == \
        [(False, "unchanged")] * 2
    assert _trigger(a, now=t + 2).participants == ("pod-a", "pod-b", "pod-c")
    # what fails changed: worth a page (by whoever sees the change first); the numbers moving are not
    changed = _trigger(b, now=t + 3, fingerprint="f2")
    assert (changed.send, changed.reason) == (True, "changed")
    b.incidents.confirm(KEY, number=1)
    assert _trigger(c, now=t + 4, fingerprint="f2").reason == "unchanged"
    assert _trigger(c, now=t + 4000, fingerprint="f2").reason == "renotify"  # renotify_s is fleet-wide
    c.incidents.confirm(KEY, number=1)
    # recoveries: the incident stays open while any pod still sees it
    assert a.incidents.passed(KEY, now=t + 5, ttl_s=TTL) == FleetDecision(False, "others-failing", 1,
                                                                           ("pod-b", "pod-c"))
    assert _trigger(a, now=t + 6, fingerprint="f2").reason == "unchanged"  # a fails again: the same incident
    assert a.incidents.passed(KEY, now=t + 7, ttl_s=TTL).reason == "others-failing"
    assert b.incidents.passed(KEY, now=t + 8, ttl_s=TTL).participants == ("pod-c",)
    last = c.incidents.passed(KEY, now=t + 9, ttl_s=TTL)
    assert (last.send, last.reason) == (True, "last")
    c.incidents.confirm(KEY, number=1)
    inc = a.incidents.get(KEY)
    assert inc is not None
    assert (inc.state, inc.resolved_by, inc.pending, inc.participants) == ("resolved", "pod-c", None, ())
    assert a.incidents.passed(KEY, now=t + 10, ttl_s=TTL).reason == "not-open"
    # the problem comes back: a new incident
    again = _trigger(b, now=t + 11)
    assert (again.send, again.reason, again.number) == (True, "new", 2)


def test_a_vanished_pod_stops_counting_and_its_incident_is_swept(hosts: dict[str, Registry]) -> None:
    a, b, c = hosts["pod-a"], hosts["pod-b"], hosts["pod-c"]
    t = time.time()
    _trigger(a, now=t)
    a.incidents.confirm(KEY, number=1)
    _trigger(c, now=t)
    _vanish(a, "pod-c", seconds_ago=TTL + 30)  # pod-c's heartbeat is old: the pod is gone
    last = a.incidents.passed(KEY, now=t + 1, ttl_s=TTL)
    assert (last.send, last.reason) == (True, "last"), "a vanished pod does not hold the incident open"
    a.incidents.confirm(KEY, number=1)
    # pod-c comes back, sees the problem (a new incident), then vanishes for good: nobody else sees it, and whoever
    # watches the model resolves it at its next heartbeat
    c.heartbeat()
    assert _trigger(c, now=t + 2).reason == "new"
    c.incidents.confirm(KEY, number=2)
    _vanish(a, "pod-c", seconds_ago=TTL + 30)
    assert b.incidents.sweep(models=["other-model"], now=t + 3, ttl_s=TTL) == []
    (swept,) = b.incidents.sweep(models=["fraud"], now=t + 3, ttl_s=TTL)
    assert (swept.action, swept.incident.number, swept.incident.participants) == ("resolve", 2, ("pod-c",))
    assert "pod-c" in swept.why
    b.incidents.confirm(KEY, number=2)
    assert b.incidents.sweep(models=["fraud"], now=t + 4, ttl_s=TTL) == []
    # forget-host drops its participations
    _trigger(c, now=t + 5)
    c.forget_host("pod-c", reason="the pod is gone for good")
    inc = a.incidents.get(KEY)
    assert inc is not None
    assert inc.participants == ()


def test_a_decision_never_confirmed_is_sent_again(hosts: dict[str, Registry]) -> None:
    a, b = hosts["pod-a"], hosts["pod-b"]
    t = time.time()
    assert _trigger(a, now=t).send  # pod-a decides to page ... and stops before queueing it (no confirm)
    assert _trigger(b, now=t + 1).reason == "unchanged"  # pod-a is alive: it will send it
    (mine,) = a.incidents.unconfirmed()  # pod-a starts again: it sends what it decided
    assert (mine.action, mine.incident.pending) == ("trigger", "pod-a")
    assert _trigger(a, now=t + 2).reason == "resend"  # (or on its next evaluation)
    assert b.incidents.unconfirmed() == []
    _vanish(a, "pod-a", seconds_ago=TTL + 30)
    taken = _trigger(b, now=t + 3)  # pod-a vanished before confirming: pod-b sends it
    assert (taken.send, taken.reason) == (True, "resend")
    b.incidents.confirm(KEY, number=1)
    # the same for a resolve whose sender vanished before queueing it
    a.heartbeat()
    assert a.incidents.passed(KEY, now=t + 4, ttl_s=TTL).reason == "others-failing"
    assert b.incidents.passed(KEY, now=t + 5, ttl_s=TTL).send  # pod-b decides the resolve, never confirms
    _vanish(a, "pod-b", seconds_ago=TTL + 30)
    (over,) = a.incidents.sweep(models=["fraud"], now=t + 6, ttl_s=TTL)
    assert (over.action, over.incident.state, over.incident.pending) == ("resolve", "resolved", "pod-a")
    assert "pod-b decided to send it and vanished" in over.why
    a.incidents.confirm(KEY, number=1)
    assert a.incidents.get(KEY).pending is None  # type: ignore[union-attr]


def test_hosts_racing_to_open_the_same_incident_open_it_once(tmp_path: Path, database_backend: str) -> None:
    if database_backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: the race needs PostgreSQL")
    names = [f"pod-{i}" for i in range(8)]
    regs = [Registry.open(tmp_path / "reg", host=h) for h in names]
    try:
        t = time.time()
        for phase in ("trigger", "passed"):
            barrier = threading.Barrier(len(regs))
            results: list[FleetDecision] = []
            lock = threading.Lock()

            def run(reg: Registry, phase: str = phase, barrier: threading.Barrier = barrier,
                    results: list[FleetDecision] = results, lock: threading.Lock = lock) -> None:
                barrier.wait()
                if phase == "trigger":
                    d = _trigger(reg, now=t)
                else:
                    d = reg.incidents.passed(KEY, now=t + 1, ttl_s=TTL)
                with lock:
                    results.append(d)

            threads = [threading.Thread(target=run, args=(r,)) for r in regs]
            for th in threads:
                th.start()
            for th in threads:
                th.join(60)
            assert len(results) == len(regs)
            sent = [d for d in results if d.send]
            assert len(sent) == 1, results  # exactly one pod pages, exactly one pod resolves
            assert sent[0].reason == ("new" if phase == "trigger" else "last")
        inc = regs[0].incidents.get(KEY)
        assert inc is not None
        assert (inc.state, inc.number, inc.participants) == ("resolved", 1, ())
    finally:
        for reg in regs:
            reg.close()


def test_a_busy_incident_row_fails_fast_instead_of_holding_the_page(tmp_path: Path, database_backend: str) -> None:
    if database_backend != "postgresql":
        pytest.skip("row locks and lock timeouts: PostgreSQL")
    from goldwatch.errors import ConcurrentChangeError

    a = Registry.open(tmp_path / "reg", host="pod-a")
    b = Registry.open(tmp_path / "reg", host="pod-b")
    try:
        _trigger(a, now=time.time())
        a.incidents.timeout_s = 0.3
        with b.db.transaction():  # another host holds the incident's row (a stalled transaction)
            b.db.execute("SELECT * FROM fleet_incidents WHERE dedup_key = ? FOR UPDATE", (KEY,))
            with pytest.raises(ConcurrentChangeError):  # while the row is held: it does not wait for it
                _trigger(a, now=time.time())
        assert _trigger(a, now=time.time()).reason == "resend"  # the row is free again; nothing was half-done
    finally:
        a.close()
        b.close()
