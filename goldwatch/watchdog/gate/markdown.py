"""A Markdown summary fit for ``$GITHUB_STEP_SUMMARY`` (and GitLab/Jenkins descriptions).

Failures first, with their numbers; passing checks in a table below; long evidence folded in ``<details>``.
Table cells are escaped so a check summary can never break the table.

>>> from goldwatch.checks import Check
>>> from goldwatch.watchdog.gate.verdict import GateVerdict, ModelRef
>>> v = GateVerdict.from_checks([Check("golden:y", "fail", "max |error| 0.3 > 1e-05 | abs")],
...                             candidate=ModelRef(spec="model.onnx"))
>>> text = render_markdown(v)
>>> text.splitlines()[0]
'## goldwatch gate: ❌ FAIL'
>>> "max \\\\|error\\\\| 0.3 > 1e-05 \\\\| abs" in text
True
"""

from __future__ import annotations

import os

from goldwatch.checks import Check
from goldwatch.watchdog.gate._files import atomic_write_text
from goldwatch.watchdog.gate.verdict import GateVerdict

__all__ = ["render_markdown", "write_markdown"]

_ICON = {"pass": "✅", "fail": "❌", "error": "⚠️", "skip": "⏭️"}


def _cell(text: object) -> str:
    # A pipe or newline inside a cell would end the cell or the row.
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _numbers(values: object) -> str:
    if not isinstance(values, dict) or not values:
        return ""
    return ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _table(checks: list[Check]) -> list[str]:
    lines = ["| | check | result | measured | threshold |", "|---|---|---|---|---|"]
    for c in checks:
        lines.append(
            f"| {_ICON[c.status]} | `{_cell(c.name)}` | {_cell(c.summary or c.status)} | "
            f"{_cell(_numbers(dict(c.measured)))} | {_cell(_numbers(dict(c.threshold)))} |"
        )
    return lines


def render_markdown(verdict: GateVerdict, *, html_report: str | None = None) -> str:
    """The verdict as Markdown; ``html_report`` (a path or URL) is linked when given."""
    icon = _ICON[verdict.verdict]
    lines = [f"## goldwatch gate: {icon} {verdict.verdict.upper()}", "", f"**{_cell(verdict.headline())}**", ""]
    facts = []
    if verdict.candidate:
        facts.append(f"candidate `{verdict.candidate.spec}`")
    if verdict.baseline:
        facts.append(f"baseline `{verdict.baseline.spec}`")
    if verdict.golden_sets:
        facts.append(f"{len(verdict.golden_sets)} golden set(s)")
    facts.append("devices " + ", ".join(verdict.devices))
    facts.append(f"{verdict.duration_s:.1f} s")
    lines += ["; ".join(facts), ""]
    counts = verdict.counts
    lines += [" · ".join(f"{_ICON[k]} {counts[k]} {k}" for k in ("pass", "fail", "error", "skip")), ""]
    if verdict.error is not None:
        err = verdict.error
        lines += ["### Error", "", f"- **what:** {err.what}"]
        if err.where:
            lines.append(f"- **where:** `{err.where}`")
        if err.hint:
            lines.append(f"- **fix:** {err.hint}")
        lines.append("")
    bad = [c for c in verdict.checks if c.status in ("fail", "error")]
    good = [c for c in verdict.checks if c.status in ("pass", "skip")]
    if bad:
        lines += ["### Failed checks", "", *_table(bad), ""]
    if good:
        lines += ["<details><summary>Passed and skipped checks "
                  f"({len(good)})</summary>", "", *_table(good), "", "</details>", ""]
    if verdict.golden_digests:
        lines += ["Golden sets replayed (pin them with `--golden DIR@sha256:HEX`): "
                  + ", ".join(f"`{_cell(spec)}` {digest[:19]}…" for spec, digest in verdict.golden_digests.items()), ""]
    if verdict.promotion is not None:
        p = verdict.promotion
        lines += [f"Promoted `{p.model}` version `{p.version}` to **{p.state}** in `{p.registry}`.", ""]
    if html_report:
        lines += [f"Full report with plots: [{os.path.basename(html_report)}]({html_report})", ""]
    return "\n".join(lines)


def write_markdown(verdict: GateVerdict, path: str | os.PathLike[str], *, html_report: str | None = None) -> None:
    """Write :func:`render_markdown` to ``path`` atomically."""
    atomic_write_text(path, render_markdown(verdict, html_report=html_report))
