"""KServe's Python ModelServer as a second OIP v2 server: replay and gate against it give the local numbers.

KServe cannot share goldwatch's environment (its Starlette/FastAPI pins exclude MLServer's), so it runs from its own
virtual environment (.venv-kserve, created by .ci/run from constraints-kserve.txt). Here it skips with the reason
when that environment is absent; CI sets GOLDWATCH_REQUIRE_KSERVE=1, which makes its absence a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from goldwatch.errors import ServerUnreachableError
from goldwatch.examples.encoder import EncoderArtifacts
from goldwatch.golden_sets import GoldenSet, replay
from goldwatch.runtimes import Signature, TensorSpec, load_model
from goldwatch.runtimes.kserve_testing import KServeProcess, kserve_python, start_kserve
from goldwatch.runtimes.oip import OipRuntime
from goldwatch.watchdog.gate.runner import run_gate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kserve(encoder: EncoderArtifacts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KServeProcess]:
    python = kserve_python()
    if python is None or not python.exists():
        reason = "no KServe environment (.venv-kserve or $GOLDWATCH_KSERVE_PYTHON; .ci/run creates it)"
        if os.environ.get("GOLDWATCH_REQUIRE_KSERVE"):
            pytest.fail(reason + ", and GOLDWATCH_REQUIRE_KSERVE is set")
        pytest.skip(reason)
    with start_kserve(encoder.onnx, name="encoder", workdir=tmp_path_factory.mktemp("kserve"), timeout=120) as server:
        yield server


def test_replay_through_kserve_gives_the_local_answers(kserve: KServeProcess, encoder: EncoderArtifacts,
                                                      encoder_golden: GoldenSet) -> None:
    url = kserve.model_url("encoder")
    remote = load_model(url)
    assert isinstance(remote, OipRuntime)
    assert remote.publishes_inputs is False  # KServe's default metadata lists no inputs
    report = replay(remote, encoder_golden)
    assert report.ok, [(c.name, c.summary) for c in report.checks if not c.ok]
    assert any(c.name == "golden:signature" for c in report.checks)
    local = load_model(encoder.onnx).run(dict(encoder_golden.inputs))["embedding"]
    np.testing.assert_array_equal(report.outputs["embedding"], local)


def test_gate_on_a_kserve_candidate(kserve: KServeProcess, encoder: EncoderArtifacts,
                                    encoder_golden: GoldenSet) -> None:
    verdict = run_gate(kserve.model_url("encoder"), [Path(encoder_golden.path)], baseline=encoder.onnx,  # type: ignore[arg-type]
                       latency=False)
    assert verdict.verdict == "pass", [(c.name, c.summary) for c in verdict.checks if not c.ok]
    (cosine,) = [c for c in verdict.checks if c.name == "baseline:golden:embedding:cosine"]
    assert cosine.measured["value"] == pytest.approx(1.0, abs=1e-6)


def test_kserve_errors_are_one_line_and_loopback_ignores_the_proxy(kserve: KServeProcess,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there: a proxy would be fatal
    monkeypatch.delenv("NO_PROXY", raising=False)
    rt = load_model(kserve.model_url("encoder"))
    assert isinstance(rt, OipRuntime)
    rt.signature = Signature(inputs=(TensorSpec("not_an_input", "int64", (None, None)),), outputs=())
    with pytest.raises(ServerUnreachableError) as info:  # KServe answers 500 to a predictor's ValueError
        rt.run({"not_an_input": np.ones((1, 4), np.int64)})
    text = str(info.value)
    assert "unknown input 'not_an_input' this model takes" in text
    assert "\n" not in text
