"""Scenario 4 for real on a GPU: the primary MLServer serves the model on CUDA (its metadata says so, and the device
check exercises the GPU), the golden sets are calibrated on the CPU and the GPU (their tolerances cover the
difference), and a lost device moves traffic to the CPU variant only after that cross-device set proves it; back
when the device returns. Skipped, with the reason, where no GPU is present."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from goldwatch.golden_sets import GoldenSet
from goldwatch.runtimes.mlserver_testing import mlserver_available
from goldwatch.watchdog.recovery.drill import run_drill
from goldwatch.watchdog.recovery.stack import start_local_stack

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not mlserver_available(), reason="mlserver is not installed (pip install 'goldwatch[demo]')"),
]


def test_a_lost_gpu_fails_over_to_the_cpu_variant_the_cross_device_golden_set_proves(tmp_path: Path) -> None:
    with start_local_stack(tmp_path / "stack", device="cuda") as stack:
        meta = httpx.get(stack.primary.model_url("fraud"), timeout=30, trust_env=False).json()
        assert meta["parameters"]["goldwatch_device"].startswith("cuda")
        assert meta["parameters"]["goldwatch_device_ok"] is True
        golden = GoldenSet.load(stack.root / "golden" / "2")
        assert set(golden.tolerances["logits"].derivation["devices"]) >= {"cpu", "cuda"}
        report = run_drill(stack.target(), ("4",))
        (result,) = report.results
        assert result.status == "pass", (result.summary, result.notes)
        assert result.incident is not None
        assert result.incident["action"]["route"] == "cpu_variant"
        assert "tolerances calibrated on cpu and cuda" in result.incident["action"]["summary"]
