"""Live drift inside ``goldwatch serve``: the sidecar extension that mounts it.

:class:`LiveDriftExtension` is set up by :class:`~goldwatch.watchdog.sidecar.SidecarService` whenever the config
asks for live drift (a ``[serve.watch.drift]`` table, or ``[[live_drift.models]]`` naming watched models); it uses
only the sidecar's extension API:

* **Evidence kinds.** ``drift`` (incident class ``drift``, severity warning, never a rollback) and
  ``data_quality`` (class ``data-quality``, severity error, never a rollback). The K-consecutive-windows rule and
  the streaming detectors live in :mod:`.policy` / :mod:`.trend`, so the sidecar's row pages on the first failing
  report (``consecutive = 1``): a ``drift:*`` check fails only while the rule holds, and the first clean window
  passes, which resolves the incident. A window too small to test reports ``skip`` (nothing changes).
* **Evidence.** Every closed window is submitted from the worker thread as two reports (``drift``,
  ``data_quality``) with source ``live-drift:<host>`` and the version the window was tested for, without waiting
  for the decision. A window of a version that is no longer served (closed by a rollback) is recorded and
  otherwise ignored, as all evidence is.
* **Served version.** The sidecar knows what its registry serves; a task on its event loop hands every change to
  :meth:`LiveDrift.set_version <goldwatch.watchdog.live.service.LiveDrift.set_version>` (the window closes, the next
  is tested against the new version's reference). Versions in request/response bodies are ignored here: the
  registry's names for versions need not be the server's ``model_version``.
* **Routes** on the API port: the sink (``POST /v1/cloudevents``, ``/v1/models/{model}/cloudevents``; no token:
  payload loggers send none), ``POST /v1/models/{model}/observe`` (bearer token), ``GET
  /v1/models/{model}/drift`` and ``.../drift.html``. With ``[live_drift] sink_port`` a
  :class:`~goldwatch.watchdog.live.sinkserver.SinkServer` also takes events on that port (its own parser, ~3x
  the rate).
* **State.** Detector sums, the window being filled and the page rule go to the sidecar's journal
  (:class:`~goldwatch.watchdog.live.state.JournalCheckpoints`, namespace ``live-drift``): a restart continues.
* **Metrics.** :class:`~goldwatch.watchdog.live.metrics.LiveDriftCollector` in the sidecar's registry
  (``goldwatch_live_drift_*``: per model, per feature only for ``metrics_features``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from goldwatch.config import GoldwatchConfig, LiveDriftConfig, LiveDriftModelConfig, LiveDriftSection
from goldwatch.watchdog.sidecar.evidence import EvidenceKind

if TYPE_CHECKING:
    from goldwatch.watchdog.live.results import WindowResult
    from goldwatch.watchdog.live.service import LiveDrift
    from goldwatch.watchdog.sidecar.service import SidecarService

__all__ = ["DATA_QUALITY_KIND", "DRIFT_KIND", "LiveDriftExtension", "missing_references", "sidecar_models"]

log = logging.getLogger("goldwatch.live")

VERSION_POLL_S = 0.5


DRIFT_KIND = EvidenceKind("drift", "drift", "warning", external=True,
                          description="live-traffic drift of inputs and predictions (K windows in a row, or a "
                                      "streaming detector's alarm)")
DATA_QUALITY_KIND = EvidenceKind("data_quality", "data-quality", "error", external=True,
                                 description="live-traffic data quality against the reference's own rates "
                                             "(NaN/inf, range, categories, schema)")


def sidecar_models(config: GoldwatchConfig) -> tuple[list[LiveDriftModelConfig], list[str]]:
    """The models to watch for drift in the sidecar, and every configuration problem (none: start)."""
    problems: list[str] = []
    models: list[LiveDriftModelConfig] = []
    watched = {w.name for w in config.serve.watch}
    from_watch = set()
    for w in config.serve.watch:
        if w.drift is not None:
            models.append(LiveDriftModelConfig.model_validate({"name": w.name, **w.drift.model_dump()}))
            from_watch.add(w.name)
    for i, m in enumerate(config.live_drift.models):
        where = f"live_drift.models[{i}] ({m.name})"
        if m.name not in watched:
            problems.append(f"{where}: no [[serve.watch]] watches {m.name!r}, so its drift has no model to page "
                            f"for (watched: {', '.join(sorted(watched)) or 'none'})")
        elif m.name in from_watch:
            problems.append(f"{where}: {m.name!r} also has a [serve.watch.drift] table; keep one")
        else:
            models.append(m)
    try:
        LiveDriftSection.model_validate(config.live_drift.model_dump() | {"models": [m.model_dump() for m in models]})
    except ValueError as exc:  # pydantic's ValidationError: names and aliases repeated across the two places
        problems.append(f"live drift: {exc}")
    for m in models:  # a reference that is not there would leave every window untested, quietly
        where = f"[serve.watch.drift] of {m.name!r}" if m.name in from_watch else f"[[live_drift.models]] {m.name!r}"
        problems += [f"{where}: {missing}" for missing in missing_references(m)]
    return models, problems


def missing_references(model: LiveDriftConfig) -> list[str]:
    """The reference files a model's live drift names that are not there, each as a sentence."""
    paths = [("reference", model.reference), ("reference_golden", model.reference_golden),
             *((f"reference_versions.{v}", p) for v, p in model.reference_versions.items())]
    return [f"{key} {str(path)!r} does not exist (relative paths are relative to the directory goldwatch runs in, "
            f"{Path.cwd()}); fix the path" for key, path in paths if path is not None and not path.exists()]


