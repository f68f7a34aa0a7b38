"""Optional: an Evidently data-drift report of candidate vs baseline outputs, embedded in the HTML report.

Needs the ``reports`` extra (evidently, pandas<3); imported only when asked for, because importing evidently takes
seconds and its report weighs megabytes. goldwatch's own drift checks do not depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from goldwatch._optional import require

__all__ = ["MAX_COLUMNS", "OutputCollector", "drift_report_html"]

#: Columns in the Evidently report; wider outputs contribute evenly spaced columns.
MAX_COLUMNS = 24


class OutputCollector:
    """Receives (golden set, candidate outputs, baseline outputs) from :func:`run_gate`'s ``on_compare``."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]] = []

    def __call__(self, golden: str, candidate: Mapping[str, np.ndarray], baseline: Mapping[str, np.ndarray]) -> None:
        self.pairs.append((golden, dict(candidate), dict(baseline)))


def _frame_columns(outputs: Mapping[str, np.ndarray], names: list[str], per_output: int) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for name in names:
        flat = np.asarray(outputs[name], dtype=np.float64).reshape(len(outputs[name]), -1)
        idx = np.unique(np.linspace(0, flat.shape[1] - 1, min(per_output, flat.shape[1])).astype(int))
        for j in idx:
            cols[f"{name}[{j}]"] = flat[:, j]
    return cols


def drift_report_html(collector: OutputCollector) -> str | None:
    """Evidently's DataDriftPreset on the first golden set's outputs (baseline = reference); None if nothing."""
    usable = [(g, c, b) for g, c, b in collector.pairs
              if [n for n in b if n in c and np.shape(c[n]) == np.shape(b[n]) and np.ndim(b[n]) >= 1]]
    if not usable:
        return None
    require("evidently", purpose="embedding an Evidently drift report (--evidently)")
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    _golden, cand, base = usable[0]
    names = [n for n in base if n in cand and np.shape(cand[n]) == np.shape(base[n]) and np.ndim(base[n]) >= 1]
    per_output = max(1, MAX_COLUMNS // len(names))
    reference = pd.DataFrame(_frame_columns(base, names, per_output))
    current = pd.DataFrame(_frame_columns(cand, names, per_output))
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    return str(snapshot.get_html_str(as_iframe=False))
