"""AlertManager: one incident per problem, the content a responder needs, change events, webhooks, config."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from goldwatch.checks import Check
from goldwatch.config import parse_config
from goldwatch.errors import ConfigError
from goldwatch.watchdog.alerts import (
    ActionTaken,
    AlertManager,
    Link,
    Outbox,
    PagerDutySink,
    Timing,
    WebhookSink,
    build_sinks,
)
from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub, incidents_for

from .alerts_support import FAST, ROUTING_KEY

FAIL = Check(name="golden:logits:max_abs_error", status="fail", summary="0.31 outside limit (<= 1e-05 abs)",
             measured={"value": 0.31}, threshold={"limit": 1e-5}, details={"worst_rows": [3, 17]})
PASS = Check(name="golden:logits:max_abs_error", status="pass", summary="2e-07 <= 1e-05 abs")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mgr(tmp_path: Path, pd_sink: PagerDutySink, clock: Clock) -> AlertManager:
    box = Outbox.open(tmp_path / "alerts.sqlite", policy=FAST)
    manager = AlertManager(box, [pd_sink], source="node-3/goldwatch-sidecar-7f9c", rto_s=60.0,
                           runbook_url="https://runbooks.example/goldwatch/golden", renotify_s=600, clock=clock)
    yield manager
    manager.outbox.close()


def test_trigger_carries_what_a_responder_needs(mgr: AlertManager, stub: PagerDutyStub) -> None:
    action = ActionTaken(kind="rollback", description="rolled back v7 -> v6", from_version="v7", to_version="v6")
    timing = Timing(started_at=mgr._clock() - 12.0, detected_at=mgr._clock() - 2.0, recovered_at=mgr._clock())
    out = mgr.trigger("fraud", "golden", checks=[FAIL, PASS], served_version="v6", action=action, timing=timing)
    assert out.queued
    assert out.reason == "new"
    assert out.incident
    assert out.incident.number == 1
    assert mgr.flush(timeout_s=5).ok
    (req,) = stub.accepted
    assert stub.violations == []
    body = req.body
    assert body["routing_key"] == ROUTING_KEY
    assert body["dedup_key"] == "goldwatch/fraud/golden"
    p = body["payload"]
    assert p["severity"] == "critical"
    assert p["source"] == "node-3/goldwatch-sidecar-7f9c"
    assert p["component"] == "fraud"
    assert p["class"] == "golden"
    assert p["summary"] == ("fraud: golden check failed: golden:logits:max_abs_error: 0.31 outside limit "
                            "(<= 1e-05 abs); rolled back v7 -> v6 in 2.0 s (RTO 60 s met); serving v6")
    d = p["custom_details"]
    assert d["served_version"] == "v6"
    assert d["failed_checks"] == [{"name": "golden:logits:max_abs_error", "status": "fail",
                                   "summary": FAIL.summary, "measured": {"value": 0.31},
                                   "threshold": {"limit": 1e-5}}]
    assert d["action"] == {"kind": "rollback", "description": "rolled back v7 -> v6", "from_version": "v7",
                           "to_version": "v6"}
    assert d["timing"]["detection_s"] == pytest.approx(10.0)
    assert d["timing"]["recovery_s"] == pytest.approx(2.0)
    assert d["timing"]["total_s"] == pytest.approx(12.0)
    assert d["timing"]["within_rto"] is True
    assert d["timing"]["rto_s"] == 60.0
    assert d["runbook"] == "https://runbooks.example/goldwatch/golden"
    assert d["host"]
    assert d["pod"]
    assert d["evidence"] == {"golden:logits:max_abs_error": {"worst_rows": [3, 17]}}
    assert body["links"] == [{"href": "https://runbooks.example/goldwatch/golden", "text": "Runbook"}]


def test_a_missed_rto_is_said_plainly(mgr: AlertManager, stub: PagerDutyStub) -> None:
    action = ActionTaken(kind="rollback", description="rolled back v7 -> v6")
    mgr.trigger("fraud", "integrity", checks=[FAIL], action=action,
                timing=Timing(detected_at=0.0, recovered_at=95.0))
    mgr.flush(timeout_s=5)
    assert "(RTO 60 s MISSED)" in stub.accepted[0].body["payload"]["summary"]
    assert stub.accepted[0].body["payload"]["custom_details"]["timing"]["within_rto"] is False


def test_repeated_failures_update_one_incident_without_spamming(
    mgr: AlertManager, stub: PagerDutyStub, clock: Clock
) -> None:
    outcomes = []
    for i in range(50):  # fifty evaluations of the same failing check, numbers moving each time
        clock.now += 5
        check = Check(name=FAIL.name, status="fail", summary=f"{0.3 + i / 1000:.3f} outside limit")
        outcomes.append(mgr.trigger("fraud", "golden", checks=[check], served_version="v6"))
    assert [o.reason for o in outcomes[:3]] == ["new", "unchanged", "unchanged"]
    # 250 s of failures with renotify_s=600: one page; a change (server down too) is worth an update
    assert sum(o.queued for o in outcomes) == 1
    changed = mgr.trigger("fraud", "golden", checks=[FAIL, Check(name="golden:probs:cosine", status="fail")],
                          served_version="v6")
    assert changed.reason == "changed"
    assert changed.queued
    clock.now += 601
    again = mgr.trigger("fraud", "golden", checks=[FAIL, Check(name="golden:probs:cosine", status="fail")],
                        served_version="v6")
    assert again.reason == "renotify"
    mgr.flush(timeout_s=5)
    assert len(stub.accepted) == 3
    assert len(stub.incidents) == 1
    assert mgr.incidents("open")[0].triggers == 52


def test_resolve_when_passing_and_a_new_trigger_opens_a_new_incident(
    mgr: AlertManager, stub: PagerDutyStub
) -> None:
    mgr.observe("fraud", [FAIL])
    mgr.observe("fraud", [PASS])
    assert mgr.observe("fraud", [PASS]) == []  # nothing open: no second resolve
    (again,) = mgr.observe("fraud", [FAIL])
    assert again.reason == "new"
    assert again.incident
    assert again.incident.number == 2
    mgr.flush(timeout_s=5)
    assert [a for a, _ in stub.accepted_actions()] == ["trigger", "resolve", "trigger"]
    incidents = incidents_for(stub, "goldwatch/fraud/golden")
    assert [(i.number, i.state) for i in incidents] == [(1, "resolved"), (2, "triggered")]


def test_a_flapping_check_keeps_one_incident_with_resolve_after(
    tmp_path: Path, pd_sink: PagerDutySink, stub: PagerDutyStub, clock: Clock
) -> None:
    mgr = AlertManager(Outbox.open(tmp_path / "a.sqlite", policy=FAST), [pd_sink], source="pod",
                       resolve_after_s=120, clock=clock)
    for status in ["fail", "pass", "fail", "pass", "fail", "pass"]:
        clock.now += 30
        mgr.observe("fraud", [FAIL if status == "fail" else PASS])
    assert len(mgr.incidents("open")) == 1
    clock.now += 60
    assert mgr.observe("fraud", [PASS]) == []  # passing for 60 s only
    clock.now += 61
    (resolved,) = mgr.observe("fraud", [PASS])
    assert resolved.action == "resolve"
    mgr.flush(timeout_s=5)
    assert [a for a, _ in stub.accepted_actions()] == ["trigger", "resolve"]
    assert len(stub.incidents) == 1
    assert stub.incidents[0].state == "resolved"
    mgr.outbox.close()


def test_severity_follows_the_evidence(mgr: AlertManager, stub: PagerDutyStub) -> None:
    mgr.observe("fraud", [
        Check(name="integrity:digest", status="fail"),
        Check(name="server:ready", status="error", summary="connection refused"),
        Check(name="drift:ks", status="fail"),
        Check(name="golden:replay", status="error", summary="server unreachable"),
        Check(name="gpu:fingerprint", status="skip", summary="no GPU"),
    ])
    mgr.flush(timeout_s=5)
    sev = {r.body["payload"]["class"]: r.body["payload"]["severity"] for r in stub.accepted}
    assert sev == {"integrity": "critical", "server": "error", "drift": "warning", "golden": "error"}


def test_change_events_for_promotions_and_rollbacks(mgr: AlertManager, stub: PagerDutyStub) -> None:
    mgr.change("fraud: rolled back v7 -> v6 (digest mismatch)", model="fraud",
               details={"from": "v7", "to": "v6"}, links=[Link("https://runbooks.example/r")])
    mgr.flush(timeout_s=5)
    (req,) = stub.accepted
    assert req.path == "/v2/change/enqueue"
    assert stub.violations == []
    assert req.body["payload"]["custom_details"]["to"] == "v6"
    assert req.body["payload"]["source"] == "node-3/goldwatch-sidecar-7f9c"


def test_acknowledge_is_sent_on_the_same_key(mgr: AlertManager, stub: PagerDutyStub) -> None:
    mgr.trigger("fraud", "drift", summary="inputs drifted", severity="warning")
    mgr.acknowledge("fraud", "drift")
    mgr.flush(timeout_s=5)
    assert stub.accepted_actions() == [("trigger", "goldwatch/fraud/drift"), ("acknowledge", "goldwatch/fraud/drift")]
    assert stub.incidents[0].state == "acknowledged"


def test_huge_evidence_is_trimmed_and_still_accepted(mgr: AlertManager, stub: PagerDutyStub) -> None:
    huge = Check(name="drift:ks", status="fail", summary="412 of 5000 features drifted",
                 details={"pvalues": [0.001] * 120_000, "names": [f"feature_{i}" for i in range(40_000)]})
    mgr.trigger("fraud", "drift", checks=[huge])
    mgr.flush(timeout_s=5)
    (req,) = stub.accepted
    assert req.size <= 512 * 1024
    assert stub.violations == []
    details = req.body["payload"]["custom_details"]
    assert details["failed_checks"][0]["summary"] == "412 of 5000 features drifted"
    assert "evidence" in details["goldwatch_trimmed"]["cut"] + details["goldwatch_trimmed"]["dropped"]


def test_webhook_sink_gets_text_and_the_structured_event(tmp_path: Path) -> None:
    seen: list[dict[str, object]] = []

    def slack(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, text="ok")

    hook = WebhookSink("https://hooks.example/T000/B000/XXXX", name="webhook:slack",
                       transport=httpx.MockTransport(slack))
    mgr = AlertManager(Outbox.open(tmp_path / "a.sqlite", policy=FAST), [hook], source="pod-1")
    mgr.trigger("fraud", "integrity", checks=[Check(name="integrity:digest", status="fail", summary="differs")])
    assert mgr.flush(timeout_s=5).delivered == 1
    assert seen[0]["text"] == "[CRITICAL] fraud: integrity check failed: integrity:digest: differs (on pod-1)"
    assert seen[0]["goldwatch"]["event"]["dedup_key"] == "goldwatch/fraud/integrity"  # type: ignore[index]
    assert "routing_key" not in json.dumps(seen[0])
    mgr.close()


def test_webhook_client_errors_are_dead_letters_and_server_errors_retry(tmp_path: Path) -> None:
    answers = [503, 404]

    def hook(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0), text="no_service")

    sink = WebhookSink("https://hooks.example/x", name="webhook:x", transport=httpx.MockTransport(hook))
    mgr = AlertManager(Outbox.open(tmp_path / "a.sqlite", policy=FAST), [sink], source="p")
    mgr.change("promoted fraud v8")
    report = mgr.flush(timeout_s=5)
    assert report.retried == 1
    assert report.rejected == 1
    assert "HTTP 404: no_service" in (mgr.outbox.entries("dead")[0].dead_reason or "")
    mgr.close()


def test_build_sinks_from_env_and_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GOLDWATCH_PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.delenv("GOLDWATCH_PAGERDUTY_EVENTS_URL", raising=False)
    assert build_sinks(parse_config("").alerts) == []
    monkeypatch.setenv("GOLDWATCH_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    (pd,) = build_sinks(parse_config("").alerts)
    assert isinstance(pd, PagerDutySink)
    assert pd.events_url == "https://events.pagerduty.com"
    cfg = parse_config('[alerts.pagerduty]\nevents_url = "https://proxy.example/pd"\n').alerts
    assert build_sinks(cfg)[0].events_url == "https://proxy.example/pd"  # type: ignore[attr-defined]
    monkeypatch.setenv("GOLDWATCH_PAGERDUTY_EVENTS_URL", "http://127.0.0.1:1234")
    assert build_sinks(cfg)[0].events_url == "http://127.0.0.1:1234"  # type: ignore[attr-defined]
    # routing key from a file; webhooks from env
    monkeypatch.delenv("GOLDWATCH_PAGERDUTY_ROUTING_KEY")
    keyfile = tmp_path / "rk"
    keyfile.write_text(ROUTING_KEY + "\n")
    monkeypatch.setenv("SLACK_URL", "https://hooks.example/T/B/X")
    cfg = parse_config(f'[alerts.pagerduty]\nrouting_key_file = "{keyfile}"\n'
                       '[[alerts.webhooks]]\nname = "slack"\nurl_env = "SLACK_URL"\n').alerts
    assert [s.name for s in build_sinks(cfg)] == ["pagerduty", "webhook:slack"]
    monkeypatch.delenv("SLACK_URL")
    with pytest.raises(ConfigError, match=r"webhook 'slack' has no URL: \$SLACK_URL is not set"):
        build_sinks(cfg)


def test_a_wrong_routing_key_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLDWATCH_PAGERDUTY_ROUTING_KEY", "short-secret-value")
    with pytest.raises(ConfigError) as err:
        build_sinks(parse_config("").alerts)
    assert "18 characters, expected 32" in str(err.value)
    assert "short-secret-value" not in str(err.value)


def test_config_refuses_a_routing_key_written_in_the_file() -> None:
    with pytest.raises(ConfigError, match="secrets must not be written"):
        parse_config(f'[alerts.pagerduty]\nrouting_key = "{ROUTING_KEY}"\n')


def test_from_config_puts_the_outbox_under_the_default_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOLDWATCH_PAGERDUTY_ROUTING_KEY", raising=False)
    with pytest.raises(ConfigError, match="no alert sink is configured"):
        AlertManager.from_config(parse_config("").alerts, default_dir=tmp_path, require_sink=True)
    mgr = AlertManager.from_config(parse_config("[alerts]\nrenotify_s = 5\n").alerts, default_dir=tmp_path)
    assert mgr.outbox.path == tmp_path / "alerts.sqlite"
    assert mgr.renotify_s == 5
    mgr.close()


def test_without_sinks_the_incident_is_recorded_but_nothing_is_queued(tmp_path: Path) -> None:
    mgr = AlertManager(Outbox.open(tmp_path / "a.sqlite", policy=FAST), [], source="p")
    out = mgr.trigger("fraud", "integrity", summary="differs", severity="critical")
    assert out.reason == "new"
    assert not out.queued
    assert mgr.outbox.counts() == {"pending": 0, "dead": 0}
    assert [i.dedup_key for i in mgr.incidents("open")] == ["goldwatch/fraud/integrity"]
    mgr.close()


def test_sink_names_must_be_unique(tmp_path: Path, pd_sink: PagerDutySink) -> None:
    with Outbox.open(tmp_path / "a.sqlite") as box, pytest.raises(ConfigError, match="must be unique"):
        AlertManager(box, [pd_sink, pd_sink])
