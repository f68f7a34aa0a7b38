"""Reports from outside (strict validation) and the [serve] configuration (every problem at once, key paths)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from goldwatch.config import parse_config
from goldwatch.errors import ConfigError, InvalidInputError
from goldwatch.probe import PROBE_HEADER, PROBE_PARAMETER, is_probe_id
from goldwatch.runtimes.oip import OipRuntime
from goldwatch.watchdog.sidecar.evidence import EvidenceKind, EvidenceKinds, parse_report

GOOD = {"source": "agent:pod-7:4242", "kind": "resident", "version": "3", "interval_s": 30.0,
        "checks": [{"name": "resident:fingerprint", "status": "fail", "summary": "tensor 'w' block 2 differs",
                    "measured": {"blocks": 1}, "threshold": {"blocks": 0},
                    "details": {"tensor": "w", "block": 2}}]}


def test_a_valid_report_becomes_checks() -> None:
    report = parse_report(GOOD, kinds=EvidenceKinds.builtin())
    ev = report.evidence("fraud", received_at=5.0)
    assert (ev.kind, ev.status, ev.version, ev.source, ev.interval_s) == ("resident", "fail", "3",
                                                                          "agent:pod-7:4242", 30.0)
    assert ev.checks[0].details == {"tensor": "w", "block": 2}


@pytest.mark.parametrize(("change", "message"), [
    ({"checks": []}, "checks: List should have at least 1 item"),
    ({"kind": "drift"}, "'drift' is not a kind of evidence reported from outside (accepted: resident)"),
    ({"source": "bad source!"}, "source: String should match pattern"),
    ({"interval_s": -1}, "interval_s: Input should be greater than 0"),
    ({"surprise": 1}, "surprise: unknown key"),
    ({"checks": [{"name": "nocolon", "status": "fail"}]}, "checks[0].name: String should match pattern"),
    ({"checks": [{"name": "resident:x", "status": "broken"}]}, "checks[0].status: Input should be 'pass'"),
    ({"checks": [{"name": "resident:x", "status": "pass", "measured": {"v": float("nan")}}]},
     "numbers must be finite (write null instead): v"),
    ({"checks": [{"name": "resident:x", "status": "pass", "measured": {"v": [1, 2]}}]}, "checks[0].measured.v"),
])
def test_every_problem_of_a_report_is_named_with_its_key_path(change: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidInputError) as info:
        parse_report({**GOOD, **change}, kinds=EvidenceKinds.builtin())
    assert message in str(info.value)


def test_several_problems_are_reported_at_once_and_non_objects_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="2 problem"):
        parse_report({**GOOD, "source": "", "interval_s": 0}, kinds=EvidenceKinds.builtin())
    with pytest.raises(InvalidInputError, match="must be a JSON object, got list"):
        parse_report([GOOD], kinds=EvidenceKinds.builtin())


def test_extension_kinds_register_once_with_their_own_class() -> None:
    kinds = EvidenceKinds.builtin()
    kinds.register(EvidenceKind("drift", "drift", "warning", consecutive=3, external=True))
    assert parse_report({**GOOD, "kind": "drift"}, kinds=kinds).kind == "drift"
    with pytest.raises(InvalidInputError, match="already registered"):
        kinds.register(EvidenceKind("drift", "drift2", "warning"))
    with pytest.raises(InvalidInputError, match="already belongs to 'files'"):
        kinds.register(EvidenceKind("other", "integrity", "warning"))
    with pytest.raises(InvalidInputError, match="not both"):
        EvidenceKind("x", "x", "error", may_rollback=True, may_reload=True)


def test_serve_config_defaults_and_per_check_tables() -> None:
    cfg = parse_config('[[serve.watch]]\nname = "fraud"\nurl = "http://127.0.0.1:8080/v2/models/fraud"\n'
                       '[serve.watch.files]\ninterval_s = 5\n')
    (w,) = cfg.serve.watch
    assert (cfg.serve.host, cfg.serve.port, cfg.serve.token_env) == ("127.0.0.1", 9180, "GOLDWATCH_SERVE_TOKEN")
    assert (w.files.interval_s, w.files.digest, w.golden_replay.interval_s, w.readiness.interval_s) == (5.0, "fast",
                                                                                                       60.0, 10.0)
    assert (w.mode, w.max_rollbacks_per_hour, w.golden_replay.confirm, w.uses_registry) == ("act", 2, True, True)
    assert w.server_down_grace_s > 30, "longer than a pod's default termination grace (30 s)"
    assert w.model_in_registry == "fraud"


def test_serve_config_reports_every_problem_at_once_with_key_paths() -> None:
    text = """
[serve]
port = 70000
[[serve.watch]]
name = "a"
url = "http://127.0.0.1:8080/not-oip"
[[serve.watch]]
name = "b"
url = "http://127.0.0.1:8080/v2/models/b"
served_path = "model.onnx"
[[serve.watch]]
name = "b"
url = "http://127.0.0.1:8080/v2/models/b"
mode = "yolo"
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="goldwatch.toml")
    text = str(info.value)
    for expected in ("serve.port", "serve.watch[0].url", "serve.watch[1]: served_path and manifest go together",
                     "serve.watch[2].mode"):
        assert expected in text, expected
    with pytest.raises(ConfigError, match="secrets must not be written"):
        parse_config('[serve]\ntoken = "hunter2"\n')
    with pytest.raises(ConfigError, match="must be unique, repeated: a"):
        parse_config('[[serve.watch]]\nname = "a"\nurl = "http://h:1/v2/models/a"\n'
                     '[[serve.watch]]\nname = "a"\nurl = "http://h:1/v2/models/a"\n')


def test_golden_replay_marks_every_request_as_goldwatchs_own() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/models/m":
            return httpx.Response(200, json={"name": "m", "inputs": [{"name": "x", "datatype": "FP32",
                                                                      "shape": [-1, 2]}],
                                             "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]})
        if request.url.path.endswith("/ready"):
            return httpx.Response(200)
        seen.append(request)
        body = httpx.Request("POST", "/", content=request.content).read()
        import json

        data = json.loads(body)
        return httpx.Response(200, json={"outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 2],
                                                      "data": data["inputs"][0]["data"]}]})

    client = httpx.Client(base_url="http://server", transport=httpx.MockTransport(handle))
    probe = OipRuntime("http://server/v2/models/m", client=client, probe=True)
    plain = OipRuntime("http://server/v2/models/m", client=client)
    x = np.ones((1, 2), np.float32)
    probe.run({"x": x})
    probe.run({"x": x})
    plain.run({"x": x})
    import json

    marks = [(r.headers.get(PROBE_HEADER), json.loads(r.content).get("parameters")) for r in seen]
    assert all(is_probe_id(h) for h, _ in marks[:2])
    assert marks[0][0] != marks[1][0], "a fresh id per request"
    assert all(p == {PROBE_PARAMETER: True} for _, p in marks[:2])
    assert marks[2] == (None, None), "users' traffic through the same client is not marked"
