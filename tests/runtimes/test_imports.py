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


def test_runtime_interface_imports_no_backend() -> None:
    """base.py defines the interface; the backends import it, and only the factory imports the backends."""
    import ast
    from pathlib import Path

    import goldwatch.runtimes.base as base

    imported = set()
    for node in ast.walk(ast.parse(Path(base.__file__).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    backends = {"goldwatch.runtimes.factory", "goldwatch.runtimes.onnx", "goldwatch.runtimes.torch",
                "goldwatch.runtimes.oip"}
    assert not imported & backends
    assert not hasattr(base, "load_model")
    from goldwatch.runtimes import load_model
    from goldwatch.runtimes.factory import load_model as factory_load_model

    assert load_model is factory_load_model
