"""The registry facade: model versions, their verified states, the audit trail and the serving pointer.

One registry root holds ``store/`` (content-addressed artifacts and manifests) and, by default, ``registry.db``
(SQLite, WAL) and ``registry.lock``. The database can instead be PostgreSQL (``database="postgresql://..."`` or
``$GOLDWATCH_DATABASE_URL``), shared by a fleet of hosts that mount the same store; see ``docs/fleet.md``.

The layers, each importing only those below it::

    Registry (this module)                 the public API: open, add, promote, quarantine, rollback, check, ...
    rollback, retention                    operations built on the state machine
    switching                              pointer switches under the intent journal; crash recovery
    ledger, journal, serving               the state machine (compare-and-set writes), the intents, a host's pointers
    storage, store, pointer, reload, ...   the database (SQLite | PostgreSQL), the content store, pointer layouts
    models, names, _integrity_adapter      typed results, name rules, verification

``tests/registry/test_registry_imports.py`` holds the exact layers and fails on an import that points up.

On SQLite every operation that writes takes the registry lock (``flock``: released by the kernel when a process
dies, so a crashed holder never wedges the registry) for its whole duration, as it always did. On PostgreSQL there
is no fleet-wide lock: each state change is a short transaction with a compare-and-set, and each host serialises
only the switches of its own pointer. Readers never lock.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     src = pathlib.Path(d, "model.bin"); _ = src.write_bytes(b"weights v1")
...     with Registry.open(pathlib.Path(d, "reg")) as reg:
...         v1 = reg.add("fraud", src, actor="ci")
...         v1 = reg.promote("fraud", v1.version, actor="alice", reason="golden replay passed")
...         good = reg.known_good("fraud")
...         trail = [(e.action, e.to_state, e.actor) for e in reg.history("fraud")]
>>> v1.state, good.version, trail
('known-good', '1', [('add', 'candidate', 'ci'), ('promote', 'known-good', 'alice')])
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from goldwatch._version import __version__
from goldwatch.errors import GoldwatchError, RegistryError
from goldwatch.logs import get_logger
from goldwatch.watchdog.registry._integrity_adapter import Verification, verify
from goldwatch.watchdog.registry.incidents import FleetIncidents
from goldwatch.watchdog.registry.ledger import Ledger
from goldwatch.watchdog.registry.models import (
    NO_RELOAD_WARNING,
    Event,
    HostServing,
    ModelVersion,
    ReadinessReport,
    RecoveryAction,
    RetentionReport,
    RollbackResult,
    State,
)
from goldwatch.watchdog.registry.names import check_name, default_actor, default_host
from goldwatch.watchdog.registry.retention import apply_retention
from goldwatch.watchdog.registry.rollback import readiness, run_rollback
from goldwatch.watchdog.registry.serving import Serving, pointer_lock
from goldwatch.watchdog.registry.storage import (
    DATABASE_URL_ENV,
    Database,
    DatabaseUrl,
    parse_database_url,
    sqlite_url,
)
from goldwatch.watchdog.registry.store import ArtifactStore, list_source
from goldwatch.watchdog.registry.switching import recover, switch_and_commit

__all__ = ["DB_NAME", "Registry", "Serving", "check_add_inputs", "default_actor", "resolve_database"]

log = get_logger(__name__)

DB_NAME = "registry.db"
_REGISTRY_FILES = (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", "registry.lock")


def resolve_database(root: str | os.PathLike[str], database: str | DatabaseUrl | None = None, *,
                     password: str | None = None) -> DatabaseUrl:
    """The database of the registry at ``root``: ``database`` if given, else ``$GOLDWATCH_DATABASE_URL``, else
    ``sqlite:///<root>/registry.db``. ``password`` (read from a secret) is used when the URL carries none."""
    if isinstance(database, DatabaseUrl):
        url = database
    elif database:
        url = parse_database_url(database, where="registry database URL")
    elif os.environ.get(DATABASE_URL_ENV, "").strip():
        url = parse_database_url(os.environ[DATABASE_URL_ENV].strip(), where=f"${DATABASE_URL_ENV}")
    else:
        url = sqlite_url(Path(root).absolute() / DB_NAME)
    return url.with_password(password)


