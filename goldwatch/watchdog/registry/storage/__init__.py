"""The registry's storage layer: database URLs, the schema and its migrations, one interface over SQLite and
PostgreSQL (:class:`Database`). Nothing above this layer knows which database it talks to, except through
:attr:`Database.dialect` where the guarantees differ (documented in ``docs/fleet.md``)."""

from goldwatch.watchdog.registry.storage.database import Database, Row, now
from goldwatch.watchdog.registry.storage.schema import SCHEMA_VERSION
from goldwatch.watchdog.registry.storage.url import (
    DATABASE_URL_ENV,
    DatabaseUrl,
    mask_url,
    parse_database_url,
    sqlite_url,
)

__all__ = [
    "DATABASE_URL_ENV",
    "SCHEMA_VERSION",
    "Database",
    "DatabaseUrl",
    "Row",
    "mask_url",
    "now",
    "parse_database_url",
    "sqlite_url",
]
