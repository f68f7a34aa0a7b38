"""Bounded ingestion: a per-model queue that never blocks the sender, and the request/response pairing.

:class:`BoundedQueue` holds what the HTTP sink (or an in-process caller) hands over until the model's worker takes
it. It is bounded by items *and* bytes: a full queue drops the new item and counts it, so memory stays bounded
whatever the sender does and the sink answers at once (KServe's agent holds every event it could not deliver --
kserve#6167: a slow sink grew the agent to 500 MiB until it was OOM-killed; a sink that sheds load keeps both
sides alive, and the drop count says what was lost).

:class:`Pairer` pairs a request with its response by key (``ce-id`` or ``ce-requestid``), whichever arrives first.
A half that waits longer than ``ttl_s`` -- a response that was never logged (KServe logs responses only for a
200), a logger configured for requests only -- leaves as an orphan; its rows still count for its own part. The
pending halves are bounded by count and rows: past either bound the oldest leaves early, as an orphan.

>>> q = BoundedQueue(max_items=2, max_bytes=10)
>>> q.put("a", 4), q.put("b", 4), q.put("c", 1)
(True, True, False)
>>> q.drain(), q.dropped
(['a', 'b'], 1)
>>> p = Pairer(ttl_s=5.0, max_pending=100, max_rows=10_000)
>>> p.add("id-1", "response", "r1", rows=1, now=0.0) is None
True
>>> p.add("id-1", "request", "q1", rows=1, now=0.1)
('q1', 'r1')
>>> p.add("id-2", "request", "q2", rows=1, now=0.2); [o[1:] for o in p.expire(now=10.0)]
[('request', 'q2')]
"""

from __future__ import annotations

import collections
import threading
import zlib
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

__all__ = ["BoundedQueue", "IngestCounters", "Pairer", "Sampler"]

T = TypeVar("T")


class BoundedQueue(Generic[T]):
    """A thread-safe FIFO bounded by item count and total bytes; ``put`` never blocks (a full queue drops)."""

    def __init__(self, *, max_items: int, max_bytes: int) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("max_items and max_bytes must be positive")
        self.max_items, self.max_bytes = int(max_items), int(max_bytes)
        self._items: collections.deque[tuple[T, int]] = collections.deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self.dropped = 0
        self.dropped_bytes = 0
        self.accepted = 0
        self.high_water_bytes = 0

    def put(self, item: T, nbytes: int, *, force: bool = False) -> bool:
        """Enqueue ``item`` (``nbytes`` of memory), or drop it and count it when either bound would be passed.
        ``force``: a control message (a version switch) that must not be lost; it goes in whatever the bounds."""
        with self._lock:
            if not force and (len(self._items) >= self.max_items or self._bytes + nbytes > self.max_bytes):
                self.dropped += 1
                self.dropped_bytes += nbytes
                return False
            self._items.append((item, nbytes))
            self._bytes += nbytes
            self.accepted += 1
            if self._bytes > self.high_water_bytes:
                self.high_water_bytes = self._bytes
            return True

    def drain(self, limit: int | None = None) -> list[T]:
        """Take up to ``limit`` items (all by default), oldest first."""
        with self._lock:
            n = len(self._items) if limit is None else min(limit, len(self._items))
            taken = [self._items.popleft() for _ in range(n)]
            self._bytes -= sum(b for _, b in taken)
        return [item for item, _ in taken]

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes


