"""The sidecar's journal: every decision, the incidents with their times, rollbacks, pauses, and checkpoints.

One SQLite file (WAL). What a restart needs is here: the last result of each check of each model (when each last
passed: an incident's start), the open incidents, the automatic rollbacks of the last hour (the flap guard must
not forget them on a restart), rollbacks that never finished (a SIGKILL mid-rollback: the registry's intent journal
repairs the pointer, the service then finishes the job), pauses and flap-guard stops, and the external evidence
sources. It runs in WAL mode with ``synchronous=NORMAL``: every commit survives the process being killed at any
instant (SIGKILL, OOM); only a power cut may lose the last few, and what must survive even that is elsewhere
with ``FULL``: the registry's intent journal (the pointer switch) and the alert outbox (the pages). A commit costs
no fsync, so the event loop can record every decision as it makes it.

An incident records when the problem *started* (the last passing check of its kind), when it was *detected*
(the first failing one), *acted* on and *recovered*, so its time to detect and time to recover are known and held
against the model's RTO:

>>> import tempfile, pathlib
>>> j = Journal.open(pathlib.Path(tempfile.mkdtemp()) / "sidecar.sqlite")
>>> n = j.open_incident(model="fraud", check_class="integrity", kind="files", severity="critical",
...                     summary="model.onnx: sha256 differs", started_at=100.0, detected_at=101.5, rto_s=60)
>>> j.mark_acted(n, at=101.6, action={"kind": "rollback", "from": "2", "to": "1"})
>>> inc = j.resolve_incident(n, at=102.4)
>>> inc.ttd_s, round(inc.ttr_s, 3), inc.within_rto
(1.5, 0.9, True)
>>> j.put_checkpoint("drift", "fraud/window", {"n": 512}); j.get_checkpoint("drift", "fraud/window")
{'n': 512}
>>> j.close()

Other components keep their own durable state here too (:meth:`Journal.put_checkpoint`: a namespace, a key and a
JSON value), so one file holds everything a sidecar must not lose.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from goldwatch.checks import Check
from goldwatch.errors import StateError
from goldwatch.serialize import to_jsonable

__all__ = ["CheckRow", "DecisionRow", "IncidentRow", "Journal", "ModelStateRow", "RollbackRow", "SourceRow"]

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          REAL NOT NULL,
    model       TEXT NOT NULL,
    kind        TEXT,
    action      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS decisions_by_model ON decisions (model, id);
CREATE INDEX IF NOT EXISTS decisions_by_time ON decisions (at);
CREATE TABLE IF NOT EXISTS check_state (
    model         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    status        TEXT,
    version       TEXT,
    last_run_at   REAL,
    last_pass_at  REAL,
    failing_since REAL,
    consecutive   INTEGER NOT NULL DEFAULT 0,
    duration_s    REAL,
    checks        TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (model, kind)
);
CREATE TABLE IF NOT EXISTS incidents (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    model        TEXT NOT NULL,
    check_class  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    severity     TEXT NOT NULL,
    summary      TEXT NOT NULL,
    started_at   REAL,
    detected_at  REAL NOT NULL,
    acted_at     REAL,
    action       TEXT,
    recovered_at REAL,
    rto_s        REAL,
    checks       TEXT NOT NULL DEFAULT '[]',
    served_version TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_one_open ON incidents (model, check_class) WHERE state = 'open';
CREATE TABLE IF NOT EXISTS rollbacks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    model        TEXT NOT NULL,
    incident_id  INTEGER,
    automatic    INTEGER NOT NULL,
    started_at   REAL NOT NULL,
    finished_at  REAL,
    from_version TEXT,
    to_version   TEXT,
    outcome      TEXT,
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS rollbacks_by_model ON rollbacks (model, started_at);
CREATE TABLE IF NOT EXISTS model_state (
    model          TEXT PRIMARY KEY,
    paused_until   REAL,
    paused_reason  TEXT,
    stopped_at     REAL,
    stopped_reason TEXT
);
CREATE TABLE IF NOT EXISTS sources (
    model       TEXT NOT NULL,
    source      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    interval_s  REAL,
    first_seen  REAL NOT NULL,
    last_seen   REAL NOT NULL,
    status      TEXT NOT NULL,
    PRIMARY KEY (model, source)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    namespace   TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (namespace, key)
);
"""


def _dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), sort_keys=True, allow_nan=False)


def check_to_dict(check: Check) -> dict[str, Any]:
    return {"name": check.name, "status": check.status, "summary": check.summary,
            "measured": to_jsonable(dict(check.measured)), "threshold": to_jsonable(dict(check.threshold)),
            "details": to_jsonable(dict(check.details)), "duration_s": check.duration_s}


