"""The scheduler: off the event loop, with timeouts and jitter, one run per job in flight, never blocking shutdown."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from goldwatch.watchdog.sidecar.scheduler import Job, JobRun, JobSpec, Scheduler
from goldwatch.watchdog.sidecar.workers import in_thread


def _collector() -> tuple[list[JobRun], object]:
    runs: list[JobRun] = []

    async def handler(job: Job, run: JobRun) -> None:
        runs.append(run)

    return runs, handler


def test_a_hung_check_times_out_while_other_jobs_stay_on_schedule_and_stop_is_immediate() -> None:
    release = threading.Event()
    started = []

    def hang(request: object) -> str:
        started.append(time.monotonic())
        release.wait(30)
        return "late"

    async def main() -> tuple[list[JobRun], Scheduler, float]:
        runs, handler = _collector()
        s = Scheduler(handler=handler, jitter=0.0, first_spread_s=0.0)  # type: ignore[arg-type]
        s.add(JobSpec("a", "hung", interval_s=0.1, timeout_s=0.3), hang)
        s.add(JobSpec("b", "quick", interval_s=0.1, timeout_s=1.0), lambda r: "ok")
        s.start()
        await asyncio.sleep(1.2)
        t0 = time.monotonic()
        await s.stop()
        return runs, s, time.monotonic() - t0

    runs, s, stop_s = asyncio.run(main())
    release.set()
    quick = [r for r in runs if r.kind == "quick"]
    hung = [r for r in runs if r.kind == "hung"]
    assert len(quick) >= 4, "the other job kept running on its 0.1 s schedule while one check hung"
    assert all(r.value == "ok" and not r.timed_out for r in quick)
    assert len(hung) == 1
    assert hung[0].timed_out
    assert "still running after 0.3 s" in str(hung[0].error)
    assert len(started) == 1, "never two runs of one job in flight: the hung one was not started again"
    assert s.jobs[("a", "hung")].skipped >= 3
    assert stop_s < 5.0, "shutdown does not wait for an abandoned check (it would hang for 30 s)"
    assert len(s.lateness) >= len(quick), "every scheduled run's lateness is recorded"


def test_run_now_runs_at_once_merges_requests_and_reports_errors() -> None:
    seen: list[object] = []

    def check(request: object) -> str:
        seen.append(request)
        if request == "boom":
            raise RuntimeError("the check broke")
        return "done"

    async def main() -> tuple[JobRun, JobRun]:
        _runs, handler = _collector()
        s = Scheduler(handler=handler, jitter=0.0, first_spread_s=0.0)  # type: ignore[arg-type]
        s.add(JobSpec("m", "files", interval_s=3600, timeout_s=5), check)
        s.start()
        await asyncio.sleep(0.1)  # the first, scheduled run
        (fut,) = s.run_now("m", ["files"], "now")
        first = await asyncio.wait_for(fut, 2)
        (fut,) = s.run_now("m", None, "boom")
        second = await asyncio.wait_for(fut, 2)
        assert s.run_now("m", ["other"]) == []
        await s.stop()
        return first, second

    first, second = asyncio.run(main())
    assert seen[:3] == [None, "now", "boom"]
    assert first.value == "done"
    assert first.lateness_s == 0.0
    assert isinstance(second.error, RuntimeError)


def test_a_blocked_model_holds_its_runs_until_the_action_ends() -> None:
    blocked = {"m": True}
    times: list[float] = []

    async def main() -> None:
        async def handler(job: Job, run: JobRun) -> None:
            times.append(time.monotonic())

        s = Scheduler(handler=handler, jitter=0.0, first_spread_s=0.0, blocked=lambda m: blocked[m])
        s.add(JobSpec("m", "files", interval_s=0.05, timeout_s=1), lambda r: None)
        s.start()
        await asyncio.sleep(0.3)
        assert times == []
        blocked["m"] = False
        await asyncio.sleep(0.2)
        await s.stop()

    asyncio.run(main())
    assert times, "runs resume once the model is no longer blocked"


def test_jitter_spreads_due_times_within_the_fraction() -> None:
    s = Scheduler(handler=None, jitter=0.1, rng=random.Random(0))  # type: ignore[arg-type]
    dues = [s._next_due(100.0, 10.0) for _ in range(2000)]
    assert min(dues) >= 109.0
    assert max(dues) <= 111.0
    assert max(dues) - min(dues) > 1.5, "jitter actually spreads"


def test_in_thread_returns_and_raises_like_a_call() -> None:
    async def main() -> None:
        assert await in_thread(lambda x: x * 2, 21) == 42
        with pytest.raises(ValueError, match="bad"):
            await in_thread(_raise)

    asyncio.run(main())


def _raise() -> None:
    raise ValueError("bad")
