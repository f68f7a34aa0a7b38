"""JUnit XML: one ``<testcase>`` per check, so GitHub, GitLab and Jenkins list the gate's checks like tests.

A failed check becomes ``<failure>``, a check that could not run (or a gate that could not start) ``<error>``, a
skipped one ``<skipped>``; the message is the check's summary and the body carries its numbers, so the CI job page
shows *why* without opening another report. Check names ``area:subject:detail`` map to ``classname`` =
``goldwatch.gate.area`` and ``name`` = the rest, which is how those UIs group test cases.

>>> import xml.etree.ElementTree as ET
>>> from goldwatch.checks import Check
>>> from goldwatch.watchdog.gate.verdict import GateVerdict
>>> v = GateVerdict.from_checks([Check("artifact:digest", "pass"), Check("golden:y", "fail", "error 0.3 > 1e-05")])
>>> suite = ET.fromstring(render_junit(v)).find("testsuite")
>>> suite.get("tests"), suite.get("failures"), suite.get("errors")
('2', '1', '0')
>>> suite.findall("testcase")[1].find("failure").get("message")
'error 0.3 > 1e-05'
"""

from __future__ import annotations

import json
import os
import re
import socket
import xml.etree.ElementTree as ET

from goldwatch.checks import Check
from goldwatch.serialize import to_jsonable
from goldwatch.watchdog.gate._files import atomic_write_text
from goldwatch.watchdog.gate.verdict import GateVerdict

__all__ = ["render_junit", "write_junit"]

# XML 1.0 cannot carry most control characters, even escaped; a check summary quoting a file's bytes might.
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _ILLEGAL_XML.sub("\ufffd", text)


def _split_name(name: str) -> tuple[str, str]:
    area, sep, rest = name.partition(":")
    return (f"goldwatch.gate.{area}", rest) if sep and rest else ("goldwatch.gate", name)


def _evidence(check: Check) -> str:
    lines = [check.summary] if check.summary else []
    for label, values in (("measured", check.measured), ("threshold", check.threshold)):
        if values:
            lines.append(f"{label}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    if check.details:
        lines.append("details: " + json.dumps(to_jsonable(check.details), sort_keys=True)[:4000])
    return "\n".join(lines)


def _testcase(parent: ET.Element, check: Check) -> None:
    classname, name = _split_name(check.name)
    case = ET.SubElement(parent, "testcase", classname=_clean(classname), name=_clean(name))
    case.set("time", f"{check.duration_s or 0.0:.3f}")
    body = _clean(_evidence(check))
    message = _clean(check.summary or check.status)
    if check.status == "fail":
        ET.SubElement(case, "failure", message=message, type="CheckFailed").text = body
    elif check.status == "error":
        ET.SubElement(case, "error", message=message, type="CheckError").text = body
    elif check.status == "skip":
        ET.SubElement(case, "skipped", message=message)
    elif body:
        ET.SubElement(case, "system-out").text = body


def render_junit(verdict: GateVerdict, *, suite_name: str = "goldwatch gate", hostname: str | None = None) -> str:
    """The verdict as a JUnit XML document (``<testsuites>`` with one ``<testsuite>``), valid under the Jenkins
    JUnit schema. ``hostname``: the machine the gate ran on (default: this one's)."""
    checks = list(verdict.checks)
    if verdict.error is not None:
        # The gate stopped before (or while) running checks: one error case says why, so the CI job shows it.
        checks.append(
            Check(name="gate:setup", status="error", summary=verdict.error.message(),
                  details={"kind": verdict.error.kind})
        )
    counts = {"fail": 0, "error": 0, "skip": 0}
    for c in checks:
        if c.status in counts:
            counts[c.status] += 1
    total_time = f"{verdict.duration_s:.3f}"
    # <testsuites> has no `skipped` in the Jenkins JUnit schema (tests/gate/schemas): the count lives on the suite
    root = ET.Element(
        "testsuites", name=suite_name, tests=str(len(checks)), failures=str(counts["fail"]),
        errors=str(counts["error"]), time=total_time,
    )
    suite = ET.SubElement(
        root, "testsuite", name=suite_name, tests=str(len(checks)), failures=str(counts["fail"]),
        errors=str(counts["error"]), skipped=str(counts["skip"]), time=total_time,
        timestamp=verdict.started_at, hostname=_clean(hostname if hostname is not None else socket.gethostname()),
    )
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("verdict", verdict.verdict),
        ("candidate", verdict.candidate.spec if verdict.candidate else ""),
        ("baseline", verdict.baseline.spec if verdict.baseline else ""),
        ("devices", ",".join(verdict.devices)),
    ):
        ET.SubElement(props, "property", name=key, value=_clean(value))
    for check in checks:
        _testcase(suite, check)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(verdict: GateVerdict, path: str | os.PathLike[str]) -> None:
    """Write :func:`render_junit` to ``path`` atomically."""
    atomic_write_text(path, render_junit(verdict))
