"""Names the registry accepts (models, versions, hosts) and who acts when the caller does not say.

>>> check_name("fraud-v2", "model")
'fraud-v2'
>>> check_name("../etc", "model")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
goldwatch.errors.RegistryError: model: invalid model '../etc' (fix: use letters, digits, '.', '_' or '-' ...)
"""

from __future__ import annotations

import getpass
import os
import re
import socket

from goldwatch.errors import RegistryError

__all__ = ["HOST_ENV", "check_name", "default_actor", "default_host"]

HOST_ENV = "GOLDWATCH_HOST"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise RegistryError(
            f"invalid {what} {value!r}", where=what,
            hint="use letters, digits, '.', '_' or '-' (up to 128 characters, starting with a letter or digit)",
        )
    return value


def default_actor() -> str:
    """``user@host``: who to record when the caller does not say."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def default_host(backend: str) -> str:
    """Who this host is in the registry: ``$GOLDWATCH_HOST``, else the hostname (a pod's name) on a shared
    PostgreSQL registry, else ``local`` (an SQLite registry has one host, whatever its hostname becomes)."""
    value = os.environ.get(HOST_ENV, "").strip()
    if value:
        return check_name(value, HOST_ENV)
    if backend == "sqlite":
        return "local"
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).lstrip("._-")[:128]
    return name or "host"