def check_from_dict(data: Mapping[str, Any]) -> Check:
    return Check(name=str(data["name"]), status=data["status"], summary=str(data.get("summary", "")),
                 measured=dict(data.get("measured") or {}), threshold=dict(data.get("threshold") or {}),
                 details=dict(data.get("details") or {}), duration_s=data.get("duration_s"))


@dataclasses.dataclass(frozen=True)
class DecisionRow:
    id: int
    at: float
    model: str
    kind: str | None
    action: str
    reason: str
    detail: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class CheckRow:
    model: str
    kind: str
    status: str | None
    version: str | None
    last_run_at: float | None
    last_pass_at: float | None
    failing_since: float | None
    consecutive: int
    duration_s: float | None
    checks: tuple[Check, ...]


@dataclasses.dataclass(frozen=True)
class IncidentRow:
    """One incident. ``ttd_s`` = detected - started (the last passing check); ``ttr_s`` = recovered - detected;
    ``within_rto``: started (or detected) to recovered within the RTO."""

    id: int
    model: str
    check_class: str
    kind: str
    state: str
    severity: str
    summary: str
    started_at: float | None
    detected_at: float
    acted_at: float | None
    action: dict[str, Any] | None
    recovered_at: float | None
    rto_s: float | None
    checks: tuple[Check, ...]
    served_version: str | None

    @property
    def ttd_s(self) -> float | None:
        return None if self.started_at is None else round(self.detected_at - self.started_at, 6)

    @property
    def ttr_s(self) -> float | None:
        return None if self.recovered_at is None else round(self.recovered_at - self.detected_at, 6)

    @property
    def within_rto(self) -> bool | None:
        if self.recovered_at is None or self.rto_s is None:
            return None
        start = self.started_at if self.started_at is not None else self.detected_at
        return self.recovered_at - start <= self.rto_s

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["checks"] = [check_to_dict(c) for c in self.checks]
        data.update(ttd_s=self.ttd_s, ttr_s=self.ttr_s, within_rto=self.within_rto)
        return data


@dataclasses.dataclass(frozen=True)
class RollbackRow:
    id: int
    model: str
    incident_id: int | None
    automatic: bool
    started_at: float
    finished_at: float | None
    from_version: str | None
    to_version: str | None
    outcome: str | None
    detail: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ModelStateRow:
    model: str
    paused_until: float | None
    paused_reason: str | None
    stopped_at: float | None
    stopped_reason: str | None


@dataclasses.dataclass(frozen=True)
class SourceRow:
    model: str
    source: str
    kind: str
    interval_s: float | None
    first_seen: float
    last_seen: float
    status: str


