"""A self-contained HTML report: one file, inline CSS and SVG, no script, no CDN -- it opens offline, in CI
artifacts and in mail attachments alike.

The page leads with the verdict, then the plots (error histograms per output, agreement with the baseline, drift
per output), then every check with its numbers and evidence. An Evidently drift report, when one was made, is
embedded in an ``<iframe srcdoc>``, so the file stays one self-contained page.

>>> from goldwatch.checks import Check
>>> from goldwatch.watchdog.gate.verdict import GateVerdict
>>> page = render_html(GateVerdict.from_checks([Check("artifact:digest", "pass", "3 files match")]))
>>> page.startswith("<!DOCTYPE html>"), "http://" in page.replace("http://www.w3.org/2000/svg", ""), "<script" in page
(True, False, False)
"""

from __future__ import annotations

import json
import os
from html import escape

from goldwatch.checks import Check
from goldwatch.serialize import to_jsonable
from goldwatch.watchdog.gate._files import atomic_write_text
from goldwatch.watchdog.gate.svg import bar_chart, histogram_chart
from goldwatch.watchdog.gate.verdict import GateVerdict

__all__ = ["REPORT_CSS", "render_html", "write_html"]

# Plot groups in reading order, with the heading people see.
_GROUPS = {
    "golden": "Golden replay: error per output",
    "baseline": "Agreement with the baseline",
    "drift": "Output drift against the baseline",
    "device": "CPU / CUDA agreement",
    "latency": "Latency",
}

_CSS = """
:root{--pass:#1a7f37;--fail:#cf222e;--error:#9a6700;--skip:#6e7781;--ink:#1f2328;--muted:#59636e;
--line:#d1d9e0;--bg:#f6f8fa;--bar:#4c72b0}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--ink);background:#fff}
main{max-width:1180px;margin:0 auto;padding:24px}
.banner{border-radius:10px;padding:18px 22px;color:#fff;display:flex;align-items:center;gap:18px}
.banner.pass{background:var(--pass)}.banner.fail{background:var(--fail)}.banner.error{background:var(--error)}
.banner .word{font-size:34px;font-weight:700;letter-spacing:.04em}
.banner .headline{font-size:17px}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:16px 0;color:var(--muted)}
.facts dt{font-weight:600}.facts dd{margin:0;font-family:ui-monospace,Menlo,Consolas,monospace;color:var(--ink);
overflow-wrap:anywhere}
.chips{display:flex;gap:8px;margin:8px 0 20px}
.chip{border-radius:999px;padding:2px 12px;font-weight:600;color:#fff}
.chip.pass{background:var(--pass)}.chip.fail{background:var(--fail)}.chip.error{background:var(--error)}
.chip.skip{background:var(--skip)}
.errorbox{border:2px solid var(--error);border-radius:8px;padding:12px 16px;background:#fff8c5;margin-bottom:20px}
h2{font-size:20px;border-bottom:1px solid var(--line);padding-bottom:4px;margin-top:32px}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:16px}
figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:8px;background:#fff}
figcaption{color:var(--muted);font-size:13px;padding:0 6px}
svg.chart{width:100%;height:auto}
.chart-title{font-size:14px;font-weight:600;fill:var(--ink)}
.tick{font-size:10px;fill:var(--muted)}.axis-label{font-size:11px;fill:var(--muted)}
.grid{stroke:#eaeef2;stroke-width:1}.axis{stroke:#8c959f;stroke-width:1}
.bar{fill:var(--bar)}.bar.bad{fill:var(--fail)}.bar:hover{opacity:.75}
.count{font-size:10px;fill:var(--ink)}.count.bad{fill:var(--fail);font-weight:700}
.limit{stroke:var(--fail);stroke-width:1.5;stroke-dasharray:5 4}.limit-label{font-size:10px;fill:var(--fail)}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--bg)}
td.status{font-weight:700;text-transform:uppercase;font-size:12px;white-space:nowrap}
td.status.pass{color:var(--pass)}td.status.fail{color:var(--fail)}td.status.error{color:var(--error)}
td.status.skip{color:var(--skip)}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
pre{background:var(--bg);padding:8px;border-radius:6px;overflow:auto;max-height:320px;white-space:pre-wrap}
details summary{cursor:pointer;color:var(--muted)}
iframe.evidently{width:100%;height:900px;border:1px solid var(--line);border-radius:8px}
footer{color:var(--muted);font-size:12px;margin-top:40px}
"""
#: the report style, shared by goldwatch's other HTML reports (the disaster-recovery drill's)
REPORT_CSS = _CSS


