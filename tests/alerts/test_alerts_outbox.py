"""The outbox against the strict PagerDuty stub: outages, ordering, dead letters, hangs, rate limit, restarts."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from goldwatch.errors import DataError, StateError
from goldwatch.watchdog.alerts import AlertEvent, Outbox, PagerDutySink, RetryPolicy, SendResult
from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub, incidents_for

from .alerts_support import FAST, ROUTING_KEY


def _queue(box: Outbox, sink: PagerDutySink, action: str, key: str, summary: str = "model broke") -> int:
    kw = {"summary": summary, "source": "pod-1", "severity": "critical"} if action == "trigger" else {}
    kind, body = sink.render(AlertEvent(action=action, dedup_key=key, **kw))  # type: ignore[arg-type]
    return box.enqueue(sink.name, kind, body, order_key=key, route=sink.route)


def test_outage_of_many_retries_then_delivery_in_order(
    stub: PagerDutyStub, outbox: Outbox, pd_sink: PagerDutySink
) -> None:
    stub.script(500, 503, 429, 500, 502, 500, 429, 500, 504, 500)  # ten failed attempts in a row
    _queue(outbox, pd_sink, "trigger", "gw/a/integrity", "first")
    _queue(outbox, pd_sink, "trigger", "gw/a/integrity", "second")
    _queue(outbox, pd_sink, "resolve", "gw/a/integrity")
    report = outbox.drain({pd_sink.name: pd_sink}, timeout_s=20)
    assert report.ok
    assert report.delivered == 3
    assert report.retried == 10
    assert outbox.counts() == {"pending": 0, "dead": 0}
    assert stub.violations == []
    assert [(r.body["event_action"], r.body.get("payload", {}).get("summary")) for r in stub.accepted] == [
        ("trigger", "first"), ("trigger", "second"), ("resolve", None)]
    # every failed attempt was the head event: nothing overtook it while it was backing off
    assert {r.body.get("payload", {}).get("summary") for r in stub.requests if r.status != 202} == {"first"}
    (incident,) = incidents_for(stub, "gw/a/integrity")
    assert incident.state == "resolved"
    assert len(incident.events) == 3


def test_other_keys_are_not_blocked_by_a_key_in_backoff(
    stub: PagerDutyStub, outbox: Outbox, pd_sink: PagerDutySink
) -> None:
    stub.script(500)
    _queue(outbox, pd_sink, "trigger", "gw/a/golden")
    _queue(outbox, pd_sink, "resolve", "gw/a/golden")
    _queue(outbox, pd_sink, "trigger", "gw/b/drift")
    first = outbox.deliver_once({pd_sink.name: pd_sink})
    # one pass: a/golden trigger failed; b/drift went; a's resolve waited behind its trigger
    assert (first.retried, first.delivered) == (1, 1)
    assert stub.accepted_actions() == [("trigger", "gw/b/drift")]
    outbox.drain({pd_sink.name: pd_sink}, timeout_s=10)
    assert stub.accepted_actions()[1:] == [("trigger", "gw/a/golden"), ("resolve", "gw/a/golden")]


def test_a_400_is_not_retried_and_is_kept_as_a_dead_letter(
    stub: PagerDutyStub, outbox: Outbox, pd_sink: PagerDutySink
) -> None:
    stub.script(400)
    bad = _queue(outbox, pd_sink, "trigger", "gw/a/golden")
    _queue(outbox, pd_sink, "trigger", "gw/b/golden")
    report = outbox.drain({pd_sink.name: pd_sink}, timeout_s=5)
    assert report.rejected == 1
    assert report.delivered == 1
    assert not report.ok
    assert len([r for r in stub.requests if r.body.get("dedup_key") == "gw/a/golden"]) == 1  # no retry
    (dead,) = outbox.entries("dead")
    assert dead.id == bad
    assert dead.attempts == 1
    assert "HTTP 400" in (dead.dead_reason or "")
    assert "Event object is invalid" in (dead.dead_reason or "")
    assert report.to_checks()[0].status == "fail"
    # after a fix, a dead letter can be put back
    assert outbox.requeue() == 1
    assert outbox.drain({pd_sink.name: pd_sink}, timeout_s=5).delivered == 1
    assert outbox.counts() == {"pending": 0, "dead": 0}


def test_an_invalid_event_is_refused_by_the_real_schema_not_just_a_script(
    stub: PagerDutyStub, outbox: Outbox, pd_sink: PagerDutySink
) -> None:
    # Bypass render(): a body with a bad severity, as an older goldwatch might have queued it.
    outbox.enqueue(pd_sink.name, "alert", {"event_action": "trigger", "dedup_key": "k",
                                           "payload": {"summary": "s", "source": "p", "severity": "fatal"}},
                   order_key="k", route=pd_sink.route)
    report = outbox.drain({pd_sink.name: pd_sink}, timeout_s=5)
    assert report.rejected == 1
    assert "severity" in (outbox.entries("dead")[0].dead_reason or "")


def test_a_hanging_server_times_out_and_the_event_is_retried(stub: PagerDutyStub, outbox: Outbox) -> None:
    sink = PagerDutySink(ROUTING_KEY, events_url=stub.url, timeout_s=0.3, rate_limit_per_minute=None)
    stub.script("hang")
    _queue(outbox, sink, "trigger", "gw/a/server")
    report = outbox.drain({sink.name: sink}, timeout_s=10)
    sink.close()
    assert report.retried == 1
    assert report.delivered == 1
    assert "timed out" in report.errors[0]


def test_network_error_is_retried(tmp_path: Path) -> None:
    sink = PagerDutySink(ROUTING_KEY, events_url="http://127.0.0.1:9", timeout_s=0.5)  # discard port: refused
    box = Outbox.open(tmp_path / "o.sqlite", policy=FAST)
    _queue(box, sink, "trigger", "k")
    report = box.deliver_once({sink.name: sink})
    assert report.retried == 1
    assert "network error" in report.errors[0]
    (entry,) = box.entries("pending")
    assert entry.attempts == 1
    assert entry.next_attempt_at > entry.created_at
    box.close()
    sink.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """A sink that records what it was asked to send and answers from a script."""

    def __init__(self, answers: list[str] | None = None, *, limit: int | None = None,
                 clock: FakeClock | None = None) -> None:
        self.name, self.route, self.rate_limit_per_minute = "rec", "rec-route", limit
        self.answers = list(answers or [])
        self.sent: list[tuple[float, dict[str, object]]] = []
        self.clock = clock

    def send(self, kind: str, body: dict[str, object]) -> SendResult:
        self.sent.append((self.clock() if self.clock else 0.0, body))
        answer = self.answers.pop(0) if self.answers else "delivered"
        return SendResult(answer, 202 if answer == "delivered" else 503, f"scripted {answer}")  # type: ignore[arg-type]


def test_rate_limit_holds_at_most_the_limit_in_any_60_second_window(tmp_path: Path) -> None:
    clock = FakeClock()
    box = Outbox.open(tmp_path / "o.sqlite", policy=FAST, clock=clock, sleep=clock.sleep)
    sink = Recorder(limit=5, clock=clock)
    for i in range(12):
        box.enqueue("rec", "alert", {"n": i}, order_key=f"k{i}", route="rec-route")
    first = box.deliver_once({"rec": sink})
    assert first.delivered == 5
    assert first.rate_limited == 7
    report = box.drain({"rec": sink}, timeout_s=600)
    assert report.delivered == 7
    assert box.counts()["pending"] == 0
    times = [t for t, _ in sink.sent]
    assert all(sum(1 for u in times if t <= u < t + 60) <= 5 for t in times)
    assert times[-1] - times[0] >= 120  # 12 events at 5/min need two more windows
    box.close()


def test_backoff_is_bounded_and_jittered(tmp_path: Path) -> None:
    clock = FakeClock()
    policy = RetryPolicy(base_s=1.0, max_delay_s=8.0, jitter=0.5, max_age_s=10_000)
    box = Outbox.open(tmp_path / "o.sqlite", policy=policy, clock=clock, sleep=clock.sleep, seed=3)
    sink = Recorder(["retry"] * 9, clock=clock)
    box.enqueue("rec", "alert", {"n": 1}, order_key="k", route="rec-route")
    box.drain({"rec": sink}, timeout_s=1000)
    gaps = [b - a for (a, _), (b, _) in zip(sink.sent, sink.sent[1:])]
    caps = [min(8.0, 2.0**i) for i in range(9)]
    assert len(gaps) == 9
    assert all(cap * 0.5 - 1e-9 <= gap <= cap + 1e-9 for gap, cap in zip(gaps, caps))
    assert len({round(g, 6) for g in gaps[4:]}) > 1  # jitter: capped retries do not all wait the same time
    box.close()


def test_old_undelivered_events_expire_into_dead_letters(tmp_path: Path) -> None:
    clock = FakeClock()
    policy = RetryPolicy(base_s=1.0, max_delay_s=5.0, max_age_s=30.0)
    box = Outbox.open(tmp_path / "o.sqlite", policy=policy, clock=clock, sleep=clock.sleep)
    box.enqueue("rec", "alert", {"n": 1}, order_key="k", route="rec-route")
    report = box.drain({"rec": Recorder(["retry"] * 1000, clock=clock)}, timeout_s=100)
    assert report.expired == 1
    assert box.counts() == {"pending": 0, "dead": 1}
    assert "expired after" in (box.entries("dead")[0].dead_reason or "")
    box.close()


def test_events_survive_a_restart_and_an_unknown_sink_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox.open(path, policy=FAST)
    box.enqueue("rec", "alert", {"n": 1}, order_key="k", route="rec-route")
    assert box.deliver_once({}).unroutable == 1  # sink not configured in this process: kept, not dropped
    box.close()
    box = Outbox.open(path, policy=FAST)
    sink = Recorder()
    assert box.drain({"rec": sink}, timeout_s=5).delivered == 1
    assert sink.sent[0][1] == {"n": 1}
    box.close()


def test_two_processes_sharing_the_outbox_do_not_both_send_a_leased_event(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    a, b = Outbox.open(path, policy=FAST), Outbox.open(path, policy=FAST)
    a.enqueue("rec", "alert", {"n": 1}, order_key="k", route="rec-route")

    class Reentrant(Recorder):
        def send(self, kind: str, body: dict[str, object]) -> SendResult:
            # while a's send is in flight, b flushes too: the lease must keep it away
            inner = b.deliver_once({"rec": Recorder()})
            assert inner.delivered == 0
            return super().send(kind, body)

    sink = Reentrant()
    assert a.deliver_once({"rec": sink}).delivered == 1
    assert len(sink.sent) == 1
    a.close()
    b.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StateError, match="newer than this goldwatch"):
        Outbox.open(path)


def test_outbox_uses_wal_and_full_sync(outbox: Outbox) -> None:
    assert outbox.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert outbox.connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # delivery bookkeeping commits without fsync, and the connection is back to FULL for the next store
    outbox.enqueue("rec", "alert", {"n": 1}, order_key="k", route="rec-route")
    outbox.deliver_once({"rec": Recorder(["retry"])})
    outbox.deliver_once({"rec": Recorder()})
    assert outbox.connection.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(DataError, match="invalid retry policy"):
        RetryPolicy(base_s=10, max_delay_s=1)
    assert RetryPolicy(jitter=0.0).delay(10_000, random.Random(0)) == 300.0


def test_a_corrupt_outbox_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="cannot open the alert outbox"):
        Outbox.open(path)


def test_non_json_bodies_are_refused_before_storing(outbox: Outbox) -> None:
    with pytest.raises(DataError, match="not plain JSON"):
        outbox.enqueue("s", "alert", {"x": float("nan")}, order_key="k", route="r")
    assert outbox.counts() == {"pending": 0, "dead": 0}


def test_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StateError, match="cannot open the alert outbox"):
        Outbox.open(blocker / "sub" / "o.sqlite")
