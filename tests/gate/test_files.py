"""Report files: paths checked before any work, writes atomic, failures leave nothing behind."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldwatch.checks import Check
from goldwatch.watchdog.gate._files import ReportPathError, atomic_write_text, check_writable
from goldwatch.watchdog.gate.evidently_report import OutputCollector, drift_report_html
from goldwatch.watchdog.gate.reports import ReportPaths, write_reports
from goldwatch.watchdog.gate.svg import bar_chart
from goldwatch.watchdog.gate.verdict import BarPlot, GateVerdict


def test_check_writable_names_the_option_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ReportPathError) as info:
        check_writable(tmp_path / "missing" / "r.xml", option="--junit")
    assert str(info.value) == (
        f"--junit {tmp_path / 'missing' / 'r.xml'}: folder {tmp_path / 'missing'} does not exist "
        f"(fix: create it first: mkdir -p {tmp_path / 'missing'})"
    )
    with pytest.raises(ReportPathError, match="is a directory"):
        check_writable(tmp_path, option="--html")
    check_writable(tmp_path / "ok.xml", option="--junit")


def test_unwritable_folder(tmp_path: Path, monkeypatch) -> None:
    # permissions cannot be tested by chmod when the tests run as root, so the access check itself is stubbed
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(ReportPathError, match=f"folder {tmp_path} is not writable"):
        check_writable(tmp_path / "r.xml", option="--junit")


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "gate.md"
    target.write_text("old")

    def boom(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["gate.md"]


def test_reports_problems_lists_every_bad_path(tmp_path: Path) -> None:
    paths = ReportPaths(junit=tmp_path / "a" / "j.xml", markdown=tmp_path / "m.md", html=tmp_path / "b" / "h.html")
    assert [kind for kind, _ in paths.problems()] == ["junit", "html"]
    failed = write_reports(GateVerdict.from_checks([Check("a:b", "pass")]), paths)
    assert [kind for kind, _ in failed] == ["junit", "html"]
    assert (tmp_path / "m.md").is_file()


@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none()), min_size=1, max_size=60),
       st.one_of(st.none(), st.floats(-10, 10)))
def test_bar_chart_is_well_formed_svg_for_any_values(values: list[float | None], limit: float | None) -> None:
    labels = [f"<col {i}>" for i in range(len(values))]
    svg = bar_chart(BarPlot("t & <u>", "g", labels, values, [i % 2 == 0 for i in range(len(values))], limit=limit))
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    rects = [e for e in root.iter() if e.tag.endswith("rect")]
    assert len(rects) == len(values)
    assert all(float(r.get("height")) >= 0 for r in rects)


def test_evidently_report_needs_comparable_outputs() -> None:
    collector = OutputCollector()
    assert drift_report_html(collector) is None
    collector("g", {"y": np.zeros((4, 2))}, {"z": np.zeros((4, 2))})  # no output in common
    assert drift_report_html(collector) is None
