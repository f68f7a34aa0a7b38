"""The sidecar service: composes the targets, checks, scheduler, policy, journal, alerts and metrics.

Everything that changes the service's state runs on its event loop; blocking work (checks, rollbacks, reloads,
alert delivery) runs in daemon worker threads the loop awaits. Per model, evidence is considered one piece at a
time (an asyncio lock), and every decision is journaled before it is carried out. See the package docstring
(:mod:`goldwatch.watchdog.sidecar`) for the whole picture and the extension points.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from goldwatch._version import __version__
from goldwatch.checks import Check
from goldwatch.config import GoldwatchConfig, ServeCheckConfig, ServeWatchConfig, resolve_secret
from goldwatch.errors import ConfigError, GoldwatchError, InvalidInputError, StateError
from goldwatch.logs import get_logger, redact
from goldwatch.serialize import to_jsonable
from goldwatch.watchdog.alerts import ActionTaken, AlertManager, Sink, Timing
from goldwatch.watchdog.sidecar.checks import (
    FilesCheck,
    GoldenCheck,
    GoldenSetCache,
    ReadinessCheck,
    RollbackReadinessCheck,
    RunRequest,
    RunResult,
    ScheduledCheck,
    VersionCheck,
    rollback_ready,
)
from goldwatch.watchdog.sidecar.evidence import (
    SCHEDULER_SOURCE,
    Evidence,
    EvidenceKind,
    EvidenceKinds,
    ExternalReport,
    parse_report,
)
from goldwatch.watchdog.sidecar.extensions import SidecarExtension, load_extension
from goldwatch.watchdog.sidecar.journal import IncidentRow, Journal, check_to_dict
from goldwatch.watchdog.sidecar.metrics import SidecarMetrics
from goldwatch.watchdog.sidecar.policy import (
    FLAP_GUARD_CLASS,
    HOUR_S,
    Decision,
    IncidentView,
    KindState,
    ModelView,
    Rules,
    SourceState,
    decide,
    resolutions,
    staleness,
)
from goldwatch.watchdog.sidecar.scheduler import Job, JobRun, JobSpec, Scheduler, in_thread
from goldwatch.watchdog.sidecar.targets import Target, open_target

__all__ = ["DEFAULT_PAUSE_S", "ModelContext", "SidecarService", "UnknownModelError"]

log = get_logger(__name__)

DEFAULT_PAUSE_S = 3600.0
MAX_PAUSE_S = 7 * 86400.0
TICK_S = 1.0
JOURNAL_RETENTION_S = 30 * 86400.0


class UnknownModelError(InvalidInputError):
    """The API named a model this sidecar does not watch (HTTP 404)."""


class ConflictError(InvalidInputError):
    """The request cannot be carried out in the model's current state (HTTP 409)."""


@dataclasses.dataclass
class ModelContext:
    """One watched model: its target, its checks and their schedules, and the policy's view of it."""

    name: str
    watch: ServeWatchConfig
    target: Target
    checks: dict[str, ScheduledCheck]
    schedules: dict[str, ServeCheckConfig]
    view: ModelView
    rto_s: float
    latest: dict[str, Evidence] = dataclasses.field(default_factory=dict)
    notes: dict[str, str] = dataclasses.field(default_factory=dict)
    lock: asyncio.Lock | None = None
    action: asyncio.Task[Any] | None = None
    rollback_ready: bool | None = None
    startup: str | None = None


def _actor() -> str:
    return f"goldwatch-sidecar@{socket.gethostname()}"


