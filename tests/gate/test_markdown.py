"""The Markdown summary: verdict first, failures with numbers, table cells that cannot be broken."""

from __future__ import annotations

import re

from goldwatch.checks import Check
from goldwatch.errors import RegistryError
from goldwatch.watchdog.gate.markdown import render_markdown
from goldwatch.watchdog.gate.verdict import ErrorInfo, GateVerdict, ModelRef


def test_failures_first_then_folded_passes() -> None:
    v = GateVerdict.from_checks(
        [Check("artifact:digest", "pass", "ok"),
         Check.from_comparison("golden:g:y", measured=0.3, threshold=1e-5, higher_is_worse=True, unit="abs")],
        candidate=ModelRef("c.onnx"), baseline=ModelRef("b.onnx"), golden_sets=["g"],
    )
    text = render_markdown(v, html_report="gate.html")
    assert text.startswith("## goldwatch gate: ❌ FAIL\n")
    assert text.index("### Failed checks") < text.index("<details><summary>Passed and skipped checks (1)")
    assert "| ❌ | `golden:g:y` | 0.3 outside limit (<= 1e-05 abs) | value=0.3 | limit=1e-05, direction=max |" in text
    assert "candidate `c.onnx`; baseline `b.onnx`; 1 golden set(s)" in text
    assert "[gate.html](gate.html)" in text


def test_cells_are_escaped() -> None:
    text = render_markdown(GateVerdict.from_checks([Check("a|b", "fail", "x | y\nz")]))
    row = next(line for line in text.splitlines() if line.startswith("| ❌"))
    cells = re.split(r"(?<!\\)\|", row)
    assert len(cells) == 7  # five columns between the outer pipes: no cell was split
    assert "x \\| y z" in row


def test_error_section() -> None:
    err = RegistryError("model 'm' has no known-good version", where="registry .goldwatch", hint="promote one")
    text = render_markdown(GateVerdict.from_checks([], error=ErrorInfo.from_exception(err)))
    assert "## goldwatch gate: ⚠️ ERROR" in text
    assert "- **what:** model 'm' has no known-good version" in text
    assert "- **where:** `registry .goldwatch`" in text
    assert "- **fix:** promote one" in text
