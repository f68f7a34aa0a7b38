"""The folder layout is the architecture: imports point down, never in cycles.

Layers, bottom first (a module may import its own layer's modules and anything below, never above):

    foundation   errors, checks, config, logs, progress, probe, serialize, _http, ... (goldwatch/*.py)
    parts        detectors, integrity, golden_sets, runtimes, examples
    services     watchdog (sidecar, agent, gate, registry, alerts, live, recovery)
    adapters     cli, doctor, reference

Lazy imports inside functions count too (they are how a layer reaches an optional dependency, not how it reaches
up). Only ``if TYPE_CHECKING:`` blocks are exempt. Module-level cycles are checked separately: a cycle between two
modules loaded at import time makes the import order matter and breaks on the first refactor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "goldwatch"

LAYERS: dict[str, int] = {
    "detectors": 1, "integrity": 1, "golden_sets": 1, "runtimes": 1, "examples": 1, "cluster": 1,
    "watchdog": 2,
    "cli": 3, "doctor": 3, "reference": 3, "__main__": 3,
}
FOUNDATION = 0


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], FOUNDATION) if len(parts) > 1 else FOUNDATION


def _imports(module: str, *, top_level_only: bool, modules: dict[str, Path] = MODULES) -> set[str]:
    """The goldwatch modules ``module`` imports (``from pkg import submodule`` names the submodule)."""
    path = modules[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    type_checking = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                     and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    if top_level_only:
        nodes: list[ast.AST] = [n for node in tree.body for n in (node.body if isinstance(node, ast.Try) else [node])]
    else:
        nodes = list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
            found.update(subs if len(subs) == len(node.names) else [target, *subs])
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in modules and m != module}


def test_the_layers_cover_every_package() -> None:
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(LAYERS), f"a new package needs a layer in LAYERS: {sorted(packages - set(LAYERS))}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    mine = _layer(module)
    upward = sorted(m for m in _imports(module, top_level_only=False) if _layer(m) > mine)
    assert not upward, f"{module} (layer {mine}) imports from a higher layer: {upward}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_module_level_import_cycles() -> None:
    cycles = _cycles({m: _imports(m, top_level_only=True) for m in MODULES})
    assert not cycles, f"modules that import each other at import time: {cycles}"


def test_the_checks_see_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The checks above can fail: the same walk over a two-module cycle with an upward import."""
    pkg = tmp_path / "goldwatch" / "integrity"
    pkg.mkdir(parents=True)
    (pkg / "a.py").write_text("from goldwatch.integrity import b\n\ndef f():\n    from goldwatch.cli import x\n")
    (pkg / "b.py").write_text("from goldwatch.integrity.a import thing\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from goldwatch.cli import x\n")
    modules = {"goldwatch.integrity.a": pkg / "a.py", "goldwatch.integrity.b": pkg / "b.py",
               "goldwatch.integrity.c": pkg / "c.py", "goldwatch.cli.x": tmp_path / "x.py"}
    graph = {m: _imports(m, top_level_only=True, modules=modules) for m in modules if m != "goldwatch.cli.x"}
    assert graph["goldwatch.integrity.a"] == {"goldwatch.integrity.b"}
    assert _cycles({**graph, "goldwatch.cli.x": set()}) == [["goldwatch.integrity.a", "goldwatch.integrity.b"]]
    everywhere = _imports("goldwatch.integrity.a", top_level_only=False, modules=modules)
    assert "goldwatch.cli.x" in everywhere
    assert _layer("goldwatch.cli.x") > _layer("goldwatch.integrity.a")
    assert _imports("goldwatch.integrity.c", top_level_only=False, modules=modules) == set()