class Journal:
    """The journal database. Thread-safe (one connection behind a lock); use :meth:`open`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Journal:
        path = Path(path)
        conn: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            found = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if found > SCHEMA_VERSION:
                conn.close()
                raise StateError(f"the sidecar journal has schema version {found}, newer than this goldwatch "
                                 f"understands ({SCHEMA_VERSION})", where=str(path),
                                 hint="upgrade goldwatch, or point serve.journal elsewhere")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            raise StateError(f"cannot open the sidecar journal ({exc})", where=str(path),
                             hint="check the path and permissions; move a corrupt file aside and start again") \
                from None
        return cls(conn, path)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def writable(self) -> bool:
        """Whether a write transaction commits now (the readiness probe asks)."""
        try:
            with self._tx() as conn:
                conn.execute("INSERT OR REPLACE INTO checkpoints VALUES ('sidecar', 'probe', '{}', ?)",
                             (time.time(),))
        except sqlite3.Error:
            return False
        return True

    # ---- decisions ------------------------------------------------------------------------------------------
    def record(self, *, model: str, kind: str | None, action: str, reason: str, at: float,
               detail: Mapping[str, Any] | None = None) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO decisions (at, model, kind, action, reason, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (at, model, kind, action, reason, _dumps(dict(detail or {}))))
        return int(cur.lastrowid or 0)

    def decisions(self, *, after: int = 0, model: str | None = None, limit: int = 200) -> list[DecisionRow]:
        sql = "SELECT id, at, model, kind, action, reason, detail FROM decisions WHERE id > ?"
        args: list[Any] = [after]
        if model is not None:
            sql += " AND model = ?"
            args.append(model)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id LIMIT ?", [*args, limit]).fetchall()
        return [DecisionRow(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in rows]

    def prune(self, *, older_than_s: float, now: float) -> int:
        """Drop decisions and resolved incidents older than ``older_than_s`` (open incidents are kept)."""
        cutoff = now - older_than_s
        with self._tx() as conn:
            n = conn.execute("DELETE FROM decisions WHERE at < ?", (cutoff,)).rowcount
            n += conn.execute("DELETE FROM incidents WHERE state = 'resolved' AND recovered_at < ?",
                              (cutoff,)).rowcount
            n += conn.execute("DELETE FROM rollbacks WHERE finished_at IS NOT NULL AND started_at < ?",
                              (cutoff,)).rowcount
        return n

    # ---- check state ----------------------------------------------------------------------------------------
    def save_check(self, *, model: str, kind: str, status: str | None, version: str | None,
                   last_run_at: float | None, last_pass_at: float | None, failing_since: float | None,
                   consecutive: int, duration_s: float | None, checks: Sequence[Check]) -> None:
        self.save_checks([CheckRow(model, kind, status, version, last_run_at, last_pass_at, failing_since,
                                   consecutive, duration_s, tuple(checks))])

    def save_checks(self, rows: Sequence[CheckRow]) -> None:
        """Store the latest state of many checks in one transaction (the service batches them every second)."""
        if not rows:
            return
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO check_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.model, r.kind, r.status, r.version, r.last_run_at, r.last_pass_at, r.failing_since,
                  r.consecutive, r.duration_s, _dumps([check_to_dict(c) for c in r.checks])) for r in rows],
            )

    def check_states(self, model: str | None = None) -> list[CheckRow]:
        sql, args = "SELECT * FROM check_state", []
        if model is not None:
            sql += " WHERE model = ?"
            args.append(model)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY model, kind", args).fetchall()
        return [CheckRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8],
                         tuple(check_from_dict(c) for c in json.loads(r[9]))) for r in rows]

    # ---- incidents ------------------------------------------------------------------------------------------
    def open_incident(self, *, model: str, check_class: str, kind: str, severity: str, summary: str,
                      started_at: float | None, detected_at: float, rto_s: float | None,
                      checks: Sequence[Check] = (), served_version: str | None = None) -> int:
        """Open the incident of (model, class), or return the one already open (updating severity and summary)."""
        with self._tx() as conn:
            row = conn.execute("SELECT id FROM incidents WHERE model = ? AND check_class = ? AND state = 'open'",
                               (model, check_class)).fetchone()
            if row is not None:  # the evidence of the last failure is kept unless new evidence is given
                conn.execute("UPDATE incidents SET severity = ?, summary = ?, "
                             "checks = CASE WHEN ? = '[]' THEN checks ELSE ? END WHERE id = ?",
                             (severity, summary, *[_dumps([check_to_dict(c) for c in checks])] * 2, row[0]))
                return int(row[0])
            cur = conn.execute(
                "INSERT INTO incidents (model, check_class, kind, state, severity, summary, started_at, detected_at, "
                "rto_s, checks, served_version) VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?)",
                (model, check_class, kind, severity, summary, started_at, detected_at, rto_s,
                 _dumps([check_to_dict(c) for c in checks]), served_version),
            )
        return int(cur.lastrowid or 0)

    def mark_acted(self, incident_id: int, *, at: float, action: Mapping[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE incidents SET acted_at = ?, action = ? WHERE id = ?",
                         (at, _dumps(dict(action)), incident_id))

    def resolve_incident(self, incident_id: int, *, at: float) -> IncidentRow:
        with self._tx() as conn:
            conn.execute("UPDATE incidents SET state = 'resolved', recovered_at = ? WHERE id = ? AND state = 'open'",
                         (at, incident_id))
        found = self.incident(incident_id)
        assert found is not None
        return found

    def incident(self, incident_id: int) -> IncidentRow | None:
        rows = self._incidents("WHERE id = ?", [incident_id])
        return rows[0] if rows else None

    def open_incident_for(self, model: str, check_class: str) -> IncidentRow | None:
        rows = self._incidents("WHERE model = ? AND check_class = ? AND state = 'open'", [model, check_class])
        return rows[0] if rows else None

    def incidents(self, *, state: str | None = None, model: str | None = None,
                  limit: int = 200) -> list[IncidentRow]:
        where, args = [], []
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if model is not None:
            where.append("model = ?")
            args.append(model)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        return self._incidents(f"{clause} ORDER BY id DESC LIMIT ?", [*args, limit])

    def _incidents(self, clause: str, args: Sequence[Any]) -> list[IncidentRow]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, model, check_class, kind, state, severity, summary, started_at, detected_at, acted_at, "
                f"action, recovered_at, rto_s, checks, served_version FROM incidents {clause}", list(args)).fetchall()
        return [IncidentRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                            json.loads(r[10]) if r[10] else None, r[11], r[12],
                            tuple(check_from_dict(c) for c in json.loads(r[13])), r[14]) for r in rows]

    # ---- rollbacks ------------------------------------------------------------------------------------------
    def begin_rollback(self, *, model: str, incident_id: int | None, automatic: bool, at: float,
                       from_version: str | None, reason: str) -> int:
        """Record a rollback about to start (committed before it starts: a crash leaves it unfinished)."""
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO rollbacks (model, incident_id, automatic, started_at, from_version, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (model, incident_id, int(automatic), at, from_version, _dumps({"reason": reason})),
            )
        return int(cur.lastrowid or 0)

    def finish_rollback(self, rollback_id: int, *, at: float, to_version: str | None, outcome: str,
                        detail: Mapping[str, Any]) -> None:
        with self._tx() as conn:
            old = conn.execute("SELECT detail FROM rollbacks WHERE id = ?", (rollback_id,)).fetchone()
            merged = {**(json.loads(old[0]) if old else {}), **to_jsonable(dict(detail))}
            conn.execute("UPDATE rollbacks SET finished_at = ?, to_version = ?, outcome = ?, detail = ? WHERE id = ?",
                         (at, to_version, outcome, _dumps(merged), rollback_id))

    def rollbacks(self, *, model: str | None = None, since: float | None = None,
                  unfinished: bool = False) -> list[RollbackRow]:
        where: list[str] = []
        args: list[Any] = []
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if since is not None:
            where.append("started_at >= ?")
            args.append(since)
        if unfinished:
            where.append("finished_at IS NULL")
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        with self._lock:
            rows = self._conn.execute(f"SELECT * FROM rollbacks {clause} ORDER BY id", args).fetchall()
        return [RollbackRow(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6], r[7], r[8], json.loads(r[9]))
                for r in rows]

    # ---- pause and flap guard -------------------------------------------------------------------------------
    def model_state(self, model: str) -> ModelStateRow:
        with self._lock:
            r = self._conn.execute("SELECT * FROM model_state WHERE model = ?", (model,)).fetchone()
        return ModelStateRow(*r) if r else ModelStateRow(model, None, None, None, None)

    def set_paused(self, model: str, *, until: float | None, reason: str | None) -> None:
        with self._tx() as conn:
            conn.execute("INSERT INTO model_state (model, paused_until, paused_reason) VALUES (?, ?, ?) "
                         "ON CONFLICT(model) DO UPDATE SET paused_until = excluded.paused_until, "
                         "paused_reason = excluded.paused_reason", (model, until, reason))

    def set_stopped(self, model: str, *, at: float | None, reason: str | None) -> None:
        with self._tx() as conn:
            conn.execute("INSERT INTO model_state (model, stopped_at, stopped_reason) VALUES (?, ?, ?) "
                         "ON CONFLICT(model) DO UPDATE SET stopped_at = excluded.stopped_at, "
                         "stopped_reason = excluded.stopped_reason", (model, at, reason))

    # ---- external sources -----------------------------------------------------------------------------------
    def save_source(self, *, model: str, source: str, kind: str, interval_s: float | None, first_seen: float,
                    last_seen: float, status: str) -> None:
        self.save_sources([SourceRow(model, source, kind, interval_s, first_seen, last_seen, status)])

    def save_sources(self, rows: Sequence[SourceRow]) -> None:
        if not rows:
            return
        with self._tx() as conn:
            conn.executemany("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(r.model, r.source, r.kind, r.interval_s, r.first_seen, r.last_seen, r.status)
                              for r in rows])

    def forget_source(self, model: str, source: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM sources WHERE model = ? AND source = ?", (model, source))

    def sources(self, model: str | None = None) -> list[SourceRow]:
        sql, args = "SELECT * FROM sources", []
        if model is not None:
            sql += " WHERE model = ?"
            args.append(model)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY model, source", args).fetchall()
        return [SourceRow(*r) for r in rows]

    # ---- checkpoints (for any component) --------------------------------------------------------------------
    def put_checkpoint(self, namespace: str, key: str, value: Any) -> None:
        """Store ``value`` (JSON-able) under (namespace, key), replacing what was there; durable on return."""
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)",
                         (namespace, key, _dumps(value), time.time()))

    def get_checkpoint(self, namespace: str, key: str) -> Any:
        with self._lock:
            row = self._conn.execute("SELECT value FROM checkpoints WHERE namespace = ? AND key = ?",
                                     (namespace, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def checkpoints(self, namespace: str) -> dict[str, Any]:
        with self._lock:
            rows = self._conn.execute("SELECT key, value FROM checkpoints WHERE namespace = ? ORDER BY key",
                                      (namespace,)).fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

    def delete_checkpoint(self, namespace: str, key: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM checkpoints WHERE namespace = ? AND key = ?", (namespace, key))
