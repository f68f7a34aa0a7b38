"""Streaming change detectors: Page-Hinkley, CUSUM and ADWIN, one stream at River's speed or many at once.

The API follows River's drift detectors: call ``update(x)``, then read ``drift_detected``. ``x`` is one number
(a detector of one stream, the default), one value per stream (shape ``(n_streams,)``) or ``k`` consecutive
values per stream (shape ``(k, n_streams)``). ``drift_detected`` is a boolean array with one entry per stream:
True when the stream changed during that update call (a one-element array reads as a bool: ``if
det.drift_detected:``). ``n_detections`` counts every alarm per stream.

One stream fed Python numbers runs a scalar path in plain Python (a few hundred nanoseconds per value, the cost
of River's scalar detectors); arrays of streams run vectorized, without a Python loop over streams or over the
rows of a batch. Both paths compute the same alarms (tested). State is plain numpy arrays and numbers:
``state_dict()`` / ``from_state_dict()`` round-trip it without pickle (e.g. through ``numpy.savez`` or JSON).

What each detector watches, and what its alarms mean:

* :class:`PageHinkley` -- a change in a stream's mean relative to the stream's own past since its start or last
  alarm. Values are standardised by the running mean and standard deviation of the values so far, *including*
  the current one: a z-score against a sample that contains the value is bounded by ``sqrt(n)`` (Samuelson's
  inequality), so the first differing value of a stream that was constant until then is a surprise of at most
  ``sqrt(n)`` standard deviations, not of ``1/eps``. Defaults ``delta=0.1``, ``threshold=65`` (standard
  deviations): 0.04% of stable normal and 0.16% of exponential streams alarm within 10,000 values; a
  one-standard-deviation mean shift is found after a median of ~70 values. After an alarm the stream starts
  afresh from the next value, so later alarms are about later changes.
* :class:`CUSUM` -- the two-sided tabular CUSUM of statistical process control (Page 1954; Montgomery's tabular
  form): ``S+ = max(0, S+ + z - k)``, ``S- = max(0, S- - z - k)``, ``z = (x - mean) / std``, alarm when either
  sum exceeds ``h``. The in-control ``mean`` and ``std`` come from a reference (:meth:`CUSUM.from_reference`, or
  given), never from the stream being watched, so a stream that drifts slowly cannot teach the detector that the
  drift is normal. Defaults ``k=0.5``, ``h=14``: 0.6% of stable normal streams alarm within 10,000 values (two-sided
  in-control average run length in the millions; Siegmund's approximation: :func:`cusum_arl`), a
  one-standard-deviation shift is found after ~30 values. A right-skewed stream has a heavier upper tail and alarms
  far sooner (23% of exponential streams within 10,000 values): take logs of such data first.
  After an alarm both sums restart from zero while the reference stays, so a stream that stays away from its
  reference alarms again every ~``h / (shift - k)`` values: CUSUM answers "is this stream still in control?".
* :class:`ADWIN` -- ADaptive WINdowing (Bifet & Gavaldà 2007), River's ``delta=0.002`` and cut points every
  ``clock=32`` values. After an alarm the window keeps its newer part; later cuts that only drop values which
  were already in the window at the last alarm refine that same change (the window shrinks, silently), so one
  change raises one alarm; a cut whose older part reaches past the last alarm is a new change.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> stream = rng.normal(size=(3000, 4))
>>> stream[2000:, 1] += 1.0          # stream 1 shifts by one standard deviation
>>> ph = PageHinkley(n_streams=4)
>>> fired = np.zeros(4, dtype=bool)
>>> for block in np.split(stream, 30):
...     ph.update(block)
...     fired |= ph.drift_detected
>>> fired.tolist()
[False, True, False, False]
>>> cusum = CUSUM.from_reference(stream[:1000])       # in-control mean and std of each stream
>>> cusum.update(stream[1000:2000])
>>> cusum.n_detections.tolist()
[0, 0, 0, 0]
>>> cusum.update(stream[2000:2100])                # stream 1 is out of control from value 2000 on: it
>>> cusum.n_detections.tolist()                    # alarms every ~h / (shift - k) = 28 values
[0, 4, 0, 0]
>>> one = PageHinkley()                             # one stream, fed Python numbers (River's usage)
>>> for i, value in enumerate(stream[:, 1].tolist()):
...     one.update(value)
...     if one.drift_detected:
...         print("change at", i)
change at 2056
>>> PageHinkley.from_state_dict(ph.state_dict()).n_seen.tolist() == ph.n_seen.tolist()
True
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable
from itertools import accumulate
from typing import Any, ClassVar, Literal

import numpy as np

from goldwatch.errors import DataError

__all__ = ["ADWIN", "CUSUM", "PageHinkley", "StreamDetector", "cusum_arl"]

# drift_detected of a one-stream detector on its scalar path: shared read-only arrays, so an update allocates nothing
_TRUE = np.ones(1, dtype=bool)
_FALSE = np.zeros(1, dtype=bool)
_TRUE.flags.writeable = False
_FALSE.flags.writeable = False
_STD_FLOOR = 1e-12  # relative to the level: a smaller spread is rounding noise of a constant stream, not spread


class StreamDetector:
    """Common machinery: input checks, the scalar path's state, the state round trip.

    Subclasses list their per-stream state arrays in ``_arrays``; each is stored as ``self._<name>`` and read
    through a property of the same name. A one-stream detector fed Python numbers keeps its state as Python numbers
    (``self._x_<name>``) and writes it back to the arrays only when something else needs them.
    """

    _params: ClassVar[tuple[str, ...]] = ()
    _arrays: ClassVar[tuple[str, ...]] = ()
    _live: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls._arrays:
            if not isinstance(cls.__dict__.get(name), property):
                setattr(cls, name, property(_array_getter(name), doc=f"per-stream state ``{name}`` (read-only)"))

    def __init__(self, n_streams: int) -> None:
        if isinstance(n_streams, bool) or not isinstance(n_streams, (int, np.integer)) or n_streams < 1:
            raise DataError(f"expected a positive integer, got {n_streams!r}", where="n_streams")
        self.n_streams = int(n_streams)
        self.drift_detected: np.ndarray = np.zeros(self.n_streams, dtype=bool)
        self.n_detections = np.zeros(self.n_streams, dtype=np.int64)
        self._one = self.n_streams == 1
        self._live = False  # True while the scalar path's attributes hold the state

    # -- the scalar path: the one stream's state as Python numbers in ``_x_<name>`` attributes -----------------

    def _load_scalar(self) -> None:
        for name in self._arrays:
            setattr(self, f"_x_{name}", getattr(self, f"_{name}")[0].item())
        self._live = True

    def _store_scalar(self) -> None:
        for name in self._arrays:
            getattr(self, f"_{name}")[0] = getattr(self, f"_x_{name}")

    def _flush(self) -> None:
        """Write the scalar path's state back to the arrays (before anything reads or vectorizes them)."""
        if self._live:
            self._store_scalar()
            self._live = False

    # -- the vectorized path ---------------------------------------------------------------------------------

    def _rows(self, x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 0 and self.n_streams == 1:
            arr = arr.reshape(1, 1)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.n_streams:
            raise DataError(
                f"expected shape ({self.n_streams},) or (k, {self.n_streams}), got {np.shape(x)}",
                where="x",
                hint="pass one value per stream, or k consecutive values per stream",
            )
        if not np.isfinite(arr).all():
            raise DataError(
                f"{int((~np.isfinite(arr)).sum())} non-finite value(s) (NaN/inf)",
                where="x",
                hint="filter non-finite values out before updating: a NaN must not read as 'stable'",
            )
        return arr

    def update(self, x: Any) -> None:
        """Feed one value (or k consecutive values) per stream; ``drift_detected`` says which streams changed.

        Subclasses run their scalar path first, for a finite Python float on a one-stream detector, and call this
        for anything else.
        """
        if self._one and type(x) in _SCALARS:
            value = float(x)
            if value - value != 0.0:  # NaN or inf
                self._rows(value)  # raises the same error as the vectorized path
            self.update(value)
            return
        self._flush()
        counts = self._update_rows_all(self._rows(x))
        self.drift_detected = counts > 0
        self.n_detections += counts

    def _update_rows_all(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- state -----------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Parameters and state as plain numbers and numpy arrays."""
        self._flush()
        state: dict[str, Any] = {"type": type(self).__name__, "n_streams": self.n_streams}
        for name in self._params:
            value = getattr(self, name)
            state[name] = value.copy() if isinstance(value, np.ndarray) else value
        state.update({name: getattr(self, f"_{name}").copy() for name in self._arrays})
        state["n_detections"] = self.n_detections.copy()
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Any:
        """A detector that continues exactly where the one that wrote ``state`` stopped."""
        if not isinstance(state, dict) or state.get("type") != cls.__name__:
            found = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise DataError(f"expected a {cls.__name__} state, got {found!r}", where="state")
        missing = [k for k in ("n_streams", *cls._params, *cls._arrays, "n_detections") if k not in state]
        if missing:
            raise DataError(f"state lacks {', '.join(missing)}", where="state",
                            hint="pass a dict written by state_dict() of the same goldwatch version")
        obj = cls(n_streams=int(state["n_streams"]), **{p: state[p] for p in cls._params})
        for name in (*cls._arrays, "n_detections"):
            attr = "n_detections" if name == "n_detections" else f"_{name}"
            value = np.asarray(state[name])
            target = getattr(obj, attr)
            if value.shape != target.shape:
                raise DataError(f"expected shape {target.shape}, got {value.shape}", where=f"state.{name}")
            setattr(obj, attr, value.astype(target.dtype))
        return obj


_SCALARS = frozenset({float, int, bool, np.float64, np.float32, np.int64, np.int32})


def _array_getter(name: str) -> Callable[[StreamDetector], np.ndarray]:
    attr = f"_{name}"

    def get(self: StreamDetector) -> np.ndarray:
        self._flush()
        value: np.ndarray = getattr(self, attr)
        return value

    return get


def _per_stream(value: Any, n_streams: int | None, *, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim > 1 or (arr.ndim == 1 and n_streams is not None and arr.size not in (1, n_streams)):
        raise DataError(f"expected a number or {n_streams} values (one per stream), got shape {arr.shape}",
                        where=name)
    return arr


class _Restarting(StreamDetector):
    """Vectorized batches for detectors whose alarm resets some state: a stream that alarms inside the batch is
    reset at that row and its remaining rows are processed again, from the fresh state (that repeats only as
    often as a stream alarms within one batch)."""

    _reset: ClassVar[tuple[str, ...]] = ()
    _CHUNK = 32  # rows per vectorized pass: (32, n_streams) temporaries stay in cache (measured: 256 is 3x slower)

    def _update_rows_all(self, rows: np.ndarray) -> np.ndarray:
        counts = np.zeros(self.n_streams, dtype=np.int64)
        for lo in range(0, rows.shape[0], self._CHUNK):
            counts += self._update_rows(rows[lo : lo + self._CHUNK])
        return counts

    def _update_rows(self, rows: np.ndarray) -> np.ndarray:
        """Alarms per stream in these rows (a stream can alarm, restart and alarm again)."""
        k = rows.shape[0]
        counts = np.zeros(self.n_streams, dtype=np.int64)
        cols = np.arange(self.n_streams)
        start = np.full(self.n_streams, -1)  # rows <= start are not part of the stream's current run
        while cols.size:
            alarm_at = self._run(rows[:, cols], cols, start[cols])
            hit = alarm_at >= 0
            if not hit.any():
                break
            counts[cols[hit]] += 1
            cols, start_next = cols[hit], alarm_at[hit]
            self._restart(cols)
            start[cols] = start_next
            cols = cols[start_next < k - 1]  # something left after the alarm
        return counts

    def _restart(self, cols: np.ndarray) -> None:
        """The state of streams ``cols`` after an alarm."""
        for name in self._reset:
            getattr(self, f"_{name}")[cols] = 0

    def reset(self, streams: Any) -> None:
        """Forget the history of ``streams`` (indices or a boolean mask): they start again as at the start."""
        self._flush()
        for name in self._reset:
            getattr(self, f"_{name}")[streams] = 0

    def _run(self, x: np.ndarray, cols: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Process rows of ``x`` for streams ``cols``; return the first alarm row per stream (-1: none)."""
        raise NotImplementedError

    @staticmethod
    def _first(alarm: np.ndarray) -> np.ndarray:
        return np.where(alarm.any(axis=0), np.argmax(alarm, axis=0), -1)


class PageHinkley(_Restarting):
    """Page-Hinkley test for a change in the mean, both directions, in standard-deviation units.

    ``delta``: magnitude of change tolerated (std); ``threshold``: alarm level of the cumulative deviation (std);
    ``min_instances``: values seen (since the start or the last alarm) before a value is tested.
    River's forgetting factor is left out on purpose: with its default 0.9999 the sums fluctuate with a standard
    deviation of about 70 (1 / sqrt(2 (1 - alpha))) on stable data, above any useful threshold.

    >>> ph = PageHinkley()
    >>> for value in [0.0] * 500 + [1.0] + [0.0] * 500:   # a constant stream, then one different value
    ...     ph.update(value)
    ...     assert not ph.drift_detected
    >>> for _ in range(40):
    ...     ph.update(3.0)
    >>> int(ph.n_detections[0])
    1
    """

    _params = ("min_instances", "delta", "threshold")
    _arrays = ("n_seen", "mean", "m2", "sum_up", "min_up", "sum_down", "max_down")
    _reset = _arrays
    n_seen: np.ndarray  # values since the start or the last alarm, per stream (read-only properties)
    mean: np.ndarray
    m2: np.ndarray
    sum_up: np.ndarray
    min_up: np.ndarray
    sum_down: np.ndarray
    max_down: np.ndarray

    def __init__(
        self, n_streams: int = 1, *, min_instances: int = 30, delta: float = 0.1, threshold: float = 65.0
    ) -> None:
        super().__init__(n_streams)
        if min_instances < 2:
            raise DataError(f"expected min_instances >= 2, got {min_instances}", where="min_instances")
        if delta < 0 or threshold <= 0:
            raise DataError(f"expected delta >= 0 and threshold > 0, got {delta}, {threshold}", where="PageHinkley")
        self.min_instances = int(min_instances)
        self.delta, self.threshold = float(delta), float(threshold)
        self._n_seen = np.zeros(self.n_streams, dtype=np.int64)
        self._mean = np.zeros(self.n_streams)
        self._m2 = np.zeros(self.n_streams)
        self._sum_up = np.zeros(self.n_streams)
        self._min_up = np.zeros(self.n_streams)
        self._sum_down = np.zeros(self.n_streams)
        self._max_down = np.zeros(self.n_streams)

    _x_n_seen: int
    _x_mean: float
    _x_m2: float
    _x_sum_up: float
    _x_min_up: float
    _x_sum_down: float
    _x_max_down: float

    def update(self, x: Any) -> None:
        if type(x) is not float or not self._one or x - x != 0.0:
            super().update(x)
            return
        if not self._live:
            self._load_scalar()
        n = self._x_n_seen + 1
        mean = self._x_mean
        d = x - mean
        mean += d / n
        dev = x - mean
        m2 = self._x_m2 + d * dev
        self._x_n_seen, self._x_mean, self._x_m2 = n, mean, m2
        if n <= self.min_instances:
            self.drift_detected = _FALSE
            return
        std = math.sqrt(m2 / (n - 1))
        if std <= _STD_FLOOR * abs(mean):  # constant so far (up to rounding): nothing to test
            self.drift_detected = _FALSE
            return
        z = dev / std
        up = self._x_sum_up + z - self.delta
        down = self._x_sum_down + z + self.delta
        min_up = self._x_min_up
        if up < min_up:
            min_up = self._x_min_up = up
        max_down = self._x_max_down
        if down > max_down:
            max_down = self._x_max_down = down
        if up - min_up > self.threshold or max_down - down > self.threshold:
            self._x_n_seen = 0
            self._x_mean = self._x_m2 = self._x_sum_up = self._x_min_up = self._x_sum_down = self._x_max_down = 0.0
            self.n_detections[0] += 1
            self.drift_detected = _TRUE
            return
        self._x_sum_up, self._x_sum_down = up, down
        self.drift_detected = _FALSE

    def _standardized(self, x: np.ndarray, cols: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """z-scores (k, c) against the values up to and including each row, and which rows are tested (active,
        past ``min_instances``, not constant so far); updates the running moments of ``cols`` to the batch end."""
        k = x.shape[0]
        n0 = self._n_seen[cols]
        mean0, m20 = self._mean[cols], self._m2[cols]
        if start.max() < 0:
            active: np.ndarray | bool = True
            n_incl = n0 + np.arange(1, k + 1)[:, None]
            pivot = np.where(n0 > 0, mean0, x[0])
            d = x - pivot
        else:
            active = np.arange(k)[:, None] > start[None, :]
            n_incl = n0 + np.cumsum(active, axis=0)
            # deviations from a pivot keep the sums of squares well conditioned: the running mean if there is one,
            # else the run's first value
            first = x[np.minimum(start + 1, k - 1), np.arange(x.shape[1])]
            pivot = np.where(n0 > 0, mean0, first)
            d = np.where(active, x - pivot, 0.0)
        s_incl = n0 * (mean0 - pivot) + np.cumsum(d, axis=0)
        # sum of squared deviations from the pivot: m2 + n (mean - pivot)^2 before the batch
        q_incl = m20 + n0 * (mean0 - pivot) ** 2 + np.cumsum(d * d, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_i = s_incl / n_incl
            std_i = np.sqrt(np.maximum((q_incl - s_incl * mean_i) / (n_incl - 1), 0.0))
            z = (d - mean_i) / std_i
        ready = (n_incl > self.min_instances) & (std_i > _STD_FLOOR * np.abs(pivot + mean_i))
        if active is not True:
            ready &= active
        n_end, s_end, q_end = n_incl[-1], s_incl[-1], q_incl[-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_end = np.where(n_end > 0, s_end / n_end, 0.0)
        self._n_seen[cols] = n_end
        self._mean[cols] = pivot + mean_end
        self._m2[cols] = np.maximum(q_end - n_end * mean_end**2, 0.0)
        return z, ready

    def _run(self, x: np.ndarray, cols: np.ndarray, start: np.ndarray) -> np.ndarray:
        z, tested = self._standardized(x, cols, start)
        # rows not tested contribute nothing
        a_up = np.where(tested, z - self.delta, 0.0)
        a_down = np.where(tested, z + self.delta, 0.0)
        up = self._sum_up[cols] + np.cumsum(a_up, axis=0)
        down = self._sum_down[cols] + np.cumsum(a_down, axis=0)
        min_up = np.minimum(self._min_up[cols], np.minimum.accumulate(up, axis=0))
        max_down = np.maximum(self._max_down[cols], np.maximum.accumulate(down, axis=0))
        alarm = (up - min_up > self.threshold) | (max_down - down > self.threshold)
        self._sum_up[cols], self._sum_down[cols] = up[-1], down[-1]
        self._min_up[cols], self._max_down[cols] = min_up[-1], max_down[-1]
        return self._first(alarm)


class CUSUM(_Restarting):
    """Two-sided tabular CUSUM against an in-control ``mean`` and ``std`` taken from a reference.

    ``k``: allowance (half the shift to detect, in standard deviations); ``h``: decision interval (standard
    deviations). ``mean`` and ``std`` are numbers or one value per stream; :meth:`from_reference` takes them from
    reference data. A stream whose in-control std is 0 is refused: a constant reference cannot say how far a
    value may wander. ``mode``: ``"both"`` sides, or only ``"up"`` (the mean rose) or ``"down"``. ``restart``: the
    value both sums restart from after an alarm (0; Lucas and Crosier's fast initial response uses ``h / 2``, so
    that a shift which persists signals again soon, while an in-control stream's sums decay to 0).

    >>> cusum = CUSUM(mean=10.0, std=2.0)
    >>> alarms = []
    >>> for i, value in enumerate([10.0, 12.0, 8.0, 9.0, 11.0] * 20 + [14.0] * 10):
    ...     cusum.update(value)
    ...     if cusum.drift_detected:
    ...         alarms.append(i)
    >>> alarms                      # a two-sigma shift from value 100 on: 14 / (2 - 0.5) ~ 9 values
    [109]
    >>> round(cusum_arl(0.5, 14.0))  # one-sided in-control average run length (normal data)
    7718596
    """

    _params = ("mean", "std", "k", "h", "mode", "restart")
    _arrays = ("s_up", "s_down")
    _reset = _arrays
    s_up: np.ndarray  # the upper and lower cumulative sums, per stream (read-only properties)
    s_down: np.ndarray

    def __init__(
        self, n_streams: int | None = None, *, mean: Any, std: Any, k: float = 0.5, h: float = 14.0,
        mode: Literal["both", "up", "down"] = "both", restart: float = 0.0,
    ) -> None:
        mean_arr = _per_stream(mean, n_streams, name="mean")
        std_arr = _per_stream(std, n_streams, name="std")
        if n_streams is None:
            sizes = {a.size for a in (mean_arr, std_arr) if a.ndim == 1} - {1}
            if len(sizes) > 1:
                raise DataError(f"mean and std have different lengths {sorted(sizes)}", where="CUSUM")
            n_streams = sizes.pop() if sizes else 1
        super().__init__(n_streams)
        self.mean = np.broadcast_to(mean_arr, (self.n_streams,)).astype(np.float64)
        self.std = np.broadcast_to(std_arr, (self.n_streams,)).astype(np.float64)
        bad = ~(np.isfinite(self.mean) & np.isfinite(self.std) & (self.std > 0))
        if bad.any():
            raise DataError(
                f"stream(s) {np.flatnonzero(bad)[:10].tolist()} have no usable in-control mean/std "
                f"(std must be finite and > 0)",
                where="CUSUM",
                hint="take mean and std from a reference with some spread; a constant reference cannot set a scale",
            )
        if k < 0 or h <= 0:
            raise DataError(f"expected k >= 0 and h > 0, got k={k}, h={h}", where="CUSUM")
        if mode not in ("both", "up", "down"):
            raise DataError(f"expected mode 'both', 'up' or 'down', got {mode!r}", where="CUSUM")
        if not 0 <= restart < h:
            raise DataError(f"expected 0 <= restart < h, got restart={restart}, h={h}", where="CUSUM")
        self.k, self.h = float(k), float(h)
        self.mode, self.restart = str(mode), float(restart)
        self._up, self._down = mode in ("both", "up"), mode in ("both", "down")
        self._s_up = np.zeros(self.n_streams)
        self._s_down = np.zeros(self.n_streams)
        self._mean1, self._std1 = float(self.mean[0]), float(self.std[0])

    @classmethod
    def from_reference(cls, reference: Any, **kwargs: Any) -> CUSUM:
        """In-control mean and sample standard deviation of each column of ``reference`` ((n, n_streams) or 1-D);
        ``kwargs``: ``k``, ``h``, ``mode``, ``restart``."""
        ref = np.asarray(reference, dtype=np.float64)
        if ref.ndim == 1:
            ref = ref[:, None]
        if ref.ndim != 2 or ref.shape[0] < 2:
            raise DataError(f"expected at least 2 reference values per stream, got shape {ref.shape}",
                            where="reference")
        if not np.isfinite(ref).all():
            raise DataError("reference has non-finite values", where="reference", hint="drop NaN/inf first")
        return cls(mean=ref.mean(axis=0), std=ref.std(axis=0, ddof=1), **kwargs)

    _x_s_up: float
    _x_s_down: float

    def update(self, x: Any) -> None:
        if type(x) is not float or not self._one or x - x != 0.0:
            super().update(x)
            return
        if not self._live:
            self._load_scalar()
        z = (x - self._mean1) / self._std1
        up = self._x_s_up + z - self.k
        down = self._x_s_down - z - self.k
        if (up > self.h and self._up) or (down > self.h and self._down):
            self._x_s_up = self._x_s_down = self.restart
            self.n_detections[0] += 1
            self.drift_detected = _TRUE
            return
        self._x_s_up = up if up > 0.0 else 0.0
        self._x_s_down = down if down > 0.0 else 0.0
        self.drift_detected = _FALSE

    def _restart(self, cols: np.ndarray) -> None:
        self._s_up[cols] = self.restart
        self._s_down[cols] = self.restart

    @staticmethod
    def _lindley(s0: np.ndarray, a: np.ndarray) -> np.ndarray:
        """S_t = max(0, S_{t-1} + a_t) for all t at once: S_t = A_t - min(-S_0, min_{s<=t} A_s)."""
        acc = np.cumsum(a, axis=0)
        return acc - np.minimum(-s0[None, :], np.minimum.accumulate(acc, axis=0))

    def _run(self, x: np.ndarray, cols: np.ndarray, start: np.ndarray) -> np.ndarray:
        z = (x - self.mean[cols]) / self.std[cols]
        a_up, a_down = z - self.k, -z - self.k
        if start.max() >= 0:
            active = np.arange(x.shape[0])[:, None] > start[None, :]
            a_up, a_down = np.where(active, a_up, 0.0), np.where(active, a_down, 0.0)
        up = self._lindley(self._s_up[cols], a_up)
        down = self._lindley(self._s_down[cols], a_down)
        alarm = ((up > self.h) & self._up) | ((down > self.h) & self._down)
        self._s_up[cols], self._s_down[cols] = up[-1], down[-1]
        return self._first(alarm)


def cusum_arl(k: float, h: float) -> float:
    """Siegmund's approximation of a one-sided CUSUM's in-control average run length for normal data, with
    allowance ``k`` and decision interval ``h`` in standard deviations (the two-sided chart's is about half).

    >>> round(cusum_arl(0.5, 5.0))
    938
    """
    b = h + 1.166
    return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)


class ADWIN(StreamDetector):
    """ADaptive WINdowing (Bifet & Gavaldà 2007) with cut points every ``clock`` values.

    Each stream keeps a window of recent values as sums over blocks of ``clock`` values (at most ``max_window``
    values). At each block boundary the window is split into a newer part of 1, 2, 3, 4, 6, 8, 12, ... blocks
    (geometric, like ADWIN's exponential histogram) and the older rest; if the two means differ by more than
    ADWIN's bound (River's form, with ``delta``), the older part of the largest such split is dropped. That is a
    new change -- an alarm -- when the dropped part reaches past the last alarm; otherwise it removes what was left
    of the change already reported. All streams receive a value per step, so block boundaries are shared and every
    test is vectorized.

    >>> import random
    >>> rng = random.Random(12345)
    >>> adwin = ADWIN()
    >>> for i, value in enumerate(rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)):
    ...     adwin.update(value)
    ...     if adwin.drift_detected:
    ...         print(f"change detected at index {i}, window {int(adwin.width[0])}")
    change detected at index 1023, window 32
    """

    _params = ("delta", "clock", "max_window", "min_window_length")
    _arrays = ("block_sum", "block_sq", "n_blocks", "cur_sum", "cur_sq", "cur_n", "head", "width", "since_alarm")
    width: np.ndarray  # values in each stream's window (read-only properties, like the rest of the state)
    n_blocks: np.ndarray

    _NEVER = 2**62  # since_alarm of a stream that never alarmed

    def __init__(
        self,
        n_streams: int = 1,
        *,
        delta: float = 0.002,
        clock: int = 32,
        max_window: int = 8192,
        min_window_length: int = 5,
    ) -> None:
        super().__init__(n_streams)
        if not 0 < delta < 1 or clock < 1 or max_window < 2 * clock:
            raise DataError(
                f"expected 0 < delta < 1, clock >= 1, max_window >= 2*clock; got {delta}, {clock}, {max_window}",
                where="ADWIN",
            )
        self.delta, self.clock, self.max_window = float(delta), int(clock), int(max_window)
        self.min_window_length = int(min_window_length)
        cap = self.max_window // self.clock
        # circular block store shared by all streams: head[0] is the slot of the next block to close
        self._block_sum = np.zeros((self.n_streams, cap))
        self._block_sq = np.zeros((self.n_streams, cap))
        self._n_blocks = np.zeros(self.n_streams, dtype=np.int64)
        self._cur_sum = np.zeros(self.n_streams)
        self._cur_sq = np.zeros(self.n_streams)
        self._cur_n = np.zeros(1, dtype=np.int64)
        self._head = np.zeros(1, dtype=np.int64)
        self._width = np.zeros(self.n_streams, dtype=np.int64)
        self._since_alarm = np.full(self.n_streams, self._NEVER, dtype=np.int64)
        sizes = sorted({s for b in range(16) for s in (2**b, 3 * 2 ** max(b - 1, 0)) if s <= cap})
        self._splits = np.array(sizes, dtype=np.int64)  # newer-part sizes in blocks
        self._split_list = sizes
        self._cap = cap
        self._consts: dict[int, list[tuple[float, float, float, float]]] = {}
        self._ks: dict[int, list[int]] = {}  # split sizes below each window size (blocks)

    @property
    def estimation(self) -> np.ndarray:
        """Mean of each stream's current window."""
        self._flush()
        total, _ = self._totals()
        return (total + self._cur_sum) / np.maximum(self._width, 1)

    # -- scalar path: the blocks as Python lists, oldest first ------------------------------------------------

    _x_sums: list[float]
    _x_sqs: list[float]
    _x_ps: list[float]  # prefix sums of _x_sums (ps[i] - ps[0]: the oldest i blocks), rebuilt every cap blocks
    _x_pq: list[float]  # the same for _x_sqs
    _x_rebase: int
    _x_cur_sum: float
    _x_cur_sq: float
    _x_cur_n: int
    _x_since: int

    def _load_scalar(self) -> None:
        cap = self._block_sum.shape[1]
        nb = int(self._n_blocks[0])
        order = [(int(self._head[0]) - nb + i) % cap for i in range(nb)]  # oldest .. newest
        self._x_sums = self._block_sum[0, order].tolist()
        self._x_sqs = self._block_sq[0, order].tolist()
        self._x_cur_sum, self._x_cur_sq = float(self._cur_sum[0]), float(self._cur_sq[0])
        self._x_cur_n = int(self._cur_n[0])
        self._x_since = int(self._since_alarm[0])
        self._rebase()
        self._live = True

    def _rebase(self) -> None:
        """Prefix sums afresh from the blocks (differences of a long-running sum would lose precision)."""
        self._x_ps = [0.0, *accumulate(self._x_sums)]
        self._x_pq = [0.0, *accumulate(self._x_sqs)]
        self._x_rebase = self._cap

    def _store_scalar(self) -> None:
        cap = self._block_sum.shape[1]
        nb = len(self._x_sums)
        head = nb % cap
        slots = [(head - nb + i) % cap for i in range(nb)]
        self._block_sum[0] = 0.0
        self._block_sq[0] = 0.0
        self._block_sum[0, slots] = self._x_sums
        self._block_sq[0, slots] = self._x_sqs
        self._head[0], self._n_blocks[0] = head, nb
        self._cur_sum[0], self._cur_sq[0], self._cur_n[0] = self._x_cur_sum, self._x_cur_sq, self._x_cur_n
        self._width[0] = nb * self.clock + self._x_cur_n  # the scalar path keeps no width: it follows from these
        self._since_alarm[0] = self._x_since

    def update(self, x: Any) -> None:
        if type(x) is not float or not self._one or x - x != 0.0:
            super().update(x)
            return
        if not self._live:
            self._load_scalar()
        self._x_cur_sum += x
        self._x_cur_sq += x * x
        n = self._x_cur_n + 1
        if n < self.clock:
            self._x_cur_n = n
            self.drift_detected = _FALSE
            return
        self._x_cur_n = 0
        if self._close_one():
            self.n_detections[0] += 1
            self.drift_detected = _TRUE
        else:
            self.drift_detected = _FALSE

    def _close_one(self) -> bool:
        sums, sqs, ps, pq = self._x_sums, self._x_sqs, self._x_ps, self._x_pq
        block, block_sq = self._x_cur_sum, self._x_cur_sq
        sums.append(block)
        sqs.append(block_sq)
        self._x_cur_sum = self._x_cur_sq = 0.0
        self._x_rebase -= 1
        if self._x_rebase <= 0:
            self._rebase()
            ps, pq = self._x_ps, self._x_pq
        else:
            ps.append(ps[-1] + block)
            pq.append(pq[-1] + block_sq)
        if len(sums) > self._cap:
            del sums[0], sqs[0], ps[0], pq[0]
        since = self._x_since = min(self._x_since + 1, self._NEVER)
        nb = len(sums)
        if nb < 2:
            return False
        ks = self._ks.get(nb)
        if ks is None:
            ks = self._ks[nb] = self._split_list[: bisect_left(self._split_list, nb)]
        # sums of the newest k blocks for every split size k below nb, and of the whole window
        last = ps[-1]
        pre = [last - ps[-1 - k] for k in ks]
        cut = self._cut_index(pre, last - ps[0], pq[-1] - pq[0], nb, len(ks))
        if cut < 0:
            return False
        last_sq = pq[-1]
        pre_sq = [last_sq - pq[-1 - k] for k in ks]  # only needed once a split is significant (rare)
        if since >= nb:
            alarm = True
        else:  # is the part since the last alarm split by the change? (see _detect)
            alarm = self._cut_index(pre, last - ps[-1 - since], last_sq - pq[-1 - since], since,
                                    bisect_left(ks, since)) >= 0
        while cut >= 0:  # drop older parts until no split of the window is significant
            nb = ks[cut]
            cut = self._cut_index(pre, pre[cut], pre_sq[cut], nb, cut)
        drop = len(sums) - nb
        del sums[:drop], sqs[:drop], ps[:drop], pq[:drop]
        if alarm:
            self._x_since = 0
        return alarm

    def _cut_index(self, pre: list[float], total: float, total_sq: float, nb: int, count: int) -> int:
        """Index (into the split sizes) of the largest significant split of a window of the newest ``nb`` blocks
        whose sum is ``total``; ``pre[i]``: sum of the newest ``split[i]`` blocks; -1: no significant split."""
        consts = self._consts.get(nb)
        if consts is None:
            consts = self._consts[nb] = self._split_constants(nb)
        nf = max(float(nb * self.clock), 2.0)
        sd = math.sqrt(max(total_sq / nf - (total / nf) ** 2, 0.0))
        best = -1
        # |mean_new - mean_old| = |new (1/n_new + 1/n_old) - total / n_old| against ADWIN's bound sd * a + b
        for i, new, (c_new, c_old, a, b) in zip(range(count), pre, consts):
            if abs(new * c_new - total * c_old) > sd * a + b:
                best = i
        return best

    def _split_constants(self, nb: int) -> list[tuple[float, float, float, float]]:
        """Per split of an ``nb``-block window: ``1/n_new + 1/n_old``, ``1/n_old`` and ADWIN's bound as
        ``sd * a + b`` (River's form)."""
        n = float(nb * self.clock)
        delta_prime = math.log(2 * math.log(max(n, 2.0)) / self.delta)
        out = []
        for k in self._split_list:
            if k >= nb:
                break
            n_new = float(k * self.clock)
            n_old = n - n_new
            m = 1.0 / (n_old - self.min_window_length + 1) + 1.0 / (n_new - self.min_window_length + 1)
            out.append((1 / n_new + 1 / n_old, 1 / n_old, math.sqrt(2 * m * delta_prime), 2.0 / 3.0 * delta_prime * m))
        return out

    # -- vectorized path --------------------------------------------------------------------------------------

    def _newest_first_cumsum(self, blocks: np.ndarray) -> np.ndarray:
        cap = blocks.shape[1]
        order = (self._head[0] - 1 - np.arange(cap)) % cap
        valid = np.arange(cap)[None, :] < self._n_blocks[:, None]
        return np.cumsum(np.where(valid, blocks[:, order], 0.0), axis=1)

    def _totals(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._n_blocks.any():
            return np.zeros(self.n_streams), np.zeros(self.n_streams)
        last = np.maximum(self._n_blocks - 1, 0)[:, None]
        s = np.take_along_axis(self._newest_first_cumsum(self._block_sum), last, axis=1)[:, 0]
        q = np.take_along_axis(self._newest_first_cumsum(self._block_sq), last, axis=1)[:, 0]
        return np.where(self._n_blocks > 0, s, 0.0), np.where(self._n_blocks > 0, q, 0.0)

    def _update_rows_all(self, rows: np.ndarray) -> np.ndarray:
        counts = np.zeros(self.n_streams, dtype=np.int64)
        lo = 0
        while lo < rows.shape[0]:
            # values up to the next block boundary only add to the open block: sum them at once
            hi = min(rows.shape[0], lo + self.clock - int(self._cur_n[0]))
            seg = rows[lo:hi]
            self._cur_sum += seg.sum(axis=0)
            self._cur_sq += (seg * seg).sum(axis=0)
            self._cur_n += hi - lo
            self._width += hi - lo
            if self._cur_n[0] == self.clock:
                counts += self._close_block()
            lo = hi
        return counts

    def _close_block(self) -> np.ndarray:
        cap = self._block_sum.shape[1]
        slot = int(self._head[0])
        # the slot being overwritten held the oldest block of streams whose store is full
        self._width -= np.where(self._n_blocks >= cap, self.clock, 0)
        self._block_sum[:, slot], self._block_sq[:, slot] = self._cur_sum, self._cur_sq
        self._head[0] = (slot + 1) % cap
        self._n_blocks = np.minimum(self._n_blocks + 1, cap)
        self._cur_sum[:] = 0.0
        self._cur_sq[:] = 0.0
        self._cur_n[0] = 0
        self._since_alarm = np.minimum(self._since_alarm + 1, self._NEVER)
        return self._detect()

    def _detect(self) -> np.ndarray:
        csum = self._newest_first_cumsum(self._block_sum)
        csq = self._newest_first_cumsum(self._block_sq)
        keep = self._largest_cuts(csum, csq, self._n_blocks)
        hit = keep > 0
        if not hit.any():
            return hit
        # A change is new when the values since the last alarm are themselves split by it; a cut whose older part
        # only holds values already in the window at the last alarm removes what was left of that change.
        since = np.minimum(self._since_alarm, self._n_blocks)
        alarm = hit & ((since >= self._n_blocks) | (self._largest_cuts(csum, csq, since) > 0))
        n_blocks = self._n_blocks.copy()
        while hit.any():  # drop older parts until no split of the window is significant
            n_blocks = np.where(hit, keep, n_blocks)
            keep = self._largest_cuts(csum, csq, n_blocks)
            hit = keep > 0
        changed = n_blocks != self._n_blocks
        self._n_blocks = n_blocks
        self._width = np.where(changed, n_blocks * self.clock + self._cur_n[0], self._width)
        self._since_alarm = np.where(alarm, 0, self._since_alarm)
        return alarm

    def _largest_cuts(self, csum: np.ndarray, csq: np.ndarray, n_blocks: np.ndarray) -> np.ndarray:
        """Per stream, the newer-part size (blocks) of the largest significant split of its newest ``n_blocks``
        blocks (0: none); ``csum``/``csq`` are newest-first cumulative block sums."""
        last = np.maximum(n_blocks - 1, 0)[:, None]
        total = np.take_along_axis(csum, last, axis=1)[:, 0]
        total_sq = np.take_along_axis(csq, last, axis=1)[:, 0]
        k = self._splits
        new_sum = csum[:, k - 1]
        n = (n_blocks * self.clock).astype(np.float64)
        n_new = (k * self.clock).astype(np.float64)[None, :]
        n_old = n[:, None] - n_new
        split = k[None, :] < n_blocks[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_new = new_sum / n_new
            mean_old = (total[:, None] - new_sum) / n_old
            nf = np.maximum(n, 2.0)
            variance = np.maximum(total_sq / nf - (total / nf) ** 2, 0.0)[:, None]
            delta_prime = np.log(2 * np.log(nf) / self.delta)[:, None]
            m = 1.0 / (n_old - self.min_window_length + 1) + 1.0 / (n_new - self.min_window_length + 1)
            eps = np.sqrt(2 * m * variance * delta_prime) + 2.0 / 3.0 * delta_prime * m
            cut = split & (np.abs(mean_new - mean_old) > eps)
        return np.where(cut, k[None, :], 0).max(axis=1)
