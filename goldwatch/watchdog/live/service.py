"""Live drift for the models of one process: the sink, the worker, the checkpoints, the results.

:class:`LiveDrift` holds one :class:`~goldwatch.watchdog.live.monitor.ModelMonitor` per watched model and is what a
host (the sidecar, a test, a script) talks to:

* :meth:`~LiveDrift.sink` -- one HTTP request from a payload logger (binary or structured CloudEvent), routed to
  its model by the path or the event's ``Ce-Inferenceservicename`` / ``Ce-Modelid``; only queues, so the answer
  (200, empty) goes out within milliseconds;
* :meth:`~LiveDrift.observe` -- rows from inside the process (an agent, an MLServer runtime);
* :meth:`~LiveDrift.process` -- the consumer's round over every model; :meth:`~LiveDrift.start` runs it in one
  daemon thread every ``tick_s``, hands each closed window to ``on_result`` and checkpoints;
* :meth:`~LiveDrift.status` and :meth:`~LiveDrift.html` -- what the API and the page show.

:meth:`LiveDrift.from_config` builds it from ``[live_drift]``: the schema from the columns given, else the
golden set's signature, else the first request; the references from a file, per-version files, a golden set, or the
golden sets a registry version links.

>>> import numpy as np
>>> from goldwatch.config import LiveDriftModelConfig, LiveDriftSection
>>> from goldwatch.watchdog.live.reference import ReferenceStore, build_reference
>>> from goldwatch.watchdog.live.payload import Tensor, Tensors
>>> rng = np.random.default_rng(1)
>>> section = LiveDriftSection(models=[LiveDriftModelConfig(name="fraud", window_rows=500, min_window_rows=50,
...                                                         inputs=[{"name": "x", "tensor": "input-0", "index": 0}])])
>>> live = LiveDrift.from_config(section)
>>> ref = build_reference(Tensors({"input-0": Tensor(rng.normal(size=(2000, 1)), "FP64")}), None,
...                       live.monitor("fraud").schema, version=None, source="example")
>>> live.monitor("fraud").references = ReferenceStore.fixed(ref)
>>> body = {"inputs": [{"name": "input-0", "shape": [500, 1], "datatype": "FP64",
...                     "data": rng.normal(2.0, size=500).tolist()}]}
>>> headers = {"ce-specversion": "1.0", "ce-id": "r-1", "ce-source": "http://localhost:9081/",
...            "ce-type": "org.kubeflow.serving.inference.request", "ce-inferenceservicename": "fraud",
...            "content-type": "application/json"}
>>> import json
>>> live.sink(headers, json.dumps(body).encode()).status
200
>>> live.flush()[0].drifted
True
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from goldwatch.config import LiveDriftConfig, LiveDriftSection
from goldwatch.errors import ConfigError, DataError, GoldwatchError
from goldwatch.watchdog.live.events import STRUCTURED, EventError, from_structured, read_attributes
from goldwatch.watchdog.live.ingest import IngestCounters
from goldwatch.watchdog.live.monitor import ModelMonitor
from goldwatch.watchdog.live.reference import (
    LiveReference,
    ReferenceStore,
    load_reference,
    reference_from_golden,
)
from goldwatch.watchdog.live.results import WindowResult
from goldwatch.watchdog.live.schema import Column, Schema
from goldwatch.watchdog.live.state import CheckpointStore, decode_state, encode_state

__all__ = ["LiveDrift", "SinkOutcome", "UnknownModelError"]

log = logging.getLogger("goldwatch.live")

#: queued items one model's round takes at most in the worker (~0.1-0.3 s of work at the sample rate's limit)
ROUND_ITEMS = 2048


class UnknownModelError(GoldwatchError):
    """An event or request for a model this process does not watch."""


@dataclasses.dataclass(frozen=True)
class SinkOutcome:
    """The sink's answer to one HTTP request: a status and, for an error, one line saying why."""

    status: int
    message: str = ""
    model: str | None = None


