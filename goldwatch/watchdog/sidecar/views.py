"""What the service shows: per model, the last result of each check, open incidents, next runs; the schedule's
lateness. Plain data for ``GET /v1/status`` and ``goldwatch status``."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from goldwatch._version import __version__
from goldwatch.watchdog.sidecar.context import ModelContext
from goldwatch.watchdog.sidecar.journal import check_to_dict

if TYPE_CHECKING:
    from goldwatch.watchdog.sidecar.service import SidecarService

__all__ = ["healthy", "kind_status", "schedule_stats", "status"]


def healthy(service: SidecarService, ctx: ModelContext) -> bool:
    """Every paging check passes (or skips) and no incident above a warning is open."""
    for kind in ctx.checks:
        state = ctx.view.kinds.get(kind)
        if state is not None and state.status in ("fail", "error") and service.kinds.get(kind).pages:
            return False
    return not any(inc.severity in ("critical", "error") for inc in ctx.view.incidents.values())


def kind_status(service: SidecarService, ctx: ModelContext, kind: str) -> dict[str, Any]:
    state = ctx.view.kind(kind)
    ev = ctx.latest.get(kind)
    return {
        "status": state.status, "summary": ev.summary() if ev else None, "version": ev.version if ev else None,
        "last_run_at": state.last_run_at, "last_pass_at": state.last_pass_at,
        "failing_since": state.failing_since, "duration_s": round(ev.duration_s, 6) if ev else None,
        "next_run_at": service.scheduler.next_run_at(ctx.name, kind),
        "checks": [check_to_dict(c) for c in ev.checks] if ev else [],
    }


def status(service: SidecarService) -> dict[str, Any]:
    """What the sidecar sees, per model (``GET /v1/status``, ``goldwatch status``)."""
    now = service.clock()
    models = []
    for ctx in service.models.values():
        view = ctx.view
        state = service.journal.model_state(ctx.name)
        models.append({
            "name": ctx.name, "url": ctx.watch.url, "mode": ctx.watch.mode,
            "registry": ctx.target.can_rollback, "served_version": view.served_version,
            "healthy": healthy(service, ctx), "acting": view.acting,
            "paused": ({"until": view.paused_until, "reason": state.paused_reason} if view.paused(now) else None),
            "stopped": ({"at": state.stopped_at, "reason": state.stopped_reason} if view.stopped else None),
            "rollbacks_last_hour": view.recent_rollbacks(now), "rollback_ready": ctx.rollback_ready,
            "startup": ctx.startup,
            "checks": {kind: kind_status(service, ctx, kind) for kind in ctx.checks},
            "incidents": [row.to_dict() for row in service.journal.incidents(state="open", model=ctx.name)],
            "sources": [dataclasses.asdict(s) | {"silent_s": round(now - s.last_seen, 3)}
                        for s in view.sources.values()],
        })
    return {"goldwatch_version": __version__, "started_at": service.started_at, "now": now, "ready": service.ready,
            "schedule": schedule_stats(service), "models": models}


def schedule_stats(service: SidecarService) -> dict[str, Any]:
    """How late scheduled runs started (the last 10,000): is every check on schedule?"""
    lateness = sorted(service.scheduler.lateness)
    if not lateness:
        return {"runs": 0}

    def q(p: float) -> float:
        return round(lateness[min(len(lateness) - 1, int(p * len(lateness)))], 6)

    return {"runs": len(lateness), "lateness_p50_s": q(0.5), "lateness_p99_s": q(0.99),
            "lateness_max_s": round(lateness[-1], 6),
            "skipped": sum(job.skipped for job in service.scheduler.jobs.values())}
