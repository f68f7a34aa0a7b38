"""The disaster-recovery report: per scenario the target, the measured figure, pass/fail and the incident's timeline,
as Markdown (for a PR or a postmortem), one self-contained HTML page (the gate report's style: inline CSS and SVG,
no script, nothing fetched) and JSON (for the benchmark and dashboards).

>>> from goldwatch.watchdog.recovery.drill import DrillReport, ScenarioResult, TimelineEntry
>>> r = ScenarioResult("2", "model-corrupted", "The model is corrupted", "fraud", "one byte flipped", "serving RTO",
...                    2.0, 0.73, "pass", "rolled back 2 -> 1", detected_s=0.2, resolved_s=0.73,
...                    timeline=(TimelineEntry(0.0, "drill", "fault injected"),))
>>> report = DrillReport("local", 0.0, 21.0, (r,), "goldwatch.toml")
>>> md = render_markdown(report)
>>> md.splitlines()[0], "| 2 | The model is corrupted | fraud | serving RTO <= 2 s | 0.73 s | PASS |" in md
('# goldwatch disaster-recovery drill: PASS', True)
>>> page = render_html(report)
>>> page.startswith("<!DOCTYPE html>"), "<script" in page, page.count("<svg") >= 2
(True, False, True)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from html import escape
from pathlib import Path
from typing import Any

from goldwatch.serialize import to_jsonable
from goldwatch.watchdog.recovery.drill import DrillReport, ScenarioResult
from goldwatch.watchdog.recovery.scenarios import scenario

__all__ = ["ReportFiles", "render_html", "render_markdown", "report_dict", "write_report"]


@dataclasses.dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    json: Path


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f} s"


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _verdict(report: DrillReport) -> str:
    return "PASS" if report.ok else "FAIL"


def _target(r: ScenarioResult) -> str:
    return "-" if r.target_s is None else f"{r.target_name} <= {r.target_s:g} s"


def _measured(r: ScenarioResult) -> str:
    if r.measured_s is None:
        return "-"
    digits = 3 if r.target_name == "training RPO" else 2
    return f"{r.measured_s:.{digits}f} s"


def _lost(r: ScenarioResult) -> str:
    if r.rpo is not None:
        return f"RPO {float(r.rpo['measured_s'] or 0):.3f} s" if r.rpo.get("measured_s") is not None else "-"
    if not r.client:
        return "-"
    return f"{r.client['lost']} of {r.client['requests']} requests"


def report_dict(report: DrillReport) -> dict[str, Any]:
    """The report as JSON-ready data (``ok`` and each result's ``met`` included)."""
    data: dict[str, Any] = to_jsonable(report)
    data["ok"] = report.ok
    data["exit_code"] = report.exit_code
    for item, r in zip(data["results"], report.results):
        item["met"] = r.met
    return data


def render_markdown(report: DrillReport, *, runbook_url: str | None = None) -> str:
    """The report as Markdown: the summary table, then each scenario with its figures and timeline."""
    lines = [f"# goldwatch disaster-recovery drill: {_verdict(report)}", "",
             f"Stack `{report.stack}`, started {_when(report.started_at)}, {len(report.results)} scenario(s) in "
             f"{report.duration_s:.1f} s" + (f"; config `{report.config}`" if report.config else "") + ".", ""]
    lines += ["| # | scenario | subject | target | measured | status | detected | paged | acted | restored | "
              "resolved | data loss |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report.results:
        lines.append(f"| {r.key} | {r.title} | {r.subject} | {_target(r)} | {_measured(r)} | {r.status.upper()} | "
                     f"{_s(r.detected_s)} | {_s(r.paged_s)} | {_s(r.acted_s)} | {_s(r.restored_s)} | "
                     f"{_s(r.resolved_s)} | {_lost(r)} |")
    lines += ["", "Times are seconds after the fault was injected. *restored*: traffic is served right again (on the "
              "primary after a verified rollback, or on a verified alternate); the measured serving RTO is the later "
              "of that and the moment clients' answers became right for good. *resolved*: the incident closed "
              "(every check of the primary passes again, traffic back on it). *data loss*: client requests that "
              "failed or were answered wrong during the outage; for training, the RPO.", ""]
    for note in report.notes:
        lines.append(f"> {note}")
    for r in report.results:
        lines += _scenario_md(r, runbook_url)
    return "\n".join(lines).rstrip() + "\n"


def _runbook(r: ScenarioResult, base: str | None) -> str | None:
    if not base:
        return None
    from goldwatch.watchdog.recovery.scenarios import runbook_link

    s = scenario(r.key.removesuffix("b"))
    return runbook_link(base, r.subject, s.classes[0])


def _scenario_md(r: ScenarioResult, runbook_url: str | None) -> list[str]:
    out = ["", f"## {r.key}. {r.title}: {r.status.upper()}", "", f"**{r.subject}**: {r.fault}.", "",
           f"{r.summary}", ""]
    facts = [("target", _target(r)), ("measured", _measured(r)), ("detected", _s(r.detected_s)),
             ("paged (journal)", _s(r.paged_s)), ("page received by PagerDuty", _s(r.page_delivered_s)),
             ("acted", _s(r.acted_s)), ("restored", _s(r.restored_s)), ("resolved", _s(r.resolved_s)),
             ("resolve received by PagerDuty", _s(r.page_resolved_s)), ("scenario took", _s(r.duration_s, 1))]
    if r.client:
        c = r.client
        served = ", ".join(f"{k}: {v}" for k, v in sorted(c["served_by"].items())) or "-"
        facts.append(("clients", f"{c['requests']} requests, {c['failed']} failed, {c['wrong']} answered wrong; "
                                 f"right again for good {c['restored_s']:.2f} s after the fault; answered by {served}"))
    if r.rpo:
        p = r.rpo
        facts.append(("restore point", f"{p['restore_point']} (expected {p['expected_restore_point']}; exact: "
                                       f"{'yes' if p['exact'] else 'NO'})"))
        facts.append(("RPO", f"{p['measured_s']} s measured, {p['expected_s']} s from the backup's own record"))
        facts.append(("backups that failed to verify", ", ".join(p["failed_backups"]) or "none"))
    link = _runbook(r, runbook_url)
    if link:
        facts.append(("runbook", link))
    out += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts if v != "-"]
    if r.problems or r.notes:
        out += [""] + [f"- **{p}**" for p in r.problems] + [f"- {n}" for n in r.notes]
    if r.pages:
        out += ["", "Pages PagerDuty received:", ""] + [f"- {p}" for p in r.pages]
    if r.timeline:
        out += ["", "| t (s) | who | what |", "|---|---|---|"]
        out += [f"| {e.t:.3f} | {e.source} | {e.what.replace('|', '/')} |" for e in r.timeline]
    return out


# ---- HTML -----------------------------------------------------------------------------------------------------

_EXTRA_CSS = """
.timeline{width:100%;height:auto}.tl-axis{stroke:#8c959f;stroke-width:1}.tl-dot{stroke:#fff;stroke-width:1.5}
.tl-label{font-size:10px;fill:var(--ink)}.tl-outage{fill:var(--fail);opacity:.18}.tl-tick{font-size:9px;fill:var(--muted)}
section.scenario{border:1px solid var(--line);border-radius:10px;padding:4px 18px 14px;margin:18px 0}
section.scenario h2{border:none;margin-top:14px}
"""
_COLOURS = {"fault": "#cf222e", "detected": "#9a6700", "paged": "#8250df", "acted": "#0969da", "restored": "#1a7f37",
            "resolved": "#4c72b0"}


def _lanes(items: list[tuple[float, str]], *, width: float, lanes: int) -> list[tuple[float, int, str]]:
    """Place each label (centre x, text) in the first lane where it overlaps no label already there: (x, lane,
    anchor). Labels near an edge are anchored to stay inside the picture.

    >>> _lanes([(10.0, "fault 0.00"), (14.0, "detected 0.03"), (300.0, "resolved 7.64")], width=400, lanes=4)
    [(10.0, 0, 'start'), (14.0, 1, 'start'), (300.0, 0, 'middle')]
    """
    taken: list[list[tuple[float, float]]] = [[] for _ in range(lanes)]
    placed = []
    for x, text in items:
        size = 5.6 * len(text) + 6  # 10 px sans-serif, generously
        anchor, lo = "middle", x - size / 2
        if lo < 0:
            anchor, lo = "start", x
        elif x + size / 2 > width:
            anchor, lo = "end", x - size
        hi = lo + size
        lane = next((i for i, spans in enumerate(taken) if all(hi <= a or lo >= b for a, b in spans)), lanes - 1)
        taken[lane].append((lo, hi))
        placed.append((x, lane, anchor))
    return placed


def timeline_svg(r: ScenarioResult) -> str:
    """The scenario's milestones on one time axis, with the clients' outage shaded."""
    marks = [("fault", 0.0), ("detected", r.detected_s), ("paged", r.paged_s), ("acted", r.acted_s),
             ("restored", r.restored_s), ("resolved", r.resolved_s)]
    shown = [(k, v) for k, v in marks if v is not None]
    end = max([v for _k, v in shown] + [r.target_s or 0.0, 0.5]) * 1.08
    w, h, left, right, axis = 760, 120, 20, 20, 54
    lane_y = (axis - 12, axis + 22, axis - 26, axis + 36, axis - 40)  # above, below, further above, ...
    scale = (w - left - right) / end

    def x(t: float) -> float:
        return left + max(0.0, t) * scale

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" class="timeline" role="img" '
           f'aria-label="timeline of scenario {escape(r.key)}"><title>timeline of scenario {escape(r.key)}</title>']
    c = r.client or {}
    if c.get("first_bad_s") is not None:
        x0, x1 = x(float(c["first_bad_s"])), x(float(c["restored_s"]))
        out.append(f'<rect class="tl-outage" x="{x0:.1f}" y="{axis - 12}" width="{max(1.0, x1 - x0):.1f}" '
                   f'height="24"><title>clients saw failures or wrong answers: {c["lost"]} requests</title></rect>')
    out.append(f'<line class="tl-axis" x1="{left}" x2="{w - right}" y1="{axis}" y2="{axis}"/>')
    for i in range(6):
        t = end * i / 5
        out.append(f'<text class="tl-tick" x="{x(t):.1f}" y="{h - 4}" text-anchor="middle">{t:.1f} s</text>')
    labels = [(x(t), f"{name} {t:.2f}") for name, t in shown]
    target = r.target_s is not None and r.target_name == "serving RTO"
    if target:
        assert r.target_s is not None
        labels.append((x(r.target_s), f"target {r.target_s:g} s"))
    placed = _lanes(labels, width=w, lanes=len(lane_y))
    for (name, t), (lx, lane, anchor) in zip(shown, placed, strict=False):
        out.append(f'<circle class="tl-dot" cx="{x(t):.1f}" cy="{axis}" r="6" fill="{_COLOURS[name]}"><title>{name}: '
                   f'{t:.3f} s</title></circle><text class="tl-label" x="{lx:.1f}" y="{lane_y[lane]}" '
                   f'text-anchor="{anchor}">{name} {t:.2f}</text>')
    if target:
        assert r.target_s is not None
        lx, lane, anchor = placed[-1]
        out.append(f'<line x1="{lx:.1f}" x2="{lx:.1f}" y1="{axis - 20}" y2="{axis + 20}" class="limit"/>'
                   f'<text x="{lx:.1f}" y="{lane_y[lane]}" class="limit-label" text-anchor="{anchor}">'
                   f'target {r.target_s:g} s</text>')
    out.append("</svg>")
    return "".join(out)


