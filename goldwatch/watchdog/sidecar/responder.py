"""Carrying decisions out: journal first, then the page, the rollback or the reload, then the incident's times.

:class:`Responder` is what turns a :class:`~.policy.Decision` into effects, for the service: it opens, updates and
resolves incidents (in the journal, with when each started, was detected, acted on and recovered, and through the
:class:`~goldwatch.watchdog.alerts.AlertManager`, one incident per model and check class), and runs rollbacks and
reloads through the model's :class:`~.targets.Target` on a worker thread, as an asyncio task a shutdown waits for
(never cancels half-way). Routes (disaster recovery) move the model's traffic: to an alternate only after its
golden sets pass through its own endpoint (verified right before the hook is called), and back to the primary,
which resolves the incidents that moved it; a rollback that finds no verified known-good version routes to the
fallback and pages that there is none.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Callable, Mapping
from typing import Any

from goldwatch.checks import Check
from goldwatch.errors import GoldwatchError, StateError
from goldwatch.logs import get_logger
from goldwatch.watchdog.alerts import ActionTaken, AlertManager, Timing
from goldwatch.watchdog.registry import RollbackResult
from goldwatch.watchdog.sidecar.checks import AlternateProof, RunRequest
from goldwatch.watchdog.sidecar.context import ModelContext
from goldwatch.watchdog.sidecar.evidence import Evidence, EvidenceKinds
from goldwatch.watchdog.sidecar.fleet import FleetLink
from goldwatch.watchdog.sidecar.journal import IncidentRow, Journal, check_to_dict
from goldwatch.watchdog.sidecar.metrics import SidecarMetrics
from goldwatch.watchdog.sidecar.policy import FLAP_GUARD_CLASS, PRIMARY, Decision, IncidentView, ModelView
from goldwatch.watchdog.sidecar.scheduler import Scheduler
from goldwatch.watchdog.sidecar.workers import in_thread

__all__ = ["ROUTE_NAMESPACE", "Responder", "RouteOutcome", "default_actor"]

log = get_logger(__name__)

#: journal checkpoints: where each model's traffic goes (a restart resumes a degraded model as degraded)
ROUTE_NAMESPACE = "route"
_LABEL = {"fallback": "fallback", "cpu_variant": "CPU variant", PRIMARY: "primary"}


@dataclasses.dataclass(frozen=True)
class RouteOutcome:
    """What a route did: ``route`` is where traffic goes now (unchanged when nothing verified or the hook failed);
    ``proofs`` the verification of each alternate tried, in order."""

    moved: bool
    route: str
    url: str | None
    description: str
    proofs: tuple[AlternateProof, ...] = ()
    duration_s: float = 0.0


class Responder:
    """Carries out decisions for the service (see the module docstring). ``deliver`` is set whenever an alert was
    queued, to wake the delivery task. ``fleet``: on a registry shared by a fleet, pages and resolves go through
    the fleet's incident book (:mod:`.fleet`)."""

    def __init__(self, *, journal: Journal, alerts: AlertManager, metrics: SidecarMetrics, kinds: EvidenceKinds,
                 scheduler: Scheduler, clock: Callable[[], float], fleet: FleetLink | None = None,
                 verify_alternate: Callable[[ModelContext, str], AlternateProof] | None = None) -> None:
        self.journal = journal
        self.alerts = alerts
        self.metrics = metrics
        self.kinds = kinds
        self.scheduler = scheduler
        self.clock = clock
        self.fleet = fleet
        self.verify_alternate = verify_alternate
        self.deliver = asyncio.Event()

    def record(self, model: str | None, kind: str | None, action: str, reason: str,
                detail: Mapping[str, Any] | None = None) -> None:
        self.journal.record(model=model or "*", kind=kind, action=action, reason=reason, at=self.clock(),
                            detail=detail)
        log.info("%s%s: %s: %s", model or "sidecar", f"/{kind}" if kind else "", action, reason)

    async def carry_out(self, ctx: ModelContext, d: Decision, ev: Evidence, before: ModelView) -> None:
        if d.action in ("ignore", "hold"):
            if ctx.notes.get(ev.kind) != d.reason:  # journal a reason when it changes, not on every run
                ctx.notes[ev.kind] = d.reason
                self.record(ctx.name, ev.kind, d.action, d.reason)
            return
        ctx.notes.pop(ev.kind, None)
        if d.action == "page":
            await self.page(ctx, d, ev, before)
        elif d.action == "resolve":
            await self.resolve(ctx, d, at=ev.finished_at)
        elif d.action == "stop":
            self.record(ctx.name, ev.kind, "stop", d.reason)
            self.journal.set_stopped(ctx.name, at=self.clock(), reason=d.reason)
            ctx.view = dataclasses.replace(ctx.view, stopped=True)
        elif d.action == "forget" and d.source:
            self.record(ctx.name, None, "forget", d.reason)
            self.journal.forget_source(ctx.name, d.source)
        elif d.action in ("rollback", "reload", "route"):
            self.record(ctx.name, ev.kind, d.action, f"starting: {d.reason}",
                        detail={"route": d.route, "alternates": list(d.alternates)} if d.action == "route" else None)
            task: asyncio.Task[Any] = asyncio.create_task(
                self.route(ctx, d, ev) if d.action == "route" else self.act(ctx, d, ev))
            ctx.action = task
            # shielded: a shutdown cancels the checks, never an action half-way; stop() waits for it
            await asyncio.shield(task)

    async def page(self, ctx: ModelContext, d: Decision, ev: Evidence, before: ModelView) -> None:
        assert d.check_class is not None
        assert d.severity is not None
        failed = ev.failed
        summary = d.reason if d.check_class == FLAP_GUARD_CLASS else f"{ev.summary()} ({d.reason})"
        kind = FLAP_GUARD_CLASS if d.check_class == FLAP_GUARD_CLASS else ev.kind
        started = before.kind(ev.kind).last_pass_at if kind == ev.kind else None
        existing = self.journal.open_incident_for(ctx.name, d.check_class)
        incident_id = self.journal.open_incident(
            model=ctx.name, check_class=d.check_class, kind=kind, severity=d.severity, summary=summary,
            started_at=started, detected_at=ev.finished_at, rto_s=ctx.rto_s,
            checks=[] if kind == FLAP_GUARD_CLASS else failed, served_version=ctx.view.served_version)
        known = ctx.view.incidents.get(d.check_class)
        ctx.view = dataclasses.replace(ctx.view, incidents={
            **ctx.view.incidents,
            d.check_class: dataclasses.replace(known, severity=d.severity) if known is not None and existing
            is not None else IncidentView(d.check_class, kind, ev.finished_at, severity=d.severity)})
        note_key = f"page:{d.check_class}"
        if existing is None or ctx.notes.get(note_key) != summary:  # a page per change, not per run
            ctx.notes[note_key] = summary
            self.record(ctx.name, ev.kind, "page", f"{d.severity}: {summary}",
                         detail={"incident": incident_id, "check_class": d.check_class, "new": existing is None})
        if kind == FLAP_GUARD_CLASS:
            await self.trigger(ctx, d.check_class, checks=[], severity=d.severity, summary=f"{ctx.name}: {d.reason}")
        else:
            # an incident whose traffic already moved says so on every update (and an unchanged one is not re-sent)
            moved = known is not None and known.action == "route" and ctx.view.degraded
            await self.trigger(ctx, d.check_class, checks=list(ev.checks), severity=d.severity,
                                action=ActionTaken(kind="fallback", description=f"traffic is on the "
                                                   f"{_LABEL.get(ctx.view.route, ctx.view.route)}",
                                                   to_version=ctx.view.route) if moved else None,
                                timing=Timing(detected_at=ev.finished_at, started_at=started, rto_s=ctx.rto_s),
                                details={"note": d.reason, "incident": incident_id, "source": ev.source})

    async def trigger(self, ctx: ModelContext, check_class: str, *, checks: list[Check], severity: str,
                       action: ActionTaken | None = None, timing: Timing | None = None, summary: str | None = None,
                       details: Mapping[str, Any] | None = None) -> None:
        if ctx.view.degraded:
            details = {**(details or {}), "route": ctx.view.route, "degraded_since": ctx.view.routed_at}
        page: dict[str, Any] = dict(checks=checks, severity=severity, served_version=ctx.view.served_version,
                                    action=action, timing=timing, summary=summary, details=details)
        try:
            if self.fleet is not None and self.fleet.shared:  # the fleet's book: a database round trip
                await in_thread(self.fleet.trigger, self.alerts, ctx.name, check_class, **page,
                                name=f"goldwatch:{ctx.name}:page")
            else:
                self.alerts.trigger(ctx.name, check_class, **page)
        except GoldwatchError as exc:  # a page that cannot be rendered must not stop the decision
            self.record(ctx.name, None, "alert-error", f"the page could not be queued: {exc}")
        self.deliver.set()

    async def resolve(self, ctx: ModelContext, d: Decision, *, at: float) -> None:
        assert d.check_class is not None
        incidents = dict(ctx.view.incidents)
        incidents.pop(d.check_class, None)
        ctx.view = dataclasses.replace(ctx.view, incidents=incidents)
        row = self.journal.open_incident_for(ctx.name, d.check_class)
        if row is None:
            return
        done = self.journal.resolve_incident(row.id, at=at)
        if done.ttd_s is not None:
            self.metrics.ttd.observe(max(0.0, done.ttd_s))
        if done.ttr_s is not None:
            self.metrics.ttr.observe(max(0.0, done.ttr_s))
        text = f"{ctx.name}: {d.check_class} checks pass again ({d.reason})" + _times(done)
        self.record(ctx.name, done.kind, "resolve", text, detail=done.to_dict())
        try:
            if self.alerts.passing(ctx.name, d.check_class):
                # alerts.resolve_after_s: the page stays open until the checks have passed that long (a flapping
                # check keeps one incident); the tick sends the resolve then (send_resolves_due)
                self.record(ctx.name, done.kind, "hold", f"the resolve waits until {d.check_class} has passed for "
                            f"{self.alerts.resolve_after_s:g} s (alerts.resolve_after_s)")
                return
        except GoldwatchError as exc:
            self.record(ctx.name, None, "alert-error", f"the resolve could not be held: {exc}")
        await self.send_resolve(ctx, d.check_class, summary=text)

    async def send_resolve(self, ctx: ModelContext, check_class: str, *, summary: str) -> None:
        """The page's resolve: through the fleet's book on a shared registry (sent by the last pod that recovers)."""
        try:
            if self.fleet is not None and self.fleet.shared:
                await in_thread(self.fleet.resolve, self.alerts, ctx.name, check_class, summary=summary,
                                name=f"goldwatch:{ctx.name}:resolve")
            else:
                self.alerts.resolve(ctx.name, check_class, summary=summary)
        except GoldwatchError as exc:
            self.record(ctx.name, None, "alert-error", f"the resolve could not be queued: {exc}")
        self.deliver.set()

    async def send_resolves_due(self, models: Mapping[str, ModelContext]) -> None:
        """Resolves held for ``alerts.resolve_after_s`` whose checks have passed that long: send them now."""
        for incident in self.alerts.resolves_due():
            ctx = models.get(incident.model)
            if ctx is None or incident.check_class in ctx.view.incidents:
                continue  # not watched here, or failing again (its next page keeps the incident open)
            await self.send_resolve(ctx, incident.check_class, summary=(
                f"{ctx.name}: {incident.check_class} checks have passed for {self.alerts.resolve_after_s:g} s "
                "(alerts.resolve_after_s)"))

    async def act(self, ctx: ModelContext, d: Decision, ev: Evidence) -> None:
        action = d.action
        kind = self.kinds.get(ev.kind)
        cls = kind.check_class
        ctx.view = dataclasses.replace(ctx.view, acting=True)
        started = self.clock()
        incident = self.journal.open_incident_for(ctx.name, cls)
        result: RollbackResult | None = None
        try:
            if action == "rollback":
                taken, result = await self._rollback(ctx, reason=f"{ev.kind} failed: {ev.summary()}", automatic=True,
                                                     incident_id=incident.id if incident else None,
                                                     evidence={"kind": ev.kind,
                                                               "failed": [check_to_dict(c) for c in ev.failed][:20]})
            else:
                taken = await self.reload(ctx)
        finally:
            finished = self.clock()
            view = ctx.view
            incidents = dict(view.incidents)
            if cls in incidents:
                incidents[cls] = dataclasses.replace(incidents[cls], acted_at=started,
                                                     action="rollback" if action == "rollback" else "reload")
            ctx.view = dataclasses.replace(
                view, acting=False, last_action_at=finished, incidents=incidents,
                rollbacks=view.rollbacks + ((started,) if action == "rollback" else ()))
        if result is not None and result.no_target and d.alternates and not ctx.view.degraded:
            # nothing verified to roll back to: degrade to the verified fallback, and say that there is none
            skipped = "; ".join(f"{s.version}: {s.reason}" for s in result.skipped[:3])
            why = (f"no verified known-good version of {ctx.name} is left to roll back to"
                   + (f" ({skipped})" if skipped else ""))
            self.record(ctx.name, ev.kind, "no-known-good", why)
            await self.route(ctx, Decision("route", why, check_class=cls, severity=kind.severity,
                                           alternates=d.alternates), ev, headline=why)
            return
        if incident is not None:
            self.journal.mark_acted(incident.id, at=started, action={
                "kind": action, "from": taken.from_version, "to": taken.to_version, "summary": taken.description})
        await self.trigger(ctx, cls, checks=list(ev.checks), severity=kind.severity, action=taken,
                            timing=Timing(detected_at=ev.finished_at,
                                          started_at=incident.started_at if incident else None,
                                          recovered_at=finished if taken.kind != "none" else None,
                                          rto_s=ctx.rto_s),
                            details={"note": taken.description})
        # what is served now is checked at once, SHA-256 included: the incident resolves when it all passes (not
        # rollback readiness: it hashes the next target, competing with the checks that decide recovery)
        self.scheduler.run_now(ctx.name, [k for k in ctx.checks if k != "rollback_readiness"],
                               RunRequest(reason=f"after the {action}", full=True))

    async def rollback(self, ctx: ModelContext, *, reason: str, automatic: bool, incident_id: int | None,
                        evidence: Mapping[str, Any], reload: bool = True, actor: str | None = None) -> ActionTaken:
        taken, _result = await self._rollback(ctx, reason=reason, automatic=automatic, incident_id=incident_id,
                                              evidence=evidence, reload=reload, actor=actor)
        return taken

    async def _rollback(self, ctx: ModelContext, *, reason: str, automatic: bool, incident_id: int | None,
                        evidence: Mapping[str, Any], reload: bool = True,
                        actor: str | None = None) -> tuple[ActionTaken, RollbackResult | None]:
        from_version = ctx.view.served_version
        rb = self.journal.begin_rollback(model=ctx.name, incident_id=incident_id, automatic=automatic,
                                         at=self.clock(), from_version=from_version, reason=reason)
        try:
            result = await in_thread(ctx.target.rollback, reason=reason, actor=actor or default_actor(),
                                     evidence=dict(evidence), reload=reload, name=f"goldwatch:{ctx.name}:rollback")
        except GoldwatchError as exc:
            text = f"rollback of {ctx.name} failed: {exc}"
            self.journal.finish_rollback(rb, at=self.clock(), to_version=None, outcome="failed", detail={"error": text})
            self.metrics.rollbacks.labels(ctx.name, "failed").inc()
            self.record(ctx.name, None, "rollback-failed", text)
            return ActionTaken(kind="none", description=text, from_version=from_version), None
        outcome = "ok" if result.ok else ("switched" if result.switched else "failed")
        if not automatic:
            outcome = f"manual-{outcome}"
        self.journal.finish_rollback(rb, at=self.clock(), to_version=result.to_version, outcome=outcome,
                                     detail={"summary": result.summary(), "phases": result.phases,
                                             "skipped": [dataclasses.asdict(s) for s in result.skipped],
                                             "error": result.error, "warnings": result.warnings})
        self.metrics.rollbacks.labels(ctx.name, outcome).inc()
        if result.switched:
            ctx.view = dataclasses.replace(ctx.view, served_version=result.to_version)
        self.record(ctx.name, None, "rolled-back" if result.switched else "rollback-failed", result.summary(),
                     detail={"phases": result.phases, "from": result.from_version, "to": result.to_version,
                             "ok": result.ok, "error": result.error})
        if not result.switched:
            return ActionTaken(kind="none", description=f"rollback FAILED: {result.error}",
                               from_version=from_version), result
        return ActionTaken(kind="fallback" if result.fallback else "rollback",
                           description=result.summary().removesuffix(f" in {result.total_s:.3g} s"),
                           from_version=result.from_version, to_version=result.to_version), result

    # ---- routes (disaster recovery) ---------------------------------------------------------------------------
    async def route(self, ctx: ModelContext, d: Decision, ev: Evidence | None, *, headline: str | None = None,
                    actor: str | None = None) -> RouteOutcome:
        """Carry out a ``route`` decision: to the first of ``d.alternates`` that verifies, or back to the primary.

        ``headline`` leads the page (a rollback that found nothing to roll back to says so); ``actor`` is a person
        (the API): no incident is acted on then, and a route back resolves nothing by itself."""
        if d.route == PRIMARY:
            return await self._route_back(ctx, d, actor=actor)
        return await self._route_away(ctx, d, ev, headline=headline, actor=actor)

    async def _route_away(self, ctx: ModelContext, d: Decision, ev: Evidence | None, *, headline: str | None,
                          actor: str | None) -> RouteOutcome:
        cls = d.check_class
        ctx.view = dataclasses.replace(ctx.view, acting=True)
        started = self.clock()
        incident = self.journal.open_incident_for(ctx.name, cls) if cls else None
        proofs: list[AlternateProof] = []
        chosen: AlternateProof | None = None
        try:
            if ctx.router is None or self.verify_alternate is None:
                proofs.append(AlternateProof("none", "", None, "no route hook is configured ([serve.watch.route])"))
            else:
                for alternate in d.alternates:
                    proof = await in_thread(self.verify_alternate, ctx, alternate,
                                            name=f"goldwatch:{ctx.name}:verify-{alternate}")
                    self.metrics.alternate_ready.labels(ctx.name, alternate).set(1 if proof.ok else 0)
                    self.record(ctx.name, "standby", "verified" if proof.ok else "not-verified", proof.summary,
                                detail={"alternate": alternate, "url": proof.url, "ok": proof.ok,
                                        "golden": list(proof.golden), "duration_s": round(proof.duration_s, 6),
                                        "failed": [check_to_dict(c) for c in proof.checks if not c.ok][:10]})
                    if not proof.ok:
                        proofs.append(proof)
                        continue
                    try:
                        await in_thread(ctx.router.route, model=ctx.name, route=alternate, url=proof.url,
                                        reason=d.reason, name=f"goldwatch:{ctx.name}:route")
                    except GoldwatchError as exc:
                        proofs.append(dataclasses.replace(proof, ok=None,
                                                          summary=f"{proof.summary}; the route hook failed: {exc}"))
                        continue
                    chosen = proof
                    proofs.append(proof)
                    break
        finally:
            finished = self.clock()
            view = ctx.view
            incidents = dict(view.incidents)
            if chosen is not None:
                previous = view.route
                view = dataclasses.replace(view, route=chosen.alternate, routed_at=finished, primary_ok_since=None)
                if cls in incidents:
                    incidents[cls] = dataclasses.replace(incidents[cls], acted_at=started, action="route")
                self.metrics.set_route(ctx.name, chosen.alternate, previous=previous)
                ctx.degraded_counted_at = finished
            ctx.view = dataclasses.replace(view, acting=False, last_action_at=finished, incidents=incidents)
        lead = f"{headline}; " if headline else ""
        if chosen is None:
            text = lead + "traffic cannot move: " + "; ".join(p.summary for p in proofs)
            self.record(ctx.name, ev.kind if ev else None, "route-failed", text,
                        detail={"alternates": list(d.alternates), "incident": incident.id if incident else None})
            if cls is not None and ev is not None:
                await self.trigger(ctx, cls, checks=list(ev.checks), severity=d.severity or "error",
                                   summary=f"{ctx.name}: {text}"[:1000], details={"note": text})
            return RouteOutcome(False, ctx.view.route, None, text, tuple(proofs), finished - started)
        label = _LABEL.get(chosen.alternate, chosen.alternate)
        took = finished - started
        rejected = [p for p in proofs if p is not chosen]
        text = (f"{lead}routed {ctx.name}'s traffic to the {label} {chosen.url} in {took:.2f} s "
                f"({chosen.summary})" + "".join(f"; not to the {_LABEL.get(p.alternate, p.alternate)}: {p.summary}"
                                                for p in rejected))
        detail = {"route": chosen.alternate, "from": PRIMARY, "url": chosen.url, "routed_at": finished,
                  "duration_s": round(took, 6), "verify_s": round(chosen.duration_s, 6),
                  "incident": incident.id if incident else None, "actor": actor, "headline": headline,
                  "rejected": [{"alternate": p.alternate, "summary": p.summary} for p in rejected]}
        self.journal.put_checkpoint(ROUTE_NAMESPACE, ctx.name, {"route": chosen.alternate, "url": chosen.url,
                                                               "since": finished, "reason": d.reason})
        self.record(ctx.name, ev.kind if ev else None, "routed", text, detail=detail)
        if incident is not None and cls is not None:
            self.journal.mark_acted(incident.id, at=started, action={
                "kind": "route", "route": chosen.alternate, "url": chosen.url, "summary": text,
                "routed_at": finished, "headline": headline})
            rto = getattr(getattr(ctx.watch, chosen.alternate, None), "rto_seconds", None) or ctx.rto_s
            await self.trigger(ctx, cls, checks=list(ev.checks) if ev else [], severity=d.severity or "error",
                               action=ActionTaken(kind="fallback", description=f"{lead}routed traffic to the {label} "
                                                  f"(verified by its golden sets)", to_version=chosen.alternate),
                               timing=Timing(detected_at=ev.finished_at if ev else started,
                                             started_at=incident.started_at, recovered_at=finished, rto_s=rto),
                               details={"note": text, "route": chosen.alternate, "url": chosen.url})
        return RouteOutcome(True, chosen.alternate, chosen.url, text, tuple(proofs), took)

    async def _route_back(self, ctx: ModelContext, d: Decision, *, actor: str | None) -> RouteOutcome:
        view = ctx.view
        if not view.degraded:
            return RouteOutcome(False, PRIMARY, ctx.watch.url, "traffic is already on the primary")
        was, since = view.route, view.routed_at
        ctx.view = dataclasses.replace(view, acting=True)
        started = self.clock()
        error: GoldwatchError | None = None
        try:
            if ctx.router is None:
                raise StateError("no route hook is configured ([serve.watch.route])")
            await in_thread(ctx.router.route, model=ctx.name, route=PRIMARY, url=ctx.watch.url, reason=d.reason,
                            name=f"goldwatch:{ctx.name}:route")
        except GoldwatchError as exc:
            error = exc
        finally:
            finished = self.clock()
            view = ctx.view
            if error is None:
                self.count_degraded(ctx, finished)
                view = dataclasses.replace(view, route=PRIMARY, routed_at=finished, primary_ok_since=None)
                self.metrics.set_route(ctx.name, PRIMARY, previous=was)
                ctx.degraded_counted_at = None
            ctx.view = dataclasses.replace(view, acting=False, last_action_at=finished)
        if error is not None:
            text = f"traffic stays on the {_LABEL.get(was, was)}: the route back to the primary failed: {error}"
            self.record(ctx.name, None, "route-failed", text, detail={"route": PRIMARY, "from": was})
            return RouteOutcome(False, was, None, text, duration_s=finished - started)
        degraded_s = finished - (since or finished)
        text = (f"routed {ctx.name}'s traffic back to the primary {ctx.watch.url} after {degraded_s:.1f} s on the "
                f"{_LABEL.get(was, was)} ({d.reason})")
        self.journal.put_checkpoint(ROUTE_NAMESPACE, ctx.name, {"route": PRIMARY, "url": ctx.watch.url,
                                                               "since": finished, "reason": d.reason})
        self.record(ctx.name, None, "routed-back", text,
                    detail={"route": PRIMARY, "from": was, "degraded_s": round(degraded_s, 6), "routed_at": finished,
                            "duration_s": round(finished - started, 6), "actor": actor})
        for cls, incident in sorted(ctx.view.incidents.items()):
            if incident.action == "route":
                await self.resolve(ctx, Decision("resolve", f"traffic is back on the primary after {degraded_s:.1f} s "
                                                 f"on the {_LABEL.get(was, was)}", check_class=cls), at=finished)
        return RouteOutcome(True, PRIMARY, ctx.watch.url, text, duration_s=finished - started)

    def count_degraded(self, ctx: ModelContext, now: float) -> None:
        """Add the time on an alternate since it was last counted to ``goldwatch_degraded_seconds_total``."""
        if ctx.view.degraded and ctx.degraded_counted_at is not None and now > ctx.degraded_counted_at:
            self.metrics.degraded_seconds.labels(ctx.name).inc(now - ctx.degraded_counted_at)
            ctx.degraded_counted_at = now

    async def reload(self, ctx: ModelContext) -> ActionTaken:
        t0 = self.clock()
        try:
            await in_thread(ctx.target.reload, name=f"goldwatch:{ctx.name}:reload")
        except GoldwatchError as exc:
            text = f"the server did not reload {ctx.name}: {exc}"
            self.record(ctx.name, "version", "reload-failed", text)
            return ActionTaken(kind="none", description=text)
        text = f"told the server to reload {ctx.name} {ctx.view.served_version} ({self.clock() - t0:.2f} s)"
        self.record(ctx.name, "version", "reloaded", text)
        return ActionTaken(kind="none", description=text, to_version=ctx.view.served_version)


def default_actor() -> str:
    return f"goldwatch-sidecar@{socket.gethostname()}"


def _times(row: IncidentRow) -> str:
    parts = []
    if row.ttd_s is not None:
        parts.append(f"TTD {row.ttd_s:.1f} s (since the last passing check)")
    if row.ttr_s is not None:
        parts.append(f"TTR {row.ttr_s:.1f} s")
    if row.within_rto is not None and row.rto_s is not None:
        parts.append(f"RTO {row.rto_s:g} s {'met' if row.within_rto else 'MISSED'}")
    return f"; {', '.join(parts)}" if parts else ""
