"""Importing the golden-set, runtime and example modules (and `goldwatch golden --help`) stays light."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "onnxruntime", "onnx", "evidently", "mlserver")


def test_modules_import_no_heavy_library() -> None:
    code = (
        "import sys, goldwatch, goldwatch.golden_sets, goldwatch.runtimes, goldwatch.examples, "
        "goldwatch.examples.faults, goldwatch.runtimes.oip, goldwatch.runtimes.mlserver_testing, goldwatch.cli.golden;"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_golden_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom goldwatch.cli import main\n"
        "r = CliRunner().invoke(main, ['golden', 'replay', '--help'])\nassert r.exit_code == 0, r.output\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
