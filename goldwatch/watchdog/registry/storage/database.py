"""One small database interface over SQLite and PostgreSQL: statements, transactions, locks, the schema.

The registry writes SQL once, with ``?`` placeholders; this layer is the whole dialect difference:

========================  =====================================  ==========================================
                          SQLite (one host)                      PostgreSQL (a fleet)
========================  =====================================  ==========================================
placeholders              ``?``                                  ``%s`` (translated)
write transaction         ``BEGIN IMMEDIATE`` (one writer)       ``BEGIN`` + ``SELECT ... FOR UPDATE/SHARE``
operation lock            ``flock`` on ``registry.lock``          session advisory locks (per name)
new row id                ``lastrowid``                          ``RETURNING id``
schema version            ``PRAGMA user_version``                table ``goldwatch_schema``
upgrade                   automatic at open (one host)           ``goldwatch registry migrate`` (explicit)
========================  =====================================  ==========================================

An SQLite database is migrated when opened, as before: one host, so nothing else can be running an older
goldwatch against it. A PostgreSQL database shared by a fleet is never upgraded behind the other hosts' backs: an
older schema is refused with the command that upgrades it, a newer one with "upgrade goldwatch", and an empty
database is initialised.

A lost PostgreSQL connection raises :class:`~goldwatch.errors.DatabaseUnavailableError` (the transaction in flight
is rolled back by the server: nothing half-written) and the next statement reconnects.

>>> import tempfile, pathlib
>>> from goldwatch.watchdog.registry.storage.url import sqlite_url
>>> with tempfile.TemporaryDirectory() as d:
...     db = Database.connect(sqlite_url(pathlib.Path(d) / "r.db"), lock_path=pathlib.Path(d) / "r.lock", host="h")
...     with db.transaction():
...         _ = db.execute("INSERT INTO models (name, created_at, rev) VALUES (?, ?, 0)", ("m", now()))
...     names = [r["name"] for r in db.query("SELECT name FROM models")]
...     db.close()
>>> names, db.dialect
(['m'], 'sqlite')
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from goldwatch.errors import ConcurrentChangeError, DatabaseUnavailableError, StateError
from goldwatch.logs import get_logger, redact
from goldwatch.watchdog.registry.storage.schema import SCHEMA_VERSION, Dialect, statements
from goldwatch.watchdog.registry.storage.url import DatabaseUrl, mask_url

__all__ = ["Database", "Row", "now"]

log = get_logger(__name__)

# Advisory lock keys: (class, object) pairs of int4. One class per kind of thing locked.
_LOCK_CLASS = 0x676C64  # 'gld'
_SCHEMA_LOCK = "schema"
_BUSY_TIMEOUT_S = 30.0
_IDLE_IN_TRANSACTION_MS = 60_000
_LOCK_TIMEOUT_MS = 120_000


def now() -> str:
    """UTC timestamp with microseconds, ISO 8601 (sorts as text)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


