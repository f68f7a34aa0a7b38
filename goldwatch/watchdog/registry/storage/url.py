"""Database URLs: which backend, where, and the credentials that must never be printed.

``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` (SQLAlchemy's convention) name an SQLite file;
``postgresql://user@host:5432/dbname`` (or ``postgres://``) a PostgreSQL database. A password may come inside a
URL read from the environment (``$GOLDWATCH_DATABASE_URL``), from a separate secret (``password=``, which the CLI
reads from ``registry.database_password_env`` / ``_file``), or from libpq's own ``PGPASSWORD`` / ``~/.pgpass``; a
URL written in the config file or on the command line must not carry one (a command line is visible in ``ps``).

Every URL goldwatch prints, logs or puts in an error goes through :func:`mask_url` first.

>>> url = parse_database_url("postgresql://gw:s3cret-pw@db.internal:5432/registry")
>>> url.backend, url.masked, url.password
('postgresql', 'postgresql://gw:***@db.internal:5432/registry', 's3cret-pw')
>>> mask_url("connection to postgresql://gw:s3cret-pw@db:5432/r failed")
'connection to postgresql://gw:***@db:5432/r failed'
>>> parse_database_url("sqlite:////var/lib/goldwatch/registry.db").path
PosixPath('/var/lib/goldwatch/registry.db')
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from goldwatch.errors import ConfigError
from goldwatch.logs import mask_url

__all__ = ["DATABASE_URL_ENV", "DatabaseUrl", "mask_url", "parse_database_url", "sqlite_url"]

# The environment variable a database URL (which may hold a password) is read from by default.
DATABASE_URL_ENV = "GOLDWATCH_DATABASE_URL"

Backend = Literal["sqlite", "postgresql"]

@dataclasses.dataclass(frozen=True)
class DatabaseUrl:
    """A parsed database URL. ``raw`` may hold a password: print :attr:`masked`, never ``raw``."""

    backend: Backend
    raw: str = dataclasses.field(repr=False)
    path: Path | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    @property
    def masked(self) -> str:
        return mask_url(self.raw)

    def __str__(self) -> str:
        return self.masked

    def with_password(self, password: str | None) -> DatabaseUrl:
        """This URL with ``password`` (read from a secret) used to connect; a password in the URL wins."""
        if not password or self.password:
            return self
        return dataclasses.replace(self, password=password)


def sqlite_url(path: Path) -> DatabaseUrl:
    """The URL of the SQLite database file ``path``."""
    path = Path(path)
    return DatabaseUrl("sqlite", "sqlite:///" + str(path), path=path)


def parse_database_url(url: str, *, where: str = "database URL") -> DatabaseUrl:
    """Parse ``url``; raises ConfigError (naming ``where``, never the password) when it is not one goldwatch uses."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"not a database URL: {mask_url(str(url))!r}", where=where,
                          hint="use sqlite:///path/registry.db or postgresql://user@host:5432/dbname")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        rest = url[len("sqlite://"):]
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(f"an SQLite URL needs a file path: {url!r}", where=where,
                              hint="sqlite:///relative.db or sqlite:////absolute/path/registry.db")
        return DatabaseUrl("sqlite", url, path=Path(unquote(rest[1:])))
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        parts = urlsplit(url)
        if not parts.hostname and "host=" not in parts.query:
            raise ConfigError(f"a PostgreSQL URL needs a host: {mask_url(url)!r}", where=where,
                              hint="e.g. postgresql://goldwatch@db.internal:5432/registry")
        raw = "postgresql://" + url.split("://", 1)[1]  # libpq knows postgresql:// and postgres:// only
        password = unquote(parts.password) if parts.password else None
        if password is None:
            m = re.search(r"(?:^|&)password=([^&]+)", parts.query)
            password = unquote(m[1]) if m else None
        return DatabaseUrl("postgresql", raw, password=password)
    raise ConfigError(f"unsupported database scheme {scheme!r}", where=where,
                      hint="use sqlite:///path/registry.db or postgresql://user@host:5432/dbname")
