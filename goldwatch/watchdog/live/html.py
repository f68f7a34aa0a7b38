"""The drift page of one model: state, the worst features' reference-vs-current histograms, the last windows.

One self-contained HTML page (inline CSS and SVG from :mod:`goldwatch.watchdog.gate.svg`, no script, no CDN), what
an on-call human opens from the page's link: is it drifting, since when, which features, how different they look.

>>> import numpy as np
>>> from goldwatch.config import LiveDriftConfig
>>> from goldwatch.watchdog.live.monitor import ModelMonitor
>>> from goldwatch.watchdog.live.reference import ReferenceStore, build_reference
>>> from goldwatch.watchdog.live.payload import Tensor, Tensors
>>> from goldwatch.watchdog.live.schema import Column, Schema
>>> rng = np.random.default_rng(0)
>>> schema = Schema.from_columns([Column("age"), Column("plan", "categorical")])
>>> ref = build_reference(Tensors({"age": Tensor(rng.normal(40, 10, 3000), "FP64"),
...                                "plan": Tensor(rng.choice(["a", "b"], 3000).astype(object), "BYTES")}),
...                       None, schema, version="3", source="ref.csv")
>>> m = ModelMonitor("fraud", LiveDriftConfig(window_rows=500, min_window_rows=50),
...                  references=ReferenceStore.fixed(ref), schema=schema, clock=lambda: 0.0)
>>> ok = m.submit_rows({"age": rng.normal(55, 10, 500), "plan": rng.choice(["a", "c"], 500)})
>>> closed = m.process()
>>> page = render_page(m)
>>> page.startswith("<!DOCTYPE html>"), page.count('<svg'), "<script" in page
(True, 2, False)
"""

from __future__ import annotations

import datetime as _dt
from html import escape
from typing import Any

import numpy as np

from goldwatch.watchdog.gate.svg import PairedHistogram, paired_histogram_chart
from goldwatch.watchdog.live.reference import PartReference
from goldwatch.watchdog.live.results import FeatureDrift, WindowResult

__all__ = ["render_page"]

_BINS = 20
_TOP_CATEGORIES = 12

_CSS = """
:root{--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;
--ref:#8c959f;--cur:#4c72b0}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--ink)}
main{max-width:1180px;margin:0 auto;padding:24px}
.banner{border-radius:10px;padding:16px 22px;color:#fff;font-size:18px}
.banner.ok{background:var(--ok)}.banner.warn{background:var(--warn)}.banner.bad{background:var(--bad)}
.banner b{font-size:28px;margin-right:14px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;color:var(--muted)}
dt{font-weight:600}dd{margin:0;color:var(--ink)}
h2{font-size:20px;border-bottom:1px solid var(--line);padding-bottom:4px;margin-top:28px}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:16px}
figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:8px}
figcaption{color:var(--muted);font-size:13px;padding:0 6px}
svg.chart{width:100%;height:auto}
.chart-title{font-size:14px;font-weight:600;fill:var(--ink)}
.tick{font-size:10px;fill:var(--muted)}.axis-label{font-size:11px;fill:var(--muted)}
.grid{stroke:#eaeef2;stroke-width:1}.axis{stroke:#8c959f;stroke-width:1}
.bar.ref{fill:var(--ref)}.bar.cur{fill:var(--cur)}.bar.cur.bad{fill:var(--bad)}.bar:hover{opacity:.75}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--bg)}
.yes{color:var(--bad);font-weight:600}
footer{color:var(--muted);font-size:12px;margin-top:32px}
"""


def _time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _numeric_plot(f: FeatureDrift, ref: PartReference, values: np.ndarray) -> PairedHistogram:
    j = ref.numeric_names.index(f.name)
    low, high = float(ref.low[j]), float(ref.high[j])
    if not high > low:
        high = low + 1.0
    inner = np.linspace(low, high, _BINS + 1)
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    ref_counts = ref.histogram(f.name, edges)
    finite = values[np.isfinite(values)]
    cur_counts = np.histogram(finite, bins=edges)[0] if finite.size else np.zeros(edges.size - 1)
    labels = [f"< {low:.3g}"] + [f"{a:.3g}" for a in inner[:-1]] + [f"> {high:.3g}"]
    return PairedHistogram(
        title=f"{f.name}: {f.test} {f.statistic:.3g}" + (f", adj. p {f.adjusted_pvalue:.2g}"
                                                          if f.adjusted_pvalue is not None else ""),
        labels=labels, reference=(ref_counts / max(ref_counts.sum(), 1)).tolist(),
        current=(cur_counts / max(cur_counts.sum(), 1)).tolist(), x_label="value (bin start)",
        flagged=f.drifted or f.trend_alarm)


