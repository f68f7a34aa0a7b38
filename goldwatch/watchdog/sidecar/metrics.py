"""The sidecar's Prometheus metrics: a registry of its own, updated by the service, rendered for ``/metrics``.

Names follow Prometheus conventions (a ``goldwatch_`` prefix, base units, ``_total`` counters, ``_seconds``
durations and timestamps); ``model`` and ``check`` (the kind of check) are the labels, never anything with
unbounded values such as a source's pid. :meth:`SidecarMetrics.render` is the pure core of the exposition (the
Accept header chooses Prometheus text or OpenMetrics); the HTTP app only wraps it in a response, the way
``prometheus_client.make_asgi_app`` does.

>>> m = SidecarMetrics(version="0.0.0")
>>> m.observe_run("fraud", "files", "pass", duration_s=0.01, finished_at=1700000000.0)
>>> m.set_model("fraud", healthy=True, incidents_open=0, rollback_ready=True, paused=False, acting=True)
>>> body, content_type = m.render("")
>>> content_type.startswith("text/plain")
True
>>> 'goldwatch_check_runs_total{check="files",model="fraud",status="pass"} 1.0' in body.decode()
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.exposition import choose_encoder

if TYPE_CHECKING:
    from goldwatch.watchdog.sidecar.evidence import Evidence

__all__ = ["SidecarMetrics", "document_metrics"]

# Seconds: from a readiness probe (ms) to hashing a large model (minutes).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Seconds: detection and recovery times, held against RTOs of about a minute.
INCIDENT_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
LATENESS_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class SidecarMetrics:
    """Every metric the sidecar exports, in a :class:`~prometheus_client.CollectorRegistry` of its own."""

    def __init__(self, *, version: str, registry: CollectorRegistry | None = None) -> None:
        # no *_created series: they double the exposition of every counter and histogram and tell little here
        disable_created_metrics()
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter("goldwatch_check_runs", "Check runs, by model, kind of check and outcome",
                            ["model", "check", "status"], registry=r)
        # per kind of check, not per model: fifty models' histograms would be most of the exposition (each run's
        # duration per model is in /v1/status)
        self.duration = Histogram("goldwatch_check_duration_seconds", "How long one check run took",
                                  ["check"], buckets=DURATION_BUCKETS, registry=r)
        self.last_success = Gauge("goldwatch_check_last_success_timestamp_seconds",
                                  "When a run of this check last passed (epoch seconds)", ["model", "check"],
                                  registry=r)
        self.lateness = Histogram("goldwatch_check_lateness_seconds",
                                  "How long after its due time a scheduled run started", ["check"],
                                  buckets=LATENESS_BUCKETS, registry=r)
        self.skipped = Counter("goldwatch_check_skipped", "Scheduled runs skipped: the previous run of the same "
                               "check was abandoned and is still going", ["model", "check"], registry=r)
        self.healthy = Gauge("goldwatch_model_healthy", "1 when every check of the model passes and no incident "
                             "is open", ["model"], registry=r)
        self.incidents_open = Gauge("goldwatch_incidents_open", "Open incidents of the model", ["model"], registry=r)
        self.rollback_ready = Gauge("goldwatch_rollback_ready", "1 when a verified rollback target exists",
                                    ["model"], registry=r)
        self.paused = Gauge("goldwatch_model_paused", "1 while the model is paused (no action, no page)",
                            ["model"], registry=r)
        self.acting = Gauge("goldwatch_model_acting", "0 once the flap guard stopped automatic action", ["model"],
                            registry=r)
        self.rollbacks = Counter("goldwatch_rollbacks", "Rollbacks, by outcome (ok, failed, interrupted, manual)",
                                 ["model", "outcome"], registry=r)
        self.evidence = Counter("goldwatch_evidence_reports", "Evidence reported from outside the sidecar",
                                ["model", "kind", "status"], registry=r)
        self.evidence_last = Gauge("goldwatch_evidence_last_report_timestamp_seconds",
                                   "When the last report of this kind about the model arrived (epoch seconds)",
                                   ["model", "kind"], registry=r)
        # the in-process agent's own numbers, as its reports carry them: a server whose metrics port nobody
        # scrapes (a torch server of one's own) still shows how the resident checks go (the last report's, of
        # whichever worker sent it)
        self.resident_rate = Gauge("goldwatch_resident_check_bytes_per_second",
                                   "Fingerprinting speed of the agent's last full pass, while busy (bytes/s)",
                                   ["model"], registry=r)
        self.resident_duty = Gauge("goldwatch_resident_duty_cycle",
                                   "Busy time / wall time of the agent's last full pass", ["model"], registry=r)
        self.resident_last_pass = Gauge("goldwatch_resident_last_full_pass_timestamp_seconds",
                                        "When the report of the agent's last full pass arrived (epoch seconds)",
                                        ["model"], registry=r)
        self.resident_bytes = Counter("goldwatch_resident_bytes_checked",
                                      "Resident bytes the agents report having fingerprinted", ["model"], registry=r)
        self.resident_mismatched = Gauge("goldwatch_resident_mismatched_blocks",
                                         "Resident blocks that differ in the agent's last full pass", ["model"],
                                         registry=r)
        # not per model (each incident's own times are in /v1/incidents and its page): fleet-wide distributions
        self.ttd = Histogram("goldwatch_time_to_detect_seconds",
                             "Incident detected minus started (the last passing check)",
                             buckets=INCIDENT_BUCKETS, registry=r)
        self.ttr = Histogram("goldwatch_time_to_recover_seconds", "Incident recovered minus detected",
                             buckets=INCIDENT_BUCKETS, registry=r)
        # disaster recovery: where traffic goes, and for how long it was not the primary
        self.degraded = Gauge("goldwatch_degraded", "1 while the model's traffic goes to an alternate (the fallback "
                              "or the CPU variant) instead of the primary", ["model"], registry=r)
        self.degraded_seconds = Counter("goldwatch_degraded_seconds", "Time the model's traffic spent on an "
                                        "alternate (degraded mode)", ["model"], registry=r)
        self.route_changes = Counter("goldwatch_route_changes", "Traffic moved, by where it went (primary, fallback, "
                                     "cpu_variant)", ["model", "route"], registry=r)
        self.alternate_ready = Gauge("goldwatch_alternate_ready", "1 when the alternate passed its golden sets at its "
                                     "last verification", ["model", "alternate"], registry=r)
        self.build = Info("goldwatch_build", "goldwatch's version", registry=r)
        self.build.info({"version": version})

    def observe_run(self, model: str, check: str, status: str, *, duration_s: float, finished_at: float) -> None:
        self.runs.labels(model, check, status).inc()
        self.duration.labels(check).observe(max(0.0, duration_s))
        if status == "pass":
            self.last_success.labels(model, check).set(finished_at)

    def observe_evidence(self, ev: Evidence) -> None:
        """A report from outside: counted; a resident report's full-pass numbers kept (see the gauges)."""
        self.evidence.labels(ev.model, ev.kind, ev.status).inc()
        self.evidence_last.labels(ev.model, ev.kind).set(ev.finished_at)
        if ev.kind != "resident":
            return
        for check in ev.checks:
            rate, duty, checked, blocks = (_number(check.measured.get(k)) for k in (
                "bytes_per_s", "duty_cycle", "bytes_checked", "mismatched_blocks"))
            if rate is None or duty is None or checked is None:
                continue  # not a full pass (an early report of a bad block, an error, an ONNX probe)
            self.resident_rate.labels(ev.model).set(rate)
            self.resident_duty.labels(ev.model).set(duty)
            self.resident_last_pass.labels(ev.model).set(ev.finished_at)
            self.resident_bytes.labels(ev.model).inc(max(0.0, checked))
            if blocks is not None:
                self.resident_mismatched.labels(ev.model).set(blocks)

    def observe_lateness(self, check: str, lateness_s: float) -> None:
        self.lateness.labels(check).observe(lateness_s)

    def set_model(self, model: str, *, healthy: bool, incidents_open: int, rollback_ready: bool | None,
                  paused: bool, acting: bool) -> None:
        self.healthy.labels(model).set(1 if healthy else 0)
        self.incidents_open.labels(model).set(incidents_open)
        if rollback_ready is not None:
            self.rollback_ready.labels(model).set(1 if rollback_ready else 0)
        self.paused.labels(model).set(1 if paused else 0)
        self.acting.labels(model).set(1 if acting else 0)

    def set_route(self, model: str, route: str, *, previous: str | None = None) -> None:
        self.degraded.labels(model).set(0 if route == "primary" else 1)
        self.degraded_seconds.labels(model)  # the series exists (at 0) before the first degradation
        if previous is not None and previous != route:
            self.route_changes.labels(model, route).inc()

    def render(self, accept: str) -> tuple[bytes, str]:
        """The exposition for an ``Accept`` header: (body, content type)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def document_metrics(registry: CollectorRegistry) -> None:
    """The sidecar's metrics in ``registry``, for the reference documentation (goldwatch.reference)."""
    from goldwatch._version import __version__

    SidecarMetrics(version=__version__, registry=registry)
