"""The embedded registry: model versions, their verified states, the audit trail and the serving pointer.

One registry root holds ``registry.db`` (SQLite, WAL), ``store/`` (content-addressed artifacts and manifests) and
``registry.lock``. Every operation that writes takes the lock (``flock``: released by the kernel when a process
dies, so a crashed holder never wedges the registry) for its whole duration; readers need no lock.

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
import fcntl
import getpass
import json
import os
import re
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from goldwatch.errors import GoldwatchError, RegistryError
from goldwatch.logs import get_logger
from goldwatch.watchdog.registry import db as _db
from goldwatch.watchdog.registry import journal
from goldwatch.watchdog.registry._integrity_adapter import Verification, verify
from goldwatch.watchdog.registry.models import (
    NO_RELOAD_WARNING,
    TRANSITIONS,
    Event,
    ModelVersion,
    ReadinessReport,
    RecoveryAction,
    RetentionReport,
    RollbackResult,
    State,
)
from goldwatch.watchdog.registry.pointer import ServingPointer, pointer_from_spec
from goldwatch.watchdog.registry.reload import Reloader
from goldwatch.watchdog.registry.store import ArtifactStore, _list_source

__all__ = ["Registry", "Serving", "check_add_inputs", "default_actor"]

log = get_logger(__name__)

DB_NAME = "registry.db"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def default_actor() -> str:
    """``user@host``: who to record when the caller does not say."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@dataclasses.dataclass
class Serving:
    """How a model is served: its pointer, the adapter that reloads the server, an optional fallback artifact."""

    pointer: ServingPointer
    reloader: Reloader | None = None
    fallback: Path | None = None
    ready_timeout_s: float = 30.0


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise RegistryError(
            f"invalid {what} {value!r}", where=what,
            hint="use letters, digits, '.', '_' or '-' (up to 128 characters, starting with a letter or digit)",
        )
    return value


def check_add_inputs(model: str, path: str | os.PathLike[str], *, version: str | None = None,
                     golden: Sequence[str | os.PathLike[str]] = ()) -> list[Path]:
    """Validate what :meth:`Registry.add` would store, writing nothing; returns the golden-set paths, resolved.

    Call it before opening (and so creating) a registry: a bad name, a missing artifact, or a golden set that does
    not load (:meth:`goldwatch.golden_sets.GoldenSet.load`: manifest and digests) raises RegistryError.
    """
    _check_name(model, "model")
    if version is not None:
        _check_name(str(version), "version")
    _list_source(Path(path))
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
        _list_source(gp)
        golden_paths.append(gp.resolve())
    return golden_paths