class IngestCounters:
    """Counts of what ingestion did with each event, by outcome; ``snapshot()`` for metrics and window reports."""

    OUTCOMES = ("events", "pairs", "rows", "dropped_queue_full", "sampled_out", "probes", "orphan_requests",
                "orphan_responses",
                "duplicates", "other_version", "unknown_model", "row_mismatch")

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.unparseable: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def add(self, outcome: str, n: int = 1) -> None:
        with self._lock:
            self.counts[outcome] += n

    def bad(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.unparseable[reason] += n

    def snapshot(self) -> dict[str, int]:
        """Every outcome (zeros included) and ``unparseable:<reason>`` per reason seen."""
        with self._lock:
            out = {k: int(self.counts.get(k, 0)) for k in self.OUTCOMES}
            out.update({f"unparseable:{k}": int(v) for k, v in sorted(self.unparseable.items())})
            out["unparseable"] = int(sum(self.unparseable.values()))
        return out

    def restore(self, data: dict[str, int]) -> None:
        with self._lock:
            self.counts = collections.Counter({k: int(v) for k, v in data.items()
                                               if ":" not in k and k != "unparseable"})
            self.unparseable = collections.Counter({k.split(":", 1)[1]: int(v) for k, v in data.items()
                                                    if k.startswith("unparseable:")})


class Sampler:
    """Keeps up with a sender faster than the consumer by testing a uniform sample of the traffic.

    A pair is kept or left out as a whole, by a hash of its key (``ce-id`` / ``ce-requestid``): a request and its
    response always share the decision, and the kept pairs are a uniform sample. The rate follows the measured
    arrival and processing rates (``rate = 0.8 x processed / arrived`` per second, smoothed, between ``min_rate``
    and 1), so a sustained burst thins the windows instead of filling the queue -- a full queue still drops, as the
    last resort -- and the rate goes back to 1 when the consumer catches up. Windows then close on sampled rows;
    ``sampled_out`` counts what was left out.

    >>> s = Sampler(min_rate=0.05)
    >>> s.keep("5f0c7a9e-1"), s.rate
    (True, 1.0)
    >>> s.adjust(arrived=10_000, processed=2_000, busy_s=1.0, elapsed_s=1.0); round(s.rate, 2)
    0.16
    """

    def __init__(self, *, min_rate: float = 0.01, smoothing: float = 0.5) -> None:
        self.min_rate, self.smoothing = float(min_rate), float(smoothing)
        self.rate = 1.0
        self._threshold = 1 << 32
        self._arrival = 0.0  # events per second, smoothed
        self._capacity = 0.0  # events the consumer processes per busy second, smoothed

    def keep(self, key: str) -> bool:
        return self._threshold > (1 << 32) - 1 or zlib.crc32(key.encode()) < self._threshold

    def adjust(self, *, arrived: int, processed: int, busy_s: float, elapsed_s: float, backlog: int = 0) -> None:
        """One consumer round: ``arrived`` events since the last one (kept or not), ``processed`` of them handled in
        ``busy_s`` seconds of work, ``elapsed_s`` since the last round, ``backlog`` events still queued after it."""
        if elapsed_s <= 0:
            return
        a = self.smoothing
        self._arrival = a * self._arrival + (1 - a) * arrived / elapsed_s if self._arrival else arrived / elapsed_s
        if processed and busy_s > 0:
            capacity = processed / busy_s
            self._capacity = a * self._capacity + (1 - a) * capacity if self._capacity else capacity
        if self._capacity <= 0 or self._arrival <= 0:
            return
        target = min(1.0, max(self.min_rate, 0.8 * self._capacity / self._arrival))
        drain_s = backlog / self._capacity  # the work already queued: keep it under half a second
        if drain_s > 0.5:
            target = max(self.min_rate, target * 0.5 / drain_s)
        # go down at once; come back up gently (at most x1.5 a quarter second, however short the rounds)
        self.rate = target if target < self.rate else min(target, self.rate * 1.5 ** min(1.0, elapsed_s / 0.25))
        self._threshold = int(self.rate * (1 << 32))


class Pairer:
    """Pairs request and response halves by key, in either order; halves that wait too long leave as orphans."""

    def __init__(self, *, ttl_s: float, max_pending: int, max_rows: int) -> None:
        self.ttl_s, self.max_pending, self.max_rows = float(ttl_s), int(max_pending), int(max_rows)
        # key -> (arrival time, kind, payload, rows); insertion order is arrival order
        self._pending: collections.OrderedDict[Hashable, tuple[float, str, Any, int]] = collections.OrderedDict()
        self._rows = 0
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def pending_rows(self) -> int:
        return self._rows

    def add(self, key: Hashable, kind: str, payload: Any, *, rows: int, now: float) -> tuple[Any, Any] | None:
        """Offer one half; returns ``(request_payload, response_payload)`` when it completes a pair."""
        waiting = self._pending.get(key)
        if waiting is not None:
            if waiting[1] == kind:  # a resent event: the first one stands
                self.duplicates += 1
                return None
            del self._pending[key]
            self._rows -= waiting[3]
            return (payload, waiting[2]) if kind == "request" else (waiting[2], payload)
        self._pending[key] = (now, kind, payload, rows)
        self._rows += rows
        return None

    def expire(self, *, now: float) -> list[tuple[Hashable, str, Any]]:
        """Halves older than the TTL, and the oldest ones while a bound is exceeded: ``(key, kind, payload)``."""
        out = []
        while self._pending:
            key, (arrived, kind, payload, rows) = next(iter(self._pending.items()))
            over = len(self._pending) > self.max_pending or self._rows > self.max_rows
            if not over and now - arrived < self.ttl_s:
                break
            del self._pending[key]
            self._rows -= rows
            out.append((key, kind, payload))
        return out

    def pending_kind(self, key: Hashable) -> str | None:
        """The kind of the half waiting under ``key``, if any."""
        waiting = self._pending.get(key)
        return None if waiting is None else waiting[1]

    def discard(self, key: Hashable) -> bool:
        """Drop the half waiting under ``key`` (its pair turned out to be left out); whether there was one."""
        waiting = self._pending.pop(key, None)
        if waiting is None:
            return False
        self._rows -= waiting[3]
        return True

    def flush(self) -> list[tuple[Hashable, str, Any]]:
        """Every pending half, as orphans (shutdown)."""
        out = [(key, kind, payload) for key, (_, kind, payload, _) in self._pending.items()]
        self._pending.clear()
        self._rows = 0
        return out