class Row(tuple):
    """A result row readable by position and by column name, like :class:`sqlite3.Row` (for PostgreSQL rows)."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._names[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    names = {c.name: i for i, c in enumerate(cursor.description or ())}
    return lambda values: Row(values, names)


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)


class Database:
    """An open registry database. Use :meth:`connect`."""

    def __init__(self, url: DatabaseUrl, *, lock_path: Path, host: str) -> None:
        self.url = url
        self.dialect: Dialect = url.backend
        self.host = host
        self.lock_path = lock_path
        self._conn: Any = None
        self._tx_depth = 0
        self._locks: dict[str, int] = {}
        self._flock_fd: int | None = None
        self._flock_depth = 0
        self.on_reconnect: Callable[[], None] | None = None

    # ---- connecting ---------------------------------------------------------------------------------------
    @classmethod
    def connect(cls, url: DatabaseUrl, *, lock_path: Path, host: str, migrate: bool | None = None,
                check: bool = True) -> Database:
        """Open the database at ``url``, checking (and on SQLite upgrading) its schema.

        ``migrate``: upgrade an older schema now. The default is True on SQLite and False on PostgreSQL, where an
        older schema raises StateError naming ``goldwatch registry migrate``. ``check=False``: open without
        looking at the schema (for :meth:`migrate`).
        """
        db = cls(url, lock_path=lock_path, host=host)
        db._conn = db._open()
        try:
            if check:
                db._check_schema(migrate=url.backend == "sqlite" if migrate is None else migrate)
            elif db.dialect == "sqlite":
                db.execute("PRAGMA journal_mode = WAL")
        except BaseException:
            db.close()
            raise
        return db

    def _open(self) -> Any:
        if self.dialect == "sqlite":
            return self._open_sqlite()
        return self._open_postgres()

    def _open_sqlite(self) -> sqlite3.Connection:
        path = self.url.path
        assert path is not None
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly what we say it is.
            conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA user_version").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"not a usable SQLite database ({exc})", where=str(path),
                hint="point --registry-root at a goldwatch registry, or move this file away",
            ) from None
        return conn

    def _open_postgres(self) -> Any:
        from goldwatch._optional import require

        psycopg = require("psycopg", purpose="a PostgreSQL registry database")
        if self.url.password:
            redact(self.url.password)
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": _row_factory}
        # A server that vanished (a failover, a partition) is noticed in about a minute, not TCP's two hours.
        for key, value in (("connect_timeout", 10), ("keepalives", 1), ("keepalives_idle", 30),
                           ("keepalives_interval", 10), ("keepalives_count", 3)):
            if key not in self.url.raw:
                kwargs[key] = value
        if self.url.password:
            kwargs["password"] = self.url.password  # the same value when the URL holds it; else from a secret
        try:
            conn = psycopg.connect(self.url.raw, **kwargs)
            # A host that stalls inside a transaction (it holds a model's row lock) is cut off by the server after
            # a minute, so the fleet never waits on it for longer; a writer waits at most two minutes for a lock.
            conn.execute(f"SET idle_in_transaction_session_timeout = {_IDLE_IN_TRANSACTION_MS}")
            conn.execute(f"SET lock_timeout = {_LOCK_TIMEOUT_MS}")
        except psycopg.Error as exc:
            raise self._unavailable(exc, "cannot connect to the registry database") from None
        return conn

    def _unavailable(self, exc: BaseException, what: str) -> DatabaseUnavailableError:
        detail = mask_url(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        if self.url.password:
            detail = detail.replace(self.url.password, "***")
        return DatabaseUnavailableError(
            f"{what}: {detail}", where=self.url.masked,
            hint="check that the database server is up and reachable; nothing was half-written (the operation "
                 "is retried or recovered when it is back)",
        )

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        self._locks.clear()
        if self._flock_fd is not None:
            os.close(self._flock_fd)
            self._flock_fd, self._flock_depth = None, 0

    @property
    def broken(self) -> bool:
        return self._conn is None or bool(getattr(self._conn, "closed", False)) or bool(
            getattr(self._conn, "broken", False))

    def _ensure(self) -> Any:
        """The live connection; a broken PostgreSQL connection is reopened between transactions."""
        if self.dialect == "postgresql" and self.broken and self._tx_depth == 0:
            if self._locks:
                # The session's advisory locks died with it: the operation holding them must not go on as if it
                # still held them. It fails here; the next one reconnects.
                raise self._unavailable(ConnectionError("the connection was lost while holding registry locks"),
                                        "lost the connection to the registry database")
            with contextlib.suppress(Exception):
                if self._conn is not None:
                    self._conn.close()
            self._conn = None
            self._locks.clear()  # session locks died with the session
            self._conn = self._open()
            log.warning("reconnected to the registry database %s", self.url.masked)
            if self.on_reconnect is not None:
                self.on_reconnect()
        return self._conn

    # ---- statements ---------------------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders); returns the cursor (``fetchone``, ``fetchall``, ``rowcount``)."""
        conn = self._ensure()
        if self.dialect == "sqlite":
            return conn.execute(sql, tuple(params))
        import psycopg

        try:
            return conn.execute(self._sql(sql), tuple(params))
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure,
                psycopg.errors.LockNotAvailable) as exc:
            # The server aborted this transaction to let another one through: nothing of it was applied.
            raise ConcurrentChangeError(
                f"another host's transaction collided with this one ({type(exc).__name__})", where=self.url.masked,
                hint="nothing was changed by this operation; run it again") from None
        except psycopg.errors.QueryCanceled as exc:
            raise self._unavailable(exc, "the registry database did not answer in time") from None
        except psycopg.OperationalError as exc:
            if self.broken:
                raise self._unavailable(exc, "lost the connection to the registry database") from None
            raise self._unavailable(exc, "the registry database failed the statement") from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.execute(sql, params).fetchall())

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row (indexable by position and by name), or None."""
        return self.execute(sql, params).fetchone()

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT into a table with an ``id`` identity column; returns the new id."""
        if self.dialect == "sqlite":
            return int(self.execute(sql, params).lastrowid or 0)
        return int(self.execute(sql + " RETURNING id", params).fetchone()[0])

    @property
    def for_update(self) -> str:
        """Appended to a SELECT inside a transaction: lock the rows read (SQLite's writer lock already does)."""
        return " FOR UPDATE" if self.dialect == "postgresql" else ""

    @property
    def for_share(self) -> str:
        """Appended to a SELECT inside a transaction: no one may update the rows read until commit."""
        return " FOR SHARE" if self.dialect == "postgresql" else ""

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Database]:
        """One write transaction: committed on success, rolled back on any exception. Nested calls join it."""
        if self._tx_depth:
            self._tx_depth += 1
            try:
                yield self
            finally:
                self._tx_depth -= 1
            return
        self._ensure()
        self.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
        self._tx_depth = 1
        try:
            yield self
        except BaseException:
            self._tx_depth = 0
            if not self.broken:
                with contextlib.suppress(Exception):
                    self.execute("ROLLBACK")
            raise
        self._tx_depth = 0
        self.execute("COMMIT")

    @property
    def in_transaction(self) -> bool:
        return self._tx_depth > 0

    # ---- locks --------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str, *, shared: bool = False) -> Iterator[None]:
        """Hold the operation lock ``name`` (re-entrant in this object).

        SQLite: every name is the one ``flock`` on ``registry.lock`` (released by the kernel when a process dies:
        a crashed holder never wedges the registry). PostgreSQL: a session advisory lock per name (shared or
        exclusive), released by the server when the session ends.
        """
        if self.dialect == "sqlite":
            with self._flock():
                yield
            return
        key = f"{'s' if shared else 'x'}:{name}"
        if self._locks.get(key):
            self._locks[key] += 1
            try:
                yield
            finally:
                self._locks[key] -= 1
            return
        fn = "pg_advisory_lock_shared" if shared else "pg_advisory_lock"
        self.execute(f"SELECT {fn}(?, ?)", (_LOCK_CLASS, _lock_key(name)))
        self._locks[key] = 1
        try:
            yield
        finally:
            self._locks[key] -= 1
            if self._locks[key] <= 0:
                del self._locks[key]
                if not self.broken:
                    unlock = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
                    with contextlib.suppress(Exception):
                        self.execute(f"SELECT {unlock}(?, ?)", (_LOCK_CLASS, _lock_key(name)))

    def try_lock(self, name: str) -> bool:
        """Take the exclusive lock ``name`` if it is free now (PostgreSQL); release with :meth:`unlock`."""
        if self.dialect == "sqlite":
            return True
        got = bool(self.one("SELECT pg_try_advisory_lock(?, ?)", (_LOCK_CLASS, _lock_key(name)))[0])
        return got

    def unlock(self, name: str) -> None:
        if self.dialect == "postgresql" and not self.broken:
            self.execute("SELECT pg_advisory_unlock(?, ?)", (_LOCK_CLASS, _lock_key(name)))

    @contextlib.contextmanager
    def _flock(self) -> Iterator[None]:
        if self._flock_depth == 0:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._flock_fd = fd
        self._flock_depth += 1
        try:
            yield
        finally:
            self._flock_depth -= 1
            if self._flock_depth == 0 and self._flock_fd is not None:
                fcntl.flock(self._flock_fd, fcntl.LOCK_UN)
                os.close(self._flock_fd)
                self._flock_fd = None

    # ---- schema -------------------------------------------------------------------------------------------
    def schema_version(self) -> int:
        if self.dialect == "sqlite":
            return int(self.one("PRAGMA user_version")[0])
        exists = self.one("SELECT to_regclass('goldwatch_schema')")[0]
        if exists is None:
            return 0
        row = self.one("SELECT version FROM goldwatch_schema WHERE id = 1")
        return 0 if row is None else int(row[0])

    def _is_empty(self) -> bool:
        """PostgreSQL: no goldwatch table in the schema (a new database) -- safe to initialise."""
        return self.one("SELECT to_regclass('models')")[0] is None

    def _check_schema(self, *, migrate: bool) -> None:
        found = self.schema_version()
        where = self.url.masked if self.dialect == "postgresql" else str(self.url.path)
        if found > SCHEMA_VERSION:
            raise StateError(
                f"the registry database has schema version {found}, newer than this goldwatch understands "
                f"({SCHEMA_VERSION})", where=where,
                hint="upgrade goldwatch; nothing was changed (every host of a fleet needs a goldwatch at least this "
                     "new)",
            )
        if self.dialect == "sqlite":
            # WAL: readers do not block the writer, and a crash mid-commit leaves the last committed state.
            self.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed transaction survives power loss, not just a process crash; the registry writes
            # rarely.
            self.execute("PRAGMA synchronous = FULL")
            self.execute("PRAGMA foreign_keys = ON")
        if found == SCHEMA_VERSION:
            return
        if self.dialect == "postgresql" and found > 0 and not migrate:
            raise StateError(
                f"the registry database has schema version {found}, older than this goldwatch's "
                f"({SCHEMA_VERSION})", where=where,
                hint="upgrade it once for the whole fleet: goldwatch registry migrate (older goldwatch hosts must "
                     "be upgraded first: they refuse the newer schema); nothing was changed",
            )
        if self.dialect == "postgresql" and found == 0 and not self._is_empty():
            raise StateError("the database holds tables but no goldwatch schema version", where=where,
                             hint="use a database (or schema) of its own for the goldwatch registry")
        self.migrate()

    def migrate(self) -> tuple[int, int]:
        """Upgrade the schema to :data:`SCHEMA_VERSION` in one transaction; returns (from, to)."""
        with self.lock(_SCHEMA_LOCK), self.transaction():
            current = self.schema_version()  # re-read under the lock: another process may have migrated
            if current > SCHEMA_VERSION:
                raise StateError(f"the registry database has schema version {current}, newer than this goldwatch "
                                 f"understands ({SCHEMA_VERSION})", where=self.url.masked, hint="upgrade goldwatch")
            for step in range(current + 1, SCHEMA_VERSION + 1):
                for statement in statements(step, self.dialect):
                    self.execute(statement, (self.host,) * statement.count("?"))
            if current != SCHEMA_VERSION:
                self._set_schema_version(SCHEMA_VERSION)
                (log.info if current else log.debug)("migrated the registry database %s from schema %d to %d",
                                                     self.url.masked, current, SCHEMA_VERSION)
        return current, SCHEMA_VERSION

    def _set_schema_version(self, version: int) -> None:
        if self.dialect == "sqlite":
            self.execute(f"PRAGMA user_version = {int(version)}")
            return
        self.execute("CREATE TABLE IF NOT EXISTS goldwatch_schema (id INTEGER PRIMARY KEY CHECK (id = 1), "
                     "version INTEGER NOT NULL)")
        self.execute("INSERT INTO goldwatch_schema (id, version) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET "
                     "version = excluded.version", (version,))

    def integrity_problems(self) -> list[str]:
        """SQLite's ``integrity_check`` (PostgreSQL checks its own pages): the problems found, [] when sound."""
        if self.dialect != "sqlite":
            return []
        rows = [r[0] for r in self.query("PRAGMA integrity_check")]
        return [] if rows == ["ok"] else rows

