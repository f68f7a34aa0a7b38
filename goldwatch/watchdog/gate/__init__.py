"""The CI gate (``goldwatch gate``): verify, replay, compare with the baseline, and report.

* :mod:`.verdict` -- :class:`GateVerdict`, the typed result, and its JSON schema (``verdict.schema.json``)
* :mod:`.checks` -- the gate's checks, assembled from integrity, golden sets, detectors and runtimes
* :mod:`.runner` -- :func:`run_gate`, orchestrating the checks; :func:`write_reports`
* :mod:`.junit`, :mod:`.markdown`, :mod:`.html` -- the renderings for CI systems and people

Nothing here imports torch, onnxruntime or evidently at import time.
"""

from goldwatch.watchdog.gate.verdict import (
    BarPlot,
    ErrorInfo,
    GateVerdict,
    HistogramPlot,
    ModelRef,
    Promotion,
)

__all__ = ["BarPlot", "ErrorInfo", "GateVerdict", "HistogramPlot", "ModelRef", "Promotion"]
