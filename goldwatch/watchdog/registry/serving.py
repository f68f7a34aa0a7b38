"""How a model is served on this host: its pointer, the adapter that reloads the server, an optional fallback.

Serving pointers are per host: every pod switches its own, and records the switch in the registry under its host
name. :func:`pointer_lock` is the host-local lock that keeps two processes of one host (a sidecar and an operator's
CLI) from switching the same pointer at once; holding it also proves that no live process of this host is in the
middle of an operation on that pointer, which is how crash recovery knows an open intent's owner is gone.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     ptr = pointer_from_spec({"layout": "numbered", "directory": str(pathlib.Path(d, "serve"))})
...     with pointer_lock(ptr):
...         locked = (pathlib.Path(d, "serve") / LOCK_NAME).exists()
>>> ptr.layout, locked
('numbered', True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from goldwatch.watchdog.registry.pointer import ServingPointer, make_pointer
from goldwatch.watchdog.registry.reload import Reloader

__all__ = ["LOCK_NAME", "Serving", "pointer_from_spec", "pointer_lock"]

LOCK_NAME = ".goldwatch-pointer.lock"


@dataclasses.dataclass
class Serving:
    """How a model is served: its pointer, the adapter that reloads the server, an optional fallback artifact."""

    pointer: ServingPointer
    reloader: Reloader | None = None
    fallback: Path | None = None
    ready_timeout_s: float = 30.0


def pointer_from_spec(spec: dict[str, str]) -> ServingPointer:
    """Rebuild a pointer from its :meth:`ServingPointer.spec` (how crash recovery finds the pointer it must check)."""
    if spec.get("layout") == "mlflow-alias":
        from goldwatch.watchdog.registry.mlflow_backend import MlflowAliasPointer

        return MlflowAliasPointer.from_spec(spec)
    return make_pointer(spec["layout"], Path(spec["directory"]))


@contextlib.contextmanager
def pointer_lock(pointer: ServingPointer | None, *, blocking: bool = True) -> Iterator[bool]:
    """Hold the host-local lock of ``pointer``'s directory (``flock``, released by the kernel if we die).

    Yields True when held, False when ``blocking`` is False and another process holds it. Pointers without a
    directory (an MLflow alias) have no host-local state to protect: always True.
    """
    directory = getattr(pointer, "directory", None)
    if pointer is None or directory is None:
        yield True
        return
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        yield True  # the pointer's own stage() reports a serving directory that is not one
        return
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
