"""``goldwatch alert``: send a test incident, flush the outbox, list what is queued or dead.

With only ``GOLDWATCH_PAGERDUTY_ROUTING_KEY`` (and optionally ``GOLDWATCH_PAGERDUTY_EVENTS_URL``) set,
``goldwatch alert test`` sends a trigger and its resolve through the outbox and says whether both were accepted.

Exit codes of ``alert test`` and ``alert flush`` (the project's convention):

* 0 -- everything was delivered
* 1 -- an event was rejected (HTTP 400 and other client errors) or expired: a dead letter, ``goldwatch alert list
  --status dead`` says why
* 2 -- no sink is configured, the configuration is bad, or the endpoint could not be reached or kept failing
  (network error, timeout, 429, 5xx) until the timeout: the events stay queued for ``goldwatch alert flush``

:func:`announce_promotion` and :func:`announce_rollback` are what ``goldwatch registry promote|rollback`` call:
one line about the change event / incident, and never a failed exit because of alerting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import click

from goldwatch.cli._common import emit_json, finish, guarded, json_option, state

if TYPE_CHECKING:
    from goldwatch.checks import Check
    from goldwatch.config import GoldwatchConfig
    from goldwatch.errors import ServerUnreachableError
    from goldwatch.watchdog.alerts import AlertManager, NotifyResult

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


def _undelivered_error(mgr: AlertManager, ids: Collection[int] | None, timeout_s: float) -> ServerUnreachableError:
    """Exit 2 for events still pending after the flush: the endpoint is down or failing, not a failed check."""
    from goldwatch.errors import ServerUnreachableError
    from goldwatch.watchdog.alerts.notify import describe_sink

    pending = [e for e in mgr.outbox.entries("pending") if ids is None or e.id in ids]
    names = sorted({e.sink for e in pending})
    where = ", ".join(describe_sink(mgr.sinks[n]) if n in mgr.sinks else f"{n} (not configured here)"
                      for n in names)
    last = next((e.last_error for e in reversed(pending) if e.last_error), None)
    why = f"last error: {last}" if last else "not yet due: backoff or rate limit"
    due = mgr.outbox.next_due(mgr.sinks)
    if due is not None and due > time.time():
        why += f"; next attempt in {due - time.time():.0f} s"
    return ServerUnreachableError(
        f"the alert endpoint is unreachable or failing: {len(pending)} event(s) not delivered within {timeout_s:g} s"
        f" ({why}); they stay queued in {mgr.outbox.path}",
        where=where or None,
        hint="check the network, proxy and Events API URL ($GOLDWATCH_PAGERDUTY_EVENTS_URL), "
        "then run `goldwatch alert flush`",
    )


def _announce(send: Callable[[GoldwatchConfig], NotifyResult]) -> None:
    """Print one line about what ``send`` queued/delivered; alerting problems are a warning, never an exit code."""
    try:
        result = send(state().config)
    except Exception as exc:  # alerting is optional: whatever goes wrong here, the registry change stands
        click.echo(f"goldwatch: warning: alerts: nothing sent: {exc}", err=True)
        return
    if not result.configured:
        return  # alerting is off: no noise on every promote
    click.echo(result.line() if result.ok else f"goldwatch: warning: {result.line()}", err=True)


def announce_promotion(mv: Any, *, actor: str | None, reason: str, evidence: dict[str, Any] | None) -> None:
    """After ``goldwatch registry promote``: a change event for ``mv`` (a ModelVersion)."""
    from goldwatch.watchdog.alerts.notify import notify_promotion
    from goldwatch.watchdog.registry.core import default_actor

    _announce(lambda cfg: notify_promotion(
        cfg.alerts, model=mv.model, version=mv.version, actor=actor or default_actor(), reason=reason,
        evidence_summary=evidence, serving=mv.serving, digest=mv.digest, default_dir=cfg.registry.root))


def announce_rollback(model: str, result: Any, *, actor: str | None, reason: str) -> None:
    """After ``goldwatch registry rollback`` (worked or not): a change event and the model's rollback incident."""
    from goldwatch.watchdog.alerts.notify import notify_rollback
    from goldwatch.watchdog.registry.core import default_actor

    _announce(lambda cfg: notify_rollback(cfg.alerts, model=model, result=result, reason=reason,
                                          actor=actor or default_actor(), default_dir=cfg.registry.root))


@click.group()
def alert() -> None:
    """PagerDuty / webhook alerting: test the path, flush the outbox, list queued and dead-letter events."""


@alert.command("test")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds to keep retrying each event before giving up (it stays queued).")
@json_option
@guarded
def send_test(timeout_s: float, as_json: bool) -> None:
    """Send a test trigger, then its resolve, through every configured sink.

    Exit 0 both delivered; 1 one was rejected (dead letter); 2 no sink is configured, or the endpoint could not be
    reached (or kept failing) within --timeout -- the events stay queued for `goldwatch alert flush`.
    """
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
        ids = [*trig.outbox_ids.values(), *res.outbox_ids.values()]
        unreachable = _undelivered_error(mgr, ids, timeout_s) if report.errored else None
    finally:
        mgr.close()
    if as_json:
        emit_json({"ok": report.ok, "dedup_key": trig.dedup_key, "checks": report.checks})
    else:
        for c in report:
            click.echo(f"{c.status.upper():5} {c.name}: {c.summary}")
    if unreachable is not None:
        raise unreachable
    finish(report.ok)


@alert.command("flush")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to keep retrying; 0 makes one pass.")
@click.option("--requeue-dead", is_flag=True, help="Put dead letters back in the queue first (after a fix).")
@json_option
@guarded
def flush_cmd(timeout_s: float, requeue_dead: bool, as_json: bool) -> None:
    """Deliver what the outbox holds.

    Exit 0 all delivered; 1 an event was rejected or expired (dead letter); 2 no sink is configured, or the
    endpoint could not be reached (or kept failing) within --timeout -- what is left stays queued.
    """
    from goldwatch.watchdog.alerts.manager import no_sink_error

    mgr = _manager(require_sink=False)
    try:
        if not mgr.sinks:
            pending = mgr.outbox.counts()["pending"]
            raise no_sink_error(state().config.alerts, what=(
                f"no alert sink is configured; {pending} queued event(s) stay in the outbox {mgr.outbox.path}"))
        requeued = mgr.outbox.requeue() if requeue_dead else 0
        report = mgr.flush(timeout_s=timeout_s)
        unreachable = _undelivered_error(mgr, None, timeout_s) if report.pending else None
    finally:
        mgr.close()
    if as_json:
        emit_json({"ok": report.ok, "requeued": requeued, "report": report})
    else:
        click.echo(f"delivered {report.delivered}, retried {report.retried}, rejected {report.rejected}, "
                   f"expired {report.expired}; left: {report.pending} pending, {report.dead} dead")
        for line in report.errors[-5:]:
            click.echo(f"  {line}")
    if unreachable is not None:
        raise unreachable
    finish(report.ok)


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


@alert.command("list")
@click.option("--status", type=click.Choice(["all", "pending", "dead"]), default="all", show_default=True,
              help="Which events: pending (queued for delivery), dead (dead letters), or all.")
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