def render_html(report: DrillReport, *, runbook_url: str | None = None) -> str:
    """The report as one self-contained HTML page."""
    from goldwatch.watchdog.gate.html import REPORT_CSS
    from goldwatch.watchdog.gate.svg import bar_chart
    from goldwatch.watchdog.gate.verdict import BarPlot

    verdict = "pass" if report.ok else "fail"
    counts = {k: sum(1 for r in report.results if r.status == k) for k in ("pass", "fail", "error", "skip")}
    measured = [r for r in report.results if r.measured_s is not None and r.target_s]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>goldwatch DR drill: {verdict.upper()}</title>",
        f"<style>{REPORT_CSS}{_EXTRA_CSS}</style></head><body><main>",
        f'<div class="banner {verdict}" id="verdict" data-verdict="{verdict}"><span class="word">{verdict.upper()}'
        f'</span><span class="headline">disaster-recovery drill of stack {escape(report.stack)}: '
        f'{counts["pass"]} of {len(report.results)} scenario(s) met their target</span></div>',
        '<dl class="facts">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in (
            ("stack", report.stack), ("started", _when(report.started_at)),
            ("duration", f"{report.duration_s:.1f} s"), ("config", report.config or "-"))) + "</dl>",
        '<div class="chips">' + "".join(f'<span class="chip {k}">{n} {k}</span>' for k, n in counts.items()) + "</div>",
    ]
    for note in report.notes:
        parts.append(f'<div class="errorbox">{escape(note)}</div>')
    if measured:
        plot = BarPlot(title="Measured / target (1.0 = the whole budget)", group="drill",
                       labels=[f"{r.key} {r.slug}" for r in measured],
                       values=[r.measured_s / float(r.target_s) for r in measured if r.measured_s is not None
                               and r.target_s],
                       flagged=[not r.met for r in measured], y_label="share of the target", limit=1.0)
        parts.append(f'<h2>Targets</h2><div class="plots"><figure>{bar_chart(plot)}<figcaption>serving RTO for '
                     "scenarios 1-4, training RPO for 5</figcaption></figure></div>")
    parts.append("<h2>Scenarios</h2><table><thead><tr><th>status</th><th>#</th><th>scenario</th><th>subject</th>"
                 "<th>target</th><th>measured</th><th>detected</th><th>paged</th><th>acted</th><th>restored</th>"
                 "<th>resolved</th><th>data loss</th></tr></thead><tbody>")
    for r in report.results:
        parts.append(f'<tr class="check {r.status}"><td class="status {r.status}">{r.status}</td>'
                     f'<td><a href="#scenario-{escape(r.key)}">{escape(r.key)}</a></td><td>{escape(r.title)}</td>'
                     f"<td><code>{escape(r.subject)}</code></td><td>{escape(_target(r))}</td>"
                     f"<td><strong>{escape(_measured(r))}</strong></td><td>{_s(r.detected_s)}</td>"
                     f"<td>{_s(r.paged_s)}</td><td>{_s(r.acted_s)}</td><td>{_s(r.restored_s)}</td>"
                     f"<td>{_s(r.resolved_s)}</td><td>{escape(_lost(r))}</td></tr>")
    parts.append("</tbody></table>")
    for r in report.results:
        parts.append(_scenario_html(r, runbook_url))
    parts.append("<footer>goldwatch drill · times in seconds after each fault · the serving RTO measured is the later "
                 "of the sidecar's recovery and the clients' view</footer></main></body></html>")
    return "\n".join(parts) + "\n"


