"""Count and time windows over a model's rows.

A window closes when it holds ``max_rows`` rows or has been open ``max_seconds``, whichever comes first (a batch
that crosses the row limit is split, so count windows hold exactly ``max_rows``). A row is one inference row: its
inputs (from the request) and its outputs (from the response) when both were logged, one of them for an orphan.
A window that closes below ``min_rows`` is reported as too small, never tested: a handful of rows is no evidence of
drift, and testing it would page on noise.

>>> import numpy as np
>>> from goldwatch.watchdog.live.payload import Frame
>>> w = WindowBuilder(numeric=(2, 1), categorical=(0, 0), max_rows=5, max_seconds=60.0, min_rows=3)
>>> batch = Frame(np.ones((4, 2)), np.empty((4, 0), dtype=object))
>>> out = Frame(np.zeros((4, 1)), np.empty((4, 0), dtype=object))
>>> closed = w.add(batch, out, now=0.0) + w.add(batch, out, now=1.0)
>>> [(c.rows, c.close_reason) for c in closed], w.rows
([(5, 'rows')], 3)
>>> w.due(now=61.0), w.close(now=61.0, reason="time").too_small
(True, False)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from goldwatch.watchdog.live.payload import Frame

__all__ = ["ClosedWindow", "WindowBuilder"]


@dataclasses.dataclass(frozen=True)
class ClosedWindow:
    """The rows of one window. ``inputs``/``outputs`` hold the rows that had each part; ``violations``: events of
    this model rejected while the window was open, by reason (schema violations); ``events``: events accepted."""

    index: int
    opened_at: float
    closed_at: float
    rows: int
    close_reason: str
    inputs: Frame
    outputs: Frame
    min_rows: int
    violations: dict[str, int] = dataclasses.field(default_factory=dict)
    events: int = 0
    version: str | None = None

    @property
    def too_small(self) -> bool:
        return self.rows < self.min_rows


class WindowBuilder:
    """Accumulates rows into the current window; ``add`` returns the windows that filled up."""

    def __init__(self, *, numeric: tuple[int, int], categorical: tuple[int, int], max_rows: int, max_seconds: float,
                 min_rows: int, index: int = 0) -> None:
        if max_rows < 1 or max_seconds <= 0 or min_rows < 1:
            raise ValueError("max_rows and min_rows must be >= 1 and max_seconds > 0")
        self.numeric, self.categorical = numeric, categorical
        self.max_rows, self.max_seconds, self.min_rows = int(max_rows), float(max_seconds), int(min_rows)
        self.index = int(index)  # of the window being filled
        self._reset(None)

    def _reset(self, now: float | None) -> None:
        self.opened_at: float | None = now
        self.rows = 0
        self._in: list[Frame] = []
        self._out: list[Frame] = []
        self.violations: dict[str, int] = {}
        self.events = 0
        self.version: str | None = None

    def note_violation(self, reason: str, now: float) -> None:
        if self.opened_at is None:
            self.opened_at = now
        self.violations[reason] = self.violations.get(reason, 0) + 1

    def note_event(self, n: int = 1) -> None:
        self.events += n

    def add(self, inputs: Frame | None, outputs: Frame | None, *, now: float,
            version: str | None = None) -> list[ClosedWindow]:
        """Add one batch of rows (a pair: both parts with the same rows; an orphan: one part)."""
        n = max(inputs.n_rows if inputs is not None else 0, outputs.n_rows if outputs is not None else 0)
        closed: list[ClosedWindow] = []
        start = 0
        while start < n:
            if self.opened_at is None:
                self.opened_at = now
            take = min(n - start, self.max_rows - self.rows)
            if inputs is not None and start < inputs.n_rows:
                self._in.append(_rows(inputs, start, start + take))
            if outputs is not None and start < outputs.n_rows:
                self._out.append(_rows(outputs, start, start + take))
            self.rows += take
            if version is not None:
                self.version = version
            start += take
            if self.rows >= self.max_rows:
                closed.append(self.close(now=now, reason="rows"))
        return closed

    def due(self, *, now: float) -> bool:
        return self.opened_at is not None and now - self.opened_at >= self.max_seconds

    def close(self, *, now: float, reason: str) -> ClosedWindow:
        """Close the current window (whatever it holds) and open the next."""
        window = ClosedWindow(
            index=self.index, opened_at=self.opened_at if self.opened_at is not None else now, closed_at=now,
            rows=self.rows, close_reason=reason, inputs=_concat(self._in, *self._part_shape(0)),
            outputs=_concat(self._out, *self._part_shape(1)), min_rows=self.min_rows,
            violations=dict(self.violations), events=self.events, version=self.version)
        self.index += 1
        self._reset(None)
        return window

    def _part_shape(self, i: int) -> tuple[int, int]:
        return self.numeric[i], self.categorical[i]

    # -- checkpoint -------------------------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The window being filled: metadata and its rows (so a restart continues it)."""
        meta = {"index": self.index, "opened_at": self.opened_at, "rows": self.rows,
                "violations": dict(self.violations), "events": self.events, "version": self.version}
        ins, outs = _concat(self._in, *self._part_shape(0)), _concat(self._out, *self._part_shape(1))
        arrays = {"in_numeric": ins.numeric, "in_categorical": _as_text(ins.categorical),
                  "out_numeric": outs.numeric, "out_categorical": _as_text(outs.categorical)}
        return meta, arrays

    def restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.index = int(meta["index"])
        self._reset(meta.get("opened_at"))
        self.rows = int(meta["rows"])
        self.violations = {str(k): int(v) for k, v in dict(meta.get("violations") or {}).items()}
        self.events = int(meta.get("events", 0))
        self.version = meta.get("version")
        ins = Frame(arrays["in_numeric"], _from_text(arrays["in_categorical"]))
        outs = Frame(arrays["out_numeric"], _from_text(arrays["out_categorical"]))
        if ins.numeric.shape[1] != self.numeric[0] or outs.numeric.shape[1] != self.numeric[1] or \
                ins.categorical.shape[1] != self.categorical[0] or outs.categorical.shape[1] != self.categorical[1]:
            raise ValueError("the saved window has other columns than the schema")
        self._in = [ins] if ins.n_rows else []
        self._out = [outs] if outs.n_rows else []


_MISSING_TEXT = "\x00<missing>"  # how None is saved in a (pickle-free) string array


def _as_text(values: np.ndarray) -> np.ndarray:
    flat = [_MISSING_TEXT if v is None else str(v) for v in values.ravel().tolist()]
    return np.array(flat, dtype=str).reshape(values.shape) if flat else np.empty(values.shape, dtype="U1")


def _from_text(values: np.ndarray) -> np.ndarray:
    flat = [None if v == _MISSING_TEXT else v for v in values.ravel().tolist()]
    return np.array(flat, dtype=object).reshape(values.shape)


def _rows(frame: Frame, lo: int, hi: int) -> Frame:
    if lo == 0 and hi >= frame.n_rows:
        return frame
    return Frame(frame.numeric[lo:hi], frame.categorical[lo:hi])


def _concat(frames: list[Frame], n_numeric: int, n_categorical: int) -> Frame:
    if not frames:
        return Frame.empty(n_numeric, n_categorical)
    if len(frames) == 1:
        return frames[0]
    return Frame(np.concatenate([f.numeric for f in frames]), np.concatenate([f.categorical for f in frames]))
