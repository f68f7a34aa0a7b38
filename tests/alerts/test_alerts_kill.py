"""SIGKILL the sender between store and send, and between send and delete: nothing is lost, a repeat is harmless."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from goldwatch.watchdog.alerts import AlertManager, Outbox, PagerDutySink
from goldwatch.watchdog.alerts.outbox import CRASH_ENV
from goldwatch.watchdog.alerts.pagerduty_stub import PagerDutyStub, incidents_for

from .alerts_support import FAST, ROUTING_KEY

SENDER = textwrap.dedent(
    """
    import os, sys
    from goldwatch.watchdog.alerts import AlertManager, Outbox, PagerDutySink
    box = Outbox.open(sys.argv[1])
    sink = PagerDutySink(os.environ["GOLDWATCH_PAGERDUTY_ROUTING_KEY"], events_url=sys.argv[2], timeout_s=5)
    mgr = AlertManager(box, [sink], source="pod-kill")
    mgr.trigger("fraud", "integrity", summary="fraud: digest mismatch in model.onnx", severity="critical")
    mgr.resolve("fraud", "golden")  # nothing open: queues nothing
    mgr.flush(timeout_s=10)
    print("sender finished")
    """
)


def _run_sender(db: Path, stub: PagerDutyStub, crash_at: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, CRASH_ENV: crash_at, "GOLDWATCH_PAGERDUTY_ROUTING_KEY": ROUTING_KEY}
    return subprocess.run([sys.executable, "-c", SENDER, str(db), stub.url], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def _restart_and_flush(db: Path, stub: PagerDutyStub) -> AlertManager:
    sink = PagerDutySink(ROUTING_KEY, events_url=stub.url, timeout_s=5)
    mgr = AlertManager(Outbox.open(db, policy=FAST), [sink], source="pod-kill")
    report = mgr.flush(timeout_s=10)
    assert report.ok, report.errors
    return mgr


def test_killed_between_store_and_send_loses_nothing(tmp_path: Path, stub: PagerDutyStub) -> None:
    db = tmp_path / "alerts.sqlite"
    proc = _run_sender(db, stub, "stored")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "sender finished" not in proc.stdout
    assert stub.requests == []  # died before sending
    mgr = _restart_and_flush(db, stub)
    assert stub.accepted_actions() == [("trigger", "goldwatch/fraud/integrity")]
    assert stub.violations == []
    # the incident state was committed with the event: the restarted process knows the incident is open
    (incident,) = mgr.incidents("open")
    assert incident.dedup_key == "goldwatch/fraud/integrity"
    mgr.close()


def test_killed_between_send_and_delete_resends_harmlessly(tmp_path: Path, stub: PagerDutyStub) -> None:
    db = tmp_path / "alerts.sqlite"
    proc = _run_sender(db, stub, "sent")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert stub.accepted_actions() == [("trigger", "goldwatch/fraud/integrity")]  # PagerDuty had it
    mgr = _restart_and_flush(db, stub)  # the dead sender's lease is void: resent at once
    assert stub.accepted_actions() == [("trigger", "goldwatch/fraud/integrity")] * 2
    # the duplicate landed on the same open incident thanks to the dedup key: still one incident
    (incident,) = incidents_for(stub, "goldwatch/fraud/integrity")
    assert incident.state == "triggered"
    assert len(incident.events) == 2
    assert mgr.outbox.counts() == {"pending": 0, "dead": 0}
    # the recovery resolves the one incident
    mgr.resolve("fraud", "integrity")
    assert mgr.flush(timeout_s=5).delivered == 1
    assert incident.state == "resolved"
    assert len(stub.incidents) == 1
    mgr.close()


def test_without_the_hook_the_sender_finishes(tmp_path: Path, stub: PagerDutyStub) -> None:
    proc = _run_sender(tmp_path / "alerts.sqlite", stub, "")
    assert proc.returncode == 0, proc.stderr
    assert "sender finished" in proc.stdout
    assert stub.accepted_actions() == [("trigger", "goldwatch/fraud/integrity")]
