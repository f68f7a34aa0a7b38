"""Daemon worker threads for the event loop's blocking work (checks, rollbacks, reloads, alert delivery).

Why not ``asyncio.to_thread``: its pool's threads are not daemons (the interpreter joins them at exit, so one hung
call would hold up SIGTERM) and it has a fixed size (hung calls would queue the others). Why not a thread per call:
starting a thread waits until it runs, which under load costs the event loop milliseconds per call -- with fifty
models, most of its time. Here a call goes to an idle worker through a queue; a worker is started only when none is
idle, so a hung call holds its own worker and never the others; workers idle for ``idle_s`` exit down to ``keep``.

>>> import asyncio
>>> asyncio.run(_demo())
(42, 'bad')
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["DaemonPool", "in_thread"]

T = TypeVar("T")
Done = Callable[[Any, BaseException | None], None]


class DaemonPool:
    """Runs callables on daemon threads; :meth:`submit` never blocks on a busy or hung worker."""

    def __init__(self, *, keep: int = 4, idle_s: float = 60.0, name: str = "goldwatch-worker") -> None:
        self.keep = keep
        self.idle_s = idle_s
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Done]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._workers = 0
        self._spawns: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._spawner: threading.Thread | None = None

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, fn: Callable[[], Any], done: Done) -> None:
        """Run ``fn()`` on a worker; ``done(value, error)`` is called on that worker when it returns or raises.

        Never waits: a new worker, when one is needed, is started by a spawner thread (``Thread.start`` blocks
        until the new thread runs, which under load would stall the event loop calling ``submit``).
        """
        with self._lock:
            start = self._idle == 0
            if start:
                self._workers += 1
                if self._spawner is None:
                    self._spawner = threading.Thread(target=self._spawn_loop, name=f"{self.name}-spawner",
                                                     daemon=True)
                    self._spawner.start()
            else:
                self._idle -= 1  # that idle worker will take this call
        self._queue.put((fn, done))
        if start:
            self._spawns.put(None)

    def _spawn_loop(self) -> None:
        while True:
            self._spawns.get()
            threading.Thread(target=self._work, name=f"{self.name}-{self._workers}", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                fn, done = self._queue.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if self._workers > self.keep and self._idle > 0:
                        self._idle -= 1
                        self._workers -= 1
                        return
                continue
            try:
                value, error = fn(), None
            except BaseException as exc:  # handed to the caller, never lost with the thread
                value, error = None, exc
            with contextlib.suppress(Exception):
                done(value, error)
            with self._lock:
                self._idle += 1


_POOL = DaemonPool()


def in_thread(fn: Callable[..., T], /, *args: Any, name: str = "", **kwargs: Any) -> Awaitable[T]:
    """Run ``fn(*args, **kwargs)`` on a daemon worker and await its result from the event loop. (``name`` is kept
    for readers of call sites; workers are shared.)"""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(value)

    def done(value: Any, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the process is exiting
            loop.call_soon_threadsafe(settle, value, error)

    _POOL.submit(lambda: fn(*args, **kwargs), done)
    return fut


async def _demo() -> tuple[int, str]:
    def bad() -> None:
        raise ValueError("bad")

    try:
        await in_thread(bad)
    except ValueError as exc:
        return await in_thread(lambda x: x * 2, 21), str(exc)
    return 0, ""