def check_add_inputs(model: str, path: str | os.PathLike[str], *, version: str | None = None,
                     golden: Sequence[str | os.PathLike[str]] = ()) -> list[Path]:
    """Validate what :meth:`Registry.add` would store, writing nothing; returns the golden-set paths, resolved.

    Call it before opening (and so creating) a registry: a bad name, a missing artifact, or a golden set that does
    not load (:meth:`goldwatch.golden_sets.GoldenSet.load`: manifest and digests) raises RegistryError.
    """
    check_name(model, "model")
    if version is not None:
        check_name(str(version), "version")
    list_source(Path(path))
    golden_paths = []
    for g in golden:
        gp = Path(g)
        if not gp.exists():
            raise RegistryError("golden set not found", where=str(gp), hint="pass an existing golden-set directory")
        from goldwatch.golden_sets import GoldenSet

        try:
            GoldenSet.load(gp)
        except GoldwatchError as exc:
            raise RegistryError(f"the golden set does not load: {exc.what}", where=exc.where or str(gp),
                                hint=exc.hint or "rebuild it: goldwatch golden build") from None
        list_source(gp)
        golden_paths.append(gp.resolve())
    return golden_paths


def _check_root(root: Path, url: DatabaseUrl, *, create: bool) -> None:
    if root.exists() and not root.is_dir():
        raise RegistryError("the registry root is not a directory", where=str(root),
                            hint="point --registry-root at a directory (it is created if missing)")
    local_db = url.backend == "sqlite" and url.path is not None and url.path.absolute() == root / DB_NAME
    marker = root / DB_NAME if local_db else root / "store"
    if marker.exists():
        return
    if root.exists() and any(p.name not in _REGISTRY_FILES for p in root.iterdir()):
        raise RegistryError(
            f"the directory is not a goldwatch registry (no {DB_NAME} and no store/, and it is not empty)",
            where=str(root), hint="use an empty or new directory, or the root of an existing registry",
        )
    if not create:
        raise RegistryError("no registry here", where=str(root), hint="run `goldwatch registry add` first")
    root.mkdir(parents=True, exist_ok=True)