class LiveDriftExtension:
    """The sidecar extension (see the module docstring). ``live``: a ready :class:`LiveDrift` (tests); default:
    built from the config in :meth:`setup`."""

    name = "live-drift"

    def __init__(self, *, live: LiveDrift | None = None, source: str | None = None) -> None:
        self.live = live
        self.source = source or f"live-drift:{socket.gethostname()}"[:200]
        self.service: SidecarService | None = None
        self.sink_server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._follower: asyncio.Task[None] | None = None
        self._registry: Any = None
        self._versions: dict[str, str | None] = {}

    # -- set-up (SidecarService.__init__) ------------------------------------------------------------------

    def setup(self, service: SidecarService) -> None:
        from goldwatch.errors import ConfigError
        from goldwatch.watchdog.live.metrics import LiveDriftCollector
        from goldwatch.watchdog.live.routes import live_drift_routes
        from goldwatch.watchdog.live.service import LiveDrift
        from goldwatch.watchdog.live.state import JournalCheckpoints

        self.service = service
        config = service.config
        if self.live is None:
            models, problems = sidecar_models(config)
            if problems:
                raise ConfigError("; ".join(problems), where="goldwatch.toml [live_drift] / [serve.watch.drift]")
            section = config.live_drift.model_copy(update={"models": models})
            in_registry = {w.name: w.model_in_registry for w in config.serve.watch}
            if any(m.reference_registry for m in models):
                from goldwatch.watchdog.registry import Registry

                # its own handle: the sidecar's targets use theirs from the check threads, this one is the worker's
                self._registry = Registry.open(config.registry.root, create=False)
            self.live = LiveDrift.from_config(section, registry=self._registry, registry_models=in_registry,
                                              store=JournalCheckpoints(service.journal), on_result=self._on_result)
        else:
            self.live.on_result = self._on_result
            if self.live.store is None:
                self.live.store = JournalCheckpoints(service.journal)
        live = self.live
        for name, monitor in live.monitors.items():
            service.model(name)  # every monitored model is watched (UnknownModelError otherwise)
            monitor.body_versions = False
        service.register_kind(DRIFT_KIND)
        service.register_kind(DATA_QUALITY_KIND)
        service.add_routes(live_drift_routes(live, authorize=self._authorize))
        service.metrics.registry.register(LiveDriftCollector(live))
        service.on_start(self._start)
        service.on_stop(self._stop)

    async def _authorize(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        assert self.service is not None
        denied = self.service.authorize(request.headers.get("authorization"))
        if denied is None:
            return None
        status, why = denied
        return JSONResponse({"error": why}, status_code=status)

    # -- start / stop (the sidecar's event loop) --------------------------------------------------------------

    async def _start(self) -> None:
        from goldwatch.watchdog.sidecar.workers import in_thread

        assert self.live is not None
        assert self.service is not None
        self._loop = asyncio.get_running_loop()
        self._follow_once()
        await in_thread(self.live.start, name="goldwatch:live-drift-start")  # restores the journal's checkpoints
        port = self.service.config.live_drift.sink_port
        if port is not None:
            from goldwatch.watchdog.live.sinkserver import SinkServer

            self.sink_server = SinkServer(self.live, host=self.service.config.serve.host, port=port)
            await self.sink_server.start()
            log.info("live drift: the payload-logger sink also listens on %s:%d", self.service.config.serve.host,
                     self.sink_server.port)
        self._follower = asyncio.create_task(self._follow_versions())

    async def _stop(self) -> None:
        from goldwatch.watchdog.sidecar.workers import in_thread

        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._follower
        if self.sink_server is not None:
            with contextlib.suppress(Exception):
                await self.sink_server.stop()
        if self.live is not None:
            # the last checkpoint goes to the journal before the sidecar closes it
            await in_thread(self.live.stop, name="goldwatch:live-drift-stop")
        if self._registry is not None:
            with contextlib.suppress(Exception):
                self._registry.close()

    def _follow_once(self) -> None:
        assert self.live is not None
        assert self.service is not None
        for name in self.live.monitors:
            version = self.service.model(name).view.served_version
            if name not in self._versions or self._versions[name] != version:
                self._versions[name] = version
                self.live.set_version(name, version)

    async def _follow_versions(self) -> None:
        while True:
            await asyncio.sleep(VERSION_POLL_S)
            try:
                self._follow_once()
            except Exception:  # keep following
                log.exception("live drift: following the served version failed")

    # -- results (the live-drift worker thread) ---------------------------------------------------------------

    def _on_result(self, result: WindowResult) -> None:
        from goldwatch.watchdog.sidecar.evidence import ExternalReport

        service, loop = self.service, self._loop
        if service is None or loop is None or service.stopping or loop.is_closed():
            return
        for kind, checks in (("drift", result.drift_checks()), ("data_quality", result.quality_checks())):
            report = ExternalReport(source=self.source, kind=kind, version=result.version, interval_s=None,
                                    checks=tuple(checks))
            try:
                fut = asyncio.run_coroutine_threadsafe(service.submit_evidence(result.model, report), loop)
            except RuntimeError:  # the loop closed under us: the process is exiting
                return
            fut.add_done_callback(_log_failure(result.model, kind))


def _log_failure(model: str, kind: str) -> Callable[[Any], None]:
    def done(fut: Any) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            log.error("live drift: the sidecar did not take the %s evidence of %s: %s", kind, model, exc)

    return done
