"""The GPU benchmark of the agent is wired into benchmarks/gpu_check.sh and, without CUDA, stops at once with a
message and exit code 2 (it runs on a GPU machine later)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_the_agent_benchmark() -> None:
    script = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    assert "gpu_agent" in script.split("for bench in", 1)[1].splitlines()[0]


def test_without_cuda_the_gpu_benchmark_fails_fast_and_says_why(capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: benchmarks/gpu_check.sh runs the benchmark itself")
    from benchmarks import gpu_agent

    monkeypatch.setattr(sys, "argv", ["gpu_agent", "--quick"])
    assert gpu_agent.main() == 2
    assert "no CUDA device: this benchmark needs a GPU" in capsys.readouterr().err
