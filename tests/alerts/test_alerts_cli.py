"""``goldwatch alert test | flush | list`` through CliRunner, plus one real run of the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from goldwatch.cli import main
from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub, incidents_for

from .alerts_support import ROUTING_KEY

ENV_KEYS = ("GOLDWATCH_PAGERDUTY_ROUTING_KEY", "GOLDWATCH_PAGERDUTY_EVENTS_URL", "GOLDWATCH_CONFIG")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no goldwatch.toml) and no alert variables set."""
    monkeypatch.chdir(tmp_path)
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    return tmp_path


@pytest.fixture
def pd_env(stub: PagerDutyStub, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> PagerDutyStub:
    monkeypatch.setenv("GOLDWATCH_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    monkeypatch.setenv("GOLDWATCH_PAGERDUTY_EVENTS_URL", stub.url)
    return stub


def _messages(stderr: str) -> list[str]:
    """goldwatch's own messages on stderr (the rest are log lines)."""
    return [line for line in stderr.splitlines() if line.startswith("goldwatch: ")]


def _fast_config(workdir: Path) -> None:
    (workdir / "goldwatch.toml").write_text("[alerts]\nretry_base_s = 0.01\nretry_max_delay_s = 0.05\n")


def test_alert_test_works_with_only_the_two_variables(pd_env: PagerDutyStub, workdir: Path) -> None:
    result = CliRunner().invoke(main, ["alert", "test"])
    assert result.exit_code == 0, result.output
    assert "PASS  alert:pagerduty:trigger" in result.output
    assert "PASS  alert:pagerduty:resolve" in result.output
    key = "goldwatch/goldwatch-alert-test/test"
    assert pd_env.accepted_actions() == [("trigger", key), ("resolve", key)]
    assert pd_env.violations == []
    assert pd_env.accepted[0].body["payload"]["severity"] == "info"
    (incident,) = incidents_for(pd_env, key)
    assert incident.state == "resolved"
    assert (workdir / ".goldwatch" / "alerts.sqlite").is_file()  # through the outbox
    # a second test opens (and resolves) a new incident, as PagerDuty does after a resolve
    assert CliRunner().invoke(main, ["alert", "test", "--json"]).exit_code == 0
    assert [i.state for i in incidents_for(pd_env, key)] == ["resolved", "resolved"]


def test_alert_test_without_a_sink_is_a_usage_error(workdir: Path) -> None:
    result = CliRunner().invoke(main, ["alert", "test"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("goldwatch: error: $GOLDWATCH_PAGERDUTY_ROUTING_KEY: no alert sink is configured")
    assert "GOLDWATCH_PAGERDUTY_EVENTS_URL" in lines[0]


def test_alert_test_with_a_bad_key_length_is_a_usage_error(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLDWATCH_PAGERDUTY_ROUTING_KEY", "too-short-key-value")
    result = CliRunner().invoke(main, ["alert", "test"])
    assert result.exit_code == 2
    assert "expected 32" in result.stderr
    assert "too-short-key-value" not in result.output + result.stderr


def test_alert_test_rejected_is_a_failed_check(pd_env: PagerDutyStub, workdir: Path) -> None:
    pd_env.script(400)
    result = CliRunner().invoke(main, ["alert", "test", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert statuses == {"alert:pagerduty:trigger": "fail", "alert:pagerduty:resolve": "pass"}
    assert data["ok"] is False


def test_outage_then_list_then_flush(pd_env: PagerDutyStub, workdir: Path) -> None:
    _fast_config(workdir)
    pd_env.script(*([500] * 200))
    result = CliRunner().invoke(main, ["alert", "test", "--timeout", "0.3"])
    # PagerDuty failing (5xx) is an environment problem, not a failed check: exit 2 with one message
    assert result.exit_code == 2
    assert "ERROR alert:pagerduty:trigger: trigger not delivered yet" in result.stdout
    (line,) = _messages(result.stderr)  # besides the log lines
    assert line.startswith(f"goldwatch: error: pagerduty ({pd_env.url}): the alert endpoint is unreachable or failing")
    assert "2 event(s) not delivered within 0.3 s (last error: HTTP 500" in line
    assert "goldwatch alert flush" in line

    listed = CliRunner().invoke(main, ["alert", "list", "--json"])
    assert listed.exit_code == 0
    events = json.loads(listed.stdout)["events"]
    assert [e["status"] for e in events] == ["pending", "pending"]
    assert events[0]["summary"].startswith("trigger: goldwatch alert test")
    assert "HTTP 500" in events[0]["last_error"]
    assert [i["dedup_key"] for i in json.loads(listed.stdout)["open_incidents"]] == []  # test incident resolved
    text = CliRunner().invoke(main, ["alert", "list"])
    assert "#1 pending" in text.output
    assert "#2 pending" in text.output

    pd_env.clear_script()  # PagerDuty is back
    flushed = CliRunner().invoke(main, ["alert", "flush", "--timeout", "10"])
    assert flushed.exit_code == 0, flushed.output
    assert "delivered 2" in flushed.output
    assert "left: 0 pending, 0 dead" in flushed.output
    assert [a for a, _ in pd_env.accepted_actions()] == ["trigger", "resolve"]
    assert "outbox: empty" in CliRunner().invoke(main, ["alert", "list"]).output


def test_flush_requeues_dead_letters_on_request(pd_env: PagerDutyStub, workdir: Path) -> None:
    pd_env.script(400)
    assert CliRunner().invoke(main, ["alert", "test"]).exit_code == 1
    dead = json.loads(CliRunner().invoke(main, ["alert", "list", "--status", "dead", "--json"]).stdout)["events"]
    assert len(dead) == 1
    assert "HTTP 400" in dead[0]["dead_reason"]
    assert CliRunner().invoke(main, ["alert", "flush", "--timeout", "0"]).exit_code == 0  # nothing pending
    result = CliRunner().invoke(main, ["alert", "flush", "--requeue-dead", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["requeued"] == 1
    assert data["report"]["delivered"] == 1


def test_flush_without_sinks_is_a_usage_error_and_keeps_events(pd_env: PagerDutyStub, workdir: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pd_env.script(500, 500, 500, 500)
    CliRunner().invoke(main, ["alert", "test", "--timeout", "0.2"])
    monkeypatch.delenv("GOLDWATCH_PAGERDUTY_ROUTING_KEY")
    result = CliRunner().invoke(main, ["alert", "flush", "--timeout", "0"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("goldwatch: error: $GOLDWATCH_PAGERDUTY_ROUTING_KEY: no alert sink is configured; "
                           "2 queued event(s) stay in the outbox")
    assert "(fix: set GOLDWATCH_PAGERDUTY_ROUTING_KEY" in line
    assert result.stdout == ""
    events = json.loads(CliRunner().invoke(main, ["alert", "list", "--json"]).stdout)["events"]
    assert [e["status"] for e in events] == ["pending", "pending"]


def test_flush_without_sinks_and_empty_outbox_is_still_a_usage_error(workdir: Path) -> None:
    result = CliRunner().invoke(main, ["alert", "flush"])
    assert result.exit_code == 2
    assert "no alert sink is configured; 0 queued event(s)" in result.stderr


def test_alert_test_with_pagerduty_unreachable_exits_2(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with PagerDutyStub() as down:
        url = down.url
    monkeypatch.setenv("GOLDWATCH_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    monkeypatch.setenv("GOLDWATCH_PAGERDUTY_EVENTS_URL", url)  # nothing listens there any more
    result = CliRunner().invoke(main, ["alert", "test", "--timeout", "0.2"])
    assert result.exit_code == 2
    (line,) = _messages(result.stderr)
    assert f"pagerduty ({url}): the alert endpoint is unreachable or failing" in line
    assert "network error" in line
    assert ROUTING_KEY not in result.output
    # flush while it is still down: exit 2 too, and the events stay queued
    flushed = CliRunner().invoke(main, ["alert", "flush", "--timeout", "0.2"])
    assert flushed.exit_code == 2
    assert "left: 2 pending, 0 dead" in flushed.stdout
    assert len(_messages(flushed.stderr)) == 1


def test_flush_of_a_rejected_event_exits_1(pd_env: PagerDutyStub, workdir: Path) -> None:
    _fast_config(workdir)
    pd_env.script(*([500] * 200))
    assert CliRunner().invoke(main, ["alert", "test", "--timeout", "0.1"]).exit_code == 2
    pd_env.clear_script()
    pd_env.script(400)  # the queued trigger is refused: a dead letter, a failed check
    result = CliRunner().invoke(main, ["alert", "flush", "--timeout", "10"])
    assert result.exit_code == 1, result.output
    assert "rejected 1" in result.stdout
    assert "left: 0 pending, 1 dead" in result.stdout


def test_list_without_an_outbox_creates_nothing(workdir: Path) -> None:
    result = CliRunner().invoke(main, ["alert", "list"])
    assert result.exit_code == 0
    assert "no outbox at" in result.output
    assert json.loads(CliRunner().invoke(main, ["alert", "list", "--json"]).stdout)["events"] == []
    assert list(workdir.iterdir()) == []


def test_console_script_alert_test(stub: PagerDutyStub, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("goldwatch")
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(GOLDWATCH_PAGERDUTY_ROUTING_KEY=ROUTING_KEY, GOLDWATCH_PAGERDUTY_EVENTS_URL=stub.url)
    proc = subprocess.run([str(exe), "--log-format", "json", "--log-level", "debug", "alert", "test"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "PASS  alert:pagerduty:resolve" in proc.stdout
    assert ROUTING_KEY not in proc.stdout + proc.stderr
    assert [a for a, _ in stub.accepted_actions()] == ["trigger", "resolve"]


def test_alert_cli_stays_light() -> None:
    code = ("import sys, goldwatch.cli.alert, goldwatch.watchdog.alerts; "
            "heavy = [m for m in ('torch', 'onnxruntime', 'evidently', 'mlserver') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
