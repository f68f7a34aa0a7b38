"""Which database and which host name ``[registry]`` in goldwatch.toml gives: one rule for every process that opens
the registry (the CLI, the sidecar).

* The database: the URL in the environment variable ``registry.database_url_env`` names (``$GOLDWATCH_DATABASE_URL``;
  the only place a URL may carry its password), else ``registry.database_url``, else SQLite in the root (None). A
  password kept apart comes from ``registry.database_password_env`` / ``registry.database_password_file`` (or
  libpq's ``PGPASSWORD`` / ``~/.pgpass``).
* The host: ``$GOLDWATCH_HOST``, else ``registry.host``, else the hostname (a pod's name) on PostgreSQL and ``local``
  on SQLite (None here: :meth:`~goldwatch.watchdog.registry.Registry.open` applies that default).

>>> from goldwatch.config import RegistryConfig
>>> import os; os.environ.pop("GOLDWATCH_DATABASE_URL", None) and None; os.environ.pop("GOLDWATCH_HOST", None) and None
>>> database_from_config(RegistryConfig()) is None
True
>>> url = database_from_config(RegistryConfig(database_url="postgresql://gw@db.internal:5432/registry"))
>>> url.backend, url.masked
('postgresql', 'postgresql://gw@db.internal:5432/registry')
>>> host_from_config(RegistryConfig(host="pod-7")), host_from_config(RegistryConfig())
('pod-7', None)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from goldwatch.watchdog.registry.names import HOST_ENV, check_name
from goldwatch.watchdog.registry.storage import DatabaseUrl, parse_database_url

if TYPE_CHECKING:
    from goldwatch.config import RegistryConfig

__all__ = ["database_from_config", "host_from_config"]


def database_from_config(config: RegistryConfig) -> DatabaseUrl | None:
    """The database ``config`` and the environment name (None: SQLite in the registry root)."""
    from goldwatch.config import resolve_secret

    url = None
    if os.environ.get(config.database_url_env, "").strip():
        url = parse_database_url(os.environ[config.database_url_env].strip(), where=f"${config.database_url_env}")
    elif config.database_url:
        url = parse_database_url(config.database_url, where="goldwatch.toml: registry.database_url")
    if url is None:
        return None
    password = resolve_secret(env=config.database_password_env, file=config.database_password_file,
                              what="database password")
    return url.with_password(password)


def host_from_config(config: RegistryConfig) -> str | None:
    """This host's name in the registry when ``$GOLDWATCH_HOST`` or ``registry.host`` says it, else None (the
    default: the hostname on PostgreSQL, ``local`` on SQLite)."""
    if os.environ.get(HOST_ENV, "").strip():
        return None  # Registry.open reads (and checks) it
    return check_name(config.host, "registry.host") if config.host else None
