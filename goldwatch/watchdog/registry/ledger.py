"""The registry's state machine: versions, their states, the audit trail and who serves what, in the database.

Every state change is a compare-and-set: ``UPDATE versions SET state = new WHERE ... AND state = expected``, in the
same transaction as its audit event and a bump of the model's revision (``models.rev``). States only move forward
(candidate -> known-good -> quarantined -> retired, never back), so "the state is still what I read" proves
nobody changed the row in between: a write that finds another state raises
:class:`~goldwatch.errors.ConcurrentChangeError` and changes nothing.

Locks (PostgreSQL; SQLite has one writer at a time): a transaction first locks the version rows its decision
touches, in one order (by version name) -- for update the rows it changes, against updates (``FOR SHARE``) the
rows it only rests on, like a rollback's target -- and only at its end, by bumping the model's revision, the
model's row. So hosts switching to the same known-good version go on side by side, decisions about different
versions of one model overlap except for their last statements, and the lock order is the same everywhere (no
deadlock). Adding a version locks the model's row first (it numbers the version) and touches no other row. The
revision counts every state change of the model exactly once (an audit of lost updates).

Serving is recorded per host: each host switches its own pointer and records the switch under its own name.

>>> import tempfile, pathlib
>>> from goldwatch.watchdog.registry.storage import Database, sqlite_url
>>> from goldwatch.watchdog.registry.store import ArtifactStore
>>> with tempfile.TemporaryDirectory() as d:
...     db = Database.connect(sqlite_url(pathlib.Path(d, "r.db")), lock_path=pathlib.Path(d, "r.lock"), host="pod-a")
...     src = pathlib.Path(d, "w.bin"); _ = src.write_bytes(b"weights")
...     ledger = Ledger(db, ArtifactStore(pathlib.Path(d, "store")))
...     v1 = ledger.register("m", ledger.store.put(src), [], version=None, actor="ci", reason="new", source=src)
...     changed = ledger.transition("m", "1", "known-good", action="promote", actor="ci", reason="ok")
...     again = ledger.transition("m", "1", "known-good", action="promote", actor="ci", reason="ok")
...     state, rev = ledger.get("m", "1").state, ledger.model_rev("m")
...     db.close()
>>> v1.state, changed, again, state, rev
('candidate', True, False, 'known-good', 2)
"""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from goldwatch.errors import ConcurrentChangeError, RegistryError
from goldwatch.watchdog.registry.models import TRANSITIONS, Event, HostServing, ModelVersion, State
from goldwatch.watchdog.registry.names import check_name
from goldwatch.watchdog.registry.storage import Database, now
from goldwatch.watchdog.registry.store import ArtifactStore, StoredArtifact

__all__ = ["Ledger"]


