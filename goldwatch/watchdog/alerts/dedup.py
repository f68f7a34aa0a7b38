"""One incident per real problem: deterministic dedup keys and the book of open incidents.

PagerDuty groups every event with the same ``dedup_key`` into one open alert; after a ``resolve``, a new trigger
with the same key opens a *new* incident (documented Events API v2 behaviour). goldwatch therefore derives the key
from (model, check class) only -- never from the numbers or the time -- so a check that keeps failing updates one
incident, and a problem that comes back after recovery pages again.

The :class:`IncidentBook` (a table in the outbox database) remembers which incidents are open so that goldwatch
does not re-send an unchanged trigger on every evaluation (re-notifying only after ``renotify_s``), sends a
``resolve`` only for an open incident, and -- with ``resolve_after_s`` -- resolves only once a check has stayed
green for a while, so a flapping check does not open a new incident on every flap.

>>> dedup_key("fraud-model", "integrity")
'goldwatch/fraud-model/integrity'
>>> check_class("golden:logits:max_abs_error")
'golden'
>>> len(dedup_key("m" * 400, "drift")), dedup_key("m" * 400, "drift") == dedup_key("m" * 400, "drift")
(255, True)
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import re
import sqlite3
from typing import Literal

from goldwatch.errors import DataError
from goldwatch.watchdog.alerts.events import MAX_DEDUP_KEY_CHARS

__all__ = ["Incident", "IncidentBook", "TriggerDecision", "check_class", "dedup_key"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._:@+=-]+")

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    dedup_key     TEXT PRIMARY KEY,
    model         TEXT NOT NULL,
    check_class   TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    severity      TEXT NOT NULL,
    summary       TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    number        INTEGER NOT NULL,
    triggers      INTEGER NOT NULL,
    opened_at     REAL NOT NULL,
    updated_at    REAL NOT NULL,
    last_sent_at  REAL NOT NULL,
    resolved_at   REAL,
    passing_since REAL
);
"""


def check_class(check_name: str) -> str:
    """The class of a :class:`~goldwatch.checks.Check` name: the part before the first ``:``."""
    head = check_name.split(":", 1)[0].strip()
    if not head:
        raise DataError(f"check name {check_name!r} has no class", hint="name checks 'class:detail', e.g. 'golden:y'")
    return head


def dedup_key(model: str, check_class: str, *, namespace: str = "goldwatch") -> str:
    """The PagerDuty ``dedup_key`` of (model, check class): readable, stable, at most 255 characters.

    Names made only of ``[A-Za-z0-9._:@+=-]`` give ``namespace/model/class``. Otherwise unsafe characters become
    ``_`` and the key ends in ``~`` and a SHA-256 of the exact names (shortening the readable part if needed), so
    two different (model, class) pairs never share a key: "fraud model" and "fraud_model" stay apart.

    >>> dedup_key("fraud model", "golden")
    'goldwatch/fraud_model/golden~5d0469e380baf605'
    """
    if not model or not check_class:
        raise DataError("model and check class must be non-empty", where="dedup_key",
                        hint="pass the model name and a class such as 'integrity'")
    raw = (namespace, model, check_class)
    parts = [_UNSAFE.sub("_", p) for p in raw]
    key = "/".join(parts)
    if parts == list(raw) and len(key) <= MAX_DEDUP_KEY_CHARS:
        return key
    digest = hashlib.sha256("\0".join(raw).encode("utf-8")).hexdigest()
    digest = digest[:16] if len(key) + 17 <= MAX_DEDUP_KEY_CHARS else digest
    return key[: MAX_DEDUP_KEY_CHARS - len(digest) - 1] + "~" + digest


@dataclasses.dataclass(frozen=True)
class Incident:
    """An incident as goldwatch sees it. ``number`` counts the incidents this key has had (1 for the first)."""

    dedup_key: str
    model: str
    check_class: str
    state: Literal["open", "resolved"]
    severity: str
    summary: str
    number: int
    triggers: int
    opened_at: float
    updated_at: float
    resolved_at: float | None = None


@dataclasses.dataclass(frozen=True)
class TriggerDecision:
    """What :meth:`IncidentBook.on_trigger` decided: send or not, and why."""

    incident: Incident
    send: bool
    reason: Literal["new", "changed", "renotify", "unchanged"]


_COLUMNS = (
    "dedup_key, model, check_class, state, severity, summary, number, triggers, opened_at, updated_at, resolved_at"
)


def _incident(row: tuple[object, ...]) -> Incident:
    return Incident(*row)  # type: ignore[arg-type]


