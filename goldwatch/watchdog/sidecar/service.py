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
import os
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
from goldwatch.watchdog.alerts import AlertManager, Sink
from goldwatch.watchdog.registry import database_from_config
from goldwatch.watchdog.registry.names import HOST_ENV
from goldwatch.watchdog.sidecar import startup, views
from goldwatch.watchdog.sidecar.checks import (
    AlternateProof,
    DeviceCheck,
    FilesCheck,
    GoldenCheck,
    GoldenSetCache,
    ReadinessCheck,
    RollbackReadinessCheck,
    RunRequest,
    RunResult,
    ScheduledCheck,
    StandbyCheck,
    VersionCheck,
    rollback_ready,
    verify_alternate,
)
from goldwatch.watchdog.sidecar.context import BusyError, ConflictError, ModelContext, UnknownModelError
from goldwatch.watchdog.sidecar.evidence import (
    SCHEDULER_SOURCE,
    Evidence,
    EvidenceKind,
    EvidenceKinds,
    ExternalReport,
    parse_report,
)
from goldwatch.watchdog.sidecar.extensions import SidecarExtension, load_extension
from goldwatch.watchdog.sidecar.fleet import FleetLink
from goldwatch.watchdog.sidecar.journal import CheckRow, Journal, SourceRow, check_to_dict
from goldwatch.watchdog.sidecar.metrics import SidecarMetrics
from goldwatch.watchdog.sidecar.policy import (
    FLAP_GUARD_CLASS,
    PRIMARY,
    Decision,
    ModelView,
    Rules,
    decide,
    resolutions,
    staleness,
)
from goldwatch.watchdog.sidecar.responder import Responder, default_actor
from goldwatch.watchdog.sidecar.scheduler import Job, JobRun, JobSpec, Scheduler
from goldwatch.watchdog.sidecar.targets import Target, open_target
from goldwatch.watchdog.sidecar.workers import in_thread

__all__ = ["DEFAULT_PAUSE_S", "BusyError", "ConflictError", "ModelContext", "SidecarService", "UnknownModelError"]

log = get_logger(__name__)

