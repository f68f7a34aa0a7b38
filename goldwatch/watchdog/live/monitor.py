"""One model's live drift: queue, pairing, windows, tests, streaming detectors, page rule, state.

:class:`ModelMonitor` composes the pure pieces of this package. Producers -- the HTTP sink, the observe endpoint,
an in-process caller -- hand it events or rows through :meth:`~ModelMonitor.submit_event` and
:meth:`~ModelMonitor.submit_rows`, which only enqueue (bounded: a full queue drops and counts) and return at once.
The consumer, one worker thread for all models (or a test, directly), calls :meth:`~ModelMonitor.process`: it decodes
the queued bodies, leaves goldwatch's own probe traffic out, pairs requests with responses, adds the rows to the
window, closes the windows that are full or old, tests them and returns their :class:`WindowResult` s.

State that must survive a restart -- the window being filled, the streaming detectors' sums, the page rule's
count, the counters, the inferred schema -- goes through :meth:`~ModelMonitor.state_dict` and
:meth:`~ModelMonitor.load_state_dict` as JSON-able metadata plus numpy arrays (no pickle).

>>> import numpy as np
>>> from goldwatch.config import LiveDriftConfig
>>> from goldwatch.watchdog.live.reference import ReferenceStore, build_reference
>>> from goldwatch.watchdog.live.payload import Tensor, Tensors
>>> from goldwatch.watchdog.live.schema import Column, Schema
>>> schema = Schema.from_columns([Column("a"), Column("b")])
>>> rng = np.random.default_rng(0)
>>> rows = Tensors({"a": Tensor(rng.normal(size=5000), "FP64"), "b": Tensor(rng.normal(size=5000), "FP64")})
>>> ref = build_reference(rows, None, schema, version=None, source="example")
>>> cfg = LiveDriftConfig(window_rows=1000, min_window_rows=100)
>>> m = ModelMonitor("fraud", cfg, references=ReferenceStore.fixed(ref), schema=schema, clock=lambda: 0.0)
>>> accepted = [m.submit_rows({"a": rng.normal(size=1000), "b": rng.normal(0.5, size=1000)}) for _ in range(3)]
>>> [(r.index, r.drifted, r.state.paging) for r in m.process()]
[(0, True, False), (1, True, True), (2, True, True)]
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from goldwatch.config import LiveDriftConfig
from goldwatch.errors import DataError, GoldwatchError
from goldwatch.probe import is_probe_id
from goldwatch.watchdog.live.assess import PartAssessment, TestSettings, assess_part
from goldwatch.watchdog.live.events import InferenceEvent, Kind, make_event
from goldwatch.watchdog.live.ingest import BoundedQueue, IngestCounters, Pairer, Sampler
from goldwatch.watchdog.live.payload import ExtractPlan, PayloadError, Tensor, Tensors, decode_body, extract
from goldwatch.watchdog.live.policy import next_state
from goldwatch.watchdog.live.reference import LiveReference, ReferenceStore
from goldwatch.watchdog.live.results import PartResult, PolicyState, WindowResult
from goldwatch.watchdog.live.schema import Schema
from goldwatch.watchdog.live.trend import TrendTracker
from goldwatch.watchdog.live.window import ClosedWindow, WindowBuilder

__all__ = ["ModelMonitor"]

log = logging.getLogger("goldwatch.live")
_MIN_POOL_BATCH = 16  # fewer queued events are decoded in the worker thread (the hand-over costs more)

#: reasons an event is a schema violation (the body is readable but does not fit the model's columns)
SCHEMA_REASONS = frozenset({"wrong_shape", "missing_tensor", "bad_datatype"})
_PROBE_MEMORY = 4096  # keys of recent probe requests, so their responses are left out too


class _Half:
    """A decoded request or response waiting for its other half."""

    __slots__ = ("tensors", "time")

    def __init__(self, tensors: Tensors, when: str | None) -> None:
        self.tensors, self.time = tensors, when


class ModelMonitor:
    """Live drift of one model. Thread-safe between producers and the one consumer calling :meth:`process`."""

    def __init__(self, name: str, config: LiveDriftConfig, *, references: ReferenceStore | None,
                 schema: Schema | None = None, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.config = config
        self.references = references
        self.clock = clock
        self.settings = TestSettings(test=config.test, alpha=config.alpha, correction=config.correction,
                                     min_effect=config.min_effect, threshold=config.threshold,
                                     quality_alpha=config.quality_alpha,
                                     quality_min_increase=config.quality_min_increase)
        self.queue: BoundedQueue[tuple[Any, ...]] = BoundedQueue(max_items=config.max_queue_events,
                                                                 max_bytes=config.max_queue_bytes)
        self.counters = IngestCounters()
        self.pairer = Pairer(ttl_s=config.pair_ttl_s, max_pending=config.max_pending_pairs,
                             max_rows=config.max_pending_pairs * 64)
        self.sampler = Sampler(min_rate=config.min_sample_rate)
        self._arrived = 0
        self._last_round = time.monotonic()
        self.history: collections.deque[WindowResult] = collections.deque(maxlen=config.history)
        self.state = PolicyState(consecutive=0, paging=False, quality_paging=False, windows=0,
                                 required=config.consecutive)
        self.version: str | None = None
        self.version_pinned = False  # set by set_version (the sidecar / registry): responses do not change it
        #: False: only :meth:`set_version` names the version (the sidecar, whose registry may name versions
        #: otherwise than the server's ``model_version``); versions in bodies and in observe() are ignored
        self.body_versions = True
        self.last_window: ClosedWindow | None = None
        self.last_result: WindowResult | None = None
        self._probe_keys: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._lock = threading.Lock()  # the consumer's state (process, state_dict, load_state_dict)
        self.schema: Schema | None = None
        self.window: WindowBuilder | None = None
        self.trend: dict[str, TrendTracker] = {}
        self._pending_window_state: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None
        #: decodes a batch of (body, content type) in other processes (a DecodePool's), or None: in this thread
        self.decoder: Callable[[list[tuple[Any, str]]], list[Tensors | PayloadError]] | None = None
        if schema is not None and not schema.empty:
            self._set_schema(schema)

    # -- schema ---------------------------------------------------------------------------------------------

    def _set_schema(self, schema: Schema) -> None:
        self.schema = schema
        self._plans = {"inputs": ExtractPlan.of(schema.inputs), "outputs": ExtractPlan.of(schema.outputs)}
        n_in = sum(c.kind == "numeric" for c in schema.inputs)
        n_out = sum(c.kind == "numeric" for c in schema.outputs)
        self.window = WindowBuilder(numeric=(n_in, n_out),
                                    categorical=(len(schema.inputs) - n_in, len(schema.outputs) - n_out),
                                    max_rows=self.config.window_rows, max_seconds=self.config.window_seconds,
                                    min_rows=self.config.min_window_rows)
        self._reset_trend()
        if self._pending_window_state is not None:
            self.window.restore(*self._pending_window_state)
            self._pending_window_state = None

    def _reset_trend(self) -> None:
        self.trend = {}
        if self.schema is None or self.config.trend == "none":
            return
        for part in ("inputs", "outputs"):
            n = len(self.schema.part(part))
            self.trend[part] = TrendTracker(n, kind=self.config.trend, h=self.config.trend_h, k=self.config.trend_k)

    # -- producers (any thread) ----------------------------------------------------------------------------

    def submit_event(self, event: InferenceEvent) -> bool:
        """Queue one logged request or response; False when the queue was full (the event is dropped, counted).
        goldwatch's own probe requests (their ``Ce-Id``) are left out here, before any work."""
        if not self._admit(event.key, event.event_id):
            return True
        return self._queue_event(event)

    def submit_read(self, attrs: dict[str, Any], read: tuple[str, Kind, str, str, str | None], body: bytes,
                    content_type: str) -> bool:
        """:meth:`submit_event` for attributes read by :func:`~.events.read_attributes`: the event is built only
        when it is kept."""
        if not self._admit(read[3], read[2]):
            return True
        return self._queue_event(make_event(attrs, read, body, content_type))

    def _admit(self, key: str, event_id: str) -> bool:
        self._arrived += 1
        if is_probe_id(key) or is_probe_id(event_id):
            self.counters.add("probes")
            return False
        if not self.sampler.keep(key):
            self.counters.add("sampled_out")
            return False
        return True

    def _queue_event(self, event: InferenceEvent) -> bool:
        body = event.body
        size = len(body) if isinstance(body, (bytes, bytearray)) else 4096
        if not self.queue.put(("event", event), size + 256):
            self.counters.add("dropped_queue_full")
            return False
        return True

    def submit_rows(self, inputs: Any = None, outputs: Any = None, *, version: str | None = None) -> bool:
        """Queue rows observed in-process: ``inputs``/``outputs`` as a mapping of column (or tensor) name to values,
        an OIP v2/v1 body (dict), a pandas DataFrame, or a 2-D array of the schema's numeric columns in order."""
        size = sum(_nbytes(x) for x in (inputs, outputs)) + 256
        if not self.queue.put(("rows", inputs, outputs, version), size):
            self.counters.add("dropped_queue_full")
            return False
        return True

    def set_version(self, version: str | None) -> None:
        """The served version, from whoever knows it (the sidecar, the registry): the reference follows it."""
        self.queue.put(("version", version), 64, force=True)  # never dropped: it decides the reference

    # -- consumer ------------------------------------------------------------------------------------------

    def process(self, now: float | None = None, *, limit: int | None = None) -> list[WindowResult]:
        """Work through the queue (at most ``limit`` items: rounds stay short, so the sample rate follows a burst
        within one round), expire orphans, close due windows; the results of the windows closed."""
        with self._lock:
            started = time.monotonic()
            results: list[WindowResult] = []
            items = self.queue.drain(limit)
            decoded = self._decode_batch(items)
            pairs: list[tuple[Tensors, Tensors]] = []  # completed pairs, added to the window together
            for i, item in enumerate(items):
                now_item = self.clock() if now is None else now
                try:
                    if item[0] == "event":
                        pair = self._on_event(item[1], now_item, decoded.get(i))
                        if pair is not None:
                            pairs.append(pair)
                        continue
                    results += self._add_pairs(pairs, now_item)
                    pairs = []
                    if item[0] == "rows":
                        results += self._on_rows(item[1], item[2], item[3], now_item)
                    else:
                        results += self._switch_version(item[1], now_item, pinned=True)
                except PayloadError as exc:
                    self._count_bad(exc.reason, now_item)
            t = self.clock() if now is None else now
            results += self._add_pairs(pairs, t)
            for key, kind, half in self.pairer.expire(now=t):
                results += self._orphan(key, kind, half, t)
            if self.window is not None and self.window.due(now=t):
                results.append(self._close(t, "time"))
            if self.config.sampling:
                ended = time.monotonic()
                arrived, self._arrived = self._arrived, 0
                self.sampler.adjust(arrived=arrived, processed=len(items), busy_s=ended - started,
                                    elapsed_s=ended - self._last_round, backlog=len(self.queue))
                self._last_round = ended
            return results

    def _decode_batch(self, items: list[tuple[Any, ...]]) -> dict[int, Tensors | PayloadError]:
        """The bodies of the queued events, decoded by the pool in other processes when there is one and enough
        of them to be worth the hand-over; else nothing (each is decoded in this thread)."""
        if self.decoder is None:
            return {}
        idx = [i for i, item in enumerate(items) if item[0] == "event"]
        if len(idx) < _MIN_POOL_BATCH:
            return {}
        try:
            results = self.decoder([(items[i][1].body, items[i][1].content_type) for i in idx])
        except Exception:  # a broken pool must not lose the events: decode them here
            log.exception("live drift: the decode pool failed; decoding in the worker thread")
            return {}
        return dict(zip(idx, results))

    def flush(self, now: float | None = None) -> list[WindowResult]:
        """Shutdown: process the queue, count pending halves as orphans, close the window being filled."""
        t = self.clock() if now is None else now
        results = self.process(t)
        with self._lock:
            for key, kind, half in self.pairer.flush():
                results += self._orphan(key, kind, half, t)
            if self.window is not None and self.window.rows:
                results.append(self._close(t, "shutdown"))
        return results

    def _count_bad(self, reason: str, now: float) -> None:
        self.counters.bad(reason)
        if reason in SCHEMA_REASONS and self.window is not None:
            self.window.note_violation(reason, now)

    def _on_event(self, event: InferenceEvent, now: float, decoded: Tensors | PayloadError | None = None
                  ) -> tuple[Tensors, Tensors] | None:
        """Decode, leave probes out, pair; the (request, response) tensors when this event completes a pair."""
        self.counters.add("events")
        if isinstance(decoded, PayloadError):
            raise decoded
        tensors = decoded if decoded is not None else decode_body(event.body, content_type=event.content_type)
        if event.kind == "request" and tensors.probe:
            self.counters.add("probes")
            self._remember_probe(event.key)
            return None
        if event.key in self._probe_keys:  # the response of a probe request seen earlier
            self.counters.add("probes")
            return None
        if self.pairer.pending_kind(event.key) == event.kind:  # the same half again (a resent event)
            self.counters.add("duplicates")
            return None
        paired = self.pairer.add(event.key, event.kind, _Half(tensors, event.time_text), rows=tensors.n_rows, now=now)
        if paired is None:
            return None
        request, response = paired
        if request.tensors.probe:  # the response arrived first; its request carries the probe mark
            self.counters.add("probes")
            return None
        self.counters.add("pairs")
        return request.tensors, response.tensors

    def _add_pairs(self, pairs: list[tuple[Tensors, Tensors]], now: float) -> list[WindowResult]:
        """Add completed pairs in order. A run of pairs of one version whose bodies have the same tensors goes in
        as one block (one extraction, one window call: a handful of array operations for hundreds of pairs,
        which also keeps the worker from handing the GIL to the HTTP server at every step); anything else goes
        pair by pair."""
        results: list[WindowResult] = []
        i = 0
        def version_of(pair: tuple[Tensors, Tensors]) -> str | None:
            return (pair[1].version or pair[0].version) if self.body_versions else None

        while i < len(pairs):
            version = version_of(pairs[i])
            j = i + 1
            while j < len(pairs) and version_of(pairs[j]) == version:
                j += 1
            run = pairs[i:j]
            i = j
            block = None
            if self.schema is not None and len(run) > 1 and (version is None or version == self.version):
                block = _concat([r for r, _ in run]), _concat([r for _, r in run])
            if block is None or block[0] is None or block[1] is None or \
                    [r.n_rows for r, _ in run] != [r.n_rows for _, r in run]:
                for request, response in run:
                    try:
                        results += self._add(request, response, now)
                    except PayloadError as exc:
                        self._count_bad(exc.reason, now)
                continue
            try:
                results += self._add(block[0], block[1], now, events=len(run))
            except PayloadError:  # some body does not fit: find it, and count it, one by one
                for request, response in run:
                    try:
                        results += self._add(request, response, now)
                    except PayloadError as exc:
                        self._count_bad(exc.reason, now)
        return results

    def _remember_probe(self, key: str) -> None:
        self._probe_keys[key] = None
        while len(self._probe_keys) > _PROBE_MEMORY:
            self._probe_keys.popitem(last=False)
        if self.pairer.discard(key):  # its response came first and waits in the pairer
            self.counters.add("probes")

    def _orphan(self, key: Any, kind: str, half: _Half, now: float) -> list[WindowResult]:
        self.counters.add("orphan_requests" if kind == "request" else "orphan_responses")
        try:
            if kind == "request":
                return self._add(half.tensors, None, now)
            return self._add(None, half.tensors, now)
        except PayloadError as exc:
            self._count_bad(exc.reason, now)
            return []

    def _on_rows(self, inputs: Any, outputs: Any, version: str | None, now: float) -> list[WindowResult]:
        self.counters.add("events")
        ins = _as_tensors(inputs, self.schema.inputs if self.schema else None) if inputs is not None else None
        outs = _as_tensors(outputs, self.schema.outputs if self.schema else None) if outputs is not None else None
        if version is not None and outs is not None and outs.version is None:
            outs = Tensors(outs.tensors, version=version)
        elif version is not None and ins is not None:
            ins = Tensors(ins.tensors, version=version)
        return self._add(ins, outs, now)

    def _add(self, inputs: Tensors | None, outputs: Tensors | None, now: float, *, events: int = 1
             ) -> list[WindowResult]:
        results: list[WindowResult] = []
        if self.schema is None:
            inferred = Schema.infer(inputs.signature() if inputs else [], outputs.signature() if outputs else [])
            if not inferred.inputs and inputs is None:
                # an orphan response cannot set the inputs' columns: wait for a request
                raise PayloadError("missing_tensor", "no schema yet and no request to infer the input columns from")
            self._set_schema(inferred)
        assert self.schema is not None
        assert self.window is not None
        version = ((outputs.version if outputs is not None else None) or (inputs.version if inputs else None)
                   if self.body_versions else None)
        if version is not None and version != self.version:
            if self.version_pinned:
                self.counters.add("other_version")
                return results
            results += self._switch_version(version, now, pinned=False)
        in_frame = extract(inputs, self._plans["inputs"]) if inputs is not None and self.schema.inputs else None
        out_frame = extract(outputs, self._plans["outputs"]) if outputs is not None and self.schema.outputs else None
        if in_frame is not None and out_frame is not None and in_frame.n_rows != out_frame.n_rows:
            self.counters.add("row_mismatch")
            self.window.note_violation("row_mismatch", now)
            out_frame = None
        n = max(in_frame.n_rows if in_frame else 0, out_frame.n_rows if out_frame else 0)
        self.counters.add("rows", n)
        self.window.note_event(events)
        for closed in self.window.add(in_frame, out_frame, now=now, version=self.version):
            results.append(self._assess(closed))
        return results

    def _switch_version(self, version: str | None, now: float, *, pinned: bool) -> list[WindowResult]:
        """The served version changed (a promotion, a rollback): the window so far belongs to the old version and
        closes; the next is tested against the new version's reference, with fresh streaming detectors."""
        self.version_pinned = self.version_pinned or pinned
        if version == self.version:
            return []
        results = []
        # learning the version for the first time is no switch: the rows so far were served by it
        if self.window is not None and self.window.rows and self.version is not None:
            results.append(self._close(now, "version"))
        self.version = version
        self._reset_trend()
        self._warm_reference()
        return results

    def _warm_reference(self) -> None:
        """Load the served version's reference and fit its grids now, in this round, rather than in the first
        window's (which would hold the queue for the load: a burst behind it thins the sample for seconds)."""
        if self.schema is None or self.references is None:
            return
        try:
            reference = self.references.get(self.version)
        except (GoldwatchError, OSError):  # reported by the window that needs it
            return
        for part in (reference.inputs, reference.outputs):
            if part is not None:
                part.warm()

    def _close(self, now: float, reason: str) -> WindowResult:
        assert self.window is not None
        return self._assess(self.window.close(now=now, reason=reason))

    # -- one window ----------------------------------------------------------------------------------------

    def _assess(self, window: ClosedWindow) -> WindowResult:
        assert self.schema is not None
        reference: LiveReference | None = None
        reason = ""
        if window.too_small:
            reason = f"too small: {window.rows} rows < {window.min_rows}"
        else:
            try:
                if self.references is None:
                    raise DataError("no reference configured", where="reference")
                reference = self.references.get(self.version)
            except (GoldwatchError, OSError) as exc:
                reason = f"no reference for version {self.version!r}: {exc}"
        violations = sum(window.violations.values())
        parts: dict[str, PartResult | None] = {}
        evidence: dict[str, PartAssessment] = {}
        for part, frame in (("inputs", window.inputs), ("outputs", window.outputs)):
            cols = self.schema.part(part)  # type: ignore[arg-type]
            if not cols:
                parts[part] = None
                continue
            ref = reference.part(part) if reference is not None else None
            if reference is not None and ref is None:
                part_reason = "no reference for this part"
            elif frame.n_rows < window.min_rows and not reason:
                part_reason = f"too small: {frame.n_rows} rows < {window.min_rows}"
            else:
                part_reason = reason
            if part_reason or ref is None:
                parts[part] = PartResult(part=part, n_rows=frame.n_rows, tested=False, features=(),  # type: ignore[arg-type]
                                         quality=(), reason=part_reason or "no reference")
                continue
            assessed = assess_part(part, frame, ref, self.settings, violations=violations,  # type: ignore[arg-type]
                                   events=window.events)
            evidence[part] = assessed
            parts[part] = assessed.result
        tested = any(p is not None and p.tested for p in parts.values())
        drifted = any(p is not None and p.drifted for p in parts.values())
        # once the window tests themselves page (K in a row), the streaming detectors of the features they flag
        # start again from 0: nothing of that drift stays latched, and the first clean window recovers
        k_rule = tested and drifted and self.state.consecutive + 1 >= self.config.consecutive
        parts = {k: self._with_trend(k, v, evidence.get(k), reset_drifted=k_rule) for k, v in parts.items()}
        latched = any(bool(t.latched.any()) for t in self.trend.values())
        quality = any(p is not None and p.quality_failed for p in parts.values())
        self.state = next_state(self.state, tested=tested, drifted=drifted, latched=latched,
                                quality_failed=quality, required=self.config.consecutive)
        inputs = parts["inputs"] or PartResult(part="inputs", n_rows=window.inputs.n_rows, tested=False,
                                               features=(), quality=(), reason="no input columns")
        result = WindowResult(model=self.name, version=self.version, index=window.index,
                              opened_at=window.opened_at, closed_at=window.closed_at, rows=window.rows,
                              close_reason=window.close_reason, inputs=inputs, outputs=parts["outputs"],
                              state=self.state, ingest=self.counters.snapshot(),
                              reference=reference.source if reference is not None else "")
        self.history.append(result)
        self.last_window, self.last_result = window, result
        return result

    def _with_trend(self, part: str, result: PartResult | None, assessed: PartAssessment | None, *,
                    reset_drifted: bool) -> PartResult | None:
        tracker = self.trend.get(part)
        if result is None or assessed is None or tracker is None or not result.tested:
            return result
        if self.settings.test != "ks" and not result.features:
            return result
        drifted = np.array([f.drifted and reset_drifted for f in result.features], dtype=bool)
        alarm = tracker.update(assessed.pvalue, assessed.effect, min_effect=self.settings.min_effect, drifted=drifted)
        if not alarm.any():
            return result
        import dataclasses

        features = tuple(dataclasses.replace(f, trend_alarm=bool(a)) if a else f
                         for f, a in zip(result.features, alarm))
        return dataclasses.replace(result, features=features)

    # -- state ---------------------------------------------------------------------------------------------

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able metadata and numpy arrays that let a new monitor continue where this one is."""
        with self._lock:
            meta: dict[str, Any] = {
                "model": self.name, "version": self.version, "version_pinned": self.version_pinned,
                "state": self.state.to_dict(), "counters": self.counters.snapshot(),
                "schema": None if self.schema is None else self.schema.to_dict(),
                "history": [r.to_dict() for r in list(self.history)[-10:]],
            }
            arrays: dict[str, np.ndarray] = {}
            if self.window is not None:
                wmeta, warrays = self.window.state()
                meta["window"] = wmeta
                arrays.update({f"window.{k}": v for k, v in warrays.items()})
            trend_meta = {}
            for part, tracker in self.trend.items():
                tm, ta = _flatten(tracker.state_dict(), f"trend.{part}.")
                trend_meta[part] = tm
                arrays.update(ta)
            meta["trend"] = trend_meta
            return meta, arrays

    def load_state_dict(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Continue from a saved state (the same model, schema and trend settings)."""
        with self._lock:
            self.version = meta.get("version")
            self.version_pinned = bool(meta.get("version_pinned", False))
            s = dict(meta["state"])
            self.state = PolicyState(consecutive=int(s["consecutive"]), paging=bool(s["paging"]),
                                     quality_paging=bool(s["quality_paging"]), windows=int(s["windows"]),
                                     required=self.config.consecutive)
            self.counters.restore(dict(meta.get("counters") or {}))
            if self.schema is None and meta.get("schema"):
                self._set_schema(Schema.from_dict(meta["schema"]))
            if meta.get("window") is not None:
                wstate = (dict(meta["window"]), {k[len("window."):]: v for k, v in arrays.items()
                                                 if k.startswith("window.")})
                if self.window is not None:
                    self.window.restore(*wstate)
                else:
                    self._pending_window_state = wstate
            for part, tm in dict(meta.get("trend") or {}).items():
                state = _unflatten(tm, arrays, f"trend.{part}.")
                tracker = TrendTracker.from_state_dict(state)
                if part in self.trend and tracker.n_features == self.trend[part].n_features and \
                        tracker.kind == self.trend[part].kind:
                    self.trend[part] = tracker

    # -- reports -------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What the API and the metrics show: the state, the counters, the queue, the last window."""
        last = self.last_result
        return {
            "model": self.name, "version": self.version, "state": self.state.to_dict(),
            "ingest": self.counters.snapshot() | {"queue_events": len(self.queue), "queue_bytes": self.queue.nbytes,
                                                   "dropped_queue_full": self.queue.dropped,
                                                   "pending_halves": len(self.pairer),
                                                   "sample_rate": round(self.sampler.rate, 4)},
            "window": {"index": self.window.index if self.window else 0,
                       "rows": self.window.rows if self.window else 0,
                       "opened_at": self.window.opened_at if self.window else None},
            "schema": None if self.schema is None else self.schema.to_dict(),
            "last": None if last is None else last.to_dict(),
        }


