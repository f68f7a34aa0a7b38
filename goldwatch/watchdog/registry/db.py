"""The single-host registry database file: open an SQLite registry database directly (tools and tests).

The registry itself goes through :class:`~goldwatch.watchdog.registry.storage.Database`, which also speaks
PostgreSQL; this module is the short way to open ``registry.db`` by path.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     db = connect(pathlib.Path(d) / "registry.db")
...     version = schema_version(db)
...     mode = db.execute("PRAGMA journal_mode").fetchone()[0]
...     db.close()
>>> version == SCHEMA_VERSION, mode
(True, 'wal')
"""

from __future__ import annotations

from pathlib import Path

from goldwatch.watchdog.registry.storage import SCHEMA_VERSION, Database, now, sqlite_url

__all__ = ["SCHEMA_VERSION", "connect", "now", "schema_version"]


def connect(path: Path, *, host: str = "local") -> Database:
    """Open (creating or migrating) the SQLite registry database at ``path``; its lock file sits beside it."""
    path = Path(path)
    return Database.connect(sqlite_url(path), lock_path=path.with_name(path.name + ".lock"), host=host)


def schema_version(db: Database) -> int:
    return db.schema_version()
