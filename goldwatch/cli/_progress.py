"""How the CLI shows progress (:mod:`goldwatch.progress`): a bar on a terminal, log lines everywhere else.

``--progress`` (``$GOLDWATCH_PROGRESS``) chooses:

* ``auto`` (default) -- a bar when stderr is a terminal, ``$CI`` is unset and logs are text; log lines otherwise
* ``bar`` -- a progress bar with rate and ETA on stderr (tqdm)
* ``log`` -- one log line (logger ``goldwatch.progress``, level info) when a task has run for
  ``$GOLDWATCH_PROGRESS_DELAY`` seconds (default 2), then every ``$GOLDWATCH_PROGRESS_INTERVAL`` seconds (default
  10), and one when it ends; with ``--log-format json`` each line carries a ``progress`` object
* ``off`` -- nothing

Everything goes to stderr: stdout holds only the command's result (``--json`` stays parseable). Work shorter than
the delay shows nothing at all. Services (``goldwatch serve``) show none: their checks run concurrently, and are
logged and measured instead.

>>> human_amount(3 * 1024**3 + 1, "B"), human_amount(1500, "samples"), human_duration(3725)
('3.0 GiB', '1,500 samples', '62 min 5 s')
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Literal

from goldwatch.progress import Reporter, Task

__all__ = ["LogReporter", "TerminalReporter", "human_amount", "human_duration", "make_reporter"]

Mode = Literal["auto", "bar", "log", "off"]
MODES: tuple[Mode, ...] = ("auto", "bar", "log", "off")

_log = logging.getLogger("goldwatch.progress")


def _seconds(env: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(env, default)))
    except ValueError:
        return default


def human_amount(value: float, unit: str) -> str:
    if unit == "B":
        for scale, name in ((1024**4, "TiB"), (1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
            if value >= scale:
                return f"{value / scale:.1f} {name}"
        return f"{value:.0f} B"
    return f"{value:,.0f} {unit}".rstrip()


def human_rate(per_second: float, unit: str) -> str:
    """A rate in the unit of time that keeps it readable: slow work (a drill's scenarios) is not "0 /s".

    >>> human_rate(52_000_000, "B"), human_rate(1234.5, "samples"), human_rate(2.5, "files")
    ('49.6 MiB/s', '1,234 samples/s', '2.5 files/s')
    >>> human_rate(0.3, "scenarios"), human_rate(0.001, "backups")
    ('18 scenarios/min', '3.6 backups/h')
    """
    if unit == "B" or per_second >= 10:
        return f"{human_amount(per_second, unit)}/s"
    value, per = per_second, "s"
    if value < 1:
        value, per = per_second * 60, "min"
    if value < 1:
        value, per = per_second * 3600, "h"
    return f"{value:.0f} {unit}/{per}" if value >= 10 else f"{value:.1f} {unit}/{per}"


def human_duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


class _Ticker:
    """A daemon thread calling ``tick()`` every ``period`` seconds while tasks are open (blocking steps, such as
    reading a Parquet file, advance nothing while they run and would otherwise look frozen)."""

    def __init__(self, tick: Any, period: float) -> None:
        self._tick = tick
        self._period = max(0.05, period)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def ensure_running(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="goldwatch-progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            self._tick()


class LogReporter:
    """Plain lines through the ``goldwatch.progress`` logger: for CI logs and log shippers."""

    def __init__(self, *, delay_s: float | None = None, interval_s: float | None = None) -> None:
        self.delay_s = _seconds("GOLDWATCH_PROGRESS_DELAY", 2.0) if delay_s is None else delay_s
        self.interval_s = _seconds("GOLDWATCH_PROGRESS_INTERVAL", 10.0) if interval_s is None else interval_s
        self._lock = threading.Lock()
        self._tasks: dict[Task, float | None] = {}  # task -> when it was last logged (monotonic)
        self._ticker = _Ticker(self._tick, min(1.0, self.interval_s, max(self.delay_s, 0.05)))

    def start(self, task: Task) -> None:
        with self._lock:
            self._tasks[task] = None
        self._ticker.ensure_running()

    def update(self, task: Task) -> None:
        pass  # the ticker decides when a line is due: a hot loop never pays for formatting

    def finish(self, task: Task, *, ok: bool) -> None:
        with self._lock:
            logged = self._tasks.pop(task, None)
            idle = not self._tasks
        if idle:
            self._ticker.stop()
        snap = task.snapshot()
        if logged is None and snap.elapsed_s < self.delay_s:
            return  # quick work: no noise
        state = "done" if ok else "stopped"
        amount = human_amount(snap.done, snap.unit) if snap.unit else ""
        if ok:
            text = f"{task.label}: done in {human_duration(snap.elapsed_s)}"
            if amount:
                text += f" ({amount}" + (f", {human_rate(snap.rate, snap.unit)}" if snap.rate else "") + ")"
        else:
            text = f"{task.label}: stopped after {human_duration(snap.elapsed_s)}" + (f" at {amount}" if amount else "")
        self._emit(task, state, text)

    def _tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [t for t, last in self._tasks.items()
                   if now - t.started >= self.delay_s and (last is None or now - last >= self.interval_s)]
            for t in due:
                self._tasks[t] = now
        for t in due:
            self._emit(t, "running", running_line(t))

    def _emit(self, task: Task, state: str, text: str) -> None:
        snap = task.snapshot()
        _log.info(text, extra={"progress": {
            "task": task.label, "state": state, "done": snap.done, "total": snap.total, "unit": snap.unit,
            "elapsed_s": round(snap.elapsed_s, 3),
            "rate_per_s": None if snap.rate is None else round(snap.rate, 3),
            "eta_s": None if snap.eta_s is None else round(snap.eta_s, 1),
        }})


def running_line(task: Task) -> str:
    snap = task.snapshot()
    if snap.total is None:
        done = f"{human_amount(snap.done, snap.unit)}, " if snap.done and snap.unit else ""
        return f"{task.label}: {done}running for {human_duration(snap.elapsed_s)}"
    text = (f"{task.label}: {human_amount(snap.done, snap.unit)} of {human_amount(snap.total, snap.unit)} "
            f"({100 * (snap.fraction or 0):.0f}%)")
    if snap.rate:
        text += f", {human_rate(snap.rate, snap.unit)}"
    if snap.eta_s is not None and snap.done:
        text += f", about {human_duration(snap.eta_s)} left"
    return text


class TerminalReporter:
    """tqdm bars on stderr (rate and ETA), shown once a task has run for the delay; nested tasks stack."""

    def __init__(self, *, delay_s: float | None = None, file: Any = None) -> None:
        self.delay_s = _seconds("GOLDWATCH_PROGRESS_DELAY", 2.0) if delay_s is None else delay_s
        self.file = file
        self._lock = threading.Lock()
        self._bars: dict[Task, Any] = {}
        self._drawn = 0.0
        self._ticker = _Ticker(self._tick, 0.5)

    def start(self, task: Task) -> None:
        from tqdm import tqdm

        file = self.file or sys.stderr
        width = _columns(file)
        with self._lock:
            depth = len(self._bars)
            self._bars[task] = tqdm(
                total=task.total, desc=task.label, unit=task.unit or "it", unit_scale=True,
                unit_divisor=1024 if task.unit == "B" else 1000, file=file, delay=self.delay_s, leave=depth == 0,
                # follow the terminal's width as it changes; a terminal that reports none (a pty in a
                # container) would otherwise get a bar zero columns wide, which is no bar
                dynamic_ncols=width is not None, ncols=None if width is not None else 100,
                nrows=None if width is not None else 20, mininterval=0.2, position=depth,
            )
        self._ticker.ensure_running()

    def update(self, task: Task) -> None:
        # a hot loop calls this per chunk or batch: redraw at most ten times a second (the ticker and finish
        # catch up), so that drawing never becomes the work
        now = time.monotonic()
        if now - self._drawn < 0.1:
            return
        self._drawn = now
        with self._lock:
            bar = self._bars.get(task)
            if bar is not None:
                done = task.snapshot().done
                bar.update(done - bar.n)

    def finish(self, task: Task, *, ok: bool) -> None:
        with self._lock:
            bar = self._bars.pop(task, None)
            idle = not self._bars
            if bar is not None:
                done = task.snapshot().done
                if ok and task.total is not None:
                    done = max(done, task.total)
                bar.update(done - bar.n)
                bar.close()
        if idle:
            self._ticker.stop()

    def _tick(self) -> None:
        with self._lock:
            for task, bar in self._bars.items():
                bar.update(task.snapshot().done - bar.n)  # also redraws the elapsed time of a blocking step


def _columns(file: Any) -> int | None:
    try:
        columns = os.get_terminal_size(file.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return None
    return columns or None


def _json_logs() -> bool:
    from goldwatch.logs import JsonFormatter

    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger("goldwatch").handlers)


def _terminal() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class AutoReporter:
    """Chooses per task, when it starts: the log format is only known once the config has been read."""

    def __init__(self) -> None:
        self._log = LogReporter()
        self._bar: TerminalReporter | None = None
        self._chosen: dict[Task, Reporter] = {}

    def _pick(self) -> Reporter:
        if _terminal() and not _json_logs():
            if self._bar is None:
                self._bar = TerminalReporter()
            return self._bar
        return self._log

    def start(self, task: Task) -> None:
        chosen = self._chosen[task] = self._pick()
        chosen.start(task)

    def update(self, task: Task) -> None:
        chosen = self._chosen.get(task)
        if chosen is not None:
            chosen.update(task)

    def finish(self, task: Task, *, ok: bool) -> None:
        chosen = self._chosen.pop(task, None)
        if chosen is not None:
            chosen.finish(task, ok=ok)


def make_reporter(mode: str | None) -> Reporter | None:
    """The reporter for ``--progress MODE`` (None: off). ``$GOLDWATCH_NO_PROGRESS`` (any value) also turns it off."""
    if os.environ.get("GOLDWATCH_NO_PROGRESS"):
        return None
    mode = mode or "auto"
    if mode == "off":
        return None
    if mode == "bar":
        return TerminalReporter()
    if mode == "log":
        return LogReporter()
    return AutoReporter()
