"""The registry database: SQLite in WAL mode, a schema version, forward-only migrations.

Writers use ``BEGIN IMMEDIATE`` so two processes never interleave a read-modify-write; readers never block
(WAL). ``PRAGMA user_version`` holds the schema version: a database written by a newer goldwatch is refused with a
:class:`~goldwatch.errors.StateError` before anything is changed, and an older one is migrated in one transaction.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     conn = connect(pathlib.Path(d) / "registry.db")
...     version = schema_version(conn)
...     mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
...     conn.close()
>>> version == SCHEMA_VERSION, mode
(True, 'wal')
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from goldwatch.errors import StateError

__all__ = ["SCHEMA_VERSION", "connect", "now", "schema_version", "write"]

# Each entry migrates from schema i to i + 1. Append only: a released migration is never edited.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE models (
        name        TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE versions (
        model       TEXT NOT NULL REFERENCES models(name),
        version     TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('candidate', 'known-good', 'quarantined', 'retired')),
        tree        TEXT NOT NULL,
        artifact    TEXT NOT NULL,
        manifest    TEXT NOT NULL,
        size_bytes  INTEGER NOT NULL,
        created_at  TEXT NOT NULL,
        created_by  TEXT NOT NULL,
        PRIMARY KEY (model, version),
        UNIQUE (model, seq)
    );
    CREATE TABLE golden_links (
        model       TEXT NOT NULL,
        version     TEXT NOT NULL,
        golden      TEXT NOT NULL,
        PRIMARY KEY (model, version, golden),
        FOREIGN KEY (model, version) REFERENCES versions(model, version)
    );
    CREATE TABLE events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        model       TEXT NOT NULL,
        version     TEXT,
        action      TEXT NOT NULL,
        from_state  TEXT,
        to_state    TEXT,
        actor       TEXT NOT NULL,
        reason      TEXT NOT NULL,
        at          TEXT NOT NULL,
        evidence    TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_by_model ON events(model, id);
    CREATE TABLE serving (
        model       TEXT PRIMARY KEY REFERENCES models(name),
        version     TEXT,
        target      TEXT NOT NULL,
        switched_at TEXT NOT NULL
    );
    CREATE TABLE intents (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        op          TEXT NOT NULL,
        model       TEXT NOT NULL,
        payload     TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('open', 'done', 'completed', 'reverted')),
        pid         INTEGER NOT NULL,
        started_at  TEXT NOT NULL,
        ended_at    TEXT
    );
    CREATE INDEX intents_open ON intents(status) WHERE status = 'open';
    """,
)

SCHEMA_VERSION = len(_MIGRATIONS)


def now() -> str:
    """UTC timestamp with microseconds, ISO 8601 (sorts as text)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


@contextlib.contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE``): committed on success, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def connect(path: Path, *, busy_timeout_s: float = 30.0) -> sqlite3.Connection:
    """Open (creating or migrating) the registry database at ``path``.

    Raises StateError if the file is not an SQLite database or was written by a newer schema.
    """
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly what we say it is.
        conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        found = schema_version(conn)
    except sqlite3.DatabaseError as exc:
        raise StateError(
            f"not a usable SQLite database ({exc})", where=str(path),
            hint="point --root at a goldwatch registry, or move this file away",
        ) from None
    if found > SCHEMA_VERSION:
        conn.close()
        raise StateError(
            f"the registry database has schema version {found}, newer than this goldwatch understands "
            f"({SCHEMA_VERSION})",
            where=str(path),
            hint="upgrade goldwatch; nothing was changed",
        )
    # WAL: readers do not block the writer, and a crash mid-commit leaves the last committed state.
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: a committed transaction survives power loss, not just a process crash; the registry writes rarely.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    if found < SCHEMA_VERSION:
        with write(conn):
            # Re-read inside the write lock: another process may have migrated while we waited.
            current = schema_version(conn)
            for step in range(current, SCHEMA_VERSION):
                for statement in _split(_MIGRATIONS[step]):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return conn


def _split(script: str) -> list[str]:
    # executescript() would COMMIT our transaction first; run statement by statement instead.
    return [s.strip() for s in script.split(";") if s.strip()]
