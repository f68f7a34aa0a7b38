"""Where goldwatch's distributed work runs: a Dask cluster named by an address, ``local:N``, or the current client.

One spelling everywhere (``goldwatch drift --dask``, ``goldwatch fingerprint --dask``, ``[dask] address`` in the
config, ``$GOLDWATCH_DASK``):

* ``tcp://HOST:PORT`` (or ``tls://...``, or a bare ``HOST:PORT``) -- connect to a running scheduler;
* ``local:N`` -- start a cluster of N worker processes on 127.0.0.1 for the duration of the call, and stop it after;
* nothing -- in-memory on this machine.

dask and distributed are an optional extra (``pip install 'goldwatch[dask]'``), imported only when a cluster is
used. An unreachable scheduler is a :class:`~goldwatch.errors.ServerUnreachableError` naming the address (exit 2),
never a hang: connecting has a timeout.

>>> parse_cluster_spec("local:2")
ClusterSpec(address=None, local_workers=2)
>>> parse_cluster_spec("tcp://10.0.0.5:8786").address
'tcp://10.0.0.5:8786'
>>> parse_cluster_spec("local:zero")
Traceback (most recent call last):
...
goldwatch.errors.ConfigError: dask: expected 'local:N' with N >= 1 workers, got 'local:zero' ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterator
from typing import Any

from goldwatch._optional import require
from goldwatch.errors import ConfigError, ServerUnreachableError

__all__ = ["ENV_VAR", "ClusterSpec", "connect", "current_client", "parse_cluster_spec", "resolve_cluster_spec"]

ENV_VAR = "GOLDWATCH_DASK"
_LOCAL = re.compile(r"^local:(\S+)$")


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """A scheduler address, or the size of a local cluster to start (exactly one is set)."""

    address: str | None = None
    local_workers: int | None = None


def parse_cluster_spec(text: str, *, where: str = "dask") -> ClusterSpec:
    """``tcp://HOST:PORT``, ``HOST:PORT`` or ``local:N`` -> :class:`ClusterSpec`."""
    text = text.strip()
    match = _LOCAL.match(text)
    if match:
        try:
            workers = int(match.group(1))
        except ValueError:
            workers = 0
        if workers < 1:
            raise ConfigError(f"expected 'local:N' with N >= 1 workers, got {text!r}", where=where,
                              hint="e.g. local:2 for two worker processes on this machine")
        return ClusterSpec(local_workers=workers)
    if not text or any(c.isspace() for c in text):
        raise ConfigError(f"expected a scheduler address or 'local:N', got {text!r}", where=where,
                          hint="e.g. tcp://scheduler:8786 or local:2")
    address = text if "://" in text else f"tcp://{text}"
    return ClusterSpec(address=address)


def resolve_cluster_spec(flag: str | None, configured: str | None) -> ClusterSpec | None:
    """The flag wins over ``$GOLDWATCH_DASK``, which wins over the config; None when none is set."""
    for value, where in ((flag, "--dask"), (os.environ.get(ENV_VAR), f"${ENV_VAR}"), (configured, "[dask] address")):
        if value:
            return parse_cluster_spec(value, where=where)
    return None


def current_client() -> Any | None:
    """The distributed client this process is using (``distributed.Client`` or the one a task runs under), else
    None. Imports nothing unless distributed was already imported."""
    import sys

    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


@contextlib.contextmanager
def connect(
    spec: ClusterSpec, *, memory_limit: str | None = None, timeout_s: float = 10.0
) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec``, made the current client for the block; a local cluster is stopped
    (and a connection closed) on exit."""
    distributed = require("distributed", purpose="running on a Dask cluster")
    if spec.local_workers is not None:
        with contextlib.ExitStack() as stack:
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=spec.local_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, memory_limit=memory_limit or "auto",
            ))
            client = stack.enter_context(distributed.Client(cluster, set_as_default=True))
            yield client
        return
    assert spec.address is not None
    try:
        client = distributed.Client(spec.address, timeout=f"{timeout_s}s", set_as_default=True)
    except (OSError, TimeoutError) as exc:
        raise ServerUnreachableError(
            f"cannot reach the Dask scheduler within {timeout_s:g} s ({type(exc).__name__}: {str(exc)[:200]})",
            where=spec.address, hint="check the address and that the scheduler is running, or use local:N",
        ) from None
    with client:
        yield client
