"""What the service does when it starts: pick up where the last process left off, and verify first if asked.

* :func:`restore` -- each model's state from the journal (the last result of each check, open incidents, the
  automatic rollbacks of the last hour, pauses and flap-guard stops, external sources);
* :func:`finish_interrupted` -- a rollback the journal began and never finished (the process was killed): opening
  the registry already completed or reverted the pointer switch (its intent journal); say which, reload the server
  if the switch stands, and update the incident, whose first page was queued before the rollback began;
* :func:`reassert_incidents` -- re-trigger open incidents through the alert manager, whose book re-sends only what a
  crash left unsent (never a second incident);
* :func:`verify_first` -- ``--verify-first``: SHA-256 of every model's served files before anything else, rolling a
  corrupted one back without a reload (the server is not running yet); ``/startupz`` reports the outcome.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from goldwatch.errors import GoldwatchError
from goldwatch.logs import get_logger
from goldwatch.watchdog.alerts import ActionTaken, Timing
from goldwatch.watchdog.sidecar.checks import RunRequest
from goldwatch.watchdog.sidecar.context import ModelContext
from goldwatch.watchdog.sidecar.evidence import Evidence
from goldwatch.watchdog.sidecar.journal import check_to_dict
from goldwatch.watchdog.sidecar.policy import HOUR_S, PRIMARY, Decision, IncidentView, KindState, SourceState
from goldwatch.watchdog.sidecar.responder import ROUTE_NAMESPACE
from goldwatch.watchdog.sidecar.workers import in_thread

if TYPE_CHECKING:
    from goldwatch.watchdog.sidecar.service import SidecarService

__all__ = ["finish_interrupted", "reassert_incidents", "restore", "verify_first"]

log = get_logger(__name__)


async def restore(service: SidecarService, ctx: ModelContext) -> None:
    now = service.clock()
    kinds = {r.kind: KindState(r.status, r.last_run_at, r.last_pass_at, r.failing_since, r.consecutive)  # type: ignore[arg-type]
             for r in service.journal.check_states(ctx.name)}
    incidents = {}
    for row in service.journal.incidents(state="open", model=ctx.name):
        action = (row.action or {}).get("kind")
        incidents[row.check_class] = IncidentView(row.check_class, row.kind, row.detected_at, row.acted_at,
                                                  action if action in ("rollback", "reload", "route") else None,
                                                  row.severity)
    rollbacks = tuple(r.started_at for r in service.journal.rollbacks(model=ctx.name, since=now - HOUR_S)
                      if r.automatic)
    state = service.journal.model_state(ctx.name)
    sources = {s.source: SourceState(s.source, s.kind, s.interval_s, s.first_seen, s.last_seen, s.status)  # type: ignore[arg-type]
               for s in service.journal.sources(ctx.name)}
    try:
        served = (await in_thread(ctx.target.served)).version
    except GoldwatchError as exc:
        log.warning("%s: cannot read what is served: %s", ctx.name, exc)
        served = None
    # where the model's traffic went: a sidecar restarted while degraded keeps watching for the primary to return
    route = service.journal.get_checkpoint(ROUTE_NAMESPACE, ctx.name)
    degraded = isinstance(route, dict) and route.get("route") in ctx.view.rules.alternates
    ctx.view = dataclasses.replace(
        ctx.view, served_version=served, started_at=now, kinds=kinds, incidents=incidents, rollbacks=rollbacks,
        paused_until=state.paused_until if state.paused_until and state.paused_until > now else None,
        stopped=state.stopped_at is not None, sources=sources,
        route=str(route["route"]) if degraded else PRIMARY,
        routed_at=float(route["since"]) if degraded else None,
    )
    service.metrics.set_route(ctx.name, ctx.view.route)
    ctx.degraded_counted_at = now if degraded else None
    service.refresh_metrics(ctx)


async def finish_interrupted(service: SidecarService, ctx: ModelContext) -> None:
    """A rollback the journal started and never finished: the process died during it. Opening the registry
    completed or reverted the pointer switch (its intent journal); say which, reload the server if the switch
    stands, and update the incident -- its first page was queued before the rollback began."""
    for row in service.journal.rollbacks(model=ctx.name, unfinished=True):
        recovered = [dataclasses.asdict(r) for r in ctx.target.recovered()]
        served = ctx.view.served_version
        completed = served is not None and served != row.from_version
        note = ""
        if completed and ctx.target.can_reload:
            try:
                await in_thread(ctx.target.reload)
                note = "; the server was told to reload it"
            except GoldwatchError as exc:
                note = f"; the server did not confirm the reload: {exc}"
        outcome = "interrupted-completed" if completed else "interrupted-reverted"
        text = (f"the sidecar stopped during the rollback of {ctx.name} from {row.from_version}: "
                + (f"the switch to {served} stands{note}" if completed else
                   "the switch never happened; the checks decide again"))
        now = service.clock()
        service.journal.finish_rollback(row.id, at=now, to_version=served if completed else None, outcome=outcome,
                                     detail={"summary": text, "registry_recovery": recovered})
        service.responder.record(ctx.name, None, "rollback-recovered", text, detail={"rollback": row.id})
        service.metrics.rollbacks.labels(ctx.name, "interrupted").inc()
        incident = service.journal.incident(row.incident_id) if row.incident_id else None
        if incident is not None and incident.state == "open":
            if completed:
                service.journal.mark_acted(incident.id, at=row.started_at,
                                        action={"kind": "rollback", "from": row.from_version, "to": served,
                                                "summary": text})
                ctx.view = dataclasses.replace(ctx.view, incidents={
                    **ctx.view.incidents,
                    incident.check_class: IncidentView(incident.check_class, incident.kind, incident.detected_at,
                                                       row.started_at, "rollback", incident.severity)})
            action = ActionTaken(kind="rollback" if completed else "none", description=text,
                                 from_version=row.from_version, to_version=served if completed else None)
            await service.responder.trigger(ctx, incident.check_class, checks=list(incident.checks),
                                severity=incident.severity, action=action,
                                timing=Timing(detected_at=incident.detected_at, started_at=incident.started_at,
                                              rto_s=incident.rto_s),
                                details={"note": text})
        if completed:
            ctx.view = dataclasses.replace(ctx.view, last_action_at=now)


async def reassert_incidents(service: SidecarService) -> None:
    """Open incidents survive a restart: re-trigger each through the alert manager, whose incident book
    sends nothing for one it already knows unchanged (and re-sends one a crash left unsent)."""
    for row in service.journal.incidents(state="open"):
        ctx = service.models.get(row.model)
        if ctx is None:
            continue
        action = None
        if row.action:
            kind = row.action.get("kind")
            action = ActionTaken(kind="rollback" if kind == "rollback" else ("fallback" if kind == "route" else "none"),
                                 description=str(row.action.get("summary") or row.action.get("kind")),
                                 from_version=row.action.get("from"), to_version=row.action.get("to"))
        await service.responder.trigger(ctx, row.check_class, checks=list(row.checks), severity=row.severity,
                            action=action, summary=None if row.checks else row.summary)


async def verify_first(service: SidecarService) -> None:
    problems = []
    for ctx in service.models.values():
        check = ctx.checks.get("files")
        if check is None:
            ctx.startup = "files check disabled"
            continue
        result = await in_thread(check.run, ctx.target, RunRequest(reason="verify first", full=True))
        failed = [c for c in result.checks if c.status == "fail"]
        if not failed:
            ctx.startup = "verified" if all(c.ok for c in result.checks) else \
                "could not verify: " + "; ".join(c.summary for c in result.checks if not c.ok)[:300]
            if ctx.startup != "verified":
                problems.append(f"{ctx.name}: {ctx.startup}")
            continue
        now = service.clock()
        ev = Evidence(ctx.name, "files", result.checks, now, now, result.version)
        why_not = None if ctx.target.can_rollback and ctx.watch.mode == "act" else "rollback is off or observe mode"
        if why_not is None:
            page = Decision("page", "start-up verification failed: rolling back before the server starts",
                            check_class="integrity", severity="critical")
            await service.responder.page(ctx, page, ev, ctx.view)
            incident = service.journal.open_incident_for(ctx.name, "integrity")
            taken = await service.responder.rollback(ctx, reason=f"start-up verification failed: {ev.summary()}",
                                         automatic=True, incident_id=incident.id if incident else None,
                                         evidence={"failed": [check_to_dict(c) for c in failed]}, reload=False)
            ctx.view = dataclasses.replace(ctx.view, rollbacks=(*ctx.view.rollbacks, now))
            again = await in_thread(check.run, ctx.target, RunRequest(reason="verify first", full=True))
            if all(c.ok for c in again.checks):
                ctx.startup = f"verified after {taken.description}"
                if incident is not None:
                    service.journal.mark_acted(incident.id, at=now, action={
                        "kind": "rollback", "from": taken.from_version, "to": taken.to_version,
                        "summary": taken.description})
                await service.responder.trigger(ctx, "integrity", checks=list(ev.checks), severity="critical",
                                                action=taken)
                continue
            ctx.startup = f"served files fail verification and {taken.description}"
        else:
            page = Decision("page", f"start-up verification failed; not acting: {why_not}",
                            check_class="integrity", severity="critical")
            await service.responder.page(ctx, page, ev, ctx.view)
            ctx.startup = f"served files fail verification: {ev.summary()}"
        problems.append(f"{ctx.name}: {ctx.startup}")
    service.startup_problem = "; ".join(problems) or None
    service.startup_done = True
    service.responder.record(None, "files", "verify-first", service.startup_problem or "every served model verifies")
