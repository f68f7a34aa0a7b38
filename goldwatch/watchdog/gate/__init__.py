"""The CI gate (``goldwatch gate``): verify, replay, compare with the baseline, and report.

* :mod:`.verdict` -- :class:`GateVerdict`, the typed result, and its JSON schema (``verdict.schema.json``)
* :mod:`.metrics` -- the gate's own comparisons (agreement, metric deltas, NaN/Inf, latency, error histograms)
* :mod:`._adapters` -- the one place that calls integrity, golden sets, detectors and the registry
* :mod:`.demo` -- ``goldwatch demo``
* :mod:`.runner` -- :func:`run_gate`, orchestrating the checks; :mod:`.reports` -- :func:`write_reports`
* :mod:`.junit`, :mod:`.markdown`, :mod:`.html` -- the renderings for CI systems and people

Nothing here imports torch, onnxruntime or evidently at import time.
"""

from goldwatch.watchdog.gate.reports import ReportPaths, write_reports
from goldwatch.watchdog.gate.runner import GateThresholds, run_gate
from goldwatch.watchdog.gate.verdict import (
    BarPlot,
    ErrorInfo,
    GateVerdict,
    HistogramPlot,
    ModelRef,
    Promotion,
)

__all__ = [
    "BarPlot",
    "ErrorInfo",
    "GateThresholds",
    "GateVerdict",
    "HistogramPlot",
    "ModelRef",
    "Promotion",
    "ReportPaths",
    "run_gate",
    "write_reports",
]