DEFAULT_PAUSE_S = 3600.0
MAX_PAUSE_S = 7 * 86400.0
TICK_S = 1.0
JOURNAL_RETENTION_S = 30 * 86400.0
MAX_QUEUED_REPORTS = 256  # per model: a minute of reports from a few hundred workers




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
        self.subjects: set[str] = set()  # what else incidents name besides watched models (extensions' assets)
        self._start_hooks: list[Callable[[], Awaitable[None]]] = []
        self._stop_hooks: list[Callable[[], Awaitable[None]]] = []
        self._golden_cache = GoldenSetCache()
        self.started_at: float | None = None
        self.ready_at: float | None = None  # when the first round of checks was done
        self._handled: set[tuple[str, str]] = set()  # (model, kind) whose first run was decided on
        self._scheduling = False
        self.startup_done = not verify_first
        self.startup_problem: str | None = None
        self.stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        problems: list[str] = []
        serve = config.serve
        if not serve.watch and not config.recovery.assets:
            problems.append("serve.watch: no [[serve.watch]] table, so there is nothing to watch "
                            "(add one per model: name, url, and registry_model or served_path + manifest; or "
                            "[[recovery.assets]] to watch training assets)")
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
        problems += _fleet_problems(config)
        loaded: list[SidecarExtension] = []
        if config.recovery.assets:
            # training assets (disaster recovery, scenario 5): their backups are restored and verified here too
            from goldwatch.watchdog.recovery.asset_watch import AssetWatch

            loaded.append(AssetWatch(config))
        for spec in serve.extensions:
            try:
                loaded.append(load_extension(spec))
            except GoldwatchError as exc:
                problems.append(str(exc))
        if _wants_live_drift(config) and not any(e.name == "live-drift" for e in [*loaded, *extensions]):
            # [serve.watch.drift] / [[live_drift.models]]: live-traffic drift, set up like any extension
            from goldwatch.watchdog.live.sidecar import LiveDriftExtension, sidecar_models

            problems += sidecar_models(config)[1]
            loaded.append(LiveDriftExtension())
        if problems:
            for _watch, target in targets:
                target.close()
            raise ConfigError(f"{len(problems)} problem(s) before the sidecar could start: " + "; ".join(problems),
                              where="goldwatch.toml [serve]", hint="fix them all, then start again; nothing ran")
        journal_path = serve.journal or Path(config.registry.root) / "sidecar.sqlite"
        alerts_config = config.alerts
        if alerts_config.source is None and os.environ.get(HOST_ENV, "").strip():
            # the pod's name as the fleet knows it (registry show, the fleet's incidents) is the one responders see
            alerts_config = alerts_config.model_copy(update={"source": os.environ[HOST_ENV].strip()})
        self.fleet: FleetLink | None = None
        try:
            self.journal = Journal.open(journal_path)
            self.alerts = AlertManager.from_config(alerts_config, default_dir=config.registry.root, sinks=sinks)
            self.fleet = FleetLink.open(config, clock=clock)
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
        self.responder = Responder(journal=self.journal, alerts=self.alerts, metrics=self.metrics, kinds=self.kinds,
                                   scheduler=self.scheduler, clock=clock, fleet=self.fleet,
                                   verify_alternate=self._verify_alternate)
        if config.alerts.runbook_url:
            from goldwatch.watchdog.recovery.scenarios import runbook_link

            base = config.alerts.runbook_url
            # every page links its own scenario's runbook (goldwatch runbook writes them)
            self.alerts.runbook_for = lambda model, check_class: runbook_link(base, model, check_class)
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
        for key, paths in (("golden", watch.golden), ("fallback.golden", watch.fallback.golden if watch.fallback
                                                       else []),
                           ("cpu_variant.golden", watch.cpu_variant.golden if watch.cpu_variant else [])):
            for path in paths:
                try:
                    self._golden_cache.load(Path(path))
                except GoldwatchError as exc:
                    problems.append(f"{where}.{key}: {exc}")
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
            ("device", watch.device, lambda: DeviceCheck(timeout_s=watch.device.timeout_s)),
        ]
        alternates = tuple(a for a in ("fallback", "cpu_variant") if getattr(watch, a) is not None)
        if alternates:
            plan.append(("standby", watch.standby, lambda: StandbyCheck(golden, cache=self._golden_cache)))
        for kind, schedule, make in plan:
            if schedule.enabled:
                checks[kind] = make()
                schedules[kind] = schedule
        rules = Rules(
            mode=watch.mode, can_rollback=target.can_rollback, can_reload=target.can_reload,
            max_rollbacks_per_hour=watch.max_rollbacks_per_hour, server_down_grace_s=watch.server_down_grace_s,
            server_start_grace_s=watch.server_start_grace_s, stale_factor=watch.resident_stale_factor,
            confirm=frozenset({"golden"} if watch.golden_replay.confirm else ()) | {"device"},
            proof_kinds=tuple(k for k in ("files", "golden") if k in checks),
            alternates=alternates if watch.route is not None else (),
            route_back_after_s=watch.route.route_back_after_s if watch.route is not None else 30.0,
            primary_kinds=tuple(k for k in ("readiness", "device", "version", "golden") if k in checks),
        )
        rto = watch.rto_seconds or self.config.alerts.rto_seconds
        router = None
        if watch.route is not None:
            from goldwatch.watchdog.recovery.routes import make_router

            router = make_router(watch.route)
        return ModelContext(watch.name, watch, target, checks, schedules, ModelView(model=watch.name, rules=rules),
                            rto, router=router)

    def _verify_alternate(self, ctx: ModelContext, alternate: str) -> AlternateProof:
        """Replay the alternate's golden sets through its endpoint now (blocking: a worker thread calls it)."""
        return verify_alternate(ctx.target, alternate, golden=self.config.golden, cache=self._golden_cache)

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
        self.responder.deliver = asyncio.Event()
        for ctx in self.models.values():
            ctx.lock = asyncio.Lock()
            await startup.restore(self, ctx)
        for ctx in self.models.values():
            await startup.finish_interrupted(self, ctx)
        await startup.reassert_incidents(self)
        with contextlib.suppress(sqlite3.Error):
            self.journal.prune(older_than_s=JOURNAL_RETENTION_S, now=self.clock())
        if self.fleet is not None:
            try:
                resent = await in_thread(self.fleet.resend_unconfirmed, self.alerts, name="goldwatch:fleet")
            except GoldwatchError as exc:
                log.warning("could not read the fleet's incident book: %s", exc)
                resent = []
            for t in resent:
                self.responder.record(t.incident.model, None, "fleet-resend", f"{t.action} {t.incident.dedup_key}: "
                                      f"{t.why}")
        self._tasks = [asyncio.create_task(self._deliver_alerts()), asyncio.create_task(self._tick())]
        for ctx in self.models.values():
            ctx.reports = asyncio.Queue(maxsize=MAX_QUEUED_REPORTS)
            self._tasks.append(asyncio.create_task(self._decide_reports(ctx)))
        if self.fleet is not None:
            self._tasks.append(asyncio.create_task(self._heartbeat(self.fleet)))
        if any("golden" in ctx.checks for ctx in self.models.values()):
            # golden replay's output tests import scipy on first use (~1-2 s, much of it holding the GIL): pay that
            # at start, before the first round, not in the steady state or on the way to a rollback
            await _warm("goldwatch.detectors")
        if self.verify_first:
            await startup.verify_first(self)
        for ctx in self.models.values():
            for kind in ctx.checks:
                self._schedule(ctx, kind)
        # the first round of many models is spread out (about 50 starts a second), not fired all at once
        self.scheduler.first_spread_s = min(10.0, max(1.0, len(self.scheduler.jobs) / 50))
        self.scheduler.start()
        self._scheduling = True
        for hook in self._start_hooks:
            await hook()
        self.responder.record(None, None, "start", f"watching {', '.join(self.models)}",
                              detail={"version": __version__})

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
            self._flush_state()
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
            self.responder.record(None, None, "stop", "shutting down")
        with contextlib.suppress(Exception):
            self.alerts.close()
        if self.fleet is not None:
            with contextlib.suppress(Exception):
                self.fleet.close()
        with contextlib.suppress(Exception):
            self.journal.close()

    @property
    def ready(self) -> bool:
        """Config loaded (we exist), start-up verification passed, and every scheduled check has run once and been
        decided on."""
        if not self._scheduling or not self.startup_done or self.startup_problem is not None:
            return False
        return self._handled >= set(self.scheduler.jobs)

    def readiness(self) -> tuple[bool, list[str]]:
        """(ready, the reasons it is not) for ``/readyz``."""
        reasons = []
        if not self._scheduling:
            reasons.append("starting: the checks are not scheduled yet")
        if not self.startup_done:
            reasons.append("start-up verification of the served files is not done")
        if self.startup_problem:
            reasons.append(self.startup_problem)
        waiting = [f"{m}/{k}" for (m, k) in self.scheduler.jobs if (m, k) not in self._handled]
        if waiting:
            reasons.append(f"first round of checks not done: {', '.join(waiting[:10])}"
                           + (f" (+{len(waiting) - 10} more)" if len(waiting) > 10 else ""))
        if not self.journal.writable():
            reasons.append(f"the journal {self.journal.path} is not writable")
        return not reasons, reasons

    # ---- restoring state ----------------------------------------------------------------------------------
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
        try:
            await self.consider(self._evidence(run), job=job)
        finally:
            self._handled.add((run.model, run.kind))
            if self.ready_at is None and self._scheduling and self._handled >= set(self.scheduler.jobs):
                self.ready_at = self.clock()  # the first round is done: from here on, the steady state

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
                self.responder.record(ctx.name, ev.kind, "observe", f"{ev.kind} {ev.status}: {ev.summary()}",
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
                self.responder.record(ctx.name, ev.kind, "confirm", decision.reason)
                again = await self._rerun(ctx, ev, job)
                decisions = decisions + await self._consider(ctx, again, job)
                break
            await self.responder.carry_out(ctx, decision, ev, before)
        self.refresh_metrics(ctx)
        return decisions

    async def _rerun(self, ctx: ModelContext, ev: Evidence, job: Job | None) -> Evidence:
        if job is None:  # external evidence cannot be re-run here: take it as confirmed
            return dataclasses.replace(ev, confirmed=True)
        version = self.scheduler.job(ctx.name, "version")
        if version is not None and ev.kind != "version":
            # Answers that differ may mean the server runs another version than the registry serves: know that
            # before acting, so a server that missed a reload gets a reload, not its good version quarantined.
            # (A scheduled version run still going is let finish first: never two at once.)
            if version.in_flight is not None and not version.in_flight.done():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(version.in_flight), version.spec.timeout_s)
            if version.in_flight is None or version.in_flight.done():
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
        self.responder.record(ctx.name, ev.kind, "served-version",
                     f"the registry serves {ev.version} now (was {view.served_version or 'nothing'})")
        ctx.view = dataclasses.replace(view, served_version=ev.version)

    def _save_state(self, ctx: ModelContext, ev: Evidence) -> None:
        # written in batches by the tick (one transaction a second for every model): a restart resumes from at most
        # a second ago, and the event loop does not pay a commit per run
        ctx.dirty[ev.kind] = ev
        if self.kinds.get(ev.kind).external:
            self._save_source(ctx, ev)

    def _save_source(self, ctx: ModelContext, ev: Evidence) -> None:
        ctx.dirty_sources.add(ev.source)

    def _flush_state(self) -> None:
        checks, sources = [], []
        for ctx in self.models.values():
            for kind, ev in ctx.dirty.items():
                st = ctx.view.kind(kind)
                checks.append(CheckRow(ctx.name, kind, st.status, ev.version, st.last_run_at, st.last_pass_at,
                                       st.failing_since, st.consecutive, ev.duration_s, ev.checks))
            for name in ctx.dirty_sources:
                src = ctx.view.sources.get(name)
                if src is not None:
                    sources.append(SourceRow(ctx.name, src.source, src.kind, src.interval_s, src.first_seen,
                                             src.last_seen, src.status))
            ctx.dirty.clear()
            ctx.dirty_sources.clear()
        self.journal.save_checks(checks)
        self.journal.save_sources(sources)

    def _received(self, ctx: ModelContext, report: ExternalReport | Mapping[str, Any]) -> Evidence:
        """A report from outside, validated (every problem at once, InvalidInputError) and counted."""
        if not isinstance(report, ExternalReport):
            report = parse_report(report, kinds=self.kinds)
        ev = report.evidence(ctx.name, received_at=self.clock())
        self.metrics.observe_evidence(ev)
        return ev

    async def submit_evidence(self, model: str, report: ExternalReport | Mapping[str, Any]) -> dict[str, Any]:
        """Evidence from another component (the in-process agent, the drift sink): validated, then decided on.

        ``report`` is an :class:`~.evidence.ExternalReport` or the JSON body of ``POST .../evidence``. Returns what
        was decided (after any action it decided on: a rollback included). Over HTTP, :meth:`accept_evidence`
        answers at once instead.
        """
        ctx = self.model(model)
        ev = self._received(ctx, report)
        return self._outcome(ctx, ev, await self.consider(ev))

    def _outcome(self, ctx: ModelContext, ev: Evidence, decisions: Sequence[Decision] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"model": ctx.name, "kind": ev.kind, "status": ev.status, "version": ev.version,
                               "served_version": ctx.view.served_version}
        if decisions is not None:
            out["decisions"] = [{"action": d.action, "reason": d.reason, "check_class": d.check_class}
                                for d in decisions]
        return out

    async def accept_evidence(self, model: str, report: ExternalReport | Mapping[str, Any], *, wait: bool = False,
                              timeout_s: float = 120.0) -> dict[str, Any]:
        """``POST .../evidence``: validate, journal a failure that is news, queue, and answer -- the decision (and a
        rollback it may start) follows on the model's own task, in arrival order, so a reporter never waits for a
        rollback. ``wait``: answer with the decisions instead (up to ``timeout_s``). A full queue raises
        :class:`~.context.BusyError` (HTTP 429: the reporter retries)."""
        ctx = self.model(model)
        if ctx.reports is None:
            raise StateError("the sidecar is not running yet", hint="retry once /readyz answers 200")
        ev = self._received(ctx, report)
        if ev.status in ("fail", "error") and ctx.reported.get(ev.source) != ev.status:
            # journaled before the answer: a failure reported is on record even if this process dies right after
            self.responder.record(ctx.name, ev.kind, "evidence", f"{ev.source}: {ev.summary()}",
                                  detail={"source": ev.source, "version": ev.version, "status": ev.status,
                                          "failed": [check_to_dict(c) for c in ev.failed][:20]})
        ctx.reported[ev.source] = ev.status
        fut: asyncio.Future[Any] | None = asyncio.get_running_loop().create_future() if wait else None
        try:
            ctx.reports.put_nowait((ev, fut))
        except asyncio.QueueFull:
            raise BusyError(f"{ctx.reports.maxsize} reports about {model} are waiting to be decided on",
                            where="evidence", hint="retry in a few seconds") from None
        if fut is None:
            return {**self._outcome(ctx, ev, None), "queued": ctx.reports.qsize()}
        decisions = await asyncio.wait_for(fut, timeout_s)
        return self._outcome(ctx, ev, decisions)

    async def _decide_reports(self, ctx: ModelContext) -> None:
        assert ctx.reports is not None
        while True:
            ev, fut = await ctx.reports.get()
            try:
                decisions = await self.consider(ev)
            except Exception as exc:  # one bad report must not stop the model's evidence from being decided on
                log.exception("%s: deciding on a %s report failed", ctx.name, ev.kind)
                if fut is not None and not fut.done():
                    fut.set_exception(exc)
                continue
            if fut is not None and not fut.done():
                fut.set_result(decisions)

    def submit_evidence_threadsafe(self, model: str, report: ExternalReport | Mapping[str, Any], *,
                                   timeout_s: float = 30.0) -> dict[str, Any]:
        """:meth:`submit_evidence` from any thread (e.g. an extension's worker); blocks until decided."""
        if self._loop is None:
            raise StateError("the sidecar service is not running", hint="call it after start()")
        fut = asyncio.run_coroutine_threadsafe(self.submit_evidence(model, report), self._loop)
        return fut.result(timeout_s)

    # ---- carrying decisions out ---------------------------------------------------------------------------
    # ---- the periodic tick: stale sources, expired pauses ---------------------------------------------------
    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self._flush_state()
            except sqlite3.Error as exc:  # a full disk must not stop the checks; the next tick tries again
                log.error("cannot save the checks' state to the journal: %s", exc)
            try:
                await self.responder.send_resolves_due(self.models)
            except (GoldwatchError, sqlite3.Error) as exc:
                log.error("cannot send the resolves held for alerts.resolve_after_s: %s", exc)
            now = self.clock()
            for ctx in self.models.values():
                self.responder.count_degraded(ctx, now)
                assert ctx.lock is not None
                if ctx.lock.locked():  # deciding or acting (a rollback takes seconds): next tick; never wait on it
                    continue
                async with ctx.lock:
                    if ctx.view.paused_until is not None and now >= ctx.view.paused_until:
                        ctx.view = dataclasses.replace(ctx.view, paused_until=None)
                        self.journal.set_paused(ctx.name, until=None, reason=None)
                        self.responder.record(ctx.name, None, "resume", "the pause expired")
                    outcome = staleness(ctx.view, self.kinds, now=now)
                    ctx.view = outcome.view
                    for d in outcome.decisions:
                        synthetic = Evidence(ctx.name, _stale_kind(d), (Check(
                            name=f"{d.check_class}:sources", status="fail" if d.action == "page" else "pass",
                            summary=d.reason),), now, now, source="policy")
                        if d.action == "page":
                            await self.responder.page(ctx, d, synthetic, ctx.view)
                        elif d.action == "resolve":
                            await self.responder.resolve(ctx, d, at=now)
                        elif d.action == "forget" and d.source:
                            self.responder.record(ctx.name, None, "forget", d.reason)
                            self.journal.forget_source(ctx.name, d.source)
                    self.refresh_metrics(ctx)

    async def _heartbeat(self, fleet: FleetLink) -> None:
        """This host's heartbeat in the registry (``registry show``: last seen) every ``serve.heartbeat_s``; on a
        shared registry, then the fleet's loose ends: what only vanished pods still saw is resolved, what a
        vanished pod decided and never confirmed is sent."""
        while True:
            try:
                await in_thread(fleet.heartbeat, name="goldwatch:heartbeat")
                for t in await in_thread(fleet.sweep, self.alerts, list(self.models), name="goldwatch:fleet"):
                    self.responder.record(t.incident.model, None, f"fleet-{t.action}",
                                          f"{t.incident.dedup_key}: {t.why}")
                    self.responder.deliver.set()
            except GoldwatchError as exc:  # the database is away: the next beat tries again
                log.warning("registry heartbeat failed: %s", exc)
            except Exception:
                log.exception("registry heartbeat failed")
            await asyncio.sleep(fleet.heartbeat_s)

    async def _deliver_alerts(self) -> None:
        """Deliver queued alerts from a worker thread: right after a page, and every few seconds for retries."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.responder.deliver.wait(), 2.0)
            self.responder.deliver.clear()
            try:
                await in_thread(self.alerts.flush, timeout_s=0.0, name="goldwatch:alerts")
            except Exception:  # delivery problems stay in the outbox (retries, dead letters); keep going
                log.exception("alert delivery failed")

    # ---- verify first ---------------------------------------------------------------------------------------
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
                runs[run.kind] = views.kind_status(self, ctx, run.kind) | {"timed_out": run.timed_out,
                                                                    "ran_at": run.finished_at}
                if ev is None:
                    runs[run.kind]["status"] = "unknown"
        return {"model": model, "runs": runs, "healthy": views.healthy(self, ctx)}

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
            self.responder.record(model, None, "rollback", f"requested by {actor or 'the API'}: {reason}")
            task = asyncio.create_task(self.responder.rollback(ctx, reason=reason, automatic=False, incident_id=None,
                                                      evidence={"requested_by": actor or "api"},
                                                      actor=actor or default_actor()))
            ctx.action = task
            try:
                taken = await asyncio.shield(task)
            finally:
                ctx.view = dataclasses.replace(ctx.view, acting=False, last_action_at=self.clock())
        with contextlib.suppress(GoldwatchError):
            self.alerts.change(f"{model}: manual rollback: {taken.description} ({reason})", model=model,
                               details={"actor": actor, "reason": reason})
            self.responder.deliver.set()
        self.scheduler.run_now(model, request=RunRequest(reason="after the manual rollback", full=True))
        return {"model": model, "action": taken.kind, "summary": taken.description,
                "from_version": taken.from_version, "to_version": taken.to_version, "ok": taken.kind != "none"}

    async def route(self, model: str, *, route: str, reason: str, actor: str | None = None) -> dict[str, Any]:
        """A person moves the model's traffic: to an alternate (verified by its golden sets first, as always) or
        back to the primary (which resolves the incidents that moved it)."""
        ctx = self.model(model)
        if not reason.strip():
            raise InvalidInputError("a reason is required", where="reason", hint='send {"route": ..., "reason": "why"}')
        allowed = (PRIMARY, *ctx.view.rules.alternates)
        if route not in allowed:
            raise InvalidInputError(f"route {route!r} is not one of {', '.join(allowed)} for {model}", where="route",
                                    hint="configure [serve.watch.fallback] / [serve.watch.cpu_variant] and "
                                         "[serve.watch.route]")
        assert ctx.lock is not None
        async with ctx.lock:
            if ctx.view.acting:
                raise ConflictError(f"an action on {model} is already in progress", hint="try again in a moment")
            self.responder.record(model, None, "route", f"requested by {actor or 'the API'}: {route}: {reason}")
            decision = Decision("route", f"requested by {actor or 'the API'}: {reason}",
                                route=PRIMARY if route == PRIMARY else None,
                                alternates=() if route == PRIMARY else (route,))
            task = asyncio.create_task(self.responder.route(ctx, decision, None, actor=actor or "api"))
            ctx.action = task
            outcome = await asyncio.shield(task)
            self.refresh_metrics(ctx)
        return {"model": model, "ok": outcome.moved, "route": outcome.route, "url": outcome.url,
                "summary": outcome.description, "duration_s": round(outcome.duration_s, 6)}

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
            self.responder.record(model, None, "pause", f"paused for {for_s:g} s: {reason}", detail={"until": until})
            self.refresh_metrics(ctx)
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
            self.responder.record(model, None, "resume", reason, detail=was)
            if FLAP_GUARD_CLASS in ctx.view.incidents:
                await self.responder.resolve(
                    ctx, Decision("resolve", "resumed by a person", check_class=FLAP_GUARD_CLASS), at=self.clock())
            for d in resolutions(ctx.view, kinds=self.kinds):
                await self.responder.resolve(ctx, d, at=self.clock())
            self.refresh_metrics(ctx)
        self.scheduler.run_now(model, request=RunRequest(reason="resumed"))
        return {"model": model, "resumed": True, **was}

    # ---- views for the API ----------------------------------------------------------------------------------
    def refresh_metrics(self, ctx: ModelContext) -> None:
        now = self.clock()
        self.metrics.set_model(ctx.name, healthy=views.healthy(self, ctx), incidents_open=len(ctx.view.incidents),
                               rollback_ready=ctx.rollback_ready, paused=ctx.view.paused(now),
                               acting=not ctx.view.stopped)

    def status(self) -> dict[str, Any]:
        """What the sidecar sees, per model (``GET /v1/status``, ``goldwatch status``)."""
        return views.status(self)

    def incidents(self, *, state: str | None = None, model: str | None = None,
                  limit: int = 200) -> list[dict[str, Any]]:
        if model is not None and model not in self.subjects:
            self.model(model)
        return [row.to_dict() for row in self.journal.incidents(state=state, model=model, limit=limit)]

    def decisions(self, *, after: int = 0, model: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        return [to_jsonable(row) for row in self.journal.decisions(after=after, model=model, limit=limit)]


def _wants_live_drift(config: GoldwatchConfig) -> bool:
    """A ``[serve.watch.drift]`` table or ``[[live_drift.models]]``: the live-drift extension is set up."""
    return any(w.drift is not None and w.drift.enabled for w in config.serve.watch) or any(
        m.enabled for m in config.live_drift.models)


async def _warm(module: str) -> None:
    import importlib

    with contextlib.suppress(Exception):
        await in_thread(importlib.import_module, module, name="goldwatch:warm-imports")


def _fleet_problems(config: GoldwatchConfig) -> list[str]:
    """On a registry shared by a fleet, the registry root is the volume every pod mounts: the sidecar's own journal
    and alert outbox (SQLite, this pod's state) must not default to it."""
    if not any(w.uses_registry for w in config.serve.watch):
        return []
    try:
        url = database_from_config(config.registry)
    except GoldwatchError as exc:
        return [f"registry: {exc}"]
    if url is None or url.backend != "postgresql":
        return []
    missing = [key for key, value in (("serve.journal", config.serve.journal),
                                      ("alerts.outbox_path", config.alerts.outbox_path)) if value is None]
    if not missing:
        return []
    return [f"{' and '.join(missing)}: on a registry shared by a fleet (PostgreSQL), registry.root is the volume "
            f"every pod mounts, and this pod's own SQLite state must not default into it; set {' and '.join(missing)}"
            " to a pod-local path (e.g. an emptyDir volume)"]


def _stale_kind(d: Decision) -> str:
    cls = d.check_class or "stale"
    return cls if cls.endswith("-stale") else f"{cls}-stale"