class Ledger:
    """Reads and compare-and-set writes of the registry's rows, for one host (``db.host``)."""

    def __init__(self, db: Database, store: ArtifactStore) -> None:
        self.db = db
        self.store = store

    @property
    def host(self) -> str:
        return self.db.host

    # ---- reading ------------------------------------------------------------------------------------------
    def models(self) -> builtins.list[str]:
        return [r[0] for r in self.db.query("SELECT name FROM models ORDER BY name")]

    def require_model(self, model: str) -> None:
        check_name(model, "model")
        if self.db.one("SELECT 1 FROM models WHERE name = ?", (model,)) is None:
            known = ", ".join(self.models()) or "none"
            raise RegistryError(f"unknown model {model!r} (known: {known})", where=str(self.store.root.parent),
                                hint="add a version first: goldwatch registry add MODEL PATH")

    def model_rev(self, model: str) -> int:
        row = self.db.one("SELECT rev FROM models WHERE name = ?", (model,))
        return -1 if row is None else int(row[0])

    # One query per read: the versions, this host's serving record and the golden links joined (a round trip
    # to a remote database costs more than the rows).
    _READ = ("SELECT v.*, s.version AS served, g.golden AS golden_link FROM versions v "
             "LEFT JOIN serving s ON s.model = v.model AND s.host = ? "
             "LEFT JOIN golden_links g ON g.model = v.model AND g.version = v.version WHERE 1 = 1")

    def _read(self, where: str, args: builtins.list[Any]) -> builtins.list[ModelVersion]:
        rows = self.db.query(self._READ + where + " ORDER BY v.model, v.seq, g.golden", [self.host, *args])
        versions: dict[tuple[str, str], ModelVersion] = {}
        golden: dict[tuple[str, str], builtins.list[str]] = {}
        for row in rows:
            key = (row["model"], row["version"])
            if row["golden_link"] is not None:
                golden.setdefault(key, []).append(row["golden_link"])
            if key not in versions:
                tree = self.store.trees / row["tree"]
                versions[key] = ModelVersion(
                    model=row["model"], version=row["version"], seq=int(row["seq"]), state=row["state"],
                    path=tree / row["artifact"], manifest_path=self.store.root / row["manifest"],
                    digest=row["tree"], size_bytes=int(row["size_bytes"]), created_at=row["created_at"],
                    created_by=row["created_by"], serving=row["version"] == row["served"],
                )
        # golden paths are relative to the store (older registries recorded absolute paths: kept as they are)
        return [dataclasses.replace(mv, golden=tuple(str(self.store.root / g) for g in golden[key]))
                if key in golden else mv for key, mv in versions.items()]

    def get(self, model: str, version: str) -> ModelVersion:
        check_name(model, "model")
        found = self._read(" AND v.model = ? AND v.version = ?", [model, str(version)])
        if not found:
            self.require_model(model)  # only now: one round trip less per read on a remote database
            known = [r[0] for r in self.db.query("SELECT version FROM versions WHERE model = ? ORDER BY seq",
                                                 (model,))]
            raise RegistryError(f"unknown version {version!r} of {model!r} (known: {', '.join(known) or 'none'})",
                                where=str(self.store.root.parent), hint="see: goldwatch registry list MODEL")
        return found[0]

    def list(self, model: str | None = None, *, state: State | None = None) -> builtins.list[ModelVersion]:
        """Versions, oldest first (all models when ``model`` is None); ``serving`` means served by this host."""
        where, args = "", []
        if model is not None:
            check_name(model, "model")
            where += " AND v.model = ?"
            args.append(model)
        if state is not None:
            where += " AND v.state = ?"
            args.append(state)
        found = self._read(where, args)
        if not found and model is not None:
            self.require_model(model)
        return found

    def history(self, model: str, version: str | None = None) -> builtins.list[Event]:
        """The audit trail of ``model`` (or one version), oldest first."""
        self.require_model(model)
        sql, args = "SELECT * FROM events WHERE model = ?", [model]
        if version is not None:
            sql += " AND version = ?"
            args.append(str(version))
        return [
            Event(id=int(r["id"]), model=r["model"], version=r["version"], action=r["action"],
                  from_state=r["from_state"], to_state=r["to_state"], actor=r["actor"], reason=r["reason"],
                  at=r["at"], evidence=json.loads(r["evidence"]))
            for r in self.db.query(sql + " ORDER BY id", args)
        ]

    def serving_version(self, model: str, host: str | None = None) -> str | None:
        target = self.serving_target(model, host)
        return None if target is None else target[0]

    def serving_target(self, model: str, host: str | None = None) -> tuple[str | None, str] | None:
        """(version or None for the fallback, target path) that ``host`` (default: this one) last switched to."""
        row = self.db.one("SELECT version, target FROM serving WHERE model = ? AND host = ?",
                          (model, host or self.host))
        return None if row is None else (row["version"], row["target"])

    def served_by(self, model: str | None = None, *, version: str | None = None) -> builtins.list[HostServing]:
        """Which host serves what (of ``model``; only ``version`` when given), by model then host."""
        sql = ("SELECT s.model, s.host, s.version, s.target, s.switched_at, h.last_seen FROM serving s "
               "LEFT JOIN hosts h ON h.host = s.host WHERE 1 = 1")
        args: builtins.list[Any] = []
        if model is not None:
            sql += " AND s.model = ?"
            args.append(model)
        if version is not None:
            sql += " AND s.version = ?"
            args.append(str(version))
        return [HostServing(r[0], r[1], r[2], r[3], r[4], r[5]) for r in self.db.query(sql + " ORDER BY 1, 2", args)]

    def hosts_serving(self, model: str) -> set[str]:
        """Versions of ``model`` some host serves (never retired while served)."""
        return {r[0] for r in self.db.query(
            "SELECT version FROM serving WHERE model = ? AND version IS NOT NULL", (model,))}

    # ---- writing (inside the caller's transaction) -------------------------------------------------------
    def event(self, model: str, version: str | None, action: str, from_state: str | None, to_state: str | None,
              *, actor: str, reason: str, evidence: dict[str, Any] | None = None) -> None:
        self.db.execute(
            "INSERT INTO events (model, version, action, from_state, to_state, actor, reason, at, evidence) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (model, version, action, from_state, to_state, actor, reason, now(),
             json.dumps(evidence or {}, sort_keys=True, default=str)),
        )

    def lock_model(self, model: str) -> int:
        """Inside a transaction: lock ``model``'s row until commit (PostgreSQL) and return its revision.

        Only an add takes it first (to number the new version); every other writer takes it last, by bumping the
        revision (see the module's docstring).
        """
        row = self.db.one("SELECT rev FROM models WHERE name = ?" + self.db.for_update, (model,))
        if row is None:
            raise RegistryError(f"unknown model {model!r}", where=str(self.store.root.parent))
        return int(row[0])

    def _bump(self, model: str) -> None:
        self.db.execute("UPDATE models SET rev = rev + 1 WHERE name = ?", (model,))

    def transition(self, model: str, version: str, to: State, *, action: str, actor: str, reason: str,
                   evidence: dict[str, Any] | None = None, expect: Sequence[State] | None = None,
                   done: Sequence[State] = ()) -> bool:
        """Move ``version`` to state ``to`` (checked against TRANSITIONS) with a compare-and-set on its row.

        Returns False when nothing needs to change: it is already ``to`` (idempotent) or in one of ``done``
        (e.g. a rollback quarantining what it leaves finds it retired: out of service either way). True when it
        changed. ``expect``: the states the caller's decision assumed; any other raises ConcurrentChangeError,
        naming who changed it. Runs in its own transaction unless the caller's is open.
        """
        settled = (to, *done)
        with self.db.transaction():
            row = self.lock_version(model, version, write=None)
            current: State = row["state"]
            if current in settled:
                return False
            row = self.lock_version(model, version, write=True)
            current = row["state"]
            if current in settled:
                return False
            if expect is not None and current not in expect:
                raise self.changed_underneath(model, version, found=current, expected=expect)
            if to not in TRANSITIONS[current]:
                raise RegistryError(
                    f"{model} {version} is {current}; it cannot become {to}", where=f"{model}:{version}",
                    hint="a quarantined or retired version never returns: add the artifact again as a new version",
                )
            cur = self.db.execute("UPDATE versions SET state = ? WHERE model = ? AND version = ? AND state = ?",
                                  (to, model, str(version), current))
            if cur.rowcount != 1:  # only possible for a writer that ignores the row lock (an older goldwatch)
                raise self.changed_underneath(model, version, found=None, expected=(current,))
            self._bump(model)
            self.event(model, str(version), action, current, to, actor=actor, reason=reason, evidence=evidence)
        return True

    def lock_version(self, model: str, version: str, *, write: bool | None) -> Any:
        """Inside a transaction, read ``version``'s row: ``write=True`` locks it for an update, False against
        updates only (a decision that rests on it, while other decisions that only read it go on side by side),
        None takes no lock. Raises RegistryError if there is no such version. Lock several with
        :meth:`lock_versions` (one order)."""
        lock = "" if write is None else (self.db.for_update if write else self.db.for_share)
        row = self.db.one("SELECT state FROM versions WHERE model = ? AND version = ?" + lock, (model, str(version)))
        if row is None:
            raise RegistryError(f"unknown version {version!r} of {model!r}", where=f"{model}:{version}")
        return row

    def lock_versions(self, model: str, writes: dict[str, bool]) -> dict[str, State]:
        """Lock the rows of ``writes`` (version -> for update?) in one order; returns their states."""
        return {v: self.lock_version(model, v, write=writes[v])["state"] for v in sorted(writes)}

    def changed_underneath(self, model: str, version: str, *, found: str | None,
                           expected: Sequence[str]) -> ConcurrentChangeError:
        last = self.db.one("SELECT actor, reason, at FROM events WHERE model = ? AND version = ? AND to_state IS NOT "
                           "NULL ORDER BY id DESC LIMIT 1", (model, str(version)))
        who = f" (by {last['actor']} at {last['at']}: {last['reason']})" if last is not None else ""
        return ConcurrentChangeError(
            f"{model} {version} changed underneath you: it was {' or '.join(expected)} when this operation decided, "
            f"it is {found or 'something else'} now{who}",
            where=f"{model}:{version}", hint="nothing was changed by this operation; look again and rerun it",
        )

    def record_serving(self, model: str, version: str | None, target: str, *, actor: str, reason: str,
                       evidence: dict[str, Any]) -> None:
        """Record that this host's pointer now serves ``target`` (and the audit event saying so)."""
        self.db.execute(
            "INSERT INTO serving (model, host, version, target, switched_at, rev) VALUES (?, ?, ?, ?, ?, 1) "
            "ON CONFLICT (model, host) DO UPDATE SET version = excluded.version, target = excluded.target, "
            "switched_at = excluded.switched_at, rev = serving.rev + 1",
            (model, self.host, version, target, now()),
        )
        self.event(model, version, "serve", None, None, actor=actor, reason=reason,
                   evidence={**evidence, "target": target, "host": self.host})

    def register(self, model: str, stored: StoredArtifact, golden: Sequence[str], *, version: str | None,
                 actor: str, reason: str, source: Path, golden_sources: Sequence[str] = ()) -> ModelVersion:
        """Insert a new candidate version of ``model`` (numbered when ``version`` is None) in one transaction."""
        with self.db.transaction():
            self.db.execute("INSERT INTO models (name, created_at, rev) VALUES (?, ?, 0) ON CONFLICT (name) DO NOTHING",
                            (model, now()))
            self.lock_model(model)  # serialises the numbering of concurrent adds across hosts
            if version is not None and self.db.one("SELECT 1 FROM versions WHERE model = ? AND version = ?",
                                                   (model, str(version))):
                raise RegistryError(f"version {version!r} of {model!r} already exists",
                                    where=str(self.store.root.parent),
                                    hint="pick another version name, or leave it out to number automatically")
            seq = int(self.db.one("SELECT COALESCE(MAX(seq), 0) + 1 FROM versions WHERE model = ?", (model,))[0])
            name = str(version) if version is not None else str(seq)
            while version is None and self.db.one("SELECT 1 FROM versions WHERE model = ? AND version = ?",
                                                  (model, name)):
                name = f"{name}.1"  # an explicit version took this number; keep auto names unique
            self.db.execute(
                "INSERT INTO versions (model, version, seq, state, tree, artifact, manifest, size_bytes, "
                "created_at, created_by) VALUES (?, ?, ?, 'candidate', ?, ?, ?, ?, ?, ?)",
                (model, name, seq, stored.tree, stored.path.name,
                 stored.manifest_path.relative_to(self.store.root).as_posix(), stored.size_bytes, now(), actor),
            )
            for g in golden:
                self.db.execute("INSERT INTO golden_links (model, version, golden) VALUES (?, ?, ?)",
                                (model, name, g))
            evidence: dict[str, Any] = {"source": str(Path(source).resolve()), "digest": stored.tree,
                                        "size_bytes": stored.size_bytes, "files": stored.files}
            if golden_sources:
                evidence["golden_sources"] = list(golden_sources)
            self._bump(model)
            self.event(model, name, "add", None, "candidate", actor=actor, reason=reason, evidence=evidence)
        return self.get(model, name)

    def touch_host(self, *, goldwatch_version: str, pid: int) -> None:
        """Record that this host is alive (``registry show`` prints when each host serving a model was last seen)."""
        stamp = now()
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO hosts (host, first_seen, last_seen, pid, goldwatch) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (host) DO UPDATE SET last_seen = excluded.last_seen, pid = excluded.pid, "
                "goldwatch = excluded.goldwatch",
                (self.host, stamp, stamp, pid, goldwatch_version),
            )

    def forget_host(self, host: str, *, actor: str, reason: str) -> int:
        """Drop ``host``'s serving records (a pod that is gone for good) and close its open intents as reverted
        (only that host could have resolved them, and its pointer went with it); returns the records dropped."""
        with self.db.transaction():
            rows = self.db.query("SELECT model, version FROM serving WHERE host = ?", (host,))
            intents = self.db.query("SELECT id, model FROM intents WHERE host = ? AND status = 'open'", (host,))
            self.db.execute("DELETE FROM serving WHERE host = ?", (host,))
            self.db.execute("DELETE FROM hosts WHERE host = ?", (host,))
            self.db.execute("DELETE FROM fleet_participants WHERE host = ?", (host,))  # it sees no problem now
            self.db.execute("UPDATE intents SET status = 'reverted', ended_at = ? WHERE host = ? AND status = 'open'",
                            (now(), host))
            for r in rows:
                self.event(r[0], r[1], "forget-host", None, None, actor=actor, reason=reason, evidence={"host": host})
            for r in intents:
                self.event(r[1], None, "forget-host", None, None, actor=actor, reason=f"{reason}: its open intent "
                           "closed as reverted", evidence={"host": host, "intent": int(r[0])})
        return len(rows)
