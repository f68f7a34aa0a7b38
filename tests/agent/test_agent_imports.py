"""Importing the agent package stays light: torch, onnxruntime and mlserver load only when a model of theirs is
watched or served (the package is imported by servers of every kind)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_agent_imports_no_model_runtime() -> None:
    code = ("import sys, goldwatch.watchdog.agent; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'mlserver', 'evidently') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"
