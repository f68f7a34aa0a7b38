"""The verdict: derived outcome, exit codes, JSON round trip, and the documented schema."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldwatch.checks import Check
from goldwatch.errors import DataError, GoldenSetError
from goldwatch.watchdog.gate.verdict import (
    SCHEMA_PATH,
    BarPlot,
    ErrorInfo,
    GateVerdict,
    HistogramPlot,
    ModelRef,
    Promotion,
)
from tests.gate._schema import errors as schema_errors

SCHEMA = json.loads(SCHEMA_PATH.read_text())

statuses = st.sampled_from(["pass", "fail", "error", "skip"])
checks_st = st.lists(
    st.builds(Check, name=st.text(min_size=1, max_size=20), status=statuses, summary=st.text(max_size=40)),
    max_size=12,
)


def full_verdict() -> GateVerdict:
    return GateVerdict.from_checks(
        [
            Check.from_comparison("golden:g:cpu:y", measured=0.5, threshold=1e-5, higher_is_worse=True),
            Check("artifact:digest", "pass", "ok", measured={"files": 3}, details={"files": ["a", "b"]}),
            Check("device:cuda", "skip", "no GPU"),
        ],
        candidate=ModelRef("cand.onnx", runtime="onnx"),
        baseline=ModelRef("registry:m", name="m", version="3"),
        golden_sets=["g"],
        manifest="m.json",
        thresholds={"min_top1_agreement": 0.99, "latency_budget_ms_p95": None},
        histograms=[HistogramPlot("h", "golden", ["0", "1e-06"], [3, 1], limit=1e-5, limit_bin=1)],
        bars=[BarPlot("b", "baseline", ["g:y"], [0.5], [True], limit=0.99, y_max=1.0)],
        promotion=Promotion(registry="r", model="m", version="4", state="known-good"),
    )


@given(checks_st)
def test_outcome_is_worst_status(checks: list[Check]) -> None:
    v = GateVerdict.from_checks(checks)
    statuses_seen = {c.status for c in checks}
    expected = "error" if "error" in statuses_seen else "fail" if "fail" in statuses_seen else "pass"
    assert v.verdict == expected
    assert v.exit_code == {"pass": 0, "fail": 1, "error": 2}[expected]
    assert sum(v.counts.values()) == len(checks)


def test_error_info_forces_error_even_with_passing_checks() -> None:
    err = GoldenSetError("built for inputs ['x'], the model takes ['image']", where="golden/", hint="rebuild it")
    v = GateVerdict.from_checks([Check("artifact:digest", "pass")], error=ErrorInfo.from_exception(err))
    assert (v.verdict, v.exit_code) == ("error", 2)
    assert v.headline() == (
        "ERROR: the gate could not run: golden/: built for inputs ['x'], the model takes ['image'] (fix: rebuild it)"
    )
    assert v.to_dict()["error"]["kind"] == "GoldenSetError"


def test_headlines() -> None:
    assert GateVerdict.from_checks([Check("a", "pass"), Check("b", "skip")]).headline() == (
        "PASS: 1 of 2 checks passed, 1 skipped"
    )
    fails = [Check(f"c{i}", "fail") for i in range(5)]
    assert GateVerdict.from_checks(fails).headline() == "FAIL: 5 of 5 checks failed (c0, c1, c2, +2 more)"
    assert GateVerdict.from_checks([Check("x", "error")]).headline() == "ERROR: 1 of 1 checks could not run (x)"


def test_json_round_trip_and_schema() -> None:
    v = full_verdict()
    data = json.loads(v.to_json())
    assert schema_errors(data, SCHEMA) == []
    assert list(data)[:5] == ["schema", "verdict", "exit_code", "headline", "counts"]
    back = GateVerdict.from_json(v.to_json())
    assert back.to_dict() == v.to_dict()


@given(checks_st)
def test_any_verdict_matches_schema(checks: list[Check]) -> None:
    data = json.loads(GateVerdict.from_checks(checks).to_json())
    assert schema_errors(data, SCHEMA) == []


def test_schema_checker_catches_violations() -> None:
    data = full_verdict().to_dict()
    data["verdict"] = "maybe"
    del data["checks"][0]["status"]
    data["extra"] = 1
    found = schema_errors(json.loads(json.dumps(data)), SCHEMA)
    assert any("maybe" in e for e in found)
    assert any("missing 'status'" in e for e in found)
    assert any("unexpected key 'extra'" in e for e in found)


def test_nan_measurement_becomes_null_not_invalid_json() -> None:
    v = GateVerdict.from_checks([Check("x", "fail", measured={"value": float("nan")})])
    assert json.loads(v.to_json())["checks"][0]["measured"]["value"] is None


def test_from_dict_refuses_other_documents() -> None:
    with pytest.raises(DataError, match="not a gate verdict"):
        GateVerdict.from_dict({"schema": "something/else"})
