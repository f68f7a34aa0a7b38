"""Prometheus metrics of live drift, with bounded cardinality.

One :class:`LiveDriftCollector` reads every model's state at scrape time (nothing is kept twice). Labels are the
model, the part (``inputs`` / ``outputs``), a fixed set of ingestion outcomes and unparseable reasons -- and the
feature, but only for the features listed in the model's ``metrics_features``: a model with a thousand features
does not make a thousand series unless someone asked for them.

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> from goldwatch.config import LiveDriftModelConfig, LiveDriftSection
>>> from goldwatch.watchdog.live.service import LiveDrift
>>> live = LiveDrift.from_config(LiveDriftSection(models=[LiveDriftModelConfig(name="fraud")]))
>>> registry = CollectorRegistry()
>>> registry.register(LiveDriftCollector(live))
>>> text = generate_latest(registry).decode()
>>> 'goldwatch_live_drift_paging{model="fraud"} 0.0' in text
True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["LiveDriftCollector", "document_metrics"]

_P = "goldwatch_live_drift_"


class LiveDriftCollector(Collector):
    """A custom collector over a :class:`~goldwatch.watchdog.live.service.LiveDrift`."""

    def __init__(self, live: Any) -> None:
        self.live = live

    def collect(self) -> Iterator[Any]:
        g: dict[str, GaugeMetricFamily] = {
            "paging": GaugeMetricFamily(_P + "paging", "1 while the drift page rule holds (K windows in a row, or a "
                                        "streaming detector latched)", labels=["model"]),
            "quality_paging": GaugeMetricFamily(_P + "quality_paging", "1 while the last tested window broke a "
                                                "data-quality rate", labels=["model"]),
            "consecutive": GaugeMetricFamily(_P + "consecutive_windows", "drifted tested windows in a row",
                                             labels=["model"]),
            "rows": GaugeMetricFamily(_P + "window_rows", "rows in the last closed window", labels=["model"]),
            "closed": GaugeMetricFamily(_P + "window_closed_timestamp_seconds", "when the last window closed",
                                        labels=["model"]),
            "filling": GaugeMetricFamily(_P + "window_filling_rows", "rows in the window being filled",
                                         labels=["model"]),
            "queue": GaugeMetricFamily(_P + "queue_events", "events waiting to be processed", labels=["model"]),
            "queue_bytes": GaugeMetricFamily(_P + "queue_bytes", "bytes waiting to be processed", labels=["model"]),
            "sample_rate": GaugeMetricFamily(_P + "sample_rate", "share of pairs tested (1: all; lower while the "
                                             "sender outpaces the consumer)", labels=["model"]),
            "drifted": GaugeMetricFamily(_P + "drifted", "1 when the last tested window drifted", labels=["model",
                                                                                                             "part"]),
            "n_drifted": GaugeMetricFamily(_P + "drifted_features", "features that drifted in the last tested window",
                                           labels=["model", "part"]),
            "statistic": GaugeMetricFamily(_P + "feature_statistic", "test statistic (configured features only)",
                                           labels=["model", "part", "feature"]),
            "pvalue": GaugeMetricFamily(_P + "feature_pvalue", "corrected p-value (configured features only)",
                                        labels=["model", "part", "feature"]),
            "feature_drifted": GaugeMetricFamily(_P + "feature_drifted", "1 when the feature drifted (configured "
                                                 "features only)", labels=["model", "part", "feature"]),
        }
        events = CounterMetricFamily(_P + "events", "ingestion outcomes", labels=["model", "outcome"])
        unparseable = CounterMetricFamily(_P + "unparseable", "events whose body could not be read, by reason",
                                          labels=["model", "reason"])
        windows = CounterMetricFamily(_P + "windows", "windows closed", labels=["model"])
        for name, monitor in self.live.monitors.items():
            state = monitor.state
            g["paging"].add_metric([name], float(state.paging))
            g["quality_paging"].add_metric([name], float(state.quality_paging))
            g["consecutive"].add_metric([name], float(state.consecutive))
            windows.add_metric([name], float(state.windows))
            g["queue"].add_metric([name], float(len(monitor.queue)))
            g["queue_bytes"].add_metric([name], float(monitor.queue.nbytes))
            g["sample_rate"].add_metric([name], float(monitor.sampler.rate))
            g["filling"].add_metric([name], float(monitor.window.rows if monitor.window is not None else 0))
            counts = monitor.counters.snapshot()
            counts["dropped_queue_full"] = monitor.queue.dropped
            for outcome in monitor.counters.OUTCOMES:
                events.add_metric([name, outcome], float(counts.get(outcome, 0)))
            for key, value in counts.items():
                if key.startswith("unparseable:"):
                    unparseable.add_metric([name, key.split(":", 1)[1]], float(value))
            last = monitor.last_result
            if last is None:
                continue
            g["rows"].add_metric([name], float(last.rows))
            g["closed"].add_metric([name], float(last.closed_at))
            wanted = set(monitor.config.metrics_features)
            for part in last.parts:
                if not part.tested:
                    continue
                g["drifted"].add_metric([name, part.part], float(part.drifted))
                g["n_drifted"].add_metric([name, part.part], float(sum(f.drifted for f in part.features)))
                for f in part.features:
                    if f.name not in wanted:
                        continue
                    labels = [name, part.part, f.name]
                    g["statistic"].add_metric(labels, f.statistic)
                    if f.adjusted_pvalue is not None:
                        g["pvalue"].add_metric(labels, f.adjusted_pvalue)
                    g["feature_drifted"].add_metric(labels, float(f.drifted))
        sink = self.live.counters.snapshot()
        for key, value in sink.items():
            if key.startswith("unparseable:"):
                unparseable.add_metric(["", key.split(":", 1)[1]], float(value))
        events.add_metric(["", "unknown_model"], float(sink.get("unknown_model", 0)))
        yield from g.values()
        yield events
        yield unparseable
        yield windows


def document_metrics(registry: Any) -> None:
    """Live drift's metrics in ``registry`` (a collector over one example model, ``metrics_features`` set), for the
    reference documentation (goldwatch.reference); nothing starts."""
    from goldwatch.config import LiveDriftModelConfig, LiveDriftSection
    from goldwatch.watchdog.live.service import LiveDrift

    section = LiveDriftSection(models=[LiveDriftModelConfig(name="fraud", metrics_features=["amount"])])
    registry.register(LiveDriftCollector(LiveDrift.from_config(section)))