class LiveDrift:
    """Live drift of several models (see the module docstring)."""

    def __init__(self, monitors: Mapping[str, ModelMonitor], *, aliases: Mapping[str, str] | None = None,
                 store: CheckpointStore | None = None, on_result: Callable[[WindowResult], None] | None = None,
                 clock: Callable[[], float] = time.time, max_body_bytes: int = 8 << 20, tick_s: float = 0.05,
                 checkpoint_interval_s: float = 30.0, decode_processes: int = 0,
                 switch_interval_ms: float | None = None) -> None:
        self.monitors = dict(monitors)
        self.aliases = {name: name for name in self.monitors} | dict(aliases or {})
        self.store = store
        self.on_result = on_result
        self.clock = clock
        self.max_body_bytes = int(max_body_bytes)
        self.tick_s, self.checkpoint_interval_s = float(tick_s), float(checkpoint_interval_s)
        self.counters = IngestCounters()  # requests no model could be found for, envelopes that are not events
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_checkpoint = 0.0
        self._round_lock = threading.Lock()
        self.decode_processes = int(decode_processes)
        self.switch_interval_ms = switch_interval_ms
        self._pool: Any = None
        self._saved_switch: float | None = None

    # -- construction ----------------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, section: LiveDriftSection, *, registry: Any = None, store: CheckpointStore | None = None,
                    on_result: Callable[[WindowResult], None] | None = None,
                    clock: Callable[[], float] = time.time, base_dir: Path | None = None,
                    registry_models: Mapping[str, str] | None = None) -> LiveDrift:
        """One monitor per enabled ``[[live_drift.models]]`` entry (paths relative to ``base_dir``).
        ``registry_models``: a model's name in the registry where it differs (``reference_registry``)."""
        monitors: dict[str, ModelMonitor] = {}
        aliases: dict[str, str] = {}
        for cfg in section.models:
            if not cfg.enabled:
                continue
            cfg = _resolved(cfg, base_dir)
            in_registry = (registry_models or {}).get(cfg.name, cfg.name)
            schema = _configured_schema(cfg, registry=registry, model=in_registry)
            monitor = ModelMonitor(cfg.name, cfg, references=None, schema=schema, clock=clock)
            monitor.references = ReferenceStore(_resolver(cfg, monitor, registry=registry, model=in_registry))
            monitors[cfg.name] = monitor
            aliases.update({a: cfg.name for a in cfg.aliases})
        return cls(monitors, aliases=aliases, store=store, on_result=on_result, clock=clock,
                   max_body_bytes=section.max_body_bytes, decode_processes=section.decode_processes,
                   switch_interval_ms=section.switch_interval_ms)

    # -- producers -------------------------------------------------------------------------------------------

    def monitor(self, name: str) -> ModelMonitor:
        """The monitor of ``name`` (or an alias); :class:`UnknownModelError` names the models watched."""
        key = self.aliases.get(name)
        if key is None:
            known = ", ".join(sorted(self.monitors)) or "none"
            raise UnknownModelError(f"model {name!r} is not watched for live drift (watched: {known})",
                                    where="model", hint="add it under [[live_drift.models]] (name or aliases)")
        return self.monitors[key]

    def sink(self, headers: Mapping[str, str], body: bytes, *, model: str | None = None) -> SinkOutcome:
        """One request from a payload logger: ``headers`` with lower-case names. Queues and answers at once."""
        if len(body) > self.max_body_bytes:
            self.counters.bad("too_large")
            return SinkOutcome(413, f"body of {len(body)} bytes exceeds {self.max_body_bytes}")
        content_type = headers.get("content-type", "")
        if content_type.startswith(STRUCTURED):
            try:
                event = from_structured(body)
            except EventError as exc:
                return self._refused(exc)
            found = self._monitor_for(model or event.model)
            if isinstance(found, SinkOutcome):
                return found
            found.submit_event(event)  # a full queue drops and counts: the sender still gets its 200
            return SinkOutcome(200, model=found.name)
        if "ce-type" in headers or "ce-id" in headers:
            attrs = {name[3:]: value for name, value in headers.items() if name.startswith("ce-")}
            return self.sink_attributes(attrs, body, content_type=content_type or "application/json", model=model)
        self.counters.bad("not_cloudevent")
        return SinkOutcome(400, "not a CloudEvent: no ce-* headers and not application/cloudevents+json")

    def sink_attributes(self, attrs: dict[str, Any], body: bytes, *, content_type: str = "application/json",
                        model: str | None = None) -> SinkOutcome:
        """A binary-mode event whose ``ce-*`` headers are already ``attrs`` (names without ``ce-``): the same
        answers as :meth:`sink`, with the body size already checked. A pair the sample leaves out (or a probe)
        is counted before the event is even built."""
        try:
            read = read_attributes(attrs)
        except EventError as exc:
            return self._refused(exc)
        found = self._monitor_for(model or read[4])
        if isinstance(found, SinkOutcome):
            return found
        found.submit_read(attrs, read, body, content_type)
        return SinkOutcome(200, model=found.name)

    def _refused(self, exc: EventError) -> SinkOutcome:
        self.counters.bad(exc.reason)
        if exc.reason == "unknown_type":  # another event type on a shared sink: not ours, not an error
            return SinkOutcome(200)
        return SinkOutcome(400, str(exc))

    def _monitor_for(self, name: str | None) -> ModelMonitor | SinkOutcome:
        if name is None and len(self.monitors) == 1:
            name = next(iter(self.monitors))
        if name is None:
            self.counters.add("unknown_model")
            return SinkOutcome(404, "the event names no model (Ce-Inferenceservicename) and the path none")
        try:
            return self.monitor(name)
        except UnknownModelError as exc:
            self.counters.add("unknown_model")
            return SinkOutcome(404, str(exc))

    def observe(self, model: str, inputs: Any = None, outputs: Any = None, *, version: str | None = None) -> bool:
        """Rows observed in-process (see :meth:`ModelMonitor.submit_rows`); False when the queue was full."""
        return self.monitor(model).submit_rows(inputs, outputs, version=version)

    def set_version(self, model: str, version: str | None) -> None:
        """The version now served (from the sidecar or the registry): the reference follows it."""
        self.monitor(model).set_version(version)

    # -- consumer --------------------------------------------------------------------------------------------

    def process(self, now: float | None = None, *, limit: int | None = None) -> list[WindowResult]:
        """One round over every model (at most ``limit`` queued items of each); hands each closed window to
        ``on_result``."""
        with self._round_lock:
            results: list[WindowResult] = []
            for monitor in self.monitors.values():
                results += monitor.process(now, limit=limit)
            self._publish(results)
            t = self.clock() if now is None else now
            if results or t - self._last_checkpoint >= self.checkpoint_interval_s:
                self.checkpoint(now=t)
            return results

    def flush(self, now: float | None = None) -> list[WindowResult]:
        """Shutdown: everything queued is processed and every window being filled is closed and tested."""
        with self._round_lock:
            results: list[WindowResult] = []
            for monitor in self.monitors.values():
                results += monitor.flush(now)
            self._publish(results)
            return results

    def _publish(self, results: list[WindowResult]) -> None:
        if self.on_result is None:
            return
        for result in results:
            try:
                self.on_result(result)
            except Exception:  # a consumer's bug must not stop the windows
                log.exception("live drift: on_result failed for %s window %d", result.model, result.index)

    def start(self) -> None:
        """Restore the checkpoints, then run :meth:`process` every ``tick_s`` in a daemon thread."""
        if self._thread is not None:
            return
        self.restore()
        if self.decode_processes and self._pool is None:
            from goldwatch.watchdog.live.decoding import DecodePool

            self._pool = DecodePool(self.decode_processes)
            for monitor in self.monitors.values():
                monitor.decoder = self._pool.decode
        if self.switch_interval_ms is not None:  # the host asked for it ([live_drift] switch_interval_ms)
            self._saved_switch = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval_ms / 1000)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="goldwatch-live-drift", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        _warm_imports()
        backlog = False
        while not self._stop.wait(0.0 if backlog else self.tick_s):
            try:
                self.process(limit=ROUND_ITEMS)
            except Exception:  # keep the worker alive; the next round retries
                log.exception("live drift: a processing round failed")
            # a full round leaves a backlog: the next starts at once (after the sample rate was adjusted)
            backlog = any(len(m.queue) for m in self.monitors.values())

    def stop(self, *, flush: bool = False) -> list[WindowResult]:
        """Stop the worker; process what is queued (``flush``: also close the windows being filled), checkpoint."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=30)
            self._thread = None
        results = self.flush() if flush else self.process()
        self.checkpoint()
        if self._pool is not None:
            for monitor in self.monitors.values():
                monitor.decoder = None
            self._pool.close()
            self._pool = None
        if self._saved_switch is not None:
            sys.setswitchinterval(self._saved_switch)
            self._saved_switch = None
        return results

    # -- checkpoints -----------------------------------------------------------------------------------------

    def checkpoint(self, *, now: float | None = None) -> None:
        """Save every model's state (the window being filled, detector sums, page-rule count)."""
        self._last_checkpoint = self.clock() if now is None else now
        if self.store is None:
            return
        for name, monitor in self.monitors.items():
            try:
                self.store.save(name, encode_state(*monitor.state_dict()))
            except Exception:  # a full disk must not stop the windows; the next round tries again
                log.exception("live drift: checkpoint of %s failed", name)

    def restore(self) -> list[str]:
        """Load the saved state of every model that has one; the names restored."""
        if self.store is None:
            return []
        restored = []
        for name, monitor in self.monitors.items():
            data = self.store.load(name)
            if data is None:
                continue
            try:
                monitor.load_state_dict(*decode_state(data))
                restored.append(name)
            except (GoldwatchError, KeyError, ValueError, TypeError) as exc:
                log.warning("live drift: the checkpoint of %s is not usable (%s); starting fresh", name, exc)
        return restored

    # -- reports ---------------------------------------------------------------------------------------------

    def status(self, model: str, *, windows: int = 20) -> dict[str, Any]:
        """The JSON of ``GET /v1/models/{model}/drift``: state, ingestion, the last ``windows`` windows."""
        monitor = self.monitor(model)
        out = monitor.snapshot()
        out["windows"] = [r.to_dict() for r in list(monitor.history)[-windows:]][::-1]
        out["sink"] = self.counters.snapshot()
        return out

    def html(self, model: str) -> str:
        from goldwatch.watchdog.live.html import render_page

        return render_page(self.monitor(model))


