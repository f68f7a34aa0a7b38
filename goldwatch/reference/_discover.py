"""Finding the modules that follow a reference convention, by reading goldwatch's source (nothing is imported to
look): a module that defines a top-level function ``document_metrics`` or ``document_routes``."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

__all__ = ["PACKAGE_ROOT", "defines", "imported_names", "module_name", "source_modules"]

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@functools.lru_cache(maxsize=1)
def source_modules() -> dict[str, ast.Module]:
    """Every module of the goldwatch package, parsed (module name -> syntax tree)."""
    found = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        found[module_name(path)] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return found


def defines(tree: ast.Module, function: str) -> bool:
    return any(isinstance(node, ast.FunctionDef) and node.name == function for node in tree.body)


def imported_names(tree: ast.Module) -> set[str]:
    """``module.name`` for every ``from module import name`` anywhere in the module (function bodies included)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def modules_defining(function: str) -> list[str]:
    return [name for name, tree in source_modules().items() if defines(tree, function)]
