"""Writing the gate's four reports; each written atomically, each path checked before the gate runs.

>>> import tempfile, pathlib
>>> from goldwatch.checks import Check
>>> from goldwatch.watchdog.gate.verdict import GateVerdict
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> paths = ReportPaths(junit=d / "gate.xml", json=d / "gate.json")
>>> write_reports(GateVerdict.from_checks([Check("a:b", "pass")]), paths)
[]
>>> sorted(p.name for p in d.iterdir())
['gate.json', 'gate.xml']
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from goldwatch.errors import GoldwatchError
from goldwatch.watchdog.gate._files import atomic_write_text, check_writable
from goldwatch.watchdog.gate.html import render_html
from goldwatch.watchdog.gate.junit import render_junit
from goldwatch.watchdog.gate.markdown import render_markdown
from goldwatch.watchdog.gate.verdict import GateVerdict

__all__ = ["ReportPaths", "write_reports"]


@dataclasses.dataclass(frozen=True)
class ReportPaths:
    """Where to write each report; None skips it."""

    junit: Path | None = None
    markdown: Path | None = None
    json: Path | None = None
    html: Path | None = None

    def items(self) -> list[tuple[str, Path]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if getattr(self, f.name)]

    def problems(self) -> list[tuple[str, GoldwatchError]]:
        """Every path that could not be written, with the error saying why (checked before the gate runs)."""
        found = []
        for kind, path in self.items():
            try:
                check_writable(path, option=f"--{kind}")
            except GoldwatchError as err:
                found.append((kind, err))
        return found


def write_reports(
    verdict: GateVerdict, paths: ReportPaths, *, evidently_html: str | None = None, skip: frozenset[str] = frozenset()
) -> list[tuple[str, GoldwatchError]]:
    """Write every report named in ``paths`` (except kinds in ``skip``); return those that failed, with why.

    One unwritable path does not stop the others: the JUnit file in particular should still record the verdict.
    """
    failed: list[tuple[str, GoldwatchError]] = []
    for kind, path in paths.items():
        if kind in skip:
            continue
        if kind == "junit":
            text = render_junit(verdict)
        elif kind == "markdown":
            html = paths.html
            text = render_markdown(verdict, html_report=html.name if html and html.parent == path.parent else None)
        elif kind == "json":
            text = verdict.to_json()
        else:
            text = render_html(verdict, evidently_html=evidently_html)
        try:
            atomic_write_text(path, text)
        except GoldwatchError as err:
            failed.append((kind, err))
    return failed
