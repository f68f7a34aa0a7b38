"""Inline SVG charts for the HTML report: drawn here, from numbers, with no library and no network.

Two shapes cover the gate's plots: a histogram (error magnitudes per output) and a bar chart with a limit line
(agreement, drift statistic per output); a third, two histograms side by side (:func:`paired_histogram_chart`),
shows a reference against a live window (the sidecar's drift page). Every bar carries a ``<title>`` so hovering
shows its exact value.

>>> svg = bar_chart(BarPlot(title="agreement", group="baseline", labels=["a", "b"], values=[1.0, 0.5],
...                         flagged=[False, True], limit=0.9, y_max=1.0))
>>> svg.startswith("<svg") and svg.count("<rect class=\\"bar") == 2 and 'class="bar bad"' in svg
True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from html import escape

from goldwatch.watchdog.gate.verdict import BarPlot, HistogramPlot

__all__ = ["PairedHistogram", "bar_chart", "histogram_chart", "paired_histogram_chart"]

_W, _H = 560, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 30, 58
_MIN_BAR = 3.0  # pixels


def _nice_max(value: float) -> float:
    """Round an axis maximum up to 1, 2 or 5 times a power of ten, so tick labels read well."""
    if not math.isfinite(value) or value <= 1e-300:  # nothing to scale to (or so small 10**k underflows)
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _fmt(value: float) -> str:
    """Short axis/limit labels: ``0``, ``0.25``, ``750``, ``2,000``, ``3e-04``."""
    if value == 0:
        return "0"
    if abs(value) >= 1000 and value == round(value):
        return f"{value:,.0f}"
    if abs(value) < 0.01 or abs(value) >= 1e6:
        return f"{value:.0e}"
    return f"{value:.3g}"


def _frame(title: str, y_max: float, y_label: str, x_label: str) -> list[str]:
    plot_h = _H - _TOP - _BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" class="chart" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{_LEFT}" y="18" class="chart-title">{escape(title)}</text>',
    ]
    for i in range(5):
        value = y_max * i / 4
        y = _TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{_fmt(value)}</text>')
    if y_label:
        out.append(
            f'<text transform="translate(12 {_TOP + plot_h / 2:.0f}) rotate(-90)" class="axis-label" '
            f'text-anchor="middle">{escape(y_label)}</text>'
        )
    if x_label:
        out.append(
            f'<text x="{_LEFT + (_W - _LEFT - _RIGHT) / 2:.0f}" y="{_H - 6}" class="axis-label" '
            f'text-anchor="middle">{escape(x_label)}</text>'
        )
    return out


def _bars(
    labels: Sequence[str], values: Sequence[float], flagged: Sequence[bool], y_max: float, tooltips: Sequence[str],
    *, count_labels: bool = False,
) -> list[str]:
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    n = max(len(values), 1)
    slot = plot_w / n
    width = min(max(slot * 0.78, 1.0), 90.0)
    # Label every bar when they fit, else every k-th, so labels never overlap.
    every = max(1, math.ceil(n * 34 / plot_w))
    out = []
    for i, (label, value, bad, tip) in enumerate(zip(labels, values, flagged, tooltips)):
        shown = 0.0 if value is None or not math.isfinite(value) else min(max(value, 0.0), y_max)
        h = plot_h * shown / y_max
        if shown > 0 and h < _MIN_BAR:
            h = _MIN_BAR  # a handful of values among thousands must still be seen
        x = _LEFT + i * slot + (slot - width) / 2
        y = _TOP + plot_h - h
        cls = "bar bad" if bad else "bar"
        out.append(
            f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{max(h, 0.0):.1f}">'
            f"<title>{escape(tip)}</title></rect>"
        )
        if count_labels and shown > 0:
            out.append(
                f'<text x="{x + width / 2:.1f}" y="{y - 3:.1f}" class="count{" bad" if bad else ""}" '
                f'text-anchor="middle">{value:.0f}</text>'
            )
        if i % every == 0:
            text = label if len(label) <= 14 else label[:13] + "…"
            cx = x + width / 2
            out.append(
                f'<text x="{cx:.1f}" y="{_TOP + plot_h + 12}" class="tick" text-anchor="end" '
                f'transform="rotate(-35 {cx:.1f} {_TOP + plot_h + 12})">{escape(text)}</text>'
            )
    out.append(
        f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_TOP + plot_h}" y2="{_TOP + plot_h}" class="axis"/>'
    )
    return out


def _limit_line(limit: float | None, y_max: float, label: str) -> list[str]:
    if limit is None or not math.isfinite(limit):
        return []
    plot_h = _H - _TOP - _BOTTOM
    y = _TOP + plot_h - plot_h * min(max(limit, 0.0), y_max) / y_max
    return [
        f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="limit"/>',
        f'<text x="{_W - _RIGHT}" y="{y - 4:.1f}" class="limit-label" text-anchor="end">{escape(label)}</text>',
    ]


def histogram_chart(plot: HistogramPlot) -> str:
    """An SVG histogram; bins at or beyond ``limit_bin`` are drawn in the alarm colour."""
    counts = [int(c) for c in plot.counts]
    y_max = _nice_max(max(counts, default=0))
    flagged = [plot.limit_bin is not None and i >= plot.limit_bin and c > 0 for i, c in enumerate(counts)]
    tips = [f"{label}: {c} values" for label, c in zip(plot.labels, counts)]
    out = _frame(plot.title, y_max, "count", plot.x_label)
    out += _bars(plot.labels, [float(c) for c in counts], flagged, y_max, tips, count_labels=True)
    if plot.limit_bin is not None and plot.limit is not None and plot.labels:
        plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
        x = _LEFT + plot_w * plot.limit_bin / len(plot.labels)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{_TOP + plot_h}" class="limit"/>')
        out.append(
            f'<text x="{x + 4:.1f}" y="{_TOP + 10}" class="limit-label">tolerance {_fmt(plot.limit)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(plot: BarPlot) -> str:
    """An SVG bar chart with the limit drawn as a dashed line; flagged bars in the alarm colour."""
    finite = [v for v in plot.values if v is not None and math.isfinite(v)]
    top = plot.y_max if plot.y_max is not None else max([*finite, plot.limit or 0.0, 0.0]) * 1.1
    y_max = _nice_max(top) if plot.y_max is None else float(plot.y_max)
    if not (math.isfinite(y_max) and y_max > 0):
        y_max = 1.0
    tips = [
        f"{label}: {'n/a' if v is None else f'{v:.6g}'}" + (" (outside limit)" if bad else "")
        for label, v, bad in zip(plot.labels, plot.values, plot.flagged)
    ]
    values = [float("nan") if v is None else float(v) for v in plot.values]
    out = _frame(plot.title, y_max, plot.y_label, "")
    out += _bars(plot.labels, values, plot.flagged, y_max, tips)
    out += _limit_line(plot.limit, y_max, f"limit {_fmt(plot.limit)}" if plot.limit is not None else "")
    out.append("</svg>")
    return "\n".join(out)


@dataclasses.dataclass(frozen=True)
class PairedHistogram:
    """Two distributions over the same bins, as shares of their rows: ``reference`` and ``current``."""

    title: str
    labels: list[str]
    reference: list[float]
    current: list[float]
    x_label: str = ""
    flagged: bool = False


def paired_histogram_chart(plot: PairedHistogram) -> str:
    """An SVG of two histograms side by side per bin (reference, then current), with a legend.

    >>> svg = paired_histogram_chart(PairedHistogram("age", ["<20", "20-40"], [0.25, 0.75], [0.5, 0.5]))
    >>> svg.count('<rect class="bar ref"'), svg.count('<rect class="bar cur'), "reference" in svg  # with the legend
    (3, 3, True)
    """
    y_max = _nice_max(max([*plot.reference, *plot.current, 0.0]))
    out = _frame(plot.title, y_max, "share of rows", plot.x_label)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    n = max(len(plot.labels), 1)
    slot = plot_w / n
    width = min(max(slot * 0.4, 1.0), 40.0)
    every = max(1, math.ceil(n * 34 / plot_w))
    cur_cls = "bar cur bad" if plot.flagged else "bar cur"
    for i, (label, ref, cur) in enumerate(zip(plot.labels, plot.reference, plot.current)):
        x0 = _LEFT + i * slot + (slot - 2 * width) / 2
        for k, (value, cls, who) in enumerate(((ref, "bar ref", "reference"), (cur, cur_cls, "current"))):
            shown = min(max(value, 0.0), y_max) if math.isfinite(value) else 0.0
            h = plot_h * shown / y_max
            if shown > 0 and h < _MIN_BAR:
                h = _MIN_BAR
            x, y = x0 + k * width, _TOP + plot_h - h
            out.append(f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}">'
                       f"<title>{escape(label)}: {who} {value:.2%}</title></rect>")
        if i % every == 0:
            text = label if len(label) <= 14 else label[:13] + "…"
            cx = x0 + width
            out.append(f'<text x="{cx:.1f}" y="{_TOP + plot_h + 12}" class="tick" text-anchor="end" '
                       f'transform="rotate(-35 {cx:.1f} {_TOP + plot_h + 12})">{escape(text)}</text>')
    out.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_TOP + plot_h}" y2="{_TOP + plot_h}" class="axis"/>')
    lx = _W - _RIGHT - 170
    out.append(f'<rect class="bar ref" x="{lx}" y="8" width="10" height="10"/><text x="{lx + 14}" y="17" '
               'class="tick">reference</text>')
    out.append(f'<rect class="{cur_cls}" x="{lx + 80}" y="8" width="10" height="10"/><text x="{lx + 94}" y="17" '
               'class="tick">current</text>')
    out.append("</svg>")
    return "\n".join(out)
