"""``goldwatch alert``: send a test incident, flush the outbox, list what is queued or dead.

With only ``GOLDWATCH_PAGERDUTY_ROUTING_KEY`` (and optionally ``GOLDWATCH_PAGERDUTY_EVENTS_URL``) set,
``goldwatch alert test`` sends a trigger and its resolve through the outbox and says whether both were accepted.
Exit codes: 0 delivered, 1 not delivered (rejected, or still queued at the timeout: ``goldwatch alert flush``
sends it later), 2 no sink configured or bad configuration.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from goldwatch.cli._common import emit_json, finish, guarded, json_option, state

if TYPE_CHECKING:
    from goldwatch.checks import Check
    from goldwatch.watchdog.alerts import AlertManager

TEST_MODEL = "goldwatch-alert-test"


def _manager(*, require_sink: bool) -> AlertManager:
    # Imported here so that `goldwatch --help` stays light.
    from goldwatch.watchdog.alerts import AlertManager

    cfg = state().config
    return AlertManager.from_config(cfg.alerts, default_dir=cfg.registry.root, require_sink=require_sink)


def _delivery_checks(mgr: AlertManager, step: str, ids: dict[str, int]) -> list[Check]:
    """One check per sink: was this step's event delivered (row gone), rejected (dead) or still pending?"""
    from goldwatch.checks import Check

    rows = {e.id: e for e in mgr.outbox.entries()}
    checks = []
    for sink, row_id in ids.items():
        entry = rows.get(row_id)
        name = f"alert:{sink}:{step}"
        if entry is None:
            checks.append(Check(name=name, status="pass", summary=f"{step} accepted by {sink}"))
        elif entry.status == "dead":
            checks.append(Check(name=name, status="fail", summary=f"{step} rejected: {entry.dead_reason}"))
        else:
            checks.append(Check(name=name, status="error", summary=(
                f"{step} not delivered yet after {entry.attempts} attempt(s): "
                f"{entry.last_error or 'queued behind an earlier event of the same incident'}; "
                "kept in the outbox (goldwatch alert flush)")))
    return checks


@click.group()
def alert() -> None:
    """PagerDuty / webhook alerting: test the path, flush the outbox, list queued and dead-letter events."""


@alert.command("test")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds to keep retrying each event before giving up (it stays queued).")
@json_option
@guarded
def send_test(timeout_s: float, as_json: bool) -> None:
    """Send a test trigger, then its resolve, through every configured sink."""
    from goldwatch.checks import CheckReport

    mgr = _manager(require_sink=True)
    try:
        trig = mgr.trigger(
            TEST_MODEL, "test", severity="info", force=True,
            summary=f"goldwatch alert test from {mgr.source}: no action needed, it resolves itself",
            details={"test": True, "sent_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        )
        mgr.flush(timeout_s=timeout_s)
        res = mgr.resolve(TEST_MODEL, "test", summary="goldwatch alert test: resolved", force=True)
        mgr.flush(timeout_s=timeout_s)
        report = CheckReport(_delivery_checks(mgr, "trigger", dict(trig.outbox_ids))
                             + _delivery_checks(mgr, "resolve", dict(res.outbox_ids)))
    finally:
        mgr.close()
    if as_json:
        emit_json({"ok": report.ok, "dedup_key": trig.dedup_key, "checks": report.checks})
    else:
        for c in report:
            click.echo(f"{c.status.upper():5} {c.name}: {c.summary}")
    finish(report.ok)


@alert.command("flush")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to keep retrying; 0 makes one pass.")
@click.option("--requeue-dead", is_flag=True, help="Put dead letters back in the queue first (after a fix).")
@json_option
@guarded
def flush_cmd(timeout_s: float, requeue_dead: bool, as_json: bool) -> None:
    """Deliver what the outbox holds. Exit 1 if anything is still pending or was rejected."""
    mgr = _manager(require_sink=False)
    try:
        requeued = mgr.outbox.requeue() if requeue_dead else 0
        report = mgr.flush(timeout_s=timeout_s)
        if report.pending and not mgr.sinks:
            click.echo("goldwatch: warning: no alert sink is configured; queued events stay queued", err=True)
    finally:
        mgr.close()
    if as_json:
        emit_json({"ok": report.ok, "requeued": requeued, "report": report})
    else:
        click.echo(f"delivered {report.delivered}, retried {report.retried}, rejected {report.rejected}, "
                   f"expired {report.expired}; left: {report.pending} pending, {report.dead} dead")
        for line in report.errors[-5:]:
            click.echo(f"  {line}")
    finish(report.ok)


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


@alert.command("list")
@click.option("--status", type=click.Choice(["all", "pending", "dead"]), default="all", show_default=True)
@json_option
@guarded
def list_cmd(status: str, as_json: bool) -> None:
    """Show queued (pending) and dead-letter events, and the open incidents."""
    from goldwatch.watchdog.alerts.manager import outbox_path

    cfg = state().config
    path = outbox_path(cfg.alerts, default_dir=cfg.registry.root)
    if not path.exists():  # listing must not create an outbox as a side effect
        if as_json:
            emit_json({"events": [], "open_incidents": [], "outbox": str(path)})
        else:
            click.echo(f"outbox: empty (no outbox at {path} yet)")
        return
    mgr = _manager(require_sink=False)
    try:
        entries = mgr.outbox.entries(None if status == "all" else status)  # type: ignore[arg-type]
        incidents = mgr.incidents("open")
    finally:
        mgr.close()
    if as_json:
        rows: list[dict[str, Any]] = [
            {"id": e.id, "sink": e.sink, "kind": e.kind, "order_key": e.order_key, "status": e.status,
             "attempts": e.attempts, "created_at": e.created_at, "next_attempt_at": e.next_attempt_at,
             "last_error": e.last_error, "dead_reason": e.dead_reason, "summary": e.summary}
            for e in entries
        ]
        emit_json({"events": rows, "open_incidents": incidents})
        return
    now = time.time()
    if not entries:
        click.echo("outbox: empty")
    for e in entries:
        when = e.dead_reason if e.status == "dead" else (
            f"next try in {_age(e.next_attempt_at - now)}" + (f", last error: {e.last_error}" if e.last_error else ""))
        click.echo(f"#{e.id} {e.status:7} {e.sink:12} age {_age(now - e.created_at):>5} attempts {e.attempts:<3} "
                   f"{e.summary[:80]} | {when}")
    click.echo(f"open incidents: {len(incidents)}")
    for inc in incidents:
        click.echo(f"  {inc.dedup_key} (#{inc.number}, {inc.severity}, {inc.triggers} trigger(s)): {inc.summary[:100]}")
