"""The agent's Prometheus metrics, per model, in the registry of the process it runs in.

Created on first use, not at import: MLServer switches prometheus_client to its multi-process mode in each worker
before models load, and only metrics created after that switch reach its ``/metrics`` endpoint (gauges then carry
the worker's ``pid`` label). One set per registry, shared by every agent of the process, labelled by ``model``.

======================================================  ==========================================================
goldwatch_agent_bytes_checked_total                     bytes fingerprinted (counter; its rate is the wall rate)
goldwatch_agent_busy_seconds_total                      time spent fingerprinting (device time on a GPU)
goldwatch_agent_check_bytes_per_second                  fingerprinting speed while busy, last full pass
goldwatch_agent_duty_cycle                              busy time / wall time of the last full pass
goldwatch_agent_last_full_pass_timestamp_seconds        when the last complete pass (or probe) finished
goldwatch_agent_last_full_pass_duration_seconds         its wall time
goldwatch_agent_mismatched_blocks                       blocks that differ in the last pass (0 when intact)
goldwatch_agent_covered_bytes{how}                      resident bytes covered, by how (file, derived, ...)
goldwatch_agent_uncovered_tensors                       resident tensors the agent cannot check
goldwatch_agent_reports_total{outcome}                  reports delivered / rejected / failed / dropped
======================================================  ==========================================================

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> registry = CollectorRegistry()
>>> m = agent_metrics(registry)
>>> m.duty_cycle.labels(model="fraud").set(0.01)
>>> agent_metrics(registry) is m
True
>>> b"goldwatch_agent_duty_cycle{model=\\"fraud\\"} 0.01" in generate_latest(registry)
True
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

__all__ = ["AgentMetrics", "agent_metrics", "document_metrics"]

_LOCK = threading.Lock()
_BY_REGISTRY: dict[int, tuple[Any, AgentMetrics]] = {}


@dataclasses.dataclass(frozen=True)
class AgentMetrics:
    bytes_checked: Any
    busy_seconds: Any
    check_rate: Any
    duty_cycle: Any
    last_pass: Any
    pass_duration: Any
    mismatched_blocks: Any
    covered_bytes: Any
    uncovered_tensors: Any
    reports: Any


def agent_metrics(registry: Any = None) -> AgentMetrics:
    """The agent metrics registered in ``registry`` (prometheus_client's default registry when None)."""
    from prometheus_client import REGISTRY, Counter, Gauge

    registry = REGISTRY if registry is None else registry
    with _LOCK:
        hit = _BY_REGISTRY.get(id(registry))
        if hit is not None and hit[0] is registry:
            return hit[1]
        model = ["model"]
        metrics = AgentMetrics(
            bytes_checked=Counter("goldwatch_agent_bytes_checked", "Resident bytes fingerprinted by the agent",
                                  model, registry=registry),
            busy_seconds=Counter("goldwatch_agent_busy_seconds",
                                 "Time the agent spent fingerprinting (device time on a GPU); its rate is the duty "
                                 "cycle used", model, registry=registry),
            check_rate=Gauge("goldwatch_agent_check_bytes_per_second",
                             "Fingerprinting speed while busy in the last full pass (bytes/s)", model,
                             registry=registry),
            duty_cycle=Gauge("goldwatch_agent_duty_cycle", "Busy time / wall time of the last full pass", model,
                             registry=registry),
            last_pass=Gauge("goldwatch_agent_last_full_pass_timestamp_seconds",
                            "Unix time the last complete pass (or golden probe) finished", model, registry=registry),
            pass_duration=Gauge("goldwatch_agent_last_full_pass_duration_seconds",
                                "Wall time of the last complete pass (or golden probe)", model, registry=registry),
            mismatched_blocks=Gauge("goldwatch_agent_mismatched_blocks",
                                    "Resident blocks that differ from their expectation in the last pass", model,
                                    registry=registry),
            covered_bytes=Gauge("goldwatch_agent_covered_bytes", "Resident bytes the agent checks, by how",
                                [*model, "how"], registry=registry),
            uncovered_tensors=Gauge("goldwatch_agent_uncovered_tensors", "Resident tensors the agent cannot check",
                                    model, registry=registry),
            reports=Counter("goldwatch_agent_reports", "Evidence reports by outcome", [*model, "outcome"],
                            registry=registry),
        )
        _BY_REGISTRY[id(registry)] = (registry, metrics)
        return metrics


def document_metrics(registry: Any) -> None:
    """The agent's metrics in ``registry``, for the reference documentation (goldwatch.reference)."""
    agent_metrics(registry)
