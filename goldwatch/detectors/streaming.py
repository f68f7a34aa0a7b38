"""Streaming change detectors, vectorized across many streams: Page-Hinkley, CUSUM and ADWIN.

The API follows River's drift detectors: call ``update(x)`` with one value per stream (shape ``(n_streams,)``)
or a batch of ``k`` consecutive values per stream (shape ``(k, n_streams)``), then read ``drift_detected``, a
boolean array with one entry per stream (True when the stream changed during that update call). A stream that
detects a change restarts from the values after the change, so later alarms are about later changes.

Defaults are chosen not to alarm on a stable stream. Page-Hinkley and CUSUM standardise every value by the
stream's running mean and standard deviation, so their parameters are in standard deviations whatever the scale
of the data:

* :class:`PageHinkley` -- ``delta=0.1``, ``threshold=50``: P(false alarm) in 10,000 stable values ~ 1e-3.
* :class:`CUSUM` -- ``k=0.5``, ``h=14``: in-control average run length ~ 4e6 (Siegmund's approximation). River's
  textbook ``h=5`` has an ARL near 470, so it alarms on most stable 1,000-value streams (River issue #1914).
* :class:`ADWIN` -- ``delta=0.002`` (River's default), cut points every ``clock=32`` values.

State is plain numpy arrays and numbers: ``state_dict()`` / ``from_state_dict()`` round-trip it (no pickle), e.g.
through ``numpy.savez``.

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
>>> PageHinkley.from_state_dict(ph.state_dict()).n_seen.tolist() == ph.n_seen.tolist()
True
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from goldwatch.errors import DataError

__all__ = ["ADWIN", "CUSUM", "PageHinkley", "StreamDetector"]


class StreamDetector:
    """Common machinery: input checks, per-step loop, state round trip."""

    _params: ClassVar[tuple[str, ...]] = ()
    _arrays: ClassVar[tuple[str, ...]] = ()

    def __init__(self, n_streams: int) -> None:
        if not isinstance(n_streams, (int, np.integer)) or n_streams < 1:
            raise DataError(f"expected a positive integer, got {n_streams!r}", where="n_streams")
        self.n_streams = int(n_streams)
        self.drift_detected = np.zeros(self.n_streams, dtype=bool)
        self.n_detections = np.zeros(self.n_streams, dtype=np.int64)

    def _rows(self, x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
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

    def update(self, x: Any) -> StreamDetector:
        """Feed one value (or k consecutive values) per stream; ``drift_detected`` says which streams changed."""
        rows = self._rows(x)
        fired = np.zeros(self.n_streams, dtype=bool)
        for row in rows:  # time is sequential; every step is vectorized across streams
            hit = self._step(row)
            fired |= hit
        self.drift_detected = fired
        self.n_detections += fired
        return self

    def _step(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Parameters and state as plain numbers and numpy arrays."""
        state: dict[str, Any] = {"type": type(self).__name__, "n_streams": self.n_streams}
        state.update({name: getattr(self, name) for name in self._params})
        state.update({name: getattr(self, name).copy() for name in (*self._arrays, "n_detections")})
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Any:
        if state.get("type") != cls.__name__:
            raise DataError(f"expected a {cls.__name__} state, got {state.get('type')!r}", where="state")
        obj = cls(n_streams=int(state["n_streams"]), **{p: state[p] for p in cls._params})
        for name in (*cls._arrays, "n_detections"):
            value = np.asarray(state[name])
            if value.shape != getattr(obj, name).shape:
                raise DataError(f"expected shape {getattr(obj, name).shape}, got {value.shape}", where=f"state.{name}")
            setattr(obj, name, value.astype(getattr(obj, name).dtype))
        return obj


