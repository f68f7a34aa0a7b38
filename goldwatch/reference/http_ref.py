"""The HTTP reference: every endpoint goldwatch serves, read from the starlette route tables.

**Convention** (for every module that builds an HTTP app's routes): define a top-level function

.. code-block:: python

    def document_routes() -> list[starlette.routing.BaseRoute]:
        \"\"\"The routes as served (full paths), built without starting anything.\"\"\"

returning the same route objects the app serves (built over a small example service where the routes need one).
Each route's meaning is the first paragraph of its endpoint's docstring (``functools.wraps`` keeps it through a
wrapper). A test fails when a module builds routes without defining ``document_routes``, or a route has no
docstring.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

from goldwatch.reference._discover import imported_names, modules_defining, source_modules
from goldwatch.reference._markdown import code, header, prose, table

__all__ = ["HOOK", "RouteDoc", "collect_routes", "modules_missing_hook", "render_http"]

HOOK = "document_routes"


@dataclasses.dataclass(frozen=True)
class RouteDoc:
    module: str
    methods: tuple[str, ...]
    path: str
    summary: str


def _endpoint_doc(endpoint: Any) -> str:
    target = inspect.unwrap(endpoint) if callable(endpoint) else endpoint
    doc = inspect.getdoc(target) if inspect.isfunction(target) or inspect.ismethod(target) else (
        inspect.getdoc(target) or inspect.getdoc(type(target)))
    return prose((doc or "").split("\n\n")[0])


def _flatten(routes: list[Any], prefix: str = "") -> list[tuple[str, tuple[str, ...], Any]]:
    found = []
    for route in routes:
        sub = getattr(route, "routes", None)
        path = prefix + getattr(route, "path", "")
        if sub:  # a Mount: its own routes, under its path
            found += _flatten(list(sub), path)
            continue
        methods = tuple(sorted(m for m in (getattr(route, "methods", None) or {"GET"}) if m != "HEAD"))
        found.append((path, methods, getattr(route, "endpoint", None)))
    return found


def collect_routes() -> list[RouteDoc]:
    """Every route of every module that follows the convention (each method and path once per module)."""
    docs: dict[tuple[str, tuple[str, ...], str], RouteDoc] = {}
    for module_name in modules_defining(HOOK):
        module = importlib.import_module(module_name)
        for path, methods, endpoint in _flatten(list(getattr(module, HOOK)())):
            docs.setdefault((module_name, methods, path),
                            RouteDoc(module_name, methods, path, _endpoint_doc(endpoint)))
    return sorted(docs.values(), key=lambda d: d.module)  # stable: each app's routes in the order it declares them


def modules_missing_hook() -> list[str]:
    """Modules that build starlette routes without ``document_routes`` (a test keeps this empty)."""
    routing = {"starlette.routing.Route", "starlette.routing.Mount", "starlette.routing.WebSocketRoute",
               "starlette.routing.Router"}
    return [name for name, tree in source_modules().items()
            if not name.startswith("goldwatch.reference") and imported_names(tree) & routing
            and name not in modules_defining(HOOK)]


def render_http() -> str:
    routes = collect_routes()
    out = [header("HTTP reference",
                  "Every HTTP endpoint goldwatch serves. Servers bind 127.0.0.1 unless told otherwise; endpoints "
                  "that change state need `Authorization: Bearer <token>`.")]
    if not routes:
        out.append("\nThis version of goldwatch serves no HTTP endpoints.\n")
    by_module: dict[str, list[RouteDoc]] = {}
    for r in routes:
        by_module.setdefault(r.module, []).append(r)
    for module_name, rows in sorted(by_module.items()):
        doc = (importlib.import_module(module_name).__doc__ or "").strip().split("\n\n")[0]
        out.append(f"\n## {code(module_name)}\n\n{prose(doc)}\n\n")
        out.append(table(["method", "path", "what"],
                         [[", ".join(r.methods), code(r.path), r.summary or "(undocumented)"] for r in rows]))
    out.append("\n## Adding endpoints\n\n"
               f"A module that builds an HTTP app's routes defines a top-level `{HOOK}()` returning them as served "
               "(full paths), built without starting anything; each endpoint's docstring says what it does "
               "(its first paragraph is shown here). A test fails when a module builds routes without one.\n")
    return "".join(out)
