"""Where a watched model's truth comes from: the registry (rollback on) or a served path + manifest (page only).

A :class:`Target` answers "what should the server be serving right now?" (:meth:`Target.served`: the version, the
files the server reads, their manifest, the golden sets that vouch for that version) and carries out the actions
the policy decides (:meth:`Target.rollback`, :meth:`Target.reload`). :class:`RegistryTarget` composes
:class:`~goldwatch.watchdog.registry.Registry` (verified rollback, intent journal, reload adapters) through its
public API; :class:`StaticTarget` has no registry: its files and golden sets are checked, nothing is acted on.

Each target owns one open registry, used by one thread at a time (a lock): checks run in worker threads, and a
rollback must not interleave with a check reading the serving state.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from pathlib import Path
from typing import Any, Protocol

from goldwatch.checks import Check
from goldwatch.config import RegistryConfig, ServeWatchConfig
from goldwatch.errors import ConfigError, RegistryError
from goldwatch.watchdog.registry import (
    RecoveryAction,
    Registry,
    RollbackResult,
    Serving,
    database_from_config,
    host_from_config,
    make_pointer,
    make_reloader,
)
from goldwatch.watchdog.registry.pointer import ServingPointer
from goldwatch.watchdog.registry.serving import pointer_lock

__all__ = ["RegistryTarget", "Served", "StaticTarget", "Target", "open_target", "split_model_url"]

_URL = re.compile(r"^(?P<base>https?://[^/]+)(?P<path>/v2/models/(?P<name>[^/]+)(/versions/(?P<version>[^/]+))?)/?$")


def split_model_url(url: str) -> tuple[str, str, str]:
    """(server base URL, model path, model name on the server) of an OIP v2 model URL.

    >>> split_model_url("http://127.0.0.1:8080/v2/models/fraud/versions/3")
    ('http://127.0.0.1:8080', '/v2/models/fraud/versions/3', 'fraud')
    """
    match = _URL.match(url)
    if not match:
        raise ConfigError(f"not an OIP v2 model URL: {url!r}", where="serve.watch.url",
                          hint="use http://HOST:PORT/v2/models/NAME[/versions/V]")
    return match["base"], match["path"], match["name"]


@dataclasses.dataclass(frozen=True)
class Served:
    """What should be served now. ``path``: what the server reads (None: nothing local to check, ``note`` says why);
    ``server_version``: what a server that loaded it reports (the directory number in the numbered layout)."""

    version: str | None
    path: Path | None
    manifest: Path | None
    golden: tuple[Path, ...] = ()
    server_version: str | None = None
    note: str = ""


class Target(Protocol):
    name: str
    watch: ServeWatchConfig
    can_rollback: bool
    can_reload: bool

    def served(self) -> Served: ...
    def rollback(self, *, reason: str, actor: str, evidence: dict[str, Any], reload: bool = True) -> RollbackResult: ...
    def reload(self) -> None: ...
    def rollback_readiness(self) -> list[Check]: ...
    def recovered(self) -> list[RecoveryAction]: ...
    def close(self) -> None: ...


class StaticTarget:
    """A served file or directory and its manifest, without a registry: checked and paged, never acted on."""

    can_rollback = False
    can_reload = False

    def __init__(self, watch: ServeWatchConfig) -> None:
        assert watch.served_path is not None
        assert watch.manifest is not None
        self.name = watch.name
        self.watch = watch

    def served(self) -> Served:
        assert self.watch.served_path is not None
        return Served(version=None, path=Path(self.watch.served_path), manifest=self.watch.manifest,
                      golden=tuple(self.watch.golden))

    def rollback(self, *, reason: str, actor: str, evidence: dict[str, Any], reload: bool = True) -> RollbackResult:
        return RollbackResult(model=self.name, from_version=None, to_version=None,
                              error="rollback is off: this model is watched without a registry")

    def reload(self) -> None:
        raise RegistryError("no reloader: this model is watched without a registry", where=self.name)

    def rollback_readiness(self) -> list[Check]:
        return [Check(name="registry:target", status="skip", summary="no registry: rollback is off for this model")]

    def recovered(self) -> list[RecoveryAction]:
        return []

    def close(self) -> None:
        pass


class RegistryTarget:
    """A model served through the registry's pointer: verified rollback and reload through its adapters."""

    can_rollback = True

    def __init__(self, watch: ServeWatchConfig, registry: RegistryConfig) -> None:
        self.name = watch.name
        self.watch = watch
        self.model = watch.model_in_registry
        base, _path, server_name = split_model_url(watch.url)
        layout = watch.layout or registry.layout
        serving_dir = watch.serving_dir or registry.serving_dir
        pointer: ServingPointer
        if layout == "mlflow-alias":
            if not registry.mlflow_registry_uri:
                raise ConfigError("layout 'mlflow-alias' needs registry.mlflow_registry_uri", where="registry")
            from goldwatch.watchdog.registry.mlflow_backend import MlflowAliasPointer

            pointer = MlflowAliasPointer(registry.mlflow_registry_uri, self.model, alias=registry.mlflow_alias)
        else:
            if serving_dir is None:
                raise ConfigError("no serving directory: the registry cannot switch what is served",
                                  where=f"serve.watch[{watch.name}].serving_dir",
                                  hint="set serving_dir here (or registry.serving_dir), the folder the server reads")
            pointer = make_pointer(layout, Path(serving_dir))
        self.layout = layout
        url = watch.reload_url or (base if watch.reload == "oip" else None)
        reloader = make_reloader(watch.reload, model=server_name, url=url, command=watch.reload_command,
                                 timeout_s=registry.ready_timeout_s)
        self.can_reload = reloader is not None
        self.serving = Serving(pointer, reloader=reloader, fallback=watch.fallback_model or registry.fallback_model,
                               ready_timeout_s=registry.ready_timeout_s)
        self._lock = threading.RLock()
        # the database and this host's name as every registry client reads them from [registry] and the environment
        self.registry = Registry.open(registry.root, serving={self.model: self.serving}, create=False,
                                      database=database_from_config(registry), host=host_from_config(registry))
        known = self.registry.models()
        if self.model not in known:
            self.registry.close()
            raise ConfigError(f"the registry at {registry.root} has no model {self.model!r} "
                              f"(known: {', '.join(known) or 'none'})", where=f"serve.watch[{self.name}]",
                              hint="add and promote it (goldwatch registry add/promote), or set registry_model")

    def served(self) -> Served:
        # The pointer's host-local lock: a promote or rollback run by another process (an operator's CLI, a drill)
        # switches the link inside its database transaction, so without it the version read here could be the old
        # one and the files the new ones -- a mismatch that is no corruption.
        with self._lock, pointer_lock(self.serving.pointer):
            target = self.registry.serving_target(self.model)
            if target is None:
                return Served(None, None, None, tuple(self.watch.golden),
                              note=f"the registry serves nothing for {self.model!r} yet (promote a version)")
            version, _source = target
            state = self.serving.pointer.read()
            number = None if state is None or state.number is None else str(state.number)
            served = self.serving.pointer.served_path()
            if version is None:  # the fallback model: no manifest in the registry
                return Served(None, served, None, tuple(self.watch.golden), number,
                              note="serving the configured fallback model (no manifest to check it against)")
            mv = self.registry.get(self.model, version)
        path = None
        if served is not None:
            if self.layout == "current-link":
                # the private copy under its own name (what the server reads; a file manifest names it)
                path = Path(os.path.realpath(served))
            elif mv.path.is_file():
                path = served / mv.path.name
            else:
                path = served
        golden = tuple(Path(g) for g in mv.golden) or tuple(self.watch.golden)
        note = "" if path is not None else f"the {self.layout} layout leaves no local files to check"
        return Served(version, path, mv.manifest_path, golden, number or version, note)

    def rollback(self, *, reason: str, actor: str, evidence: dict[str, Any], reload: bool = True) -> RollbackResult:
        with self._lock:
            if not reload:  # start-up: the server is not running yet and will load what is served
                self.registry.attach(self.model, dataclasses.replace(self.serving, reloader=None))
            try:
                return self.registry.rollback(self.model, actor=actor, reason=reason, evidence=evidence)
            finally:
                self.registry.attach(self.model, self.serving)

    def reload(self) -> None:
        """Tell the server to load what is served now, and wait until it is ready."""
        reloader = self.serving.reloader
        if reloader is None:
            raise RegistryError("no reloader is configured (reload = \"none\")", where=f"serve.watch[{self.name}]")
        served = self.served()
        reloader.reload(model=self.model, version=served.version, path=served.path or Path("."))
        reloader.wait_ready(timeout_s=self.serving.ready_timeout_s)

    def rollback_readiness(self) -> list[Check]:
        with self._lock:
            return self.registry.check(self.model).checks

    def recovered(self) -> list[RecoveryAction]:
        return list(self.registry.recovered)

    def close(self) -> None:
        with self._lock:
            self.registry.close()


def open_target(watch: ServeWatchConfig, registry: RegistryConfig) -> Target:
    """The target a ``[[serve.watch]]`` table describes (opening its registry, which repairs interrupted work)."""
    if watch.uses_registry:
        return RegistryTarget(watch, registry)
    return StaticTarget(watch)
