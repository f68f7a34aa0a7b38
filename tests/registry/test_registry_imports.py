"""The registry stays light: importing it (and the CLI module) pulls in no model runtime and no HTTP client."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_light() -> None:
    code = (
        "import sys, goldwatch.watchdog.registry, goldwatch.cli.registry\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'evidently', 'mlserver', 'httpx', 'psycopg')\n"
        "         if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""


# The registry's layers, bottom first. A module may import (at the top or inside a function, for type checking
# or not) only modules of lower layers: no cycles, and the facade is the only thing that knows every part.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("models", "names", "_integrity_adapter", "storage.url", "storage.schema"),
    ("storage.database", "storage.pg_testing", "store", "pointer", "reload"),
    ("storage", "mlflow_backend"),
    ("db", "serving", "journal", "ledger", "incidents", "settings"),
    ("switching",),
    ("rollback", "retention"),
    ("core",),
    ("",),  # the package itself: its public API
)


def _registry_imports(path, package: str) -> set[str]:
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module == package:  # from package import module
            names = [f"{package}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name == package or name.startswith(package + "."):
                found.add(name[len(package) + 1:] if name != package else "")
    return found


def test_imports_only_point_down() -> None:
    from pathlib import Path

    import goldwatch.watchdog.registry as registry

    root = Path(registry.__file__).parent
    layer_of = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    modules = {p.relative_to(root).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
               .replace("__init__", ""): p for p in root.rglob("*.py")}
    assert set(modules) == set(layer_of), "every registry module has a place in LAYERS"
    wrong = []
    for module, path in modules.items():
        for target in _registry_imports(path, "goldwatch.watchdog.registry"):
            while target not in layer_of:  # `from pkg.module import name`: the module is the part before
                target = target.rpartition(".")[0]
            if target != module and layer_of[target] >= layer_of[module]:
                wrong.append(f"{module} (layer {layer_of[module]}) imports {target} (layer {layer_of[target]})")
    assert wrong == [], "\n".join(wrong)
