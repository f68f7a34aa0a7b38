"""The metrics reference: every Prometheus metric goldwatch exports, collected from the metric definitions.

**Convention** (for every module that defines Prometheus metrics): define a top-level function

.. code-block:: python

    def document_metrics(registry: prometheus_client.CollectorRegistry) -> None:
        \"\"\"Register this module's metrics in ``registry``, starting nothing.\"\"\"

that creates the module's metrics (or registers its collector over a small example state) in the registry it is
given. The generator finds these functions by reading the source, calls each with a fresh registry, and reads the
name, type, help text and label names of every metric -- so the reference cannot list a metric the code does not
export, nor miss one. A test fails when a module creates metrics (imports ``Counter``, ``Gauge``, ``Histogram``,
``Summary``, ``Info``, ``Enum`` or a ``*MetricFamily``) without defining ``document_metrics``.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from goldwatch.reference._discover import imported_names, modules_defining, source_modules
from goldwatch.reference._markdown import code, header, prose, table

__all__ = ["HOOK", "MetricDoc", "collect_metrics", "modules_missing_hook", "render_metrics"]

HOOK = "document_metrics"

_METRIC_CLASSES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum", "CounterMetricFamily",
                   "GaugeMetricFamily", "HistogramMetricFamily", "SummaryMetricFamily", "InfoMetricFamily",
                   "StateSetMetricFamily", "GaugeHistogramMetricFamily", "UnknownMetricFamily"}


@dataclasses.dataclass(frozen=True)
class MetricDoc:
    module: str
    name: str  # as exposed (a counter's _total, an info's _info)
    type: str
    labels: tuple[str, ...]
    help: str


def _exposed_name(name: str, kind: str) -> str:
    if kind == "counter":
        return name + "_total"
    if kind == "info":
        return name + "_info"
    return name


def _families(registry: Any) -> list[tuple[Any, tuple[str, ...] | None]]:
    """(metric family, its declared label names or None) for every collector in ``registry``."""
    found = []
    collectors = list(getattr(registry, "_collector_to_names", {}))  # prometheus_client keeps no public list
    for collector in collectors:
        declared = getattr(collector, "_labelnames", None)
        for family in collector.collect():
            found.append((family, tuple(declared) if declared is not None else getattr(family, "_labelnames", None)))
    return found


def collect_metrics() -> list[MetricDoc]:
    """Every metric of every module that follows the convention, sorted by name."""
    from prometheus_client import CollectorRegistry

    docs: dict[str, MetricDoc] = {}
    for module_name in modules_defining(HOOK):
        module = importlib.import_module(module_name)
        registry = CollectorRegistry(auto_describe=True)
        getattr(module, HOOK)(registry)
        for family, declared in _families(registry):
            labels = set(declared or ())
            for sample in family.samples:
                labels |= set(sample.labels)
            labels -= {"le", "quantile"}
            ordered = tuple(dict.fromkeys([*(declared or ()), *sorted(labels)]))
            ordered = tuple(label for label in ordered if label in labels)
            name = _exposed_name(family.name, family.type)
            docs.setdefault(name, MetricDoc(module_name, name, family.type, ordered, family.documentation))
    return sorted(docs.values(), key=lambda d: d.name)


def modules_missing_hook() -> list[str]:
    """Modules that create Prometheus metrics without ``document_metrics`` (a test keeps this empty)."""
    missing = []
    for name, tree in source_modules().items():
        if name.startswith("goldwatch.reference"):
            continue
        creates = {n.rsplit(".", 1)[1] for n in imported_names(tree) if n.startswith("prometheus_client")}
        if creates & _METRIC_CLASSES and name not in modules_defining(HOOK):
            missing.append(name)
    return missing


def render_metrics() -> str:
    metrics = collect_metrics()
    out = [header("Metrics reference",
                  "Every Prometheus metric goldwatch exports, with its type and labels. Counters are exposed with "
                  "`_total`, histograms as `_bucket{le}`, `_sum` and `_count`.")]
    if not metrics:
        out.append("\nThis version of goldwatch exports no Prometheus metrics.\n")
    by_module: dict[str, list[MetricDoc]] = {}
    for m in metrics:
        by_module.setdefault(m.module, []).append(m)
    for module_name, rows in sorted(by_module.items()):
        doc = (importlib.import_module(module_name).__doc__ or "").strip().split("\n\n")[0]
        out.append(f"\n## {code(module_name)}\n\n{prose(doc)}\n\n")
        out.append(table(["metric", "type", "labels", "meaning"],
                         [[code(m.name), m.type, ", ".join(code(label) for label in m.labels), m.help] for m in rows]))
    out.append("\n## Adding metrics\n\n"
               f"A module that defines Prometheus metrics defines a top-level `{HOOK}(registry)` that creates them "
               "(or registers its collector over a small example state) in the registry it is given, starting "
               "nothing. This reference is collected from those functions; a test fails when a module creates "
               f"metrics without one. Names follow Prometheus conventions: a `goldwatch_` prefix, base units "
               "(`_seconds`, `_bytes`), `_total` for counters, and labels with bounded values only.\n")
    return "".join(out)
