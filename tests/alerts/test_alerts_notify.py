"""Promotions and rollbacks tell PagerDuty: change events on /v2/change/enqueue and the rollback incident.

Through the real CLI (``goldwatch registry promote|rollback``) against the strict PagerDuty stub, plus the library
entry points for the bounded flush.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from goldwatch.config import AlertsConfig
from goldwatch.watchdog.alerts import NotifyResult, notify_promotion
from goldwatch.watchdog.alerts.notify import rollback_summary
from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub, incidents_for
from tests.registry.registry_helpers import write_weights

from .alerts_support import ROUTING_KEY

ENV_KEYS = ("GOLDWATCH_PAGERDUTY_ROUTING_KEY", "GOLDWATCH_PAGERDUTY_EVENTS_URL", "GOLDWATCH_CONFIG",
            "GOLDWATCH_REGISTRY_ROOT")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def _registry(workdir: Path, *args: str) -> Result:
    from goldwatch.cli import main

    base = ["registry", "--registry-root", str(workdir / "reg"), "--serving-dir", str(workdir / "serve")]
    return CliRunner().invoke(main, [*base, *args], catch_exceptions=False)


def _two_versions(workdir: Path) -> None:
    for seed in (1, 2):
        assert _registry(workdir, "add", "fraud", str(write_weights(workdir / f"m{seed}", seed))).exit_code == 0


RELOAD_WARNING = "goldwatch: warning: no server was told to reload"


def _messages(stderr: str) -> list[str]:
    """What the CLI itself printed on stderr about alerting (the rest are log lines and the registry's own
    warning that these tests' serving directory has no reload adapter, which tests/registry covers)."""
    return [
        line for line in stderr.splitlines()
        if line.startswith(("goldwatch: ", "alerts: ")) and not line.startswith(RELOAD_WARNING)
    ]


def _use(stub: PagerDutyStub | str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLDWATCH_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    monkeypatch.setenv("GOLDWATCH_PAGERDUTY_EVENTS_URL", stub if isinstance(stub, str) else stub.url)


def test_promote_sends_a_valid_change_event(stub: PagerDutyStub, workdir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _two_versions(workdir)
    _use(stub, monkeypatch)
    res = _registry(workdir, "promote", "fraud", "1", "--reason", "gate passed", "--actor", "alice",
                    "--evidence", '{"gate_run": 42}')
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == "promoted fraud 1 to known-good (serving)"
    assert _messages(res.stderr) == [f"alerts: change event delivered to pagerduty ({stub.url})"]
    assert stub.violations == []
    (req,) = stub.accepted
    assert req.path == "/v2/change/enqueue"
    assert req.body["routing_key"] == ROUTING_KEY
    payload = req.body["payload"]
    assert payload["summary"] == "promoted fraud 1 to known-good and serving it by alice: gate passed"
    details = payload["custom_details"]
    assert (details["model"], details["version"], details["action"]) == ("fraud", "1", "promote")
    assert details["evidence"] == {"gate_run": 42}
    assert details["serving"] is True
    assert len(details["digest"]) == 64
    assert stub.incidents == []  # a change event never pages
    # delivered: nothing left in the outbox, which lives where `goldwatch alert flush` looks
    from goldwatch.watchdog.alerts import Outbox

    with Outbox.open(workdir / ".goldwatch" / "alerts.sqlite") as box:
        assert box.counts() == {"pending": 0, "dead": 0}


def test_promote_json_output_stays_json(stub: PagerDutyStub, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _two_versions(workdir)
    _use(stub, monkeypatch)
    res = _registry(workdir, "promote", "fraud", "1", "--reason", "ok", "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["version"] == "1"
    assert len(stub.accepted) == 1


def test_rollback_sends_a_change_event_and_an_incident_with_what_was_done(
        stub: PagerDutyStub, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _two_versions(workdir)
    for version in ("1", "2"):
        assert _registry(workdir, "promote", "fraud", version, "--reason", "gate ok").exit_code == 0
    _use(stub, monkeypatch)
    res = _registry(workdir, "rollback", "fraud", "--reason", "golden failed", "--actor", "bob", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["from_version"], out["to_version"], out["ok"]) == ("2", "1", True)
    key = "goldwatch/fraud/rollback"
    assert _messages(res.stderr) == [
        f"alerts: change event and incident {key} delivered to pagerduty ({stub.url})"]
    assert stub.violations == []
    assert [r.path for r in stub.accepted] == ["/v2/enqueue", "/v2/change/enqueue"]  # the incident first
    trigger, change = (r.body for r in stub.accepted)

    took = re.escape(f"{out['total_s']:.3g}")
    assert re.fullmatch(rf"rolled back fraud 2 -> 1 in {took} s \(RTO 60 s met\); serving 1; "
                        r"reason: golden failed \(by bob\)", change["payload"]["summary"])
    assert change["payload"]["custom_details"]["rollback"]["from_version"] == "2"

    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == key
    payload = trigger["payload"]
    assert re.fullmatch(rf"rolled back fraud 2 -> 1 in {took} s \(RTO 60 s met\); serving 1; reason: golden failed",
                        payload["summary"])
    assert payload["severity"] == "warning"  # recovered: an incident to look at, not a 3 a.m. page
    details = payload["custom_details"]
    assert details["action"] == {"kind": "rollback", "description": out["summary"], "from_version": "2",
                                 "to_version": "1"}
    assert details["served_version"] == "1"
    rollback = details["rollback"]
    assert (rollback["from_version"], rollback["to_version"], rollback["ok"]) == ("2", "1", True)
    assert rollback["total_s"] == pytest.approx(out["total_s"], abs=1e-5)
    assert set(rollback["phases_s"]) == set(out["phases"])
    assert (rollback["reason"], rollback["actor"]) == ("golden failed", "bob")
    timing = details["timing"]
    assert timing["recovery_s"] == pytest.approx(out["total_s"], abs=1e-3)
    assert (timing["rto_s"], timing["within_rto"]) == (60.0, True)
    assert details["checks"][0]["name"] == "registry:fraud:rollback"
    assert len(incidents_for(stub, key)) == 1


def test_a_failed_rollback_pages_critical_and_still_exits_1(stub: PagerDutyStub, workdir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _two_versions(workdir)
    assert _registry(workdir, "promote", "fraud", "1", "--reason", "gate ok").exit_code == 0
    _use(stub, monkeypatch)
    res = _registry(workdir, "rollback", "fraud", "--reason", "v1 drifted")
    assert res.exit_code == 1  # nothing to roll back to
    assert stub.violations == []
    (req,) = stub.accepted  # nothing switched: no change event, only the page
    assert req.path == "/v2/enqueue"
    payload = req.body["payload"]
    assert payload["severity"] == "critical"
    assert payload["summary"].startswith("ROLLBACK FAILED: no rollback for fraud: no verified known-good version")
    assert "still serving 1; reason: v1 drifted" in payload["summary"]
    assert payload["custom_details"]["rollback"]["ok"] is False
    assert payload["custom_details"]["action"]["kind"] == "none"
    assert _messages(res.stderr) == [
        f"alerts: incident goldwatch/fraud/rollback delivered to pagerduty ({stub.url})"]


def test_promote_with_pagerduty_down_exits_0_and_keeps_the_event(stub: PagerDutyStub, workdir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from goldwatch.cli import main

    # a long first backoff: the short flush after the promotion makes one attempt and returns at once
    (workdir / "goldwatch.toml").write_text("[alerts]\nretry_base_s = 30\n")
    _two_versions(workdir)
    with PagerDutyStub() as gone:
        down = gone.url
    _use(down, monkeypatch)
    started = time.monotonic()
    res = _registry(workdir, "promote", "fraud", "1", "--reason", "gate passed")
    assert time.monotonic() - started < 5
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == "promoted fraud 1 to known-good (serving)"
    (line,) = _messages(res.stderr)
    assert line.startswith(f"goldwatch: warning: alerts: change event for pagerduty ({down}): 0 of 1 delivered; "
                           "1 not delivered yet (pagerduty: network error")
    assert "kept in the outbox .goldwatch/alerts.sqlite: run `goldwatch alert flush`" in line
    assert ROUTING_KEY not in res.output

    listed = json.loads(CliRunner().invoke(main, ["alert", "list", "--json"]).stdout)["events"]
    assert [(e["kind"], e["status"]) for e in listed] == [("change", "pending")]

    # the rollback while PagerDuty is still down: exit as the rollback says, both events queued behind
    assert _registry(workdir, "promote", "fraud", "2", "--reason", "gate passed").exit_code == 0
    res = _registry(workdir, "rollback", "fraud", "--reason", "golden failed")
    assert res.exit_code == 0
    assert "3 not delivered yet" not in res.stderr
    assert "0 of 2 delivered; 2 not delivered yet" in _messages(res.stderr)[0]

    # still down and backing off: `goldwatch alert flush` is an environment error (2) that says when it retries
    flushed = CliRunner().invoke(main, ["alert", "flush", "--timeout", "0"])
    assert flushed.exit_code == 2
    assert "4 event(s) not delivered within 0 s (last error: network error" in flushed.stderr
    assert "next attempt in " in flushed.stderr

    # PagerDuty is back (at another address) and the 30 s backoff is over: `goldwatch alert flush` delivers all
    with sqlite3.connect(workdir / ".goldwatch" / "alerts.sqlite") as conn:
        conn.execute("UPDATE outbox SET next_attempt_at = 0")
    monkeypatch.setenv("GOLDWATCH_PAGERDUTY_EVENTS_URL", stub.url)
    flushed = CliRunner().invoke(main, ["alert", "flush", "--timeout", "10"])
    assert flushed.exit_code == 0, flushed.output
    assert "delivered 4" in flushed.stdout
    assert stub.violations == []
    changes = [r.body["payload"]["summary"] for r in stub.accepted if r.path == "/v2/change/enqueue"]
    assert [c.split(" in ")[0].split(" to ")[0] for c in changes] == [  # the model's change events keep their order
        "promoted fraud 1", "promoted fraud 2", "rolled back fraud 2 -> 1"]
    (trigger,) = [r.body for r in stub.accepted if r.path == "/v2/enqueue"]
    assert trigger["dedup_key"] == "goldwatch/fraud/rollback"


def test_without_a_sink_promote_and_rollback_say_nothing_and_store_nothing(workdir: Path) -> None:
    _two_versions(workdir)
    for version in ("1", "2"):
        res = _registry(workdir, "promote", "fraud", version, "--reason", "ok")
        assert res.exit_code == 0
        assert _messages(res.stderr) == []  # nothing about alerting at all
    res = _registry(workdir, "rollback", "fraud", "--reason", "bad")
    assert res.exit_code == 0
    assert "alerts" not in res.output
    assert not (workdir / ".goldwatch").exists()


def test_a_broken_alert_config_only_warns(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _two_versions(workdir)
    monkeypatch.setenv("GOLDWATCH_PAGERDUTY_ROUTING_KEY", "not-a-32-character-key")
    res = _registry(workdir, "promote", "fraud", "1", "--reason", "ok")
    assert res.exit_code == 0
    (line,) = _messages(res.stderr)
    assert line.startswith("goldwatch: warning: alerts: nothing sent: PagerDuty routing key: the PagerDuty "
                           "routing key has 22 characters")
    assert "not-a-32-character-key" not in res.output


def test_the_flush_after_a_promotion_is_bounded(stub: PagerDutyStub, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _use(stub, monkeypatch)
    stub.script("hang")  # PagerDuty accepts the connection and never answers
    started = time.monotonic()
    res = notify_promotion(AlertsConfig(), model="fraud", version="7", actor="alice", reason="gate passed",
                           default_dir=tmp_path, flush_timeout_s=0.4)
    assert time.monotonic() - started < 2.0
    assert isinstance(res, NotifyResult)
    assert (res.configured, res.queued, res.delivered, res.pending, res.ok) == (True, 1, 0, 1, False)
    assert res.outbox == tmp_path / "alerts.sqlite"
    assert "timed out" in res.errors[-1]
    stub.release()


def test_a_rejected_change_event_is_reported_as_a_dead_letter(stub: PagerDutyStub, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _use(stub, monkeypatch)
    stub.script(400)
    res = notify_promotion(AlertsConfig(), model="fraud", version="7", actor="alice", reason="ok",
                           default_dir=tmp_path)
    assert (res.rejected, res.pending, res.ok) == (1, 0, False)
    assert "1 rejected and kept as dead letter(s): see `goldwatch alert list --status dead`" in res.line()


def test_rollback_summary_says_when_the_rto_was_missed() -> None:
    class Slow:
        from_version, to_version, phases, error, switched, ok, total_s = "7", "6", {}, None, True, True, 75.0

        def summary(self) -> str:
            return "rolled back fraud 7 -> 6 in 75 s"

        def to_checks(self) -> list:
            return []

    assert rollback_summary("fraud", Slow(), reason="digest", rto_s=60) == (
        "rolled back fraud 7 -> 6 in 75 s (RTO 60 s MISSED); serving 6; reason: digest")
