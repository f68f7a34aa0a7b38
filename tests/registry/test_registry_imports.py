"""The registry stays light: importing it (and the CLI module) pulls in no model runtime and no HTTP client."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_light() -> None:
    code = (
        "import sys, goldwatch.watchdog.registry, goldwatch.cli.registry\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'evidently', 'mlserver', 'httpx') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""
