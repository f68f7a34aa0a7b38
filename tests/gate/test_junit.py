"""JUnit XML: one testcase per check, failures/errors/skips with their evidence, valid XML for any text."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from goldwatch.checks import Check
from goldwatch.errors import ArtifactError
from goldwatch.watchdog.gate.junit import render_junit, write_junit
from goldwatch.watchdog.gate.verdict import ErrorInfo, GateVerdict, ModelRef


def parse(verdict: GateVerdict) -> ET.Element:
    root = ET.fromstring(render_junit(verdict))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    return suites[0]


def test_counts_and_elements_match_checks() -> None:
    checks = [
        Check("artifact:digest", "pass", "3 files match", duration_s=0.25),
        Check.from_comparison("golden:g:cpu:logits", measured=0.3, threshold=1e-5, higher_is_worse=True, unit="abs"),
        Check("drift:g:logits", "error", "detector failed: shapes differ"),
        Check("device:cuda", "skip", "no CUDA GPU"),
    ]
    suite = parse(GateVerdict.from_checks(checks, candidate=ModelRef("m.onnx")))
    counts = (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped"))
    assert counts == ("4", "1", "1", "1")
    assert suite.get("hostname")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("goldwatch.gate.artifact", "digest"),
        ("goldwatch.gate.golden", "g:cpu:logits"),
        ("goldwatch.gate.drift", "g:logits"),
        ("goldwatch.gate.device", "cuda"),
    ]
    assert cases[0].get("time") == "0.250"
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "0.3 outside limit (<= 1e-05 abs)"
    assert "measured: value=0.3" in (failure.text or "")
    assert "threshold: limit=1e-05, direction=max" in (failure.text or "")
    assert cases[2].find("error") is not None
    assert cases[3].find("skipped").get("message") == "no CUDA GPU"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["verdict"] == "error"
    assert props["candidate"] == "m.onnx"


def test_gate_error_is_recorded_as_an_error_testcase() -> None:
    err = ArtifactError("model not found", where="cand.onnx", hint="pass an existing model file")
    suite = parse(GateVerdict.from_checks([], error=ErrorInfo.from_exception(err)))
    assert suite.get("errors") == "1"
    (case,) = suite.findall("testcase")
    assert case.get("name") == "setup"
    assert case.find("error").get("message") == "cand.onnx: model not found (fix: pass an existing model file)"


@given(st.text(max_size=60), st.text(max_size=60))
def test_any_text_gives_well_formed_xml(name: str, summary: str) -> None:
    suite = parse(GateVerdict.from_checks([Check(name or "x", "fail", summary, details={"k": summary})]))
    assert suite.get("failures") == "1"


def test_write_is_atomic_and_complete(tmp_path) -> None:
    target = tmp_path / "gate.xml"
    write_junit(GateVerdict.from_checks([Check("a:b", "pass")]), target)
    assert ET.parse(target).getroot().tag == "testsuites"
    assert [p.name for p in tmp_path.iterdir()] == ["gate.xml"]


SCHEMA = Path(__file__).with_name("schemas") / "jenkins-junit-10.xsd"


def _jenkins_schema():  # type: ignore[no-untyped-def]
    import xmlschema

    return xmlschema.XMLSchema(SCHEMA)


def test_output_is_valid_under_the_jenkins_junit_schema() -> None:
    """Jenkins refuses `skipped` on <testsuites> and knows `hostname` on <testsuite> (field report)."""
    schema = _jenkins_schema()
    verdicts = [
        GateVerdict.from_checks([
            Check("artifact:digest", "pass", "3 files match", duration_s=0.25),
            Check("golden:g:cpu:logits", "fail", "0.3 > 1e-05", measured={"value": 0.3}, threshold={"limit": 1e-5}),
            Check("drift:g:logits", "error", "detector failed", details={"k": [1, 2]}),
            Check("device:cuda", "skip", "no CUDA GPU"),
        ], candidate=ModelRef("m.onnx")),
        GateVerdict.from_checks([], error=ErrorInfo.from_exception(ArtifactError("model not found", where="x"))),
    ]
    for verdict in verdicts:
        document = render_junit(verdict, hostname="ci-runner-7")
        schema.validate(document)  # raises with the offending element and attribute
        root = ET.fromstring(document)
        assert root.get("skipped") is None
        assert root.find("testsuite").get("hostname") == "ci-runner-7"


def test_the_schema_check_would_catch_the_old_attributes() -> None:
    schema = _jenkins_schema()
    document = render_junit(GateVerdict.from_checks([Check("a:b", "skip", "x")]))
    root = ET.fromstring(document)
    root.set("skipped", "1")
    assert not schema.is_valid(ET.tostring(root, encoding="unicode"))


@given(st.text(max_size=40), st.text(max_size=40))
def test_any_text_stays_valid_under_the_schema(name: str, summary: str) -> None:
    document = render_junit(GateVerdict.from_checks([Check(name or "x", "fail", summary, details={"k": summary})]))
    assert _SCHEMA.is_valid(document)


_SCHEMA = _jenkins_schema()
