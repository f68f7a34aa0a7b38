"""Rollback against a real MLServer: the model directory is the serving pointer; reload via the OIP repository API."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from goldwatch.runtimes.mlserver_testing import mlserver_available, start_mlserver, write_npz_model_dir
from goldwatch.watchdog.registry import OipReloader, Registry, Serving, make_pointer
from tests.registry.registry_helpers import corrupt, write_weights

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not mlserver_available(), reason="mlserver is not installed (pip install 'goldwatch[dev]')"),
]


def _infer(url: str, x: np.ndarray) -> np.ndarray:
    body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    resp = httpx.post(f"{url}/v2/models/fraud/infer", json=body, timeout=30, trust_env=False)
    assert resp.status_code == 200, resp.text
    out = resp.json()["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


def test_rollback_reloads_a_real_mlserver(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    model_dir = write_npz_model_dir(repo, "fraud")
    reg = Registry.open(tmp_path / "reg")
    pointer = make_pointer("current-link", model_dir)
    reg.attach("fraud", Serving(pointer))
    weights = {}
    for seed in (1, 2, 3):
        src = write_weights(tmp_path / "src" / str(seed), seed, n=16)
        mv = reg.add("fraud", src)
        weights[mv.version] = np.load(src / "weights.npz")["w"]
        reg.promote("fraud", mv.version, reason="release")  # the pointer ends at version 3
    x = np.ones((2, 16), dtype=np.float32)
    with start_mlserver(repo) as server:
        np.testing.assert_allclose(_infer(server.base_url, x), x @ weights["3"], rtol=1e-5)
        reloader = OipReloader(server.base_url, model_name="fraud")
        reg.attach("fraud", Serving(pointer, reloader=reloader, ready_timeout_s=30))
        corrupt(reg.get("fraud", "2").path / "weights.npz")  # the newest backup is bad
        result = reg.rollback("fraud", actor="sidecar", reason="v3 golden replay failed")
        assert result.ok, result.error
        assert (result.from_version, result.to_version) == ("3", "1")
        assert [s.version for s in result.skipped] == ["2"]
        assert result.server_ready is True
        assert {"select", "switch", "verify_after", "reload", "ready"} == set(result.phases)
        # the server answers with version 1's weights now
        np.testing.assert_allclose(_infer(server.base_url, x), x @ weights["1"], rtol=1e-5)
        assert reg.check("fraud").checks[0].status == "fail"  # nothing verified is left behind version 1
        reloader.close()
    reg.close()