class _Standardized(StreamDetector):
    """Running mean/variance per stream (Welford), reset per stream after a detection."""

    def __init__(self, n_streams: int, min_instances: int) -> None:
        super().__init__(n_streams)
        if min_instances < 2:
            raise DataError(f"expected min_instances >= 2, got {min_instances}", where="min_instances")
        self.min_instances = int(min_instances)
        self.n_seen = np.zeros(self.n_streams, dtype=np.int64)
        self.mean = np.zeros(self.n_streams)
        self.m2 = np.zeros(self.n_streams)

    def _standardize(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """z-score of x against the values seen before it, then fold x into the running moments."""
        n = self.n_seen
        std = np.sqrt(np.where(n > 1, self.m2 / np.maximum(n - 1, 1), 0.0))
        # a constant stream has std 0: any change from it is infinitely many standard deviations, but a
        # tiny floor keeps the arithmetic finite; the floor is relative to the level of the data
        floor = 1e-12 * np.maximum(np.abs(self.mean), 1.0)
        z = (x - self.mean) / np.maximum(std, floor)
        n1 = n + 1
        delta = x - self.mean
        self.mean = self.mean + delta / n1
        self.m2 = self.m2 + delta * (x - self.mean)
        self.n_seen = n1
        ready = n >= self.min_instances
        return np.where(ready, z, 0.0), ready

    def _reset(self, mask: np.ndarray) -> None:
        for name in self._arrays:
            arr = getattr(self, name)
            arr[mask] = 0


class PageHinkley(_Standardized):
    """Page-Hinkley test for a change in the mean, both directions, in standard-deviation units.

    ``delta``: magnitude of change tolerated (std); ``threshold``: alarm level of the cumulative deviation (std);
    ``alpha``: forgetting factor of the cumulative sums (River's default 0.9999).
    """

    _params = ("min_instances", "delta", "threshold", "alpha")
    _arrays = ("n_seen", "mean", "m2", "sum_up", "min_up", "sum_down", "max_down")

    def __init__(
        self,
        n_streams: int,
        *,
        min_instances: int = 30,
        delta: float = 0.1,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
    ) -> None:
        super().__init__(n_streams, min_instances)
        if delta < 0 or threshold <= 0 or not 0 < alpha <= 1:
            raise DataError(
                f"expected delta >= 0, threshold > 0, 0 < alpha <= 1; got {delta}, {threshold}, {alpha}",
                where="PageHinkley",
            )
        self.delta, self.threshold, self.alpha = float(delta), float(threshold), float(alpha)
        self.sum_up = np.zeros(self.n_streams)
        self.min_up = np.zeros(self.n_streams)
        self.sum_down = np.zeros(self.n_streams)
        self.max_down = np.zeros(self.n_streams)

    def _step(self, x: np.ndarray) -> np.ndarray:
        z, ready = self._standardize(x)
        self.sum_up = np.where(ready, self.alpha * self.sum_up + z - self.delta, 0.0)
        self.sum_down = np.where(ready, self.alpha * self.sum_down + z + self.delta, 0.0)
        self.min_up = np.minimum(self.min_up, self.sum_up)
        self.max_down = np.maximum(self.max_down, self.sum_down)
        hit = ready & (
            (self.sum_up - self.min_up > self.threshold) | (self.max_down - self.sum_down > self.threshold)
        )
        if hit.any():
            self._reset(hit)
        return hit


class CUSUM(_Standardized):
    """Two-sided tabular CUSUM on standardised values: S+ = max(0, S+ + z - k), S- = max(0, S- - z - k),
    alarm when either exceeds ``h`` (both in standard deviations)."""

    _params = ("min_instances", "k", "h")
    _arrays = ("n_seen", "mean", "m2", "s_up", "s_down")

    def __init__(self, n_streams: int, *, min_instances: int = 30, k: float = 0.5, h: float = 14.0) -> None:
        super().__init__(n_streams, min_instances)
        if k < 0 or h <= 0:
            raise DataError(f"expected k >= 0 and h > 0, got k={k}, h={h}", where="CUSUM")
        self.k, self.h = float(k), float(h)
        self.s_up = np.zeros(self.n_streams)
        self.s_down = np.zeros(self.n_streams)

    def _step(self, x: np.ndarray) -> np.ndarray:
        z, _ready = self._standardize(x)
        self.s_up = np.maximum(0.0, self.s_up + z - self.k)
        self.s_down = np.maximum(0.0, self.s_down - z - self.k)
        hit = (self.s_up > self.h) | (self.s_down > self.h)
        if hit.any():
            self._reset(hit)
        return hit


class ADWIN(StreamDetector):
    """ADaptive WINdowing (Bifet & Gavaldà 2007) across streams, with cut points every ``clock`` values.

    Each stream keeps a window of recent values as sums over blocks of ``clock`` values (at most ``max_window``
    values). At each block boundary every split of the window into an older and a newer part is tested; if their
    means differ by more than ADWIN's bound (River's form, with ``delta``), the older part is dropped and the
    stream reports a change.
    """

    _params = ("delta", "clock", "max_window", "min_window_length")
    _arrays = ("block_sum", "block_sq", "n_blocks", "cur_sum", "cur_sq", "cur_n", "width")

    def __init__(
        self,
        n_streams: int,
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
        # block_sum[s, 0] is the newest complete block
        self.block_sum = np.zeros((self.n_streams, cap))
        self.block_sq = np.zeros((self.n_streams, cap))
        self.n_blocks = np.zeros(self.n_streams, dtype=np.int64)
        self.cur_sum = np.zeros(self.n_streams)
        self.cur_sq = np.zeros(self.n_streams)
        self.cur_n = np.zeros(1, dtype=np.int64)  # every stream gets a value per step: one shared count
        self.width = np.zeros(self.n_streams, dtype=np.int64)

    @property
    def estimation(self) -> np.ndarray:
        """Mean of each stream's current window."""
        total = self.block_sum.sum(axis=1) + self.cur_sum
        return total / np.maximum(self.width, 1)

    def _step(self, x: np.ndarray) -> np.ndarray:
        self.cur_sum += x
        self.cur_sq += x * x
        self.cur_n += 1
        self.width += 1
        if self.cur_n[0] < self.clock:
            return np.zeros(self.n_streams, dtype=bool)
        # close the block: shift older blocks back, dropping the oldest beyond max_window
        self.block_sum = np.roll(self.block_sum, 1, axis=1)
        self.block_sq = np.roll(self.block_sq, 1, axis=1)
        cap = self.block_sum.shape[1]
        overflow = self.n_blocks >= cap
        self.width -= np.where(overflow, self.clock, 0)
        self.block_sum[:, 0], self.block_sq[:, 0] = self.cur_sum, self.cur_sq
        self.n_blocks = np.minimum(self.n_blocks + 1, cap)
        self.cur_sum[:] = 0.0
        self.cur_sq[:] = 0.0
        self.cur_n[0] = 0
        return self._detect()

    def _detect(self) -> np.ndarray:
        valid = np.arange(self.block_sum.shape[1])[None, :] < self.n_blocks[:, None]
        sums = np.where(valid, self.block_sum, 0.0)
        sqs = np.where(valid, self.block_sq, 0.0)
        new_sum = np.cumsum(sums, axis=1)  # newest k+1 blocks
        total = new_sum[:, -1]
        total_sq = np.sum(sqs, axis=1)
        n = self.n_blocks * self.clock
        n_new = (np.arange(self.block_sum.shape[1]) + 1) * self.clock
        n_old = n[:, None] - n_new[None, :]
        split = valid & (n_old >= self.clock)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_new = new_sum / n_new[None, :]
            mean_old = (total[:, None] - new_sum) / n_old
            nf = np.maximum(n, 2).astype(np.float64)
            variance = np.maximum(total_sq / nf - (total / nf) ** 2, 0.0)
            delta_prime = np.log(2 * np.log(nf) / self.delta)
            m = 1.0 / (n_old - self.min_window_length + 1) + 1.0 / (n_new[None, :] - self.min_window_length + 1)
            eps = np.sqrt(2 * m * variance[:, None] * delta_prime[:, None]) + 2.0 / 3.0 * delta_prime[:, None] * m
            cut = split & (np.abs(mean_new - mean_old) > eps)
        hit = cut.any(axis=1)
        if hit.any():
            # drop the older part of the largest significant split (the next block boundary re-checks the rest)
            keep = np.where(cut, np.arange(self.block_sum.shape[1])[None, :] + 1, 0).max(axis=1)
            self.n_blocks = np.where(hit, keep, self.n_blocks)
            self.width = np.where(hit, self.n_blocks * self.clock, self.width)
        return hit


def _check_arl(k: float, h: float) -> float:
    """Siegmund's approximation of a one-sided CUSUM's in-control average run length (documentation aid).

    >>> round(_check_arl(0.5, 5.0))
    938
    """
    b = h + 1.166
    return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)