def _warm_imports() -> None:
    """What the first window imports (scipy's distributions: ~1-2 s, much of it holding the GIL), paid before the
    first round rather than in it, where a burst of events would queue behind it."""
    try:
        import scipy.stats  # noqa: F401

        from goldwatch.detectors import ks  # noqa: F401
    except ImportError:  # pragma: no cover - scipy is a dependency
        pass


def _resolved(cfg: LiveDriftConfig, base: Path | None) -> Any:
    if base is None:
        return cfg

    def fix(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else base / p

    return cfg.model_copy(update={"reference": fix(cfg.reference) or cfg.reference,
                                  "reference_golden": fix(cfg.reference_golden) or cfg.reference_golden,
                                  "reference_versions": {k: fix(v) or v for k, v in cfg.reference_versions.items()}})


def _configured_schema(cfg: LiveDriftConfig, *, registry: Any, model: str) -> Schema | None:
    """The columns from the config; else the golden set's (or the served registry version's) signature; else None
    (the first request sets them)."""
    if cfg.inputs or cfg.outputs:
        return Schema(inputs=tuple(Column(c.name, c.kind, c.tensor, c.index, c.derive) for c in cfg.inputs),
                      outputs=tuple(Column(c.name, c.kind, c.tensor, c.index, c.derive) for c in cfg.outputs))
    golden = None
    if cfg.reference_golden is not None:
        golden = _load_golden([cfg.reference_golden])
    elif cfg.reference_registry and registry is not None:
        try:
            golden = _registry_golden(registry, model, None)
        except GoldwatchError:  # nothing served yet: the newest version with a golden set tells the columns
            linked = [v for v in registry.list(model) if v.golden] if model in registry.models() else []
            golden = _load_golden([linked[-1].golden[0]]) if linked else None
    if golden:
        return Schema.from_signature(golden[0].signature)
    return None


def _load_golden(paths: list[Any]) -> list[Any]:
    from goldwatch.golden_sets import GoldenSet

    return [GoldenSet.load(p) for p in paths]


def _registry_golden(registry: Any, model: str, version: str | None) -> list[Any]:
    if version is None:
        target = registry.serving_target(model)
        if target is None or target[0] is None:
            raise DataError(f"the registry serves no version of {model!r}", where="reference_registry",
                            hint="promote a version, or give a reference file")
        version = target[0]
    mv = registry.get(model, version)
    if not mv.golden:
        raise DataError(f"version {version} of {model!r} links no golden set", where="reference_registry",
                        hint="add it with --golden, or give a reference file")
    return _load_golden(list(mv.golden))


def _resolver(cfg: LiveDriftConfig, monitor: ModelMonitor, *, registry: Any, model: str
              ) -> Callable[[str | None], LiveReference]:
    def resolve(version: str | None) -> LiveReference:
        schema = monitor.schema
        if schema is None:
            raise DataError("the schema is not known yet", where="reference")
        if version is not None and version in cfg.reference_versions:
            return load_reference(cfg.reference_versions[version], schema, version=version)
        if cfg.reference is not None:
            return load_reference(cfg.reference, schema, version=version)
        if cfg.reference_golden is not None:
            return reference_from_golden(_load_golden([cfg.reference_golden]), schema, version=version)
        if cfg.reference_registry:
            if registry is None:
                raise ConfigError("reference_registry needs a registry", where=f"live_drift.models: {monitor.name}")
            return reference_from_golden(_registry_golden(registry, model, version), schema, version=version)
        raise DataError(f"no reference for version {version!r}", where=f"live_drift.models: {monitor.name}",
                        hint="set reference, reference_versions, reference_golden or reference_registry")

    return resolve