class Registry:
    """An open registry. Use :meth:`open`; close with :meth:`close` or a ``with`` block."""

    def __init__(self, root: Path, db: Database, store: ArtifactStore, serving: dict[str, Serving]) -> None:
        self.root = root
        self.store = store
        self.db = db
        self.ledger = Ledger(db, store)
        self.incidents = FleetIncidents(db)  # the fleet's shared incident book (used by sidecars on PostgreSQL)
        self._serving = serving
        self.recovered: list[RecoveryAction] = []

    # ---- opening ------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike[str], *, serving: dict[str, Serving] | None = None,
             create: bool = True, database: str | DatabaseUrl | None = None, host: str | None = None,
             migrate: bool | None = None) -> Registry:
        """Open (or create) the registry at ``root`` and finish or revert any operation a crash interrupted.

        ``serving`` maps a model name to how it is served; without it, promote and rollback change states only.
        ``database``: a URL (see :func:`resolve_database`). ``host``: who this host is in a fleet (default
        ``$GOLDWATCH_HOST``, else the hostname on PostgreSQL, ``local`` on SQLite). ``migrate``: upgrade an older
        schema (default: on SQLite yes, on PostgreSQL no -- ``goldwatch registry migrate`` does it).
        """
        root = Path(root).absolute()
        url = resolve_database(root, database)
        _check_root(root, url, create=create)
        store = ArtifactStore(root / "store")
        if store.root.exists() and not store.root.is_dir():
            raise RegistryError("the artifact store is not a directory", where=str(store.root))
        host = check_name(host, "host") if host is not None else default_host(url.backend)
        db = Database.connect(url, lock_path=root / "registry.lock", host=host, migrate=migrate)
        reg = cls(root, db, store, dict(serving or {}))
        try:
            reg._start()
        except BaseException:
            db.close()
            raise
        db.on_reconnect = reg._after_reconnect
        return reg

    @staticmethod
    def migrate(root: str | os.PathLike[str], *, database: str | DatabaseUrl | None = None,
                host: str | None = None) -> tuple[int, int]:
        """Upgrade the schema of the registry database at ``root`` (see :func:`resolve_database`) to this
        goldwatch's; returns (schema before, schema after). A newer schema raises StateError, nothing changed."""
        root = Path(root).absolute()
        url = resolve_database(root, database)
        if url.backend == "sqlite":
            _check_root(root, url, create=False)
        host = check_name(host, "host") if host is not None else default_host(url.backend)
        db = Database.connect(url, lock_path=root / "registry.lock", host=host, migrate=False, check=False)
        try:
            return db.migrate()
        finally:
            db.close()

    def _start(self) -> None:
        if self.db.dialect == "sqlite":
            with self.db.lock("registry"):
                self.store.ensure()
                self.store.clean_tmp()
                self.recovered = recover(self.ledger, owners_gone=True)
        else:
            self.store.ensure()
            # Leftovers of crashed writers go only while no add anywhere holds the store (shared) lock.
            if self.db.try_lock("store"):
                try:
                    self.store.clean_tmp()
                finally:
                    self.db.unlock("store")
            self.recovered = recover(self.ledger, owners_gone=False)
        self.heartbeat()

    def _after_reconnect(self) -> None:
        # An operation that lost the database after switching its pointer left its intent open: finish it now.
        try:
            self.recovered += recover(self.ledger, owners_gone=False)
        except GoldwatchError:
            log.exception("could not resolve interrupted operations after reconnecting")

    def close(self) -> None:
        self.db.close()
        for s in self._serving.values():
            closer = getattr(s.reloader, "close", None)
            if callable(closer):
                closer()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def heartbeat(self) -> None:
        """Record that this host is alive now (``registry show`` prints each serving host's last sign of life);
        a long-running sidecar calls it on its check interval. Opening the registry records one too."""
        self.ledger.touch_host(goldwatch_version=__version__, pid=os.getpid())

    @property
    def host(self) -> str:
        """Who this host is in the registry (serving records and intents are kept per host)."""
        return self.db.host

    def attach(self, model: str, serving: Serving) -> None:
        """Serve ``model`` through ``serving`` from now on (pointer, reloader, fallback)."""
        self._serving[check_name(model, "model")] = serving

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        # SQLite: the whole operation under the registry lock, as always. PostgreSQL: no fleet-wide lock; the
        # operations' own transactions compare-and-set.
        if self.db.dialect == "sqlite":
            with self.db.lock("registry"):
                yield
        else:
            yield

    # ---- reading ------------------------------------------------------------------------------------------
    def serving_target(self, model: str, *, host: str | None = None) -> tuple[str | None, str] | None:
        """(version or None for the fallback, target path) that ``host`` (default: this one) last switched to."""
        return self.ledger.serving_target(model, host)

    def served_by(self, model: str | None = None, *, version: str | None = None) -> builtins.list[HostServing]:
        """Which hosts serve what right now, as each recorded its last switch (e.g. "which pods serve v7")."""
        if model is not None:
            self.ledger.require_model(model)
        return self.ledger.served_by(model, version=version)

    def models(self) -> builtins.list[str]:
        return self.ledger.models()

    def get(self, model: str, version: str) -> ModelVersion:
        return self.ledger.get(model, version)

    def list(self, model: str | None = None, *, state: State | None = None) -> builtins.list[ModelVersion]:
        """Versions, oldest first (all models when ``model`` is None)."""
        return self.ledger.list(model, state=state)

    def history(self, model: str, version: str | None = None) -> builtins.list[Event]:
        """The audit trail of ``model`` (or one version), oldest first."""
        return self.ledger.history(model, version)

    def known_good(self, model: str, *, verify_artifacts: bool = False,
                   exclude: Sequence[str] = ()) -> ModelVersion | None:
        """The newest known-good version (by version order); with ``verify_artifacts``, the newest that re-verifies."""
        for mv in reversed(self.list(model, state="known-good")):
            if mv.version in exclude:
                continue
            if not verify_artifacts or self.verify(mv).ok:
                return mv
        return None

    def verify(self, mv: ModelVersion) -> Verification:
        """Re-verify ``mv``'s artifact in the store against its manifest."""
        return verify(mv.path, mv.manifest_path)

    def serving_for(self, model: str) -> Serving | None:
        return self._serving.get(model)

    # ---- writing ------------------------------------------------------------------------------------------
    def add(self, model: str, path: str | os.PathLike[str], *, version: str | None = None,
            golden: Sequence[str | os.PathLike[str]] = (), actor: str | None = None,
            reason: str = "registered") -> ModelVersion:
        """Store ``path`` (file or directory) as a new candidate version of ``model``; returns it.

        ``golden``: golden-set directories to link (copied into the store with the artifact).
        """
        golden_paths = check_add_inputs(model, path, version=version, golden=golden)
        actor = actor or default_actor()
        # The store lock (shared: adds run side by side) keeps retention from sweeping a tree stored here but not
        # registered yet.
        with self._exclusive(), self.db.lock("store", shared=True):
            if version is not None and self.db.one(
                "SELECT 1 FROM versions WHERE model = ? AND version = ?", (model, str(version))
            ):
                raise RegistryError(f"version {version!r} of {model!r} already exists", where=str(self.root),
                                    hint="pick another version name, or leave it out to number automatically")
            stored = self.store.put(Path(path))
            # Copied into the store (content-addressed, like the artifact): a CI workspace that goes away must
            # not take the golden sets a rollback --golden replays with it.
            stored_golden = [self.store.put_golden(g).relative_to(self.store.root).as_posix()
                             for g in golden_paths]
            return self.ledger.register(model, stored, stored_golden, version=version, actor=actor, reason=reason,
                                        source=Path(path), golden_sources=[str(g) for g in golden_paths])

    def _set_state(self, model: str, version: str, to: State, *, action: str, actor: str | None, reason: str,
                   evidence: dict[str, Any] | None) -> ModelVersion:
        if not reason:
            raise RegistryError("a reason is required", where="--reason", hint="say why, for the audit trail")
        self.get(model, version)
        with self._exclusive():
            self.ledger.transition(model, str(version), to, action=action, actor=actor or default_actor(),
                                   reason=reason, evidence=evidence)
        return self.get(model, version)

    def quarantine(self, model: str, version: str, *, actor: str | None = None, reason: str,
                   evidence: dict[str, Any] | None = None) -> ModelVersion:
        """Mark a version as proven bad: it is never served or rolled back to again."""
        return self._set_state(model, version, "quarantined", action="quarantine", actor=actor, reason=reason,
                               evidence=evidence)

    def retire(self, model: str, version: str, *, actor: str | None = None, reason: str) -> ModelVersion:
        """Take a version out of service for good (retention does this to old known-good versions)."""
        if not reason:
            raise RegistryError("a reason is required", where="--reason", hint="say why, for the audit trail")
        self.get(model, version)
        with self._exclusive(), self.db.transaction():
            self.ledger.lock_version(model, str(version), write=True)  # a switch to it waits, or is waited for
            hosts = [s.host for s in self.ledger.served_by(model, version=str(version))]
            if hosts:
                raise RegistryError(f"{model} {version} is being served (by {', '.join(hosts)}); it cannot be retired",
                                    where=f"{model}:{version}", hint="promote or roll back to another version first")
            self.ledger.transition(model, str(version), "retired", action="retire", actor=actor or default_actor(),
                                   reason=reason)
        return self.get(model, version)

    def promote(self, model: str, version: str, *, actor: str | None = None, reason: str,
                evidence: dict[str, Any] | None = None, serve: bool | None = None) -> ModelVersion:
        """Verify ``version``'s artifact and make it known-good; with a serving pointer, also serve it.

        ``serve`` defaults to True when ``model`` has a serving pointer attached. Verification failure raises
        RegistryError and changes nothing. With a reloader, the server is told to reload after the switch is
        committed; if it does not confirm, ServerUnreachableError is raised (the switch stands: it is durable).
        Without one (reload ``none``), the returned version's ``warnings`` say that no server was told.
        If another host quarantines or retires the version between the verification and the commit,
        ConcurrentChangeError is raised and nothing is changed.
        """
        if not reason:
            raise RegistryError("a reason is required", where="--reason", hint="say why, for the audit trail")
        actor = actor or default_actor()
        self.get(model, str(version))  # unknown model or version: said first
        serving = self._serving.get(model)
        serve = serving is not None if serve is None else serve
        if serve and serving is None:
            raise RegistryError(f"no serving pointer is attached for {model!r}", where="registry.serving_dir",
                                hint="configure serving_dir (and layout) or promote without serving")
        pointer = serving.pointer if serve and serving else None
        with self._exclusive(), self.db.lock("store", shared=True):
            mv = self.get(model, str(version))  # re-read under the lock: another process may have changed it
            if mv.state not in ("candidate", "known-good"):
                raise RegistryError(f"{model} {mv.version} is {mv.state}; only a candidate can be promoted",
                                    where=f"{model}:{mv.version}",
                                    hint="add the artifact again as a new version")
            t0 = time.perf_counter()
            check = self.verify(mv)
            if not check.ok:
                raise RegistryError(
                    f"{model} {mv.version} fails verification: {'; '.join(check.problems[:5])}",
                    where=str(mv.path),
                    hint="its bytes changed since it was added; nothing was changed -- add a fresh copy",
                )
            ev = {**(evidence or {}), "verified_s": round(time.perf_counter() - t0, 6)}
            payload = {
                "actor": actor, "reason": reason, "evidence": ev, "action": "promote",
                "transitions": [[mv.version, "known-good"]],
                "serve": bool(serve), "version": mv.version, "source": str(mv.path.resolve()),
                "pointer": pointer.spec() if pointer is not None else None,
            }
            verified_state = mv.state

            def precheck() -> None:
                # Only this version's row matters: promoting it is still right if nobody quarantined or retired
                # it since it was verified (another host promoting it too is the same decision). A candidate is
                # locked for the update; a known-good one only against updates, so hosts switching to it go on
                # side by side.
                seen = self.ledger.lock_version(model, mv.version, write=None)["state"]
                row = self.ledger.lock_version(model, mv.version, write=seen == "candidate")
                if row["state"] not in ("candidate", "known-good"):
                    raise self.ledger.changed_underneath(model, mv.version, found=row["state"],
                                                         expected=(verified_state,))

            with pointer_lock(pointer):  # taken only now: a promote refused above leaves no serving directory
                switch_and_commit(self.ledger, "promote", model, payload, pointer, mv.path, f"{model}:{mv.version}",
                                  precheck=precheck)
        if serve and serving is not None and serving.reloader is not None:
            serving.reloader.reload(model=model, version=mv.version, path=mv.path)
            serving.reloader.wait_ready(timeout_s=serving.ready_timeout_s)
        elif serve:
            return dataclasses.replace(self.get(model, mv.version), warnings=(NO_RELOAD_WARNING,))
        return self.get(model, mv.version)

    def forget_host(self, host: str, *, actor: str | None = None, reason: str) -> int:
        """Drop the serving records of ``host`` (a pod that is gone for good); returns how many were dropped."""
        if not reason:
            raise RegistryError("a reason is required", where="--reason", hint="say why, for the audit trail")
        return self.ledger.forget_host(check_name(host, "host"), actor=actor or default_actor(), reason=reason)

    # ---- rollback, readiness, retention (implemented in their own modules) ---------------------------------
    def rollback(self, model: str, *, actor: str | None = None, reason: str,
                 evidence: dict[str, Any] | None = None, quarantine_current: bool = True,
                 golden: bool = False) -> RollbackResult:
        """Serve the newest known-good version that re-verifies (see :mod:`.rollback`).

        ``quarantine_current``: the version rolled back from is quarantined (rollback means it was proven bad).
        ``golden``: also replay each candidate target's linked golden sets before choosing it.
        """
        with self._exclusive():
            return run_rollback(self.ledger, model, self._serving.get(model), actor=actor or default_actor(),
                                reason=reason, evidence=evidence, quarantine_current=quarantine_current,
                                golden=golden)

    def check(self, model: str, *, load: bool = False, golden: bool = False) -> ReadinessReport:
        """Rollback readiness of ``model`` (see :mod:`.rollback`)."""
        return readiness(self.ledger, model, self._serving.get(model), load=load, golden=golden)

    def apply_retention(self, model: str, *, keep: int, actor: str | None = None) -> RetentionReport:
        """Keep the newest ``keep`` known-good versions, retire older ones (see :mod:`.retention`)."""
        with self._exclusive():
            return apply_retention(self.ledger, model, keep=keep, actor=actor or default_actor())
