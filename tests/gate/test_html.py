"""The HTML report: self-contained, escaped, verdict and plots present (the browser test is test_chromium.py)."""

from __future__ import annotations

import re

import numpy as np

from goldwatch.checks import Check
from goldwatch.watchdog.gate.html import render_html
from goldwatch.watchdog.gate.metrics import error_histogram
from goldwatch.watchdog.gate.svg import bar_chart, histogram_chart
from goldwatch.watchdog.gate.verdict import BarPlot, GateVerdict, ModelRef


def verdict_with_plots() -> GateVerdict:
    rng = np.random.default_rng(0)
    expected = rng.normal(size=(64, 4))
    actual = expected + rng.normal(scale=1e-7, size=expected.shape)
    return GateVerdict.from_checks(
        [Check("golden:g:cpu:y", "pass", "max error 3e-7"), Check("drift:g:y", "fail", "2 of 4 drifted")],
        candidate=ModelRef("c.onnx"),
        histograms=[error_histogram(actual, expected, tolerance=1e-5, title="g · y · cpu")],
        bars=[
            BarPlot("agreement", "baseline", ["g:y"], [0.97], [True], limit=0.99, y_max=1.0),
            BarPlot("drift", "drift", ["0", "1", "2", "3"], [0.1, 0.5, 0.05, 0.6], [False, True, False, True],
                    y_max=1.0),
        ],
    )


def test_self_contained_no_network_no_script() -> None:
    page = render_html(verdict_with_plots())
    assert "<script" not in page
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}
    assert not re.search(r"(src|href)=", page)
    assert page.count("<svg") == 3


def test_verdict_banner_and_sections() -> None:
    page = render_html(verdict_with_plots())
    assert 'data-verdict="fail"' in page
    assert ">FAIL</span><span class=\"headline\">1 of 2 checks failed (drift:g:y)<" in page
    for heading in ("Golden replay: error per output", "Agreement with the baseline", "Output drift against"):
        assert heading in page
    # failures are listed first in the checks table
    assert page.index("drift:g:y</code>") < page.index("golden:g:cpu:y</code>")


def test_hostile_text_is_escaped() -> None:
    page = render_html(GateVerdict.from_checks(
        [Check("<script>alert(1)</script>", "fail", "<img src=x onerror=alert(1)>", details={"x": "</pre>"})],
        candidate=ModelRef("<b>m</b>")))
    assert "<script>" not in page
    assert "<img" not in page
    assert "&lt;script&gt;" in page
    assert "&lt;b&gt;m&lt;/b&gt;" in page


def test_histogram_chart_marks_bins_outside_tolerance() -> None:
    h = error_histogram(np.array([0.0, 0.5, 1e-3]), np.zeros(3), tolerance=1e-2, title="t")
    svg = histogram_chart(h)
    assert svg.count('class="bar bad"') == 1  # the 0.5 error; 1e-3 is within 1e-2
    assert "tolerance 0.01" in svg


def test_bar_chart_handles_missing_and_out_of_range_values() -> None:
    svg = bar_chart(BarPlot("b", "g", ["a", "b", "c"], [float("nan"), 5.0, -1.0], [False, True, False],
                            limit=0.5, y_max=1.0))
    heights = [float(h) for h in re.findall(r'height="([\d.]+)"><title>', svg)]
    assert len(heights) == 3
    assert heights[0] == 0.0
    assert heights[2] == 0.0
    assert heights[1] == max(heights)  # clipped to the axis, not beyond it


def test_evidently_is_embedded_in_srcdoc() -> None:
    page = render_html(GateVerdict.from_checks([]), evidently_html='<html><script>var a = "x";</script></html>')
    assert '<iframe class="evidently" title="Evidently drift report" srcdoc="' in page
    assert "<script>" not in page  # escaped inside srcdoc
    assert "srcdoc=\"&lt;html&gt;&lt;script&gt;var a = &quot;x&quot;;" in page