def _scenario_html(r: ScenarioResult, runbook_url: str | None) -> str:
    link = _runbook(r, runbook_url)
    rows = "".join(f"<tr><td>{e.t:.3f}</td><td>{escape(e.source)}</td><td>{escape(e.what)}</td></tr>"
                   for e in r.timeline)
    notes = "".join(f"<li><strong>{escape(p)}</strong></li>" for p in r.problems) + \
        "".join(f"<li>{escape(n)}</li>" for n in r.notes)
    pages = "".join(f"<li>{escape(p)}</li>" for p in r.pages)
    extra = ""
    if r.rpo:
        p = r.rpo
        extra = (f"<p>Restore point <code>{escape(str(p['restore_point']))}</code>, expected "
                 f"<code>{escape(str(p['expected_restore_point']))}</code>: RPO {escape(str(p['measured_s']))} s "
                 f"measured, {escape(str(p['expected_s']))} s from the backup's own record "
                 f"(exact: {'yes' if p['exact'] else 'NO'}).</p>")
    return (f'<section class="scenario" id="scenario-{escape(r.key)}"><h2>{escape(r.key)}. {escape(r.title)}: '
            f'<span class="status {r.status}">{r.status.upper()}</span></h2>'
            f"<p><code>{escape(r.subject)}</code>: {escape(r.fault)}.</p><p>{escape(r.summary)}</p>"
            + (timeline_svg(r) if r.status != "skip" else "") + extra
            + (f"<ul>{notes}</ul>" if notes else "")
            + (f'<p>Runbook: <a href="{escape(link, quote=True)}">{escape(link)}</a></p>' if link else "")
            + (f"<details><summary>pages PagerDuty received ({len(r.pages)})</summary><ul>{pages}</ul></details>"
               if pages else "")
            + (f"<details open><summary>timeline</summary><table><thead><tr><th>t (s)</th><th>who</th><th>what</th>"
               f"</tr></thead><tbody>{rows}</tbody></table></details>" if rows else "")
            + "</section>")


def write_report(report: DrillReport, out_dir: str | os.PathLike[str], *, runbook_url: str | None = None,
                 ) -> ReportFiles:
    """Write ``drill.md``, ``drill.html`` and ``drill.json`` under ``out_dir`` (each atomically)."""
    from goldwatch.watchdog.gate._files import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out / "drill.md", out / "drill.html", out / "drill.json")
    atomic_write_text(files.markdown, render_markdown(report, runbook_url=runbook_url))
    atomic_write_text(files.html, render_html(report, runbook_url=runbook_url))
    atomic_write_text(files.json, json.dumps(report_dict(report), indent=2, allow_nan=False) + "\n")
    return files