def _categorical_plot(f: FeatureDrift, ref: PartReference, values: np.ndarray) -> PairedHistogram:
    j = ref.categorical_names.index(f.name)
    counts = ref.categories[j]
    top = sorted(counts, key=lambda c: -counts[c])[:_TOP_CATEGORIES]
    current: dict[str, int] = {}
    for v in values.tolist():
        if v is not None:
            current[v] = current.get(v, 0) + 1
    new = sorted((c for c in current if c not in counts), key=lambda c: -current[c])[:3]
    labels = top + [f"{c} (new)" for c in new] + ["other"]
    n_ref, n_cur = max(sum(counts.values()), 1), max(sum(current.values()), 1)
    ref_share = [counts[c] / n_ref for c in top] + [0.0] * len(new)
    cur_share = [current.get(c, 0) / n_cur for c in top + new]
    ref_share.append(1.0 - sum(ref_share))
    cur_share.append(max(0.0, 1.0 - sum(cur_share)))
    return PairedHistogram(title=f"{f.name}: chi2 {f.statistic:.3g}, TVD {f.effect:.3g}", labels=labels,
                           reference=ref_share, current=cur_share, x_label="category", flagged=f.drifted)


def _figures(monitor: Any) -> list[str]:
    result: WindowResult | None = monitor.last_result
    window = monitor.last_window
    if result is None or window is None:
        return []
    try:
        reference = monitor.references.get(result.version) if monitor.references is not None else None
    except Exception:  # the page shows what it can
        reference = None
    if reference is None:
        return []
    out = []
    for part, frame in (("inputs", window.inputs), ("outputs", window.outputs)):
        res = result.inputs if part == "inputs" else result.outputs
        ref = reference.part(part)
        if res is None or ref is None or not res.tested:
            continue
        for f in res.worst(6 if part == "inputs" else 3):
            if f.kind == "numeric":
                values = frame.numeric[:, ref.numeric_names.index(f.name)]
                plot = _numeric_plot(f, ref, values)
            else:
                values = frame.categorical[:, ref.categorical_names.index(f.name)]
                plot = _categorical_plot(f, ref, values)
            verdict = "drifted" if f.drifted else ("streaming alarm" if f.trend_alarm else "no drift")
            caption = f"{part}: {verdict}; effect {f.effect:.3g}; {f.n_current} current values"
            out.append(f"<figure>{paired_histogram_chart(plot)}<figcaption>{escape(caption)}</figcaption></figure>")
    return out


def _windows_table(history: list[WindowResult]) -> str:
    rows = []
    for r in reversed(history[-30:]):
        drifted = [f.name for p in r.parts for f in p.features if f.drifted]
        quality = [f"{q.name}:{q.check}" for p in r.parts for q in p.quality if q.failed]
        tested = r.tested or "; ".join(p.reason for p in r.parts if p.reason)
        rows.append(
            f"<tr><td>{r.index}</td><td>{escape(_time(r.closed_at))}</td><td>{r.rows}</td>"
            f"<td>{escape(str(tested))}</td><td class=\"{'yes' if drifted else ''}\">"
            f"{escape(', '.join(drifted[:8]) or '-')}</td>"
            f"<td class=\"{'yes' if quality else ''}\">{escape(', '.join(quality[:8]) or '-')}</td>"
            f"<td>{r.state.consecutive}</td><td>{'paging' if r.state.paging else '-'}</td></tr>")
    return ("<table><tr><th>window</th><th>closed</th><th>rows</th><th>tested</th><th>drifted</th>"
            "<th>data quality</th><th>in a row</th><th>drift page</th></tr>" + "".join(rows) + "</table>")


def render_page(monitor: Any) -> str:
    """The HTML page of one :class:`~goldwatch.watchdog.live.monitor.ModelMonitor`."""
    snap = monitor.snapshot()
    state = monitor.state
    if state.quality_paging:
        banner, word = "bad", "DATA QUALITY"
    elif state.paging:
        banner, word = "warn", "DRIFT"
    else:
        banner, word = "ok", "OK"
    headline = (f"drift in {state.consecutive} consecutive window(s) (page after {state.required})"
                if state.consecutive else "no drift in the last tested window")
    ingest = snap["ingest"]
    facts = {
        "model": monitor.name, "served version": monitor.version or "unknown",
        "windows closed": state.windows, "window being filled": f"{snap['window']['rows']} rows",
        "events / pairs / rows": f"{ingest['events']} / {ingest['pairs']} / {ingest['rows']}",
        "dropped (queue full)": ingest["dropped_queue_full"], "unparseable": ingest["unparseable"],
        "probes left out": ingest["probes"],
        "orphans (requests / responses)": f"{ingest['orphan_requests']} / {ingest['orphan_responses']}",
    }
    if monitor.last_result is not None:
        facts["reference"] = monitor.last_result.reference or "-"
    figures = _figures(monitor)
    history = list(monitor.history)
    return "".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>goldwatch drift: {escape(monitor.name)}</title><style>{_CSS}</style></head><body><main>",
        f"<div class=\"banner {banner}\"><b>{word}</b>{escape(headline)}</div>",
        "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in facts.items()) + "</dl>",
        "<h2>Worst features of the last window: reference against current</h2>",
        f"<div class=\"plots\">{''.join(figures)}</div>" if figures else "<p>No window tested yet.</p>",
        "<h2>Windows</h2>", _windows_table(history) if history else "<p>No window closed yet.</p>",
        "<footer>goldwatch live drift; JSON at <code>/v1/models/" + escape(monitor.name) + "/drift</code></footer>",
        "</main></body></html>",
    ])