class IncidentBook:
    """Open/resolved state per dedup key, kept in the outbox's SQLite database.

    Methods run inside the caller's transaction where one is open (the manager stores the incident change and the
    outgoing event in one transaction, so a crash never leaves one without the other).
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.executescript(SCHEMA)

    def get(self, key: str) -> Incident | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM incidents WHERE dedup_key = ?", (key,)).fetchone()
        return _incident(row) if row else None

    def list(self, *, state: Literal["open", "resolved"] | None = None) -> list[Incident]:
        if state is None:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM incidents ORDER BY updated_at").fetchall()
        else:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM incidents WHERE state = ? ORDER BY updated_at", (state,)
            ).fetchall()
        return [_incident(r) for r in rows]

    def on_trigger(
        self,
        *,
        key: str,
        model: str,
        check_class: str,
        severity: str,
        summary: str,
        fingerprint: str,
        now: float,
        renotify_s: float,
    ) -> TriggerDecision:
        """Record a failing observation; send when the incident is new, changed, or due for a reminder."""
        row = self._conn.execute(
            "SELECT state, severity, fingerprint, last_sent_at, number FROM incidents WHERE dedup_key = ?", (key,)
        ).fetchone()
        if row is None or row[0] == "resolved":
            number = 1 if row is None else int(row[4]) + 1
            self._conn.execute(
                "INSERT OR REPLACE INTO incidents (dedup_key, model, check_class, state, severity, summary, "
                "fingerprint, number, triggers, opened_at, updated_at, last_sent_at, resolved_at, passing_since) "
                "VALUES (?, ?, ?, 'open', ?, ?, ?, ?, 1, ?, ?, ?, NULL, NULL)",
                (key, model, check_class, severity, summary, fingerprint, number, now, now, now),
            )
            reason: Literal["new", "changed", "renotify", "unchanged"] = "new"
        else:
            _state, old_severity, old_fingerprint, last_sent_at, _number = row
            if old_severity != severity or old_fingerprint != fingerprint:
                reason = "changed"
            elif now - float(last_sent_at) >= renotify_s:
                reason = "renotify"
            else:
                reason = "unchanged"
            sent = reason != "unchanged"
            self._conn.execute(
                "UPDATE incidents SET severity = ?, summary = ?, fingerprint = ?, triggers = triggers + 1, "
                "updated_at = ?, passing_since = NULL, last_sent_at = CASE WHEN ? THEN ? ELSE last_sent_at END "
                "WHERE dedup_key = ?",
                (severity, summary, fingerprint, now, sent, now, key),
            )
        incident = self.get(key)
        assert incident is not None  # just written in this transaction
        return TriggerDecision(incident=incident, send=reason != "unchanged", reason=reason)

    def mark_passing(self, *, key: str, now: float) -> float | None:
        """Record that the open incident of ``key`` passes (since now, unless it already was); returns since when,
        or None when no incident is open."""
        row = self._conn.execute("SELECT state, passing_since FROM incidents WHERE dedup_key = ?", (key,)).fetchone()
        if row is None or row[0] != "open":
            return None
        since = now if row[1] is None else float(row[1])
        self._conn.execute("UPDATE incidents SET passing_since = ?, updated_at = ? WHERE dedup_key = ?",
                           (since, now, key))
        return since

    def pending_resolves(self, *, now: float, resolve_after_s: float) -> builtins.list[Incident]:
        """Open incidents whose checks have passed for at least ``resolve_after_s``: due to be resolved."""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM incidents WHERE state = 'open' AND passing_since IS NOT NULL "
            "AND passing_since <= ? ORDER BY passing_since", (now - resolve_after_s,)).fetchall()
        return [_incident(r) for r in rows]

    def on_pass(self, *, key: str, now: float, resolve_after_s: float) -> Incident | None:
        """Record a passing observation; returns the incident if it must be resolved now, else None.

        An incident is resolved once its check has passed continuously for ``resolve_after_s`` seconds (0: at
        the first pass). Nothing is sent for a key without an open incident.
        """
        row = self._conn.execute(
            "SELECT state, passing_since FROM incidents WHERE dedup_key = ?", (key,)
        ).fetchone()
        if row is None or row[0] != "open":
            return None
        passing_since = now if row[1] is None else float(row[1])
        if now - passing_since < resolve_after_s:
            self._conn.execute(
                "UPDATE incidents SET passing_since = ?, updated_at = ? WHERE dedup_key = ?", (passing_since, now, key)
            )
            return None
        self._conn.execute(
            "UPDATE incidents SET state = 'resolved', resolved_at = ?, updated_at = ?, passing_since = NULL "
            "WHERE dedup_key = ?",
            (now, now, key),
        )
        return self.get(key)
