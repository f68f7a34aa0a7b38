"""Extensions: how other parts of goldwatch (live drift, disaster-recovery drills, ...) plug into the sidecar.

An extension is an object with a ``name`` and a ``setup(service)`` method, called once before the service starts.
In ``setup`` it uses the service's public API:

* :meth:`~.service.SidecarService.register_kind` -- a new kind of evidence with its own policy row
  (:class:`~.evidence.EvidenceKind`: severity, whether it may roll back, consecutive failures before a page, ...);
* :meth:`~.service.SidecarService.add_check` -- a scheduled check for a model (anything with a ``kind`` and a
  blocking ``run(target, request)`` returning :class:`~.checks.RunResult`);
* :meth:`~.service.SidecarService.add_routes` -- more starlette routes (e.g. a payload-logger sink); a route that
  changes state calls :meth:`~.service.SidecarService.authorize` first;
* :meth:`~.service.SidecarService.submit_evidence` -- report evidence from inside the process;
* :meth:`~.service.SidecarService.on_start` / :meth:`~.service.SidecarService.on_stop` -- async hooks;
* ``service.journal`` -- :meth:`~.journal.Journal.put_checkpoint` for durable state.

``[serve] extensions = ["package.module:attribute"]`` loads extensions from the config: the attribute is the
extension itself, or a callable returning it (called with no arguments).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from goldwatch.errors import ConfigError

if TYPE_CHECKING:
    from goldwatch.watchdog.sidecar.service import SidecarService

__all__ = ["SidecarExtension", "load_extension"]


@runtime_checkable
class SidecarExtension(Protocol):
    name: str

    def setup(self, service: SidecarService) -> None: ...


def load_extension(spec: str) -> SidecarExtension:
    """Import ``module:attribute`` and return the extension it names (calling a factory if it is one)."""
    module_name, _, attr = spec.partition(":")
    where = f"serve.extensions: {spec}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} ({exc})", where=where,
                          hint="install the package that provides it, or remove the entry") from None
    try:
        obj: Any = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{module_name!r} has no attribute {attr!r}", where=where) from None
    if not isinstance(obj, SidecarExtension) and callable(obj):
        obj = obj()
    if not isinstance(obj, SidecarExtension):
        raise ConfigError(f"{spec} is not a sidecar extension (it needs a name and a setup(service) method)",
                          where=where)
    return obj