def _concat(parts: list[Tensors]) -> Tensors | None:
    """Bodies with the same tensors (names, datatypes, row shapes) as one body of all their rows; else None."""
    first = parts[0].tensors
    keys = list(first)
    out = {}
    for name in keys:
        t0 = first[name]
        arrays = []
        for p in parts:
            t = p.tensors.get(name)
            if t is None or len(p.tensors) != len(keys) or t.datatype != t0.datatype or \
                    t.array.shape[1:] != t0.array.shape[1:]:
                return None
            arrays.append(t.array)
        out[name] = Tensor(np.concatenate(arrays), t0.datatype)
    return Tensors(out, version=parts[-1].version)


def _nbytes(x: Any) -> int:
    if x is None:
        return 0
    if isinstance(x, np.ndarray):
        return int(x.nbytes)
    if isinstance(x, Mapping):
        return sum(_nbytes(v) if isinstance(v, np.ndarray) else 64 * (len(v) if hasattr(v, "__len__") else 1)
                   for v in x.values())
    if hasattr(x, "memory_usage"):
        return int(x.memory_usage(deep=False).sum())
    return 4096


def _as_tensors(data: Any, columns: Any) -> Tensors:
    """In-process rows as :class:`Tensors` (see :meth:`ModelMonitor.submit_rows`)."""
    if isinstance(data, Tensors):
        return data
    if isinstance(data, Mapping) and any(k in data for k in ("inputs", "outputs", "instances", "predictions", "data")):
        return decode_body(data)
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):
        data = {str(c): data[c].to_numpy() for c in data.columns}
    if isinstance(data, Mapping):
        out = {}
        for name, values in data.items():
            arr = np.asarray(values)
            text = arr.dtype.kind in "USO"
            out[str(name)] = Tensor(arr.astype(object) if text else arr.astype(np.float64), "BYTES" if text else "FP64")
        if len({t.array.shape[0] for t in out.values()}) > 1:
            raise PayloadError("wrong_shape", "the columns have different lengths")
        return Tensors(out)
    arr = np.asarray(data)
    if columns is None or arr.ndim != 2 or arr.shape[1] != len(columns) or any(c.kind != "numeric" for c in columns):
        raise PayloadError("wrong_shape", f"a plain array of shape {list(arr.shape)} does not name its columns; pass "
                                          "a mapping of column name to values")
    return Tensors({c.name: Tensor(arr[:, j].astype(np.float64), "FP64") for j, c in enumerate(columns)})


def _flatten(state: Mapping[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    meta: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            arrays[prefix + key] = value
            meta[key] = {"__array__": prefix + key}
        elif isinstance(value, Mapping):
            sub_meta, sub_arrays = _flatten(value, f"{prefix}{key}.")
            meta[key] = sub_meta
            arrays.update(sub_arrays)
        else:
            meta[key] = value.item() if isinstance(value, np.generic) else value
    return meta, arrays


def _unflatten(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if isinstance(value, Mapping) and "__array__" in value:
            out[key] = np.asarray(arrays[value["__array__"]])
        elif isinstance(value, Mapping):
            out[key] = _unflatten(value, arrays, f"{prefix}{key}.")
        else:
            out[key] = value
    return out
