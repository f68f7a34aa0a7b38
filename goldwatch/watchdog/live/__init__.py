"""Live-traffic drift: what a served model is asked and answers, tested window by window against a reference.

The flow, one module per step (a pure core; the HTTP routes and the worker thread are thin layers over it)::

    payload logger --CloudEvents--> routes (sink) --> events --> ingest (bounded queue, pairing) --+
    in-process observe(inputs, outputs) -----------------------------------------------------------+
        --> payload (OIP v2 / v1 / Seldon bodies -> named columns of the schema) --> window (count / time)
        --> assess (every feature at once vs the reference; data quality) --> trend (streaming detectors)
        --> policy (K consecutive windows; recovery) --> results (WindowResult -> Check) --> metrics, JSON, HTML

* :mod:`.events` -- CloudEvents as KServe's agent and Seldon send them (binary and structured mode);
* :mod:`.payload`, :mod:`.schema` -- bodies to named numeric and categorical columns;
* :mod:`.ingest` -- the per-model bounded queue (drops and counts, never blocks) and request/response pairing;
* :mod:`.reference` -- references per served version (file, golden set, registry), pre-sorted and counted once;
* :mod:`.window`, :mod:`.assess`, :mod:`.trend`, :mod:`.policy`, :mod:`.results` -- windows, tests, streaming
  detectors, the page rule, and the typed results that convert to :class:`~goldwatch.checks.Check`;
* :mod:`.monitor` -- one model: all of the above, with a checkpointable state;
* :mod:`.service` -- :class:`LiveDrift`, the models of one process, its worker thread and checkpoints
  (:mod:`.state`); :mod:`.metrics` (Prometheus), :mod:`.html` (the page), :mod:`.routes` (starlette).

In ``goldwatch serve``, :class:`.sidecar.LiveDriftExtension` mounts :func:`.routes.live_drift_routes`, registers
the evidence kinds ``drift`` (warning, never a rollback) and ``data_quality`` (error), submits
:meth:`.results.WindowResult.drift_checks` and :meth:`~.results.WindowResult.quality_checks` from ``on_result``,
follows the version the sidecar's registry serves, and keeps the checkpoints in its journal
(:class:`.state.JournalCheckpoints`). Importing this package imports neither starlette nor uvicorn.
"""

from goldwatch.watchdog.live.events import EventError, InferenceEvent, from_binary, from_structured
from goldwatch.watchdog.live.metrics import LiveDriftCollector
from goldwatch.watchdog.live.monitor import ModelMonitor
from goldwatch.watchdog.live.payload import Frame, PayloadError, decode_body, extract
from goldwatch.watchdog.live.reference import (
    LiveReference,
    PartReference,
    ReferenceStore,
    load_reference,
    reference_from_golden,
)
from goldwatch.watchdog.live.results import FeatureDrift, PartResult, PolicyState, QualityFinding, WindowResult
from goldwatch.watchdog.live.schema import Column, Schema
from goldwatch.watchdog.live.service import LiveDrift, SinkOutcome, UnknownModelError
from goldwatch.watchdog.live.state import JournalCheckpoints, SqliteCheckpoints

__all__ = [
    "Column",
    "EventError",
    "FeatureDrift",
    "Frame",
    "InferenceEvent",
    "JournalCheckpoints",
    "LiveDrift",
    "LiveDriftCollector",
    "LiveReference",
    "ModelMonitor",
    "PartReference",
    "PartResult",
    "PayloadError",
    "PolicyState",
    "QualityFinding",
    "ReferenceStore",
    "Schema",
    "SinkOutcome",
    "SqliteCheckpoints",
    "UnknownModelError",
    "WindowResult",
    "decode_body",
    "extract",
    "from_binary",
    "from_structured",
    "load_reference",
    "reference_from_golden",
]