class SidecarService:
    """The sidecar. Construct it (validates everything; opens registries, journal and outbox), then ``await
    start()`` on an event loop, and ``await stop()`` to end. :mod:`.runner` does this under uvicorn with signals.

    ``sinks`` replace the alert sinks the config would build (tests); ``extensions`` are set up before start, after
    those named in ``serve.extensions``; ``verify_first`` makes start-up verify every model's served files with
    SHA-256 (rolling back a corrupted one without a reload: the server is not running yet) before anything else,
    which ``/startupz`` reports.
    """

    def __init__(
        self,
        config: GoldwatchConfig,
        *,
        sinks: Sequence[Sink] | None = None,
        extensions: Sequence[SidecarExtension] = (),
        verify_first: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        self.verify_first = verify_first
        self.kinds = EvidenceKinds.builtin()
        self.metrics = SidecarMetrics(version=__version__)
        self.extra_routes: list[Any] = []
        self._start_hooks: list[Callable[[], Awaitable[None]]] = []
        self._stop_hooks: list[Callable[[], Awaitable[None]]] = []
        self._golden_cache = GoldenSetCache()
        self.started_at: float | None = None
        self.startup_done = not verify_first
        self.startup_problem: str | None = None
        self.stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._deliver = asyncio.Event()
        problems: list[str] = []
        serve = config.serve
        if not serve.watch:
            problems.append("serve.watch: no [[serve.watch]] table, so there is nothing to watch "
                            "(add one per model: name, url, and registry_model or served_path + manifest)")
        try:
            self.token = resolve_secret(env=serve.token_env, file=serve.token_file, what="API token")
        except ConfigError as exc:
            problems.append(str(exc))
            self.token = None
        redact(self.token)
        targets: list[tuple[ServeWatchConfig, Target]] = []
        for i, watch in enumerate(serve.watch):
            where = f"serve.watch[{i}] ({watch.name})"
            try:
                targets.append((watch, open_target(watch, config.registry)))
            except GoldwatchError as exc:
                problems.append(f"{where}: {exc}")
                continue
            problems += self._static_problems(watch, where)
        loaded: list[SidecarExtension] = []
        for spec in serve.extensions:
            try:
                loaded.append(load_extension(spec))
            except GoldwatchError as exc:
                problems.append(str(exc))
        if problems:
            for _watch, target in targets:
                target.close()
            raise ConfigError(f"{len(problems)} problem(s) before the sidecar could start: " + "; ".join(problems),
                              where="goldwatch.toml [serve]", hint="fix them all, then start again; nothing ran")
        journal_path = serve.journal or Path(config.registry.root) / "sidecar.sqlite"
        try:
            self.journal = Journal.open(journal_path)
            self.alerts = AlertManager.from_config(config.alerts, default_dir=config.registry.root, sinks=sinks)
        except GoldwatchError:
            for _watch, target in targets:
                target.close()
            raise
        if not self.alerts.sinks:
            log.warning("no alert sink is configured: incidents are journaled and shown, but nobody is paged "
                        "(set %s)", config.alerts.pagerduty.routing_key_env)
        self.models: dict[str, ModelContext] = {}
        for watch, target in targets:
            self.models[watch.name] = self._context(watch, target)
        self.scheduler = Scheduler(handler=self._on_run, jitter=serve.jitter, blocked=self._blocked,
                                   on_skip=lambda job, why: self.metrics.skipped.labels(job.spec.model,
                                                                                       job.spec.kind).inc())
        for ext in [*loaded, *extensions]:
            ext.setup(self)

    # ---- construction -------------------------------------------------------------------------------------
    def _static_problems(self, watch: ServeWatchConfig, where: str) -> list[str]:
        problems = []
        if watch.served_path is not None and not Path(watch.served_path).exists():
            problems.append(f"{where}.served_path: {watch.served_path} does not exist")
        if watch.manifest is not None:
            from goldwatch.integrity import ArtifactManifest

            try:
                ArtifactManifest.load(watch.manifest)
            except GoldwatchError as exc:
                problems.append(f"{where}.manifest: {exc}")
        for path in watch.golden:
            try:
                self._golden_cache.load(Path(path))
            except GoldwatchError as exc:
                problems.append(f"{where}.golden: {exc}")
        return problems

    def _context(self, watch: ServeWatchConfig, target: Target) -> ModelContext:
        golden = self.config.golden
        checks: dict[str, ScheduledCheck] = {}
        schedules: dict[str, ServeCheckConfig] = {}
        plan: list[tuple[str, ServeCheckConfig, Callable[[], ScheduledCheck]]] = [
            ("files", watch.files, lambda: FilesCheck(watch.files, checkpoints=self.journal, model=watch.name,
                                                       clock=self.clock)),
            ("golden", watch.golden_replay, lambda: GoldenCheck(watch.golden_replay, golden, cache=self._golden_cache)),
            ("readiness", watch.readiness, lambda: ReadinessCheck(timeout_s=watch.readiness.timeout_s)),
            ("version", watch.version, lambda: VersionCheck(timeout_s=watch.version.timeout_s)),
            ("rollback_readiness", watch.rollback_readiness, RollbackReadinessCheck),
        ]
        for kind, schedule, make in plan:
            if schedule.enabled:
                checks[kind] = make()
                schedules[kind] = schedule
        rules = Rules(
            mode=watch.mode, can_rollback=target.can_rollback, can_reload=target.can_reload,
            max_rollbacks_per_hour=watch.max_rollbacks_per_hour, server_down_grace_s=watch.server_down_grace_s,
            server_start_grace_s=watch.server_start_grace_s, stale_factor=watch.resident_stale_factor,
            confirm=frozenset({"golden"}) if watch.golden_replay.confirm else frozenset(),
            proof_kinds=tuple(k for k in ("files", "golden") if k in checks),
        )
        rto = watch.rto_seconds or self.config.alerts.rto_seconds
        return ModelContext(watch.name, watch, target, checks, schedules, ModelView(model=watch.name, rules=rules),
                            rto)

    # ---- extension points ---------------------------------------------------------------------------------
    def register_kind(self, kind: EvidenceKind, *, replace: bool = False) -> None:
        """Add a kind of evidence and its policy row (see :class:`~.evidence.EvidenceKind`)."""
        self.kinds.register(kind, replace=replace)

    def add_check(self, model: str, check: ScheduledCheck, *, interval_s: float, timeout_s: float) -> None:
        """Schedule ``check`` (its ``kind`` must be registered) for ``model``."""
        ctx = self.model(model)
        if check.kind not in self.kinds:
            raise InvalidInputError(f"register evidence kind {check.kind!r} before scheduling a check of it")
        ctx.checks[check.kind] = check
        ctx.schedules[check.kind] = ServeCheckConfig(interval_s=interval_s, timeout_s=timeout_s)
        if self.started_at is not None:
            self._schedule(ctx, check.kind)

    def add_routes(self, routes: Sequence[Any]) -> None:
        """Mount more starlette routes on the sidecar's HTTP app (before it starts)."""
        self.extra_routes.extend(routes)

    def on_start(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._start_hooks.append(hook)

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._stop_hooks.append(hook)

    def authorize(self, header: str | None) -> tuple[int, str] | None:
        """None when ``header`` (an Authorization header) carries the API token, else (HTTP status, why).

        No token configured: 403 (state-changing endpoints are off). Missing or wrong: 401. The comparison takes
        the same time whatever the token (``hmac.compare_digest``).
        """
        import hmac

        if not self.token:
            env = self.config.serve.token_env
            return 403, (f"state-changing endpoints are disabled: no API token is configured (set ${env} or "
                         "serve.token_file)")
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return 401, "missing bearer token (send Authorization: Bearer <token>)"
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return 401, "wrong bearer token"
        return None

    # ---- lifecycle ----------------------------------------------------------------------------------------
    def model(self, name: str) -> ModelContext:
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModelError(f"this sidecar does not watch {name!r} (it watches "
                                    f"{', '.join(sorted(self.models))})", where="model") from None

    async def start(self) -> None:
        """Restore state from the journal, finish interrupted rollbacks, verify first if asked, and start checking."""
        self._loop = asyncio.get_running_loop()
        self.started_at = self.clock()
        self._deliver = asyncio.Event()
        for ctx in self.models.values():
            ctx.lock = asyncio.Lock()
            await self._restore(ctx)
        for ctx in self.models.values():
            await self._finish_interrupted(ctx)
        await self._reassert_incidents()
        with contextlib.suppress(sqlite3.Error):
            self.journal.prune(older_than_s=JOURNAL_RETENTION_S, now=self.clock())
        self._tasks = [asyncio.create_task(self._deliver_alerts()), asyncio.create_task(self._tick())]
        if any("golden" in ctx.checks for ctx in self.models.values()):
            # a golden replay that fails runs the output-distribution test, whose first use imports scipy (~2 s
            # on a busy machine): pay that now, in the background, not on the way to a rollback
            self._tasks.append(asyncio.create_task(_warm("goldwatch.detectors")))
        if self.verify_first:
            await self._verify_first()
        for ctx in self.models.values():
            for kind in ctx.checks:
                self._schedule(ctx, kind)
        self.scheduler.start()
        for hook in self._start_hooks:
            await hook()
        self._record(None, None, "start", f"watching {', '.join(self.models)}", detail={"version": __version__})

    def _schedule(self, ctx: ModelContext, kind: str) -> None:
        schedule = ctx.schedules[kind]
        check = ctx.checks[kind]
        target = ctx.target

        def run(request: RunRequest | None) -> RunResult:
            return check.run(target, request or RunRequest())

        self.scheduler.add(JobSpec(ctx.name, kind, schedule.interval_s, schedule.timeout_s), run)

    async def stop(self, *, timeout_s: float | None = None) -> None:
        """Stop scheduling; let an action in progress finish (up to ``timeout_s``), deliver what it can, close."""
        if self.stopping:
            return
        self.stopping = True
        timeout_s = self.config.serve.shutdown_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        await self.scheduler.stop()
        for hook in self._stop_hooks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(hook(), max(0.1, deadline - time.monotonic()))
        pending = [ctx.action for ctx in self.models.values() if ctx.action is not None and not ctx.action.done()]
        if pending:
            log.info("waiting up to %.1f s for %d action(s) in progress", deadline - time.monotonic(), len(pending))
            _done, still = await asyncio.wait(pending, timeout=max(0.0, deadline - time.monotonic() - 1.0))
            if still:
                log.warning("shutting down with %d action(s) unfinished: the registry's intent journal and this "
                            "sidecar's journal finish them at the next start", len(still))
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(in_thread(self.alerts.flush, timeout_s=0.0),
                                   max(0.2, min(1.0, deadline - time.monotonic())))
        if not pending or all(t.done() for t in pending):
            for ctx in self.models.values():
                with contextlib.suppress(Exception):
                    ctx.target.close()
                for check in ctx.checks.values():
                    closer = getattr(check, "close", None)
                    if callable(closer):
                        with contextlib.suppress(Exception):
                            closer()
        with contextlib.suppress(Exception):
            self._record(None, None, "stop", "shutting down")
        with contextlib.suppress(Exception):
            self.alerts.close()
        with contextlib.suppress(Exception):
            self.journal.close()

    @property
    def ready(self) -> bool:
        """Config loaded (we exist), start-up verification passed, and every scheduled check has run once."""
        if self.started_at is None or not self.startup_done or self.startup_problem is not None:
            return False
        return all(job.last_run is not None for job in self.scheduler.jobs.values())

    def readiness(self) -> tuple[bool, list[str]]:
        """(ready, the reasons it is not) for ``/readyz``."""
        reasons = []
        if self.started_at is None:
            reasons.append("not started")
        if not self.startup_done:
            reasons.append("start-up verification of the served files is not done")
        if self.startup_problem:
            reasons.append(self.startup_problem)
        waiting = [f"{m}/{k}" for (m, k), job in self.scheduler.jobs.items() if job.last_run is None]
        if waiting:
            reasons.append(f"first round of checks not done: {', '.join(waiting[:10])}"
                           + (f" (+{len(waiting) - 10} more)" if len(waiting) > 10 else ""))
        if not self.journal.writable():
            reasons.append(f"the journal {self.journal.path} is not writable")
        return not reasons, reasons

    # ---- restoring state ----------------------------------------------------------------------------------
    async def _restore(self, ctx: ModelContext) -> None:
        now = self.clock()
        kinds = {r.kind: KindState(r.status, r.last_run_at, r.last_pass_at, r.failing_since, r.consecutive)  # type: ignore[arg-type]
                 for r in self.journal.check_states(ctx.name)}
        incidents = {}
        for row in self.journal.incidents(state="open", model=ctx.name):
            action = (row.action or {}).get("kind")
            incidents[row.check_class] = IncidentView(row.check_class, row.kind, row.detected_at, row.acted_at,
                                                      action if action in ("rollback", "reload") else None)
        rollbacks = tuple(r.started_at for r in self.journal.rollbacks(model=ctx.name, since=now - HOUR_S)
                          if r.automatic)
        state = self.journal.model_state(ctx.name)
        sources = {s.source: SourceState(s.source, s.kind, s.interval_s, s.first_seen, s.last_seen, s.status)  # type: ignore[arg-type]
                   for s in self.journal.sources(ctx.name)}
        try:
            served = (await in_thread(ctx.target.served)).version
        except GoldwatchError as exc:
            log.warning("%s: cannot read what is served: %s", ctx.name, exc)
            served = None
        ctx.view = dataclasses.replace(
            ctx.view, served_version=served, started_at=now, kinds=kinds, incidents=incidents, rollbacks=rollbacks,
            paused_until=state.paused_until if state.paused_until and state.paused_until > now else None,
            stopped=state.stopped_at is not None, sources=sources,
        )
        self._refresh_metrics(ctx)

    async def _finish_interrupted(self, ctx: ModelContext) -> None:
        """A rollback the journal started and never finished: the process died during it. Opening the registry
        completed or reverted the pointer switch (its intent journal); say which, reload the server if the switch
        stands, and update the incident -- its first page was queued before the rollback began."""
        for row in self.journal.rollbacks(model=ctx.name, unfinished=True):
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
            now = self.clock()
            self.journal.finish_rollback(row.id, at=now, to_version=served if completed else None, outcome=outcome,
                                         detail={"summary": text, "registry_recovery": recovered})
            self._record(ctx.name, None, "rollback-recovered", text, detail={"rollback": row.id})
            self.metrics.rollbacks.labels(ctx.name, "interrupted").inc()
            incident = self.journal.incident(row.incident_id) if row.incident_id else None
            if incident is not None and incident.state == "open":
                if completed:
                    self.journal.mark_acted(incident.id, at=row.started_at,
                                            action={"kind": "rollback", "from": row.from_version, "to": served,
                                                    "summary": text})
                    ctx.view = dataclasses.replace(ctx.view, incidents={
                        **ctx.view.incidents,
                        incident.check_class: IncidentView(incident.check_class, incident.kind, incident.detected_at,
                                                           row.started_at, "rollback")})
                action = ActionTaken(kind="rollback" if completed else "none", description=text,
                                     from_version=row.from_version, to_version=served if completed else None)
                await self._trigger(ctx, incident.check_class, checks=list(incident.checks),
                                    severity=incident.severity, action=action,
                                    timing=Timing(detected_at=incident.detected_at, started_at=incident.started_at,
                                                  rto_s=incident.rto_s),
                                    details={"note": text})
            if completed:
                ctx.view = dataclasses.replace(ctx.view, last_action_at=now)

    async def _reassert_incidents(self) -> None:
        """Open incidents survive a restart: re-trigger each through the alert manager, whose incident book
        sends nothing for one it already knows unchanged (and re-sends one a crash left unsent)."""
        for row in self.journal.incidents(state="open"):
            ctx = self.models.get(row.model)
            if ctx is None:
                continue
            action = None
            if row.action:
                action = ActionTaken(kind="rollback" if row.action.get("kind") == "rollback" else "none",
                                     description=str(row.action.get("summary") or row.action.get("kind")),
                                     from_version=row.action.get("from"), to_version=row.action.get("to"))
            await self._trigger(ctx, row.check_class, checks=list(row.checks), severity=row.severity,
                                action=action, summary=None if row.checks else row.summary)

    # ---- runs and evidence --------------------------------------------------------------------------------
    def _blocked(self, model: str) -> bool:
        ctx = self.models.get(model)
        return ctx is not None and ctx.view.acting

    def _evidence(self, run: JobRun, *, confirmed: bool = False) -> Evidence:
        if run.timed_out or run.error is not None:
            what = str(run.error) if isinstance(run.error, GoldwatchError) or run.timed_out else \
                f"{type(run.error).__name__}: {run.error}"
            checks: tuple[Check, ...] = (Check(name=f"{self.kinds.get(run.kind).check_class}:run", status="error",
                                               summary=f"the {run.kind} check could not run: {what}"),)
            version = None
        else:
            result = run.value
            assert isinstance(result, RunResult), f"a {run.kind} check must return a RunResult"
            checks, version = result.checks, result.version
        return Evidence(model=run.model, kind=run.kind, checks=checks, started_at=run.started_at,
                        finished_at=run.finished_at, version=version, confirmed=confirmed)

    async def _on_run(self, job: Job, run: JobRun) -> None:
        if self.stopping:
            return
        if run.request is None:
            self.metrics.observe_lateness(run.kind, run.lateness_s)
        await self.consider(self._evidence(run), job=job)

    async def consider(self, ev: Evidence, *, job: Job | None = None) -> list[Decision]:
        """Decide about ``ev`` and carry the decisions out (one piece of evidence per model at a time)."""
        ctx = self.model(ev.model)
        assert ctx.lock is not None, "start() the service first"
        async with ctx.lock:
            return await self._consider(ctx, ev, job)

    async def _consider(self, ctx: ModelContext, ev: Evidence, job: Job | None) -> list[Decision]:
        kind = self.kinds.get(ev.kind)
        self.metrics.observe_run(ctx.name, ev.kind, ev.status, duration_s=ev.duration_s, finished_at=ev.finished_at)
        self._adopt_served_version(ctx, ev)
        before = ctx.view
        outcome = decide(ctx.view, ev, kind, now=self.clock(), kinds=self.kinds)
        ctx.view = outcome.view
        ignored = any(d.action == "ignore" for d in outcome.decisions)
        if not ignored:
            previous = ctx.latest.get(ev.kind)
            ctx.latest[ev.kind] = ev
            self._save_state(ctx, ev)
            after_action = (previous is not None and ctx.view.last_action_at is not None
                            and previous.started_at < ctx.view.last_action_at <= ev.started_at)
            if previous is None or previous.status != ev.status or after_action:
                self._record(ctx.name, ev.kind, "observe", f"{ev.kind} {ev.status}: {ev.summary()}",
                             detail={"status": ev.status, "version": ev.version, "source": ev.source,
                                     "failed": [check_to_dict(c) for c in ev.failed][:20],
                                     "duration_s": round(ev.duration_s, 6)})
            if ev.kind == "rollback_readiness":
                ctx.rollback_ready = rollback_ready(ev.checks)
        elif kind.external:
            self._save_source(ctx, ev)
        decisions = outcome.decisions
        for decision in decisions:
            if decision.action == "confirm":
                self._record(ctx.name, ev.kind, "confirm", decision.reason)
                again = await self._rerun(ctx, ev, job)
                decisions = decisions + await self._consider(ctx, again, job)
                break
            await self._carry_out(ctx, decision, ev, before)
        self._refresh_metrics(ctx)
        return decisions

    async def _rerun(self, ctx: ModelContext, ev: Evidence, job: Job | None) -> Evidence:
        if job is None:  # external evidence cannot be re-run here: take it as confirmed
            return dataclasses.replace(ev, confirmed=True)
        version = self.scheduler.job(ctx.name, "version")
        if version is not None and ev.kind != "version" and (version.in_flight is None or version.in_flight.done()):
            # Answers that differ may mean the server runs another version than the registry serves: know that
            # before acting, so a server that missed a reload gets a reload, not its good version quarantined.
            await self._consider(ctx, self._evidence(await self.scheduler.execute(
                version, RunRequest(reason="before acting on a failure"))), version)
        run = await self.scheduler.execute(job, RunRequest(reason="confirm"))
        return self._evidence(run, confirmed=True)

    def _adopt_served_version(self, ctx: ModelContext, ev: Evidence) -> None:
        """A scheduled check read what the registry serves when it started: a promotion made elsewhere shows up
        here (not a run that started before this sidecar's own last action finished)."""
        view = ctx.view
        if ev.source != SCHEDULER_SOURCE or ev.version is None or view.acting or ev.version == view.served_version:
            return
        if view.last_action_at is not None and ev.started_at < view.last_action_at:
            return
        self._record(ctx.name, ev.kind, "served-version",
                     f"the registry serves {ev.version} now (was {view.served_version or 'nothing'})")
        ctx.view = dataclasses.replace(view, served_version=ev.version)

    def _save_state(self, ctx: ModelContext, ev: Evidence) -> None:
        state = ctx.view.kind(ev.kind)
        self.journal.save_check(model=ctx.name, kind=ev.kind, status=state.status, version=ev.version,
                                last_run_at=state.last_run_at, last_pass_at=state.last_pass_at,
                                failing_since=state.failing_since, consecutive=state.consecutive,
                                duration_s=ev.duration_s, checks=ev.checks)
        if self.kinds.get(ev.kind).external:
            self._save_source(ctx, ev)

    def _save_source(self, ctx: ModelContext, ev: Evidence) -> None:
        src = ctx.view.sources.get(ev.source)
        if src is not None:
            self.journal.save_source(model=ctx.name, source=src.source, kind=src.kind, interval_s=src.interval_s,
                                     first_seen=src.first_seen, last_seen=src.last_seen, status=src.status)

    async def submit_evidence(self, model: str, report: ExternalReport | Mapping[str, Any]) -> dict[str, Any]:
        """Evidence from another component (the in-process agent, the drift sink): validated, then decided on.

        ``report`` is an :class:`~.evidence.ExternalReport` or the JSON body of ``POST .../evidence``. Returns what
        was decided.
        """
        ctx = self.model(model)
        if not isinstance(report, ExternalReport):
            report = parse_report(report, kinds=self.kinds)
        ev = report.evidence(model, received_at=self.clock())
        self.metrics.evidence.labels(model, ev.kind, ev.status).inc()
        decisions = await self.consider(ev)
        return {"model": model, "kind": ev.kind, "status": ev.status, "version": ev.version,
                "served_version": ctx.view.served_version,
                "decisions": [{"action": d.action, "reason": d.reason, "check_class": d.check_class}
                              for d in decisions]}

    def submit_evidence_threadsafe(self, model: str, report: ExternalReport | Mapping[str, Any], *,
                                   timeout_s: float = 30.0) -> dict[str, Any]:
        """:meth:`submit_evidence` from any thread (e.g. an extension's worker); blocks until decided."""
        if self._loop is None:
            raise StateError("the sidecar service is not running", hint="call it after start()")
        fut = asyncio.run_coroutine_threadsafe(self.submit_evidence(model, report), self._loop)
        return fut.result(timeout_s)

    # ---- carrying decisions out ---------------------------------------------------------------------------
    def _record(self, model: str | None, kind: str | None, action: str, reason: str,
                detail: Mapping[str, Any] | None = None) -> None:
        self.journal.record(model=model or "*", kind=kind, action=action, reason=reason, at=self.clock(),
                            detail=detail)
        log.info("%s%s: %s: %s", model or "sidecar", f"/{kind}" if kind else "", action, reason)

    async def _carry_out(self, ctx: ModelContext, d: Decision, ev: Evidence, before: ModelView) -> None:
        if d.action in ("ignore", "hold"):
            if ctx.notes.get(ev.kind) != d.reason:  # journal a reason when it changes, not on every run
                ctx.notes[ev.kind] = d.reason
                self._record(ctx.name, ev.kind, d.action, d.reason)
            return
        ctx.notes.pop(ev.kind, None)
        if d.action == "page":
            await self._page(ctx, d, ev, before)
        elif d.action == "resolve":
            await self._resolve(ctx, d, at=ev.finished_at)
        elif d.action == "stop":
            self._record(ctx.name, ev.kind, "stop", d.reason)
            self.journal.set_stopped(ctx.name, at=self.clock(), reason=d.reason)
            ctx.view = dataclasses.replace(ctx.view, stopped=True)
        elif d.action == "forget" and d.source:
            self._record(ctx.name, None, "forget", d.reason)
            self.journal.forget_source(ctx.name, d.source)
        elif d.action in ("rollback", "reload"):
            self._record(ctx.name, ev.kind, d.action, f"starting: {d.reason}")
            task = asyncio.create_task(self._act(ctx, d.action, ev))
            ctx.action = task
            # shielded: a shutdown cancels the checks, never an action half-way; stop() waits for it
            await asyncio.shield(task)

    async def _page(self, ctx: ModelContext, d: Decision, ev: Evidence, before: ModelView) -> None:
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
        if existing is None:
            ctx.view = dataclasses.replace(ctx.view, incidents={
                **ctx.view.incidents, d.check_class: IncidentView(d.check_class, kind, ev.finished_at)})
        note_key = f"page:{d.check_class}"
        if existing is None or ctx.notes.get(note_key) != summary:  # a page per change, not per run
            ctx.notes[note_key] = summary
            self._record(ctx.name, ev.kind, "page", f"{d.severity}: {summary}",
                         detail={"incident": incident_id, "check_class": d.check_class, "new": existing is None})
        if kind == FLAP_GUARD_CLASS:
            await self._trigger(ctx, d.check_class, checks=[], severity=d.severity, summary=f"{ctx.name}: {d.reason}")
        else:
            await self._trigger(ctx, d.check_class, checks=list(ev.checks), severity=d.severity,
                                timing=Timing(detected_at=ev.finished_at, started_at=started, rto_s=ctx.rto_s),
                                details={"note": d.reason, "incident": incident_id, "source": ev.source})

    async def _trigger(self, ctx: ModelContext, check_class: str, *, checks: list[Check], severity: str,
                       action: ActionTaken | None = None, timing: Timing | None = None, summary: str | None = None,
                       details: Mapping[str, Any] | None = None) -> None:
        try:
            self.alerts.trigger(ctx.name, check_class, checks=checks, severity=severity,  # type: ignore[arg-type]
                                served_version=ctx.view.served_version, action=action, timing=timing,
                                summary=summary, details=details)
        except GoldwatchError as exc:  # a page that cannot be rendered must not stop the decision
            self._record(ctx.name, None, "alert-error", f"the page could not be queued: {exc}")
        self._deliver.set()

    async def _resolve(self, ctx: ModelContext, d: Decision, *, at: float) -> None:
        assert d.check_class is not None
        incidents = dict(ctx.view.incidents)
        incidents.pop(d.check_class, None)
        ctx.view = dataclasses.replace(ctx.view, incidents=incidents)
        row = self.journal.open_incident_for(ctx.name, d.check_class)
        if row is None:
            return
        done = self.journal.resolve_incident(row.id, at=at)
        if done.ttd_s is not None:
            self.metrics.ttd.labels(ctx.name).observe(max(0.0, done.ttd_s))
        if done.ttr_s is not None:
            self.metrics.ttr.labels(ctx.name).observe(max(0.0, done.ttr_s))
        text = f"{ctx.name}: {d.check_class} checks pass again ({d.reason})" + _times(done)
        self._record(ctx.name, done.kind, "resolve", text, detail=done.to_dict())
        try:
            self.alerts.resolve(ctx.name, d.check_class, summary=text)
        except GoldwatchError as exc:
            self._record(ctx.name, None, "alert-error", f"the resolve could not be queued: {exc}")
        self._deliver.set()

    async def _act(self, ctx: ModelContext, action: str, ev: Evidence) -> None:
        kind = self.kinds.get(ev.kind)
        cls = kind.check_class
        ctx.view = dataclasses.replace(ctx.view, acting=True)
        started = self.clock()
        incident = self.journal.open_incident_for(ctx.name, cls)
        try:
            if action == "rollback":
                taken = await self._rollback(ctx, reason=f"{ev.kind} failed: {ev.summary()}", automatic=True,
                                             incident_id=incident.id if incident else None,
                                             evidence={"kind": ev.kind,
                                                       "failed": [check_to_dict(c) for c in ev.failed][:20]})
            else:
                taken = await self._reload(ctx)
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
        if incident is not None:
            self.journal.mark_acted(incident.id, at=started, action={
                "kind": action, "from": taken.from_version, "to": taken.to_version, "summary": taken.description})
        await self._trigger(ctx, cls, checks=list(ev.checks), severity=kind.severity, action=taken,
                            timing=Timing(detected_at=ev.finished_at,
                                          started_at=incident.started_at if incident else None,
                                          recovered_at=finished if taken.kind != "none" else None,
                                          rto_s=ctx.rto_s),
                            details={"note": taken.description})
        # what is served now is checked at once, SHA-256 included: the incident resolves when it all passes
        self.scheduler.run_now(ctx.name, request=RunRequest(reason=f"after the {action}", full=True))

    async def _rollback(self, ctx: ModelContext, *, reason: str, automatic: bool, incident_id: int | None,
                        evidence: Mapping[str, Any], reload: bool = True, actor: str | None = None) -> ActionTaken:
        from_version = ctx.view.served_version
        rb = self.journal.begin_rollback(model=ctx.name, incident_id=incident_id, automatic=automatic,
                                         at=self.clock(), from_version=from_version, reason=reason)
        try:
            result = await in_thread(ctx.target.rollback, reason=reason, actor=actor or _actor(),
                                     evidence=dict(evidence), reload=reload, name=f"goldwatch:{ctx.name}:rollback")
        except GoldwatchError as exc:
            text = f"rollback of {ctx.name} failed: {exc}"
            self.journal.finish_rollback(rb, at=self.clock(), to_version=None, outcome="failed", detail={"error": text})
            self.metrics.rollbacks.labels(ctx.name, "failed").inc()
            self._record(ctx.name, None, "rollback-failed", text)
            return ActionTaken(kind="none", description=text, from_version=from_version)
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
        self._record(ctx.name, None, "rolled-back" if result.switched else "rollback-failed", result.summary(),
                     detail={"phases": result.phases, "from": result.from_version, "to": result.to_version,
                             "ok": result.ok, "error": result.error})
        if not result.switched:
            return ActionTaken(kind="none", description=f"rollback FAILED: {result.error}",
                               from_version=from_version)
        return ActionTaken(kind="fallback" if result.fallback else "rollback",
                           description=result.summary().removesuffix(f" in {result.total_s:.3g} s"),
                           from_version=result.from_version, to_version=result.to_version)

    async def _reload(self, ctx: ModelContext) -> ActionTaken:
        t0 = self.clock()
        try:
            await in_thread(ctx.target.reload, name=f"goldwatch:{ctx.name}:reload")
        except GoldwatchError as exc:
            text = f"the server did not reload {ctx.name}: {exc}"
            self._record(ctx.name, "version", "reload-failed", text)
            return ActionTaken(kind="none", description=text)
        text = f"told the server to reload {ctx.name} {ctx.view.served_version} ({self.clock() - t0:.2f} s)"
        self._record(ctx.name, "version", "reloaded", text)
        return ActionTaken(kind="none", description=text, to_version=ctx.view.served_version)

    # ---- the periodic tick: stale sources, expired pauses ---------------------------------------------------
    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = self.clock()
            for ctx in self.models.values():
                assert ctx.lock is not None
                async with ctx.lock:
                    if ctx.view.paused_until is not None and now >= ctx.view.paused_until:
                        ctx.view = dataclasses.replace(ctx.view, paused_until=None)
                        self.journal.set_paused(ctx.name, until=None, reason=None)
                        self._record(ctx.name, None, "resume", "the pause expired")
                    outcome = staleness(ctx.view, self.kinds, now=now)
                    ctx.view = outcome.view
                    for d in outcome.decisions:
                        synthetic = Evidence(ctx.name, _stale_kind(d), (Check(
                            name=f"{d.check_class}:sources", status="fail" if d.action == "page" else "pass",
                            summary=d.reason),), now, now, source="policy")
                        if d.action == "page":
                            await self._page(ctx, d, synthetic, ctx.view)
                        elif d.action == "resolve":
                            await self._resolve(ctx, d, at=now)
                        elif d.action == "forget" and d.source:
                            self._record(ctx.name, None, "forget", d.reason)
                            self.journal.forget_source(ctx.name, d.source)
                    self._refresh_metrics(ctx)

    async def _deliver_alerts(self) -> None:
        """Deliver queued alerts from a worker thread: right after a page, and every few seconds for retries."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._deliver.wait(), 2.0)
            self._deliver.clear()
            try:
                await in_thread(self.alerts.flush, timeout_s=0.0, name="goldwatch:alerts")
            except Exception:  # delivery problems stay in the outbox (retries, dead letters); keep going
                log.exception("alert delivery failed")

    # ---- verify first ---------------------------------------------------------------------------------------
    async def _verify_first(self) -> None:
        problems = []
        for ctx in self.models.values():
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
            now = self.clock()
            ev = Evidence(ctx.name, "files", result.checks, now, now, result.version)
            why_not = None if ctx.target.can_rollback and ctx.watch.mode == "act" else "rollback is off or observe mode"
            if why_not is None:
                page = Decision("page", "start-up verification failed: rolling back before the server starts",
                                check_class="integrity", severity="critical")
                await self._page(ctx, page, ev, ctx.view)
                incident = self.journal.open_incident_for(ctx.name, "integrity")
                taken = await self._rollback(ctx, reason=f"start-up verification failed: {ev.summary()}",
                                             automatic=True, incident_id=incident.id if incident else None,
                                             evidence={"failed": [check_to_dict(c) for c in failed]}, reload=False)
                ctx.view = dataclasses.replace(ctx.view, rollbacks=(*ctx.view.rollbacks, now))
                again = await in_thread(check.run, ctx.target, RunRequest(reason="verify first", full=True))
                if all(c.ok for c in again.checks):
                    ctx.startup = f"verified after {taken.description}"
                    if incident is not None:
                        self.journal.mark_acted(incident.id, at=now, action={
                            "kind": "rollback", "from": taken.from_version, "to": taken.to_version,
                            "summary": taken.description})
                    await self._trigger(ctx, "integrity", checks=list(ev.checks), severity="critical", action=taken)
                    continue
                ctx.startup = f"served files fail verification and {taken.description}"
            else:
                page = Decision("page", f"start-up verification failed; not acting: {why_not}",
                                check_class="integrity", severity="critical")
                await self._page(ctx, page, ev, ctx.view)
                ctx.startup = f"served files fail verification: {ev.summary()}"
            problems.append(f"{ctx.name}: {ctx.startup}")
        self.startup_problem = "; ".join(problems) or None
        self.startup_done = True
        self._record(None, "files", "verify-first", self.startup_problem or "every served model verifies")

    # ---- the API ------------------------------------------------------------------------------------------
    async def check_now(self, model: str, *, kinds: Sequence[str] | None = None, full: bool = False,
                        wait: bool = True, timeout_s: float | None = None) -> dict[str, Any]:
        """Run the model's checks (or ``kinds``) now; with ``wait``, return what each found."""
        ctx = self.model(model)
        if kinds is not None:
            unknown = [k for k in kinds if k not in ctx.checks]
            if unknown:
                raise InvalidInputError(f"unknown check(s) {unknown} for {model} (scheduled: "
                                        f"{', '.join(ctx.checks)})", where="checks")
        futures = self.scheduler.run_now(model, kinds, RunRequest(reason="requested", full=full))
        if not wait:
            return {"model": model, "queued": list(kinds or ctx.checks)}
        limit = timeout_s or max((ctx.schedules[k].timeout_s for k in (kinds or ctx.checks)), default=60.0) + 30.0
        await asyncio.wait(futures, timeout=limit)
        runs = {}
        for fut in futures:
            if fut.done() and not fut.cancelled():
                run = fut.result()
                ev = ctx.latest.get(run.kind)
                runs[run.kind] = self._kind_status(ctx, run.kind) | {"timed_out": run.timed_out,
                                                                    "ran_at": run.finished_at}
                if ev is None:
                    runs[run.kind]["status"] = "unknown"
        return {"model": model, "runs": runs, "healthy": self._healthy(ctx)}

    async def rollback(self, model: str, *, reason: str, actor: str | None = None) -> dict[str, Any]:
        """A person's rollback: allowed in observe mode, while paused, after the flap guard (a human decided);
        not counted by the flap guard."""
        ctx = self.model(model)
        if not reason.strip():
            raise InvalidInputError("a reason is required", where="reason", hint='send {"reason": "why"}')
        if not ctx.target.can_rollback:
            raise ConflictError(f"{model} is watched without a registry: there is nothing to roll back to",
                                where="serve.watch")
        assert ctx.lock is not None
        async with ctx.lock:
            if ctx.view.acting:
                raise ConflictError(f"an action on {model} is already in progress", hint="try again in a moment")
            ctx.view = dataclasses.replace(ctx.view, acting=True)
            self._record(model, None, "rollback", f"requested by {actor or 'the API'}: {reason}")
            task = asyncio.create_task(self._rollback(ctx, reason=reason, automatic=False, incident_id=None,
                                                      evidence={"requested_by": actor or "api"},
                                                      actor=actor or _actor()))
            ctx.action = task
            try:
                taken = await asyncio.shield(task)
            finally:
                ctx.view = dataclasses.replace(ctx.view, acting=False, last_action_at=self.clock())
        with contextlib.suppress(GoldwatchError):
            self.alerts.change(f"{model}: manual rollback: {taken.description} ({reason})", model=model,
                               details={"actor": actor, "reason": reason})
            self._deliver.set()
        self.scheduler.run_now(model, request=RunRequest(reason="after the manual rollback", full=True))
        return {"model": model, "action": taken.kind, "summary": taken.description,
                "from_version": taken.from_version, "to_version": taken.to_version, "ok": taken.kind != "none"}

    async def pause(self, model: str, *, reason: str, for_s: float | None = None) -> dict[str, Any]:
        """Neither act nor page on ``model`` for ``for_s`` seconds (default an hour): planned work."""
        ctx = self.model(model)
        for_s = DEFAULT_PAUSE_S if for_s is None else for_s
        if not 0 < for_s <= MAX_PAUSE_S:
            raise InvalidInputError(f"for_s must be in (0, {MAX_PAUSE_S:g}], got {for_s:g}", where="for_s")
        if not reason.strip():
            raise InvalidInputError("a reason is required", where="reason", hint='send {"reason": "deploying v8"}')
        until = self.clock() + for_s
        assert ctx.lock is not None
        async with ctx.lock:
            self.journal.set_paused(model, until=until, reason=reason)
            ctx.view = dataclasses.replace(ctx.view, paused_until=until)
            self._record(model, None, "pause", f"paused for {for_s:g} s: {reason}", detail={"until": until})
            self._refresh_metrics(ctx)
        return {"model": model, "paused_until": until, "reason": reason}

    async def resume(self, model: str, *, reason: str = "resumed") -> dict[str, Any]:
        """End a pause and a flap-guard stop; the model's checks run at once."""
        ctx = self.model(model)
        assert ctx.lock is not None
        async with ctx.lock:
            was = {"paused": ctx.view.paused(self.clock()), "stopped": ctx.view.stopped}
            self.journal.set_paused(model, until=None, reason=None)
            self.journal.set_stopped(model, at=None, reason=None)
            ctx.view = dataclasses.replace(ctx.view, paused_until=None, stopped=False, rollbacks=())
            self._record(model, None, "resume", reason, detail=was)
            if FLAP_GUARD_CLASS in ctx.view.incidents:
                await self._resolve(ctx, Decision("resolve", "resumed by a person", check_class=FLAP_GUARD_CLASS),
                                    at=self.clock())
            for d in resolutions(ctx.view, kinds=self.kinds):
                await self._resolve(ctx, d, at=self.clock())
            self._refresh_metrics(ctx)
        self.scheduler.run_now(model, request=RunRequest(reason="resumed"))
        return {"model": model, "resumed": True, **was}

    # ---- views for the API ----------------------------------------------------------------------------------
    def _healthy(self, ctx: ModelContext) -> bool:
        """Every paging check passes (or skips) and no incident above a warning is open."""
        for kind in ctx.checks:
            state = ctx.view.kinds.get(kind)
            if state is not None and state.status in ("fail", "error") and self.kinds.get(kind).pages:
                return False
        return not any(row.severity in ("critical", "error")
                       for row in self.journal.incidents(state="open", model=ctx.name))

    def _kind_status(self, ctx: ModelContext, kind: str) -> dict[str, Any]:
        state = ctx.view.kind(kind)
        ev = ctx.latest.get(kind)
        return {
            "status": state.status, "summary": ev.summary() if ev else None, "version": ev.version if ev else None,
            "last_run_at": state.last_run_at, "last_pass_at": state.last_pass_at,
            "failing_since": state.failing_since, "duration_s": round(ev.duration_s, 6) if ev else None,
            "next_run_at": self.scheduler.next_run_at(ctx.name, kind),
            "checks": [check_to_dict(c) for c in ev.checks] if ev else [],
        }

    def _refresh_metrics(self, ctx: ModelContext) -> None:
        now = self.clock()
        self.metrics.set_model(ctx.name, healthy=self._healthy(ctx), incidents_open=len(ctx.view.incidents),
                               rollback_ready=ctx.rollback_ready, paused=ctx.view.paused(now),
                               acting=not ctx.view.stopped)

    def status(self) -> dict[str, Any]:
        """What the sidecar sees, per model (``GET /v1/status``, ``goldwatch status``)."""
        now = self.clock()
        models = []
        for ctx in self.models.values():
            view = ctx.view
            state = self.journal.model_state(ctx.name)
            models.append({
                "name": ctx.name, "url": ctx.watch.url, "mode": ctx.watch.mode,
                "registry": ctx.target.can_rollback, "served_version": view.served_version,
                "healthy": self._healthy(ctx), "acting": view.acting,
                "paused": ({"until": view.paused_until, "reason": state.paused_reason} if view.paused(now) else None),
                "stopped": ({"at": state.stopped_at, "reason": state.stopped_reason} if view.stopped else None),
                "rollbacks_last_hour": view.recent_rollbacks(now), "rollback_ready": ctx.rollback_ready,
                "startup": ctx.startup,
                "checks": {kind: self._kind_status(ctx, kind) for kind in ctx.checks},
                "incidents": [row.to_dict() for row in self.journal.incidents(state="open", model=ctx.name)],
                "sources": [dataclasses.asdict(s) | {"silent_s": round(now - s.last_seen, 3)}
                            for s in view.sources.values()],
            })
        return {"goldwatch_version": __version__, "started_at": self.started_at, "now": now, "ready": self.ready,
                "models": models}

    def incidents(self, *, state: str | None = None, model: str | None = None,
                  limit: int = 200) -> list[dict[str, Any]]:
        if model is not None:
            self.model(model)
        return [row.to_dict() for row in self.journal.incidents(state=state, model=model, limit=limit)]

    def decisions(self, *, after: int = 0, model: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        return [to_jsonable(row) for row in self.journal.decisions(after=after, model=model, limit=limit)]


async def _warm(module: str) -> None:
    import importlib

    with contextlib.suppress(Exception):
        await in_thread(importlib.import_module, module, name="goldwatch:warm-imports")


def _stale_kind(d: Decision) -> str:
    cls = d.check_class or "stale"
    return cls if cls.endswith("-stale") else f"{cls}-stale"


def _times(row: IncidentRow) -> str:
    parts = []
    if row.ttd_s is not None:
        parts.append(f"TTD {row.ttd_s:.1f} s (since the last passing check)")
    if row.ttr_s is not None:
        parts.append(f"TTR {row.ttr_s:.1f} s")
    if row.within_rto is not None and row.rto_s is not None:
        parts.append(f"RTO {row.rto_s:g} s {'met' if row.within_rto else 'MISSED'}")
    return f"; {', '.join(parts)}" if parts else ""