def _numbers(values: object) -> str:
    if not isinstance(values, dict) or not values:
        return ""
    return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def _check_row(check: Check) -> str:
    details = ""
    if check.details:
        body = json.dumps(to_jsonable(check.details), indent=2, sort_keys=True)
        details = f"<details><summary>evidence</summary><pre>{escape(body[:20000])}</pre></details>"
    return (
        f'<tr class="check {check.status}"><td class="status {check.status}">{check.status}</td>'
        f"<td><code>{escape(check.name)}</code></td><td>{escape(check.summary)}{details}</td>"
        f"<td><code>{escape(_numbers(dict(check.measured)))}</code></td>"
        f"<td><code>{escape(_numbers(dict(check.threshold)))}</code></td></tr>"
    )


def _plots(verdict: GateVerdict) -> str:
    figures: dict[str, list[str]] = {}
    for h in verdict.histograms:
        cap = f"<figcaption>{escape(h.note)}</figcaption>" if h.note else ""
        figures.setdefault(h.group, []).append(f"<figure>{histogram_chart(h)}{cap}</figure>")
    for b in verdict.bars:
        cap = f"<figcaption>{escape(b.note)}</figcaption>" if b.note else ""
        figures.setdefault(b.group, []).append(f"<figure>{bar_chart(b)}{cap}</figure>")
    order = [g for g in _GROUPS if g in figures] + sorted(g for g in figures if g not in _GROUPS)
    out = []
    for group in order:
        out.append(f"<h2>{escape(_GROUPS.get(group, group))}</h2>")
        out.append('<div class="plots">' + "".join(figures[group]) + "</div>")
    return "\n".join(out)


def render_html(verdict: GateVerdict, *, evidently_html: str | None = None, title: str = "goldwatch gate") -> str:
    """The verdict as one self-contained HTML page."""
    facts = []
    if verdict.candidate:
        facts.append(("candidate", verdict.candidate.spec))
    if verdict.baseline:
        facts.append(("baseline", verdict.baseline.spec))
    for g in verdict.golden_sets:
        facts.append(("golden set", g))
    if verdict.manifest:
        facts.append(("manifest", verdict.manifest))
    facts.append(("devices", ", ".join(verdict.devices)))
    facts.append(("started", verdict.started_at))
    facts.append(("duration", f"{verdict.duration_s:.2f} s"))
    if verdict.promotion:
        p = verdict.promotion
        facts.append(("promoted", f"{p.model} {p.version} -> {p.state} ({p.registry})"))
    counts = verdict.counts
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}: {verdict.verdict.upper()}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f'<div class="banner {verdict.verdict}" id="verdict" data-verdict="{verdict.verdict}">'
        f'<span class="word">{verdict.verdict.upper()}</span>'
        f'<span class="headline">{escape(verdict.headline().split(": ", 1)[-1])}</span></div>',
        '<dl class="facts">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts) + "</dl>",
        '<div class="chips">'
        + "".join(f'<span class="chip {k}">{counts[k]} {k}</span>' for k in ("pass", "fail", "error", "skip"))
        + "</div>",
    ]
    if verdict.error is not None:
        err = verdict.error
        parts.append(
            f'<div class="errorbox"><strong>The gate could not run to the end.</strong><br>'
            f"{escape(err.what)}"
            + (f"<br>where: <code>{escape(err.where)}</code>" if err.where else "")
            + (f"<br>fix: {escape(err.hint)}" if err.hint else "")
            + "</div>"
        )
    parts.append(_plots(verdict))
    ordered = sorted(verdict.checks, key=lambda c: {"error": 0, "fail": 1, "pass": 2, "skip": 3}[c.status])
    parts.append("<h2>Checks</h2>")
    parts.append(
        "<table><thead><tr><th>status</th><th>check</th><th>result</th><th>measured</th><th>threshold</th></tr>"
        "</thead><tbody>" + "".join(_check_row(c) for c in ordered) + "</tbody></table>"
    )
    if evidently_html:
        # srcdoc keeps the file self-contained and Evidently's CSS/JS apart from ours. No sandbox attribute:
        # Evidently's app needs same-origin storage and renders blank without it, and a sandbox with both
        # allow-scripts and allow-same-origin protects nothing (Chromium warns about exactly that). The document
        # is generated locally by the evidently package from our own numbers and column names.
        parts.append("<h2>Evidently drift report</h2>")
        parts.append(
            f'<iframe class="evidently" title="Evidently drift report" '
            f'srcdoc="{escape(evidently_html, quote=True)}"></iframe>'
        )
    env = ", ".join(f"{k} {v}" for k, v in verdict.environment.items())
    parts.append(f"<footer>schema {escape(verdict.schema)} · {escape(env)}</footer>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def write_html(
    verdict: GateVerdict, path: str | os.PathLike[str], *, evidently_html: str | None = None
) -> None:
    """Write :func:`render_html` to ``path`` atomically."""
    atomic_write_text(path, render_html(verdict, evidently_html=evidently_html))
