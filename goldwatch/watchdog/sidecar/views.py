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

__all__ = ["healthy", "kind_status", "kinds_shown", "schedule_stats", "status"]


def kinds_shown(service: SidecarService, ctx: ModelContext) -> list[str]:
    """The scheduled kinds of checks, then the kinds reported from outside (the agent's ``resident``) once they
    reported."""
    return [*ctx.checks, *(k for k in ctx.view.kinds if k not in ctx.checks and k in service.kinds)]


def healthy(service: SidecarService, ctx: ModelContext) -> bool:
    """Every paging check passes (or skips) and no incident above a warning is open."""
    for kind in kinds_shown(service, ctx):
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
            "route": view.route, "degraded_since": view.routed_at if view.degraded else None,
            "alternates": {a: getattr(ctx.watch, a).url for a in view.rules.alternates},
            "rollbacks_last_hour": view.recent_rollbacks(now), "rollback_ready": ctx.rollback_ready,
            "startup": ctx.startup,
            "checks": {kind: kind_status(service, ctx, kind) for kind in kinds_shown(service, ctx)},
            "incidents": [row.to_dict() for row in service.journal.incidents(state="open", model=ctx.name)],
            "sources": [dataclasses.asdict(s) | {"silent_s": round(now - s.last_seen, 3)}
                        for s in view.sources.values()],
        })
    return {"goldwatch_version": __version__, "started_at": service.started_at, "now": now, "ready": service.ready,
            "schedule": schedule_stats(service), "models": models}


def schedule_stats(service: SidecarService) -> dict[str, Any]:
    """How late scheduled runs started (the last 10,000), overall and since the first round was done (the start-up
    round runs every check of every model at once, spread over a few seconds): is every check on schedule?"""
    samples = list(service.scheduler.lateness)
    out: dict[str, Any] = {"runs": len(samples), **_quantiles([late for _t, late in samples], "")}
    if service.ready_at is not None:
        steady = [late for t, late in samples if t >= service.ready_at]
        out.update({"steady_runs": len(steady), **_quantiles(steady, "steady_")})
    out["skipped"] = sum(job.skipped for job in service.scheduler.jobs.values())
    return out


def _quantiles(values: list[float], prefix: str) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 6)

    return {f"{prefix}lateness_p50_s": q(0.5), f"{prefix}lateness_p99_s": q(0.99),
            f"{prefix}lateness_max_s": round(ordered[-1], 6)}
