"""Progress of long work, reported the way logs are: the core reports, an adapter decides how to show it.

Work that can take more than a couple of seconds (hashing and fingerprinting, golden build and replay, a drift test
on a large input, adding a large model to the registry) opens a *task*; code deep below it reports into the
innermost open task without being handed anything, the way a module logs without being handed a logger::

    with progress.task("fingerprinting model.safetensors", total=nbytes, unit="B"):
        ...
        progress.advance(len(chunk))          # from file_digest, many calls below

With no reporter installed (a library caller, the sidecar, a test) a task is a no-op and :func:`advance` costs one
attribute check. The CLI installs a reporter for the duration of a command (:func:`reporting`): a progress bar with
rate and ETA on a terminal, plain periodic log lines otherwise (see :mod:`goldwatch.cli._progress`). Progress never
goes to stdout, so ``--json`` output stays parseable.

>>> seen = []
>>> class Collect:
...     def start(self, task): seen.append(("start", task.label))
...     def update(self, task): pass
...     def finish(self, task, *, ok): seen.append(("finish", task.snapshot().done, ok))
>>> with reporting(Collect()):
...     with task("hashing", total=10, unit="B"):
...         advance(4); advance(6)
>>> seen
[('start', 'hashing'), ('finish', 10.0, True)]
>>> advance(3)                       # no task open: nothing happens
>>> list(batch_starts(range(0, 10, 4), n=10))  # no task open: the range itself
[0, 4, 8]
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

__all__ = [
    "ProgressSnapshot",
    "Reporter",
    "Task",
    "active",
    "advance",
    "batch_starts",
    "byte_callback",
    "isolated",
    "listening",
    "reporting",
    "stage",
    "task",
]


@dataclasses.dataclass(frozen=True)
class ProgressSnapshot:
    """Where a task stands: ``done`` of ``total`` (None: unknown) ``unit`` after ``elapsed_s`` seconds."""

    label: str
    done: float
    total: float | None
    unit: str
    elapsed_s: float

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    @property
    def rate(self) -> float | None:
        """Units per second so far (None before anything was done)."""
        if self.done <= 0 or self.elapsed_s <= 0:
            return None
        return self.done / self.elapsed_s

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (None when the total or the rate is unknown)."""
        rate = self.rate
        if self.total is None or rate is None:
            return None
        return max(0.0, (self.total - self.done) / rate)


class Reporter(Protocol):
    """Shows tasks: called from the thread doing the work (``update`` possibly from worker threads)."""

    def start(self, task: Task) -> None: ...

    def update(self, task: Task) -> None: ...

    def finish(self, task: Task, *, ok: bool) -> None: ...


class Task:
    """An open unit of long work; :meth:`advance` is thread-safe."""

    def __init__(self, label: str, *, total: float | None, unit: str, reporter: Reporter | None) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.started = time.monotonic()
        self._done = 0.0
        self._lock = threading.Lock()
        self._reporter = reporter

    def advance(self, n: float = 1) -> None:
        with self._lock:
            self._done += n
        if self._reporter is not None:
            self._reporter.update(self)

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            done = self._done
        return ProgressSnapshot(self.label, done, self.total, self.unit, time.monotonic() - self.started)


_lock = threading.Lock()
_reporter: Reporter | None = None
_open: list[Task] = []  # innermost last


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Install ``reporter`` for the tasks opened inside the block (the CLI does this once per command)."""
    global _reporter
    with _lock:
        previous, _reporter = _reporter, reporter
    try:
        yield reporter
    finally:
        with _lock:
            _reporter = previous


@contextmanager
def task(label: str, *, total: float | None = None, unit: str = "") -> Iterator[Task]:
    """Open a task of ``total`` ``unit`` (None: unknown, e.g. one blocking call); advance it from anywhere below."""
    reporter = _reporter
    current = Task(label, total=total, unit=unit, reporter=reporter)
    if reporter is None:
        yield current
        return
    with _lock:
        _open.append(current)
    reporter.start(current)
    ok = False
    try:
        yield current
        ok = True
    finally:
        with _lock:
            if current in _open:
                _open.remove(current)
        reporter.finish(current, ok=ok)


def listening() -> bool:
    """True while a reporter is installed (the CLI with ``--progress`` other than ``off``)."""
    return _reporter is not None


F = TypeVar("F", bound=Callable[..., Any])


def stage(describe: Callable[..., str]) -> Callable[[F], F]:
    """Decorate a function that is one long blocking step (reading a Parquet file): each call is a task of unknown
    size, labelled ``describe(*args, **kwargs)``, so that it shows its elapsed time instead of looking frozen."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _reporter is None:
                return func(*args, **kwargs)
            with task(describe(*args, **kwargs)):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


@contextmanager
def isolated() -> Iterator[None]:
    """Keep the work inside from advancing the tasks outside: a task that counts its own units (a drill's
    scenarios) calls work that reports bytes or samples to whatever task is innermost. Tasks opened inside still
    show; what is reported to no task of its own is dropped.

    >>> seen = []
    >>> class Collect:
    ...     def start(self, task): pass
    ...     def update(self, task): pass
    ...     def finish(self, task, *, ok): seen.append((task.label, task.snapshot().done))
    >>> with reporting(Collect()), task("scenarios", total=2, unit="scenarios"):
    ...     with isolated():
    ...         advance(4096)             # e.g. a file hashed while restoring a version
    ...     advance(1)
    >>> seen
    [('scenarios', 1.0)]
    """
    if _reporter is None:
        yield
        return
    sink = Task("(isolated)", total=None, unit="", reporter=None)
    with _lock:
        _open.append(sink)
    try:
        yield
    finally:
        with _lock:
            if sink in _open:
                _open.remove(sink)


def active() -> Task | None:
    """The innermost open task (None when no reporter is installed or no task is open)."""
    return _open[-1] if _open else None


def advance(n: float = 1) -> None:
    """Report ``n`` units of work done to the innermost open task, if any."""
    current = active()
    if current is not None:
        current.advance(n)


def byte_callback(on_bytes: Callable[[int], None] | None) -> Callable[[int], None] | None:
    """``on_bytes`` if the caller gave one, else the innermost task's ``advance`` (None when nothing listens)."""
    if on_bytes is not None:
        return on_bytes
    current = active()
    return current.advance if current is not None else None


def batch_starts(starts: range, *, n: int) -> Iterable[int]:
    """``starts`` (batch offsets into ``n`` samples), advancing the innermost task by each batch's samples as the
    next one is asked for; the bare range when no task listens, so a tight inference loop pays nothing."""
    current = active()
    if current is None:
        return starts
    return _advancing(starts, n, current)


def _advancing(starts: range, n: int, current: Task) -> Iterator[int]:
    step = starts.step
    for start in starts:
        yield start
        current.advance(min(step, n - start))
