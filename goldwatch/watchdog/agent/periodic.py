"""The background thread both agents share: run a check every ``interval_s``, publish its evidence, stop cleanly.

A check that raises is reported as an ``error`` check (the agent keeps running); ``stop`` interrupts a paced pass
between two slices and joins the thread, so unloading a model never waits for a full pass.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from goldwatch.checks import Check
from goldwatch.errors import InvalidInputError
from goldwatch.logs import get_logger
from goldwatch.watchdog.agent.metrics import agent_metrics
from goldwatch.watchdog.agent.reporter import Reporter
from goldwatch.watchdog.agent.results import Evidence

__all__ = ["PeriodicAgent", "agent_source"]

log = get_logger(__name__)


def agent_source() -> str:
    """``agent:<host>:<pid>``: who is reporting (a restarted worker is a new source)."""
    return f"agent:{socket.gethostname()}:{os.getpid()}"


class PeriodicAgent:
    """Base of :class:`~goldwatch.watchdog.agent.agent.ResidentAgent` and
    :class:`~goldwatch.watchdog.agent.probe.ProbeAgent`: subclasses implement :meth:`_check`."""

    check_name = "resident:check"
    kind = "resident"

    def __init__(self, *, model: str, interval_s: float, version: str | None, reporter: Reporter | None,
                 metrics_registry: Any) -> None:
        if not model:
            raise InvalidInputError("the model name must not be empty", where="model")
        if not interval_s > 0:
            raise InvalidInputError(f"interval_s must be > 0, got {interval_s!r}", where="interval_s")
        self.model = model
        self.interval_s = float(interval_s)
        self.version = version
        self.reporter = reporter
        self.source = agent_source()
        self.metrics = agent_metrics(metrics_registry)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one check at a time (the thread's, or check_now's)
        self._thread: threading.Thread | None = None
        self._last_duration = 0.0

    # -- what subclasses provide ---------------------------------------------------------------------------------

    def _check(self, *, paced: bool) -> Check:
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> PeriodicAgent:
        """Start the background thread (the first check begins at once)."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"goldwatch-agent-{self.model}", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, timeout_s: float = 10.0, close_reporter: bool = True) -> None:
        """Stop the thread (a pass in progress ends at its next slice) and flush the reporter."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("the agent of %s did not stop within %.1f s", self.model, timeout_s)
        if close_reporter and self.reporter is not None:
            self.reporter.close(timeout_s=min(timeout_s, 2.0))

    def __enter__(self) -> PeriodicAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check_now(self, *, report: bool = True) -> Check:
        """Run one check now, unpaced, on the calling thread (waits for a check in progress to finish)."""
        return self._run(paced=False, report=report)

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self._run(paced=True, report=True)
            self._stop.wait(max(0.0, began + self.interval_s - time.monotonic()))

    def _run(self, *, paced: bool, report: bool) -> Check:
        with self._lock:
            t0 = time.monotonic()
            try:
                check = self._check(paced=paced)
            except Exception as exc:  # a check that cannot run is evidence too (status error), not a dead agent
                log.exception("the %s check of %s failed to run", self.check_name, self.model)
                reason = (str(exc).splitlines() or [""])[0][:300]
                check = Check(name=self.check_name, status="error",
                              summary=f"the check could not run: {type(exc).__name__}: {reason}")
            self._last_duration = time.monotonic() - t0
        if report and check.details.get("incomplete") is not True:
            self.publish(check)
        return check

    @property
    def report_interval_s(self) -> float:
        """How often this agent reports: its interval, or the duration of a check that takes longer."""
        return max(self.interval_s, self._last_duration)

    def publish(self, check: Check) -> None:
        if self.reporter is not None:
            self.reporter.report(Evidence(model=self.model, source=self.source, version=self.version,
                                          interval_s=self.report_interval_s, checks=(check,), kind=self.kind))
