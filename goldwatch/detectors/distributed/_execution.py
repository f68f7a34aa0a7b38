"""Running the graphs: the current client, worker memory, tree sums, and failures turned into clear errors.

Every strategy builds a graph of pure functions over chunks and sums exact integer results in a tree. A graph
either completes -- every chunk counted exactly once, which the driver checks against the row totals -- or
raises. A worker that dies is replaced by the scheduler and its tasks are recomputed from the chunks' lineage
(the result is still exact); a task that keeps killing workers ends in :class:`~goldwatch.errors.ClusterError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from goldwatch.errors import ClusterError, GoldwatchError

__all__ = ["ClusterInfo", "active_client", "cluster_info", "compute", "tree_sum"]

# without a cluster (dask's local threads) the "worker" is this process; assume a modest share of it
_DEFAULT_MEMORY = 2 << 30


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    """Where a graph will run: ``scheduler`` is an address, or "threads" for dask's in-process scheduler."""

    scheduler: str
    n_workers: int
    worker_memory: int  # bytes, the smallest worker's limit

    def describe(self) -> str:
        return f"{self.scheduler} ({self.n_workers} worker(s), {self.worker_memory / 2**20:.0f} MiB each)"


def active_client() -> Any | None:
    """The distributed client ``dask.compute`` will use now, or None (no client, or another scheduler configured,
    e.g. ``dask.config.set(scheduler="synchronous")`` while a client exists)."""
    from goldwatch.cluster import current_client

    client = current_client()
    if client is None:
        return None
    from dask.base import get_scheduler

    scheduler = get_scheduler()
    return client if getattr(scheduler, "__self__", None) is client else None


def cluster_info() -> ClusterInfo:
    """The current distributed client's workers, or dask's local scheduler when there is no client."""
    client = active_client()
    if client is None:
        import os

        return ClusterInfo(scheduler="threads", n_workers=os.cpu_count() or 1, worker_memory=_DEFAULT_MEMORY)
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # older distributed: no n_workers argument
        info = client.scheduler_info()
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"lost the Dask scheduler ({type(exc).__name__}: {exc})",
                           where=str(client.scheduler.address), hint="check that the scheduler is running") from None
    workers = info.get("workers", {})
    if not workers:
        raise ClusterError("the Dask cluster has no workers", where=str(info.get("address", "scheduler")),
                           hint="start workers (dask worker ADDRESS) or use local:N")
    limits = [w.get("memory_limit") or _DEFAULT_MEMORY for w in workers.values()]
    return ClusterInfo(scheduler=str(info.get("address", "?")), n_workers=len(workers), worker_memory=min(limits))


def tree_sum(parts: Sequence[Any], combine: Callable[..., Any], *, fan_in: int = 4) -> Any:
    """Combine delayed ``parts`` with ``combine(*parts)`` in a tree of fan-in ``fan_in`` (bounded memory per task)."""
    import dask

    level = list(parts)
    if not level:
        raise ValueError("nothing to combine")
    while len(level) > 1:
        level = [dask.delayed(combine, pure=True)(*level[i : i + fan_in]) for i in range(0, len(level), fan_in)]
    return level[0]


def compute(*graphs: Any, what: str) -> tuple[Any, ...]:
    """``dask.compute`` on the current client; cluster failures become :class:`ClusterError` naming ``what``.

    A :class:`GoldwatchError` raised inside a task (a data problem found by a worker) is re-raised as it is.
    """
    import dask

    try:
        return tuple(dask.compute(*graphs))
    except GoldwatchError:
        raise
    except Exception as exc:
        kind = type(exc).__name__
        module = type(exc).__module__.split(".")[0]
        if kind == "KilledWorker":
            raise ClusterError(
                f"{what}: a task kept killing its workers and was given up ({exc})",
                hint="a worker ran out of memory or crashed on the same chunk repeatedly; give workers more memory "
                "(or use smaller chunks) and run again -- no partial result was returned",
            ) from None
        if kind in ("FutureCancelledError", "CancelledError"):
            raise ClusterError(
                f"{what}: the Dask cluster lost the computation -- its workers died or restarted ({str(exc)[:200]})",
                hint="a worker ran out of memory or crashed; check the workers' logs, give them more memory (or use "
                "smaller chunks) and run again -- no partial result was returned",
            ) from None
        if module in ("distributed", "tornado") or isinstance(exc, (OSError, TimeoutError)):
            raise ClusterError(
                f"{what}: the Dask cluster failed ({kind}: {str(exc)[:300]})",
                hint="check the scheduler and workers, then run again -- no partial result was returned",
            ) from None
        raise
