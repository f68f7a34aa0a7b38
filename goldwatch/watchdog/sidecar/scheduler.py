"""The schedule: every (model, kind) job on its own interval, with jitter, run off the event loop with a timeout.

Each job runs its blocking function on a daemon worker (:mod:`.workers`) and awaits it for at most ``timeout_s``; a
run still going after that is reported as timed out and *abandoned*, never waited for: the event loop, the HTTP
API, other models' checks and shutdown go on (a daemon thread cannot hold the process at exit). A job never has two
runs in flight: while an abandoned run is still going, the job's next turns are skipped (and counted).

Start times are jittered by up to ``jitter`` of the interval, so fifty models configured alike do not hit their
servers in the same millisecond, and the first round is spread over ``first_spread_s``. *Lateness* -- how long after
its due time a run actually started -- is recorded for every scheduled run (the benchmark holds its p99 under
1 s with 50 models). :meth:`Scheduler.run_now` runs a job at once (``POST .../check``); a model whose
``blocked`` predicate is true (a rollback is in progress) has its runs held back until it is false.

>>> import asyncio
>>> async def demo():
...     seen = []
...     async def handler(job, run):
...         seen.append((job.spec.kind, run.value, run.timed_out))
...     s = Scheduler(handler=handler, jitter=0.0, first_spread_s=0.0)
...     s.add(JobSpec("m", "quick", interval_s=60, timeout_s=1), lambda req: "ok")
...     s.start()
...     await asyncio.sleep(0.2)
...     await s.stop()
...     return seen
>>> asyncio.run(demo())
[('quick', 'ok', False)]
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from goldwatch.logs import get_logger
from goldwatch.watchdog.sidecar.workers import DaemonPool

__all__ = ["Job", "JobRun", "JobSpec", "Scheduler"]

log = get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class JobSpec:
    model: str
    kind: str
    interval_s: float
    timeout_s: float


@dataclasses.dataclass(frozen=True)
class JobRun:
    """One run of a job. Times: ``started_at``/``finished_at`` epoch seconds; ``lateness_s``: start - due (0 for a
    requested run). ``value`` is what the function returned, ``error`` what it raised; ``timed_out`` runs have
    neither (the run was abandoned)."""

    model: str
    kind: str
    request: Any
    started_at: float
    finished_at: float
    lateness_s: float
    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False

    @property
    def duration_s(self) -> float:
        return self.finished_at - self.started_at


@dataclasses.dataclass(eq=False)
class Job:
    spec: JobSpec
    fn: Callable[[Any], Any]
    due: float = 0.0
    wake: asyncio.Event | None = None
    requests: list[tuple[Any, asyncio.Future[JobRun]]] = dataclasses.field(default_factory=list)
    in_flight: asyncio.Future[Any] | None = None
    last_run: JobRun | None = None
    runs: int = 0
    skipped: int = 0


def _settle(fut: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_result((None, error))
    else:
        fut.set_result((value, None))


class Scheduler:
    """Runs the jobs added with :meth:`add` until :meth:`stop`; ``handler(job, run)`` gets every finished run."""

    def __init__(
        self,
        *,
        handler: Callable[[Job, JobRun], Awaitable[None]],
        jitter: float = 0.1,
        first_spread_s: float = 1.0,
        blocked: Callable[[str], bool] = lambda model: False,
        on_skip: Callable[[Job, str], None] = lambda job, why: None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        lateness_window: int = 10000,
        pool: DaemonPool | None = None,
    ) -> None:
        self._handler = handler
        self.jitter = jitter
        self.first_spread_s = first_spread_s
        self._blocked = blocked
        self._on_skip = on_skip
        self._rng = rng or random.Random()
        self._clock = clock
        self._wall = wall
        self.jobs: dict[tuple[str, str], Job] = {}
        #: (when, lateness) of the last scheduled runs (wall-clock seconds)
        self.lateness: collections.deque[tuple[float, float]] = collections.deque(maxlen=lateness_window)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._pool = pool or DaemonPool(name="goldwatch-check")

    # ---- jobs ---------------------------------------------------------------------------------------------
    def add(self, spec: JobSpec, fn: Callable[[Any], Any]) -> Job:
        key = (spec.model, spec.kind)
        if key in self.jobs:
            raise ValueError(f"job {key} is already scheduled")
        job = Job(spec, fn)
        self.jobs[key] = job
        if self._tasks:  # added while running (an extension's check): start it now
            self._tasks.append(asyncio.get_running_loop().create_task(self._loop(job)))
        return job

    def job(self, model: str, kind: str) -> Job | None:
        return self.jobs.get((model, kind))

    def next_run_at(self, model: str, kind: str) -> float | None:
        """When the job runs next, in epoch seconds (None if unknown or stopped)."""
        job = self.jobs.get((model, kind))
        if job is None or self._stopping or not job.due:
            return None
        return self._wall() + max(0.0, job.due - self._clock())

    # ---- running ------------------------------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = False
        self._tasks = [loop.create_task(self._loop(job)) for job in self.jobs.values()]

    async def stop(self) -> None:
        """Stop scheduling; runs in flight are abandoned (their threads are daemons)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for job in self.jobs.values():
            for _request, fut in job.requests:
                if not fut.done():
                    fut.cancel()
            job.requests.clear()

    def run_now(self, model: str, kinds: Sequence[str] | None = None,
                request: Any = None) -> list[asyncio.Future[JobRun]]:
        """Run the model's jobs (or those of ``kinds``) as soon as each is free; the futures get their runs."""
        loop = asyncio.get_running_loop()
        futures = []
        for (m, kind), job in self.jobs.items():
            if m != model or (kinds is not None and kind not in kinds):
                continue
            fut: asyncio.Future[JobRun] = loop.create_future()
            job.requests.append((request, fut))
            if job.wake is not None:
                job.wake.set()
            futures.append(fut)
        return futures

    async def execute(self, job: Job, request: Any, *, lateness_s: float = 0.0) -> JobRun:
        """Run ``job`` once now on a worker and wait at most its timeout (the confirm re-run uses this)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[Any, BaseException | None]] = loop.create_future()
        started = self._wall()

        def done(value: Any, error: BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the process is exiting
                loop.call_soon_threadsafe(_settle, fut, value, error)

        job.in_flight = fut
        self._pool.submit(lambda: job.fn(request), done)
        job.runs += 1
        try:
            value, error = await asyncio.wait_for(asyncio.shield(fut), job.spec.timeout_s)
        except asyncio.TimeoutError:
            run = JobRun(job.spec.model, job.spec.kind, request, started, self._wall(), lateness_s,
                         error=TimeoutError(f"still running after {job.spec.timeout_s:g} s (abandoned)"),
                         timed_out=True)
        else:
            run = JobRun(job.spec.model, job.spec.kind, request, started, self._wall(), lateness_s, value, error)
        job.last_run = run
        return run

    def _next_due(self, base: float, interval: float) -> float:
        return base + interval * (1.0 + self._rng.uniform(-self.jitter, self.jitter))

    async def _loop(self, job: Job) -> None:
        job.wake = asyncio.Event()
        interval = job.spec.interval_s
        job.due = self._clock() + self._rng.uniform(0.0, min(interval, self.first_spread_s))
        while not self._stopping:
            delay = job.due - self._clock()
            if delay > 0 and not job.requests:
                job.wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(job.wake.wait(), delay)
                if self._stopping:
                    return
                if not job.requests and job.due - self._clock() > 0:
                    continue  # woken for nothing (spurious): wait out the rest
            requested = bool(job.requests)
            if job.in_flight is not None and not job.in_flight.done():
                # an abandoned run is still going: never two at once
                job.skipped += 1
                self._on_skip(job, "previous run still in flight")
                job.due = self._next_due(self._clock(), interval)
                await asyncio.sleep(0.05 if requested else 0)
                continue
            if self._blocked(job.spec.model):
                await asyncio.sleep(0.05)  # an action on the model is in progress: run right after it
                continue
            requests, job.requests = job.requests, []
            request = _merge([r for r, _f in requests])
            now = self._clock()
            lateness = 0.0 if requested else max(0.0, now - job.due)
            if not requested:
                self.lateness.append((self._wall(), lateness))
            try:
                run = await self.execute(job, request, lateness_s=lateness)
                try:
                    await self._handler(job, run)
                finally:  # requesters learn of the run once it was handled (its decisions are made)
                    for _r, fut in requests:
                        if not fut.done():
                            fut.set_result(run)
            except asyncio.CancelledError:
                raise
            except Exception:  # the handler's bug must not stop this job's schedule
                log.exception("handling a run of %s/%s failed", job.spec.model, job.spec.kind)
            base = job.due if not requested else self._clock()
            job.due = max(self._next_due(base, interval), self._clock())


def _merge(requests: list[Any]) -> Any:
    """Several run-now requests that queued up become one run: the first, made 'full' if any asked for it."""
    requests = [r for r in requests if r is not None]
    if not requests:
        return None
    first = requests[0]
    if dataclasses.is_dataclass(first) and hasattr(first, "full") and any(getattr(r, "full", False) for r in requests):
        return dataclasses.replace(first, full=True)  # type: ignore[type-var]
    return first