class Registry:
    """An open registry. Use :meth:`open`; close with :meth:`close` or a ``with`` block."""

    def __init__(self, root: Path, conn: sqlite3.Connection, store: ArtifactStore,
                 serving: dict[str, Serving]) -> None:
        self.root = root
        self.store = store
        self._conn = conn
        self._serving = serving
        self._lock_depth = 0
        self._lock_fd: int | None = None
        self.recovered: list[RecoveryAction] = []

    # ---- opening ------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike[str], *, serving: dict[str, Serving] | None = None,
             create: bool = True) -> Registry:
        """Open (or create) the registry at ``root`` and finish or revert any operation a crash interrupted.

        ``serving`` maps a model name to how it is served; without it, promote and rollback change states only.
        """
        root = Path(root).absolute()
        if root.exists() and not root.is_dir():
            raise RegistryError("the registry root is not a directory", where=str(root),
                                hint="point --root at a directory (it is created if missing)")
        db_path = root / DB_NAME
        if not db_path.exists():
            if root.exists() and any(p.name not in (DB_NAME + "-wal", DB_NAME + "-shm", "registry.lock")
                                     for p in root.iterdir()):
                raise RegistryError(
                    "the directory is not a goldwatch registry (no registry.db, and it is not empty)",
                    where=str(root), hint="use an empty or new directory, or the root of an existing registry",
                )
            if not create:
                raise RegistryError("no registry here", where=str(root), hint="run `goldwatch registry add` first")
            root.mkdir(parents=True, exist_ok=True)
        store = ArtifactStore(root / "store")
        if store.root.exists() and not store.root.is_dir():
            raise RegistryError("the artifact store is not a directory", where=str(store.root))
        conn = _db.connect(db_path)
        reg = cls(root, conn, store, dict(serving or {}))
        try:
            with reg._locked():
                store.ensure()
                store.clean_tmp()
                reg.recovered = reg._recover()
        except BaseException:
            conn.close()
            raise
        return reg

    def close(self) -> None:
        self._conn.close()
        for s in self._serving.values():
            closer = getattr(s.reloader, "close", None)
            if callable(closer):
                closer()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def attach(self, model: str, serving: Serving) -> None:
        """Serve ``model`` through ``serving`` from now on (pointer, reloader, fallback)."""
        self._serving[_check_name(model, "model")] = serving

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Re-entrant within this object: rollback quarantines while it holds the lock.
        if self._lock_depth == 0:
            fd = os.open(self.root / "registry.lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None

    # ---- reading ------------------------------------------------------------------------------------------
    def _row_to_version(self, row: sqlite3.Row, serving_version: str | None) -> ModelVersion:
        golden = tuple(  # relative to the store (older registries recorded absolute paths: kept as they are)
            str(self.store.root / r[0]) for r in self._conn.execute(
                "SELECT golden FROM golden_links WHERE model = ? AND version = ? ORDER BY golden",
                (row["model"], row["version"]),
            )
        )
        tree = self.store.trees / row["tree"]
        return ModelVersion(
            model=row["model"], version=row["version"], seq=row["seq"], state=row["state"],
            path=tree / row["artifact"], manifest_path=self.store.root / row["manifest"], digest=row["tree"],
            size_bytes=row["size_bytes"], created_at=row["created_at"], created_by=row["created_by"],
            golden=golden, serving=row["version"] == serving_version,
        )

    def _serving_version(self, model: str) -> str | None:
        row = self._conn.execute("SELECT version FROM serving WHERE model = ?", (model,)).fetchone()
        return None if row is None else row["version"]

    def serving_target(self, model: str) -> tuple[str | None, str] | None:
        """(version or None for the fallback, target path) the registry last switched ``model`` to."""
        row = self._conn.execute("SELECT version, target FROM serving WHERE model = ?", (model,)).fetchone()
        return None if row is None else (row["version"], row["target"])

    def models(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT name FROM models ORDER BY name")]

    def _require_model(self, model: str) -> None:
        _check_name(model, "model")
        if self._conn.execute("SELECT 1 FROM models WHERE name = ?", (model,)).fetchone() is None:
            known = ", ".join(self.models()) or "none"
            raise RegistryError(f"unknown model {model!r} (known: {known})", where=str(self.root),
                                hint="add a version first: goldwatch registry add MODEL PATH")

    def get(self, model: str, version: str) -> ModelVersion:
        self._require_model(model)
        row = self._conn.execute("SELECT * FROM versions WHERE model = ? AND version = ?",
                                 (model, str(version))).fetchone()
        if row is None:
            known = [r[0] for r in self._conn.execute(
                "SELECT version FROM versions WHERE model = ? ORDER BY seq", (model,))]
            raise RegistryError(f"unknown version {version!r} of {model!r} (known: {', '.join(known) or 'none'})",
                                where=str(self.root), hint="see: goldwatch registry list MODEL")
        return self._row_to_version(row, self._serving_version(model))

    def list(self, model: str | None = None, *, state: State | None = None) -> list[ModelVersion]:
        """Versions, oldest first (all models when ``model`` is None)."""
        if model is not None:
            self._require_model(model)
        sql, args = "SELECT * FROM versions WHERE 1 = 1", []
        if model is not None:
            sql += " AND model = ?"
            args.append(model)
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        rows = self._conn.execute(sql + " ORDER BY model, seq", args).fetchall()
        serving = {r["model"]: r["version"] for r in self._conn.execute("SELECT model, version FROM serving")}
        return [self._row_to_version(r, serving.get(r["model"])) for r in rows]

    def history(self, model: str, version: str | None = None) -> builtins.list[Event]:
        """The audit trail of ``model`` (or one version), oldest first."""
        self._require_model(model)
        sql, args = "SELECT * FROM events WHERE model = ?", [model]
        if version is not None:
            sql += " AND version = ?"
            args.append(str(version))
        return [
            Event(id=r["id"], model=r["model"], version=r["version"], action=r["action"],
                  from_state=r["from_state"], to_state=r["to_state"], actor=r["actor"], reason=r["reason"],
                  at=r["at"], evidence=json.loads(r["evidence"]))
            for r in self._conn.execute(sql + " ORDER BY id", args)
        ]

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

    # ---- writing ------------------------------------------------------------------------------------------
    def _event(self, model: str, version: str | None, action: str, from_state: str | None, to_state: str | None,
               *, actor: str, reason: str, evidence: dict[str, Any] | None = None) -> None:
        self._conn.execute(
            "INSERT INTO events (model, version, action, from_state, to_state, actor, reason, at, evidence) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (model, version, action, from_state, to_state, actor, reason, _db.now(),
             json.dumps(evidence or {}, sort_keys=True, default=str)),
        )

    def add(self, model: str, path: str | os.PathLike[str], *, version: str | None = None,
            golden: Sequence[str | os.PathLike[str]] = (), actor: str | None = None,
            reason: str = "registered") -> ModelVersion:
        """Store ``path`` (file or directory) as a new candidate version of ``model``, with its manifest."""
        golden_paths = check_add_inputs(model, path, version=version, golden=golden)
        actor = actor or default_actor()
        with self._locked():
            if version is not None and self._conn.execute(
                "SELECT 1 FROM versions WHERE model = ? AND version = ?", (model, str(version))
            ).fetchone():
                raise RegistryError(f"version {version!r} of {model!r} already exists", where=str(self.root),
                                    hint="pick another version name, or leave it out to number automatically")
            stored = self.store.put(Path(path))
            # Copied into the store (content-addressed, like the artifact): a CI workspace that goes away must
            # not take the golden sets a rollback --golden replays with it.
            stored_golden = [self.store.put_golden(g).relative_to(self.store.root).as_posix()
                             for g in golden_paths]
            with _db.write(self._conn):
                if self._conn.execute("SELECT 1 FROM models WHERE name = ?", (model,)).fetchone() is None:
                    self._conn.execute("INSERT INTO models (name, created_at) VALUES (?, ?)", (model, _db.now()))
                seq = int(self._conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM versions WHERE model = ?",
                                             (model,)).fetchone()[0])
                name = str(version) if version is not None else str(seq)
                while version is None and self._conn.execute(
                    "SELECT 1 FROM versions WHERE model = ? AND version = ?", (model, name)
                ).fetchone():
                    name = f"{name}.1"  # an explicit version took this number; keep auto names unique
                self._conn.execute(
                    "INSERT INTO versions (model, version, seq, state, tree, artifact, manifest, size_bytes, "
                    "created_at, created_by) VALUES (?, ?, ?, 'candidate', ?, ?, ?, ?, ?, ?)",
                    (model, name, seq, stored.tree, stored.path.name,
                     stored.manifest_path.relative_to(self.store.root).as_posix(), stored.size_bytes, _db.now(),
                     actor),
                )
                for g in stored_golden:
                    self._conn.execute("INSERT INTO golden_links (model, version, golden) VALUES (?, ?, ?)",
                                       (model, name, g))
                evidence: dict[str, Any] = {"source": str(Path(path).resolve()), "digest": stored.tree,
                                            "size_bytes": stored.size_bytes, "files": stored.files}
                if golden_paths:
                    evidence["golden_sources"] = [str(g) for g in golden_paths]
                self._event(model, name, "add", None, "candidate", actor=actor, reason=reason, evidence=evidence)
        return self.get(model, name)

    def _transition(self, mv: ModelVersion, to: State, *, action: str, actor: str, reason: str,
                    evidence: dict[str, Any] | None) -> None:
        """Apply one state change inside the caller's transaction (checked against TRANSITIONS)."""
        row = self._conn.execute("SELECT state FROM versions WHERE model = ? AND version = ?",
                                 (mv.model, mv.version)).fetchone()
        current = row["state"]
        if current == to:
            return
        if to not in TRANSITIONS[current]:
            raise RegistryError(
                f"{mv.model} {mv.version} is {current}; it cannot become {to}", where=f"{mv.model}:{mv.version}",
                hint="a quarantined or retired version never returns: add the artifact again as a new version",
            )
        self._conn.execute("UPDATE versions SET state = ? WHERE model = ? AND version = ?",
                           (to, mv.model, mv.version))
        self._event(mv.model, mv.version, action, current, to, actor=actor, reason=reason, evidence=evidence)

    def _set_state(self, model: str, version: str, to: State, *, action: str, actor: str | None, reason: str,
                   evidence: dict[str, Any] | None) -> ModelVersion:
        if not reason:
            raise RegistryError("a reason is required", where="--reason", hint="say why, for the audit trail")
        mv = self.get(model, version)
        with self._locked(), _db.write(self._conn):
            self._transition(mv, to, action=action, actor=actor or default_actor(), reason=reason,
                             evidence=evidence)
        return self.get(model, version)

    def quarantine(self, model: str, version: str, *, actor: str | None = None, reason: str,
                   evidence: dict[str, Any] | None = None) -> ModelVersion:
        """Mark a version as proven bad: it is never served or rolled back to again."""
        return self._set_state(model, version, "quarantined", action="quarantine", actor=actor, reason=reason,
                               evidence=evidence)

    def retire(self, model: str, version: str, *, actor: str | None = None, reason: str) -> ModelVersion:
        """Take a version out of service for good (retention does this to old known-good versions)."""
        if self._serving_version(model) == str(version):
            raise RegistryError(f"{model} {version} is being served; it cannot be retired", where=f"{model}:{version}",
                                hint="promote or roll back to another version first")
        return self._set_state(model, version, "retired", action="retire", actor=actor, reason=reason,
                               evidence=None)

    def promote(self, model: str, version: str, *, actor: str | None = None, reason: str,
                evidence: dict[str, Any] | None = None, serve: bool | None = None) -> ModelVersion:
        """Verify ``version``'s artifact and make it known-good; with a serving pointer, also serve it.

        ``serve`` defaults to True when ``model`` has a serving pointer attached. Verification failure raises
        RegistryError and changes nothing. With a reloader, the server is told to reload after the switch is
        committed; if it does not confirm, ServerUnreachableError is raised (the switch stands: it is durable).
        Without one (reload ``none``), the returned version's ``warnings`` say that no server was told.
        """
        if not reason:
            raise RegistryError("a reason is required", where="--reason", hint="say why, for the audit trail")
        actor = actor or default_actor()
        mv = self.get(model, str(version))
        serving = self._serving.get(model)
        serve = serving is not None if serve is None else serve
        if serve and serving is None:
            raise RegistryError(f"no serving pointer is attached for {model!r}", where="registry.serving_dir",
                                hint="configure serving_dir (and layout) or promote without serving")
        with self._locked():
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
                "pointer": serving.pointer.spec() if serve and serving else None,
            }
            self._switch_and_commit("promote", model, payload, serving.pointer if serve and serving else None,
                                    mv.path, f"{model}:{mv.version}")
        if serve and serving is not None and serving.reloader is not None:
            serving.reloader.reload(model=model, version=mv.version, path=mv.path)
            serving.reloader.wait_ready(timeout_s=serving.ready_timeout_s)
        elif serve:
            return dataclasses.replace(self.get(model, mv.version), warnings=(NO_RELOAD_WARNING,))
        return self.get(model, mv.version)

    def _apply(self, model: str, payload: dict[str, Any]) -> None:
        """The database half of a promote/rollback, idempotent (recovery may run it for a dead process)."""
        for version, to in payload["transitions"]:
            mv = self.get(model, version)
            action = payload["action"] if to != "quarantined" else "quarantine"
            self._transition(mv, to, action=action, actor=payload["actor"], reason=payload["reason"],
                             evidence=payload["evidence"])
        if payload.get("serve"):
            self._conn.execute(
                "INSERT INTO serving (model, version, target, switched_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(model) DO UPDATE SET version = excluded.version, target = excluded.target, "
                "switched_at = excluded.switched_at",
                (model, payload["version"], payload["source"], _db.now()),
            )
            self._event(model, payload["version"], "serve", None, None, actor=payload["actor"],
                        reason=payload["reason"], evidence={**payload["evidence"], "target": payload["source"]})

    # ---- switching under the journal -----------------------------------------------------------------------
    def _switch_and_commit(self, op: str, model: str, payload: dict[str, Any], pointer: ServingPointer | None,
                           source: Path, label: str) -> None:
        """Record the intent, switch ``pointer`` to ``source``, apply ``payload`` to the database, close the intent.

        Call with the lock held. Crash points ``{op}:intent|staged|switched|committed`` are the named steps the
        crash tests kill at. An exception part-way (a full disk, a permission error) resolves the intent at once,
        the same way recovery would, so a live process never leaves an open intent behind.
        """
        intent_id = journal.begin(self._conn, op=op, model=model, payload=payload)
        try:
            journal.crash_point(f"{op}:intent")
            if pointer is not None:
                staged = pointer.stage(source, label=label)
                journal.crash_point(f"{op}:staged")
                pointer.switch(staged)
                journal.crash_point(f"{op}:switched")
            with _db.write(self._conn):
                self._apply(model, payload)
                journal.close(self._conn, intent_id, "done")
        except BaseException:
            for intent in journal.open_intents(self._conn):
                if intent.id == intent_id:
                    try:
                        self._resolve(intent)
                    except Exception:  # the database itself may be what failed: the next open resolves it
                        log.exception("could not resolve the interrupted %s of %s now", op, model)
            raise
        journal.crash_point(f"{op}:committed")

    # ---- recovery -----------------------------------------------------------------------------------------
    def _resolve(self, intent: journal.Intent) -> RecoveryAction:
        """Complete ``intent`` if its pointer already serves the target, else revert it (see :mod:`.journal`)."""
        spec = intent.payload.get("pointer")
        pointer = pointer_from_spec(spec) if spec else None
        state = pointer.read() if pointer is not None else None
        switched = state is not None and Path(state.source) == Path(intent.payload["source"])
        if pointer is not None:
            pointer.cleanup()
        with _db.write(self._conn):
            if switched:
                self._apply(intent.model, intent.payload)
                journal.close(self._conn, intent.id, "completed")
                outcome, detail = "completed", f"the pointer already served {intent.payload['source']}"
            else:
                journal.close(self._conn, intent.id, "reverted")
                outcome, detail = "reverted", "the pointer was never switched; nothing was applied"
            self._event(intent.model, intent.payload.get("version"), f"recover-{intent.op}", None, None,
                        actor=default_actor(), reason=f"interrupted {intent.op}: {outcome}",
                        evidence={"intent": intent.id, "pid": intent.pid, "started_at": intent.started_at})
        log.warning("resolved interrupted %s of %s: %s (%s)", intent.op, intent.model, outcome, detail)
        return RecoveryAction(intent.id, intent.op, intent.model, outcome, detail)  # type: ignore[arg-type]

    def _recover(self) -> builtins.list[RecoveryAction]:
        # Only called with the lock held: every open intent belongs to a process that is gone.
        return [self._resolve(intent) for intent in journal.open_intents(self._conn)]

    # ---- rollback, readiness, retention (implemented in their own modules) ---------------------------------
    def rollback(self, model: str, *, actor: str | None = None, reason: str,
                 evidence: dict[str, Any] | None = None, quarantine_current: bool = True,
                 golden: bool = False) -> RollbackResult:
        """Serve the newest known-good version that re-verifies (see :mod:`.rollback`).

        ``quarantine_current``: the version rolled back from is quarantined (rollback means it was proven bad).
        ``golden``: also replay each candidate target's linked golden sets before choosing it.
        """
        from goldwatch.watchdog.registry.rollback import run_rollback

        return run_rollback(self, model, actor=actor or default_actor(), reason=reason, evidence=evidence,
                            quarantine_current=quarantine_current, golden=golden)

    def check(self, model: str, *, load: bool = False, golden: bool = False) -> ReadinessReport:
        """Rollback readiness of ``model`` (see :mod:`.rollback`)."""
        from goldwatch.watchdog.registry.rollback import readiness

        return readiness(self, model, load=load, golden=golden)

    def apply_retention(self, model: str, *, keep: int, actor: str | None = None) -> RetentionReport:
        """Keep the newest ``keep`` known-good versions, retire older ones (see :mod:`.retention`)."""
        from goldwatch.watchdog.registry.retention import apply_retention

        return apply_retention(self, model, keep=keep, actor=actor or default_actor())

    def serving_for(self, model: str) -> Serving | None:
        return self._serving.get(model)
