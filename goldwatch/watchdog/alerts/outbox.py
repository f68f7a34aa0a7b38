"""The durable alert outbox: store before send, delete only after the receiver accepted, survive any crash.

Every event is committed to a SQLite table (WAL, ``synchronous=FULL``) before the first attempt to send it, and
its row is deleted only after the sink answered ``delivered`` (PagerDuty's 202). Killing the process at any
instant therefore either leaves the row (it is sent on the next flush) or has already delivered it; the one case
that sends twice -- killed after the 202 and before the delete -- is harmless because PagerDuty folds events with
the same ``dedup_key`` into the same alert.

Delivery rules:

* **Order per dedup key.** A row is sent only when no older pending row of the same sink and ``order_key``
  exists, so a ``resolve`` can never overtake its ``trigger``, even while the trigger is backing off.
* **Retry** on 429, 5xx, timeouts and network errors with bounded, jittered exponential backoff
  (:class:`RetryPolicy`); ``Retry-After`` is honoured when longer.
* **Dead letters.** A 400 (or another client error) is not retried: the row stays, ``status = 'dead'``, with the
  receiver's reason, for ``goldwatch alert list`` and :meth:`Outbox.requeue`. An event still undelivered after
  ``max_age_s`` becomes a dead letter too ("expired"), so a dead endpoint cannot grow the queue forever.
* **Rate limit** per route (one per routing key / webhook URL): at most ``rate_limit_per_minute`` attempts in any
  60-second window, counted in the database so that every process sharing the outbox respects it together.
* **Leases.** A row being sent is leased for ``lease_s`` by the sending process; a second process flushing at
  the same time skips it. A lease whose owner process is gone (killed mid-send) is void at once, so a restarted
  sidecar resends immediately instead of waiting out the lease.

>>> import tempfile, pathlib
>>> from goldwatch.watchdog.alerts.sinks import SendResult
>>> class Printer:
...     name, route, rate_limit_per_minute = "printer", "printer", None
...     def send(self, kind, body):
...         print("sent", body["n"])
...         return SendResult("delivered", 202)
>>> box = Outbox.open(pathlib.Path(tempfile.mkdtemp()) / "outbox.sqlite")
>>> for n in (1, 2):
...     _ = box.enqueue("printer", "alert", {"n": n}, order_key="k", route="printer")
>>> report = box.drain({"printer": Printer()}, timeout_s=5)
sent 1
sent 2
>>> report.delivered, box.counts()
(2, {'pending': 0, 'dead': 0})
>>> box.close()
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

from goldwatch.checks import Check
from goldwatch.errors import DataError, StateError
from goldwatch.logs import get_logger
from goldwatch.watchdog.alerts.sinks import SendResult

__all__ = ["CRASH_ENV", "DeliveryReport", "Outbox", "OutboxEntry", "RetryPolicy"]

log = get_logger(__name__)

SCHEMA_VERSION = 1
RATE_WINDOW_S = 60.0
# Test-only hook: naming a step here makes the process SIGKILL itself at that step ("stored": after an event is
# committed and before it is sent; "sent": after the 202 and before the row is deleted). The kill tests use it.
CRASH_ENV = "GOLDWATCH_ALERTS_CRASH_AT"

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sink            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    order_key       TEXT NOT NULL,
    route           TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until     REAL,
    lease_owner     INTEGER,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'dead')),
    last_error      TEXT,
    dead_reason     TEXT
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (status, sink, order_key, id);
CREATE TABLE IF NOT EXISTS send_log (route TEXT NOT NULL, sent_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS send_log_route ON send_log (route, sent_at);
"""


class _Sender(Protocol):
    """The part of a :class:`~goldwatch.watchdog.alerts.sinks.Sink` the outbox uses."""

    name: str
    route: str
    rate_limit_per_minute: int | None

    def send(self, kind: str, body: Mapping[str, Any]) -> SendResult: ...


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _leased(lease_until: float | None, owner: int | None, now: float) -> bool:
    """Is a row held by a live sender? (Leases are per host: SQLite files are not shared across machines.)"""
    return lease_until is not None and float(lease_until) > now and _alive(owner)


def _crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Bounded, jittered exponential backoff.

    Attempt ``n`` (1-based) waits ``d = min(max_delay_s, base_s * 2**(n-1))`` scaled by a random factor in
    ``[1 - jitter, 1]``, so retries from many sidecars spread out and no wait exceeds ``max_delay_s``.

    >>> p = RetryPolicy(base_s=1.0, max_delay_s=30.0, jitter=0.0)
    >>> [p.delay(n, random.Random(0)) for n in (1, 2, 3, 6, 20)]
    [1.0, 2.0, 4.0, 30.0, 30.0]
    >>> 15.0 <= RetryPolicy(max_delay_s=30.0, jitter=0.5).delay(50, random.Random(1)) <= 30.0
    True
    """

    base_s: float = 2.0
    max_delay_s: float = 300.0
    jitter: float = 0.5
    max_age_s: float = 24 * 3600.0
    lease_s: float = 60.0

    def __post_init__(self) -> None:
        if not (self.base_s > 0 and self.max_delay_s >= self.base_s and 0 <= self.jitter <= 1
                and self.max_age_s > 0 and self.lease_s > 0):
            raise DataError(
                f"invalid retry policy {self}", where="RetryPolicy",
                hint="need base_s > 0, max_delay_s >= base_s, 0 <= jitter <= 1, max_age_s > 0, lease_s > 0",
            )

    def delay(self, attempt: int, rng: random.Random) -> float:
        # min() before the power would still overflow for huge attempts; cap the exponent.
        d = min(self.max_delay_s, self.base_s * 2.0 ** min(max(attempt - 1, 0), 60))
        return d * (1.0 - self.jitter * rng.random())


@dataclasses.dataclass(frozen=True)
class OutboxEntry:
    """One queued (``pending``) or ``dead`` event."""

    id: int
    sink: str
    kind: str
    order_key: str
    route: str
    body: dict[str, Any]
    created_at: float
    attempts: int
    next_attempt_at: float
    status: Literal["pending", "dead"]
    last_error: str | None
    dead_reason: str | None

    @property
    def summary(self) -> str:
        """A one-line description for listings: the action and the event's summary (or text)."""
        payload = self.body.get("payload") or self.body.get("goldwatch", {}).get("event", {}).get("payload") or {}
        action = self.body.get("event_action") or self.body.get("goldwatch", {}).get("event", {}).get(
            "event_action") or self.kind
        return f"{action}: {payload.get('summary') or self.body.get('text') or self.order_key}"


@dataclasses.dataclass
class DeliveryReport:
    """What a flush did. ``pending``/``dead`` are the counts left in the outbox afterwards."""

    delivered: int = 0
    retried: int = 0
    rejected: int = 0
    expired: int = 0
    rate_limited: int = 0
    unroutable: int = 0
    pending: int = 0
    dead: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Everything that was queued got delivered: nothing pending, nothing newly dead."""
        return self.pending == 0 and self.rejected == 0 and self.expired == 0

    def merge(self, other: DeliveryReport) -> None:
        for field in ("delivered", "retried", "rejected", "expired", "rate_limited", "unroutable"):
            setattr(self, field, getattr(self, field) + getattr(other, field))
        self.errors.extend(other.errors)
        self.pending, self.dead = other.pending, other.dead

    def to_checks(self, prefix: str = "alerts:outbox") -> list[Check]:
        measured = {k: getattr(self, k) for k in ("delivered", "retried", "rejected", "expired", "pending", "dead")}
        if self.rejected or self.expired:
            status: Literal["pass", "fail", "error"] = "fail"
            summary = f"{self.rejected + self.expired} event(s) became dead letters: " + "; ".join(self.errors[-3:])
        elif self.pending:
            status, summary = "error", f"{self.pending} event(s) still pending (last error: " + (
                self.errors[-1] if self.errors else "not yet due") + ")"
        else:
            status, summary = "pass", f"{self.delivered} event(s) delivered, outbox empty"
        return [Check(name=f"{prefix}:delivery", status=status, summary=summary, measured=measured,
                      threshold={"pending": 0, "dead_new": 0})]


class Outbox:
    """A SQLite-backed queue of outgoing alert events. Thread-safe; several processes may share the file."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        *,
        policy: RetryPolicy,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        rng: random.Random,
    ) -> None:
        self._conn = conn
        self.path = path
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._lock = threading.RLock()
        self._depth = 0
        self._stored = False

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> Outbox:
        """Open (creating if needed) the outbox database at ``path``."""
        path = Path(path)
        conn: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed alert survives power loss too, not just a process crash. Alerts are few.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"outbox schema version {version} is newer than this goldwatch ({SCHEMA_VERSION})",
                    where=str(path), hint="upgrade goldwatch, or point alerts.outbox_path elsewhere",
                )
            conn.executescript(SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            raise StateError(f"cannot open the alert outbox ({exc})", where=str(path),
                             hint="check the path and permissions; move a corrupt file aside and run again") from None
        except StateError:
            assert conn is not None
            conn.close()
            raise
        return cls(conn, path, policy=policy or RetryPolicy(), clock=clock, sleep=sleep, rng=random.Random(seed))

    @property
    def connection(self) -> sqlite3.Connection:
        """The database connection (the incident book shares it, and the outbox's transactions)."""
        return self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One atomic unit (nestable): an incident update and the events it causes commit together.

        ``durable=False`` (delivery bookkeeping only: leases, attempt counts, deleting a delivered row) commits
        without an fsync. Such a commit still survives a process crash (WAL); only a power cut can undo it, and
        undoing it merely resends an event PagerDuty deduplicates. Storing an event is always durable.
        """
        with self._lock:
            outer = self._depth == 0
            if outer:
                if not durable:
                    self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute("BEGIN IMMEDIATE")
                self._stored = False
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._depth -= 1
                if outer:
                    self._conn.execute("ROLLBACK")
                    self._conn.execute("PRAGMA synchronous=FULL")
                raise
            self._depth -= 1
            if outer:
                self._conn.execute("COMMIT")
                if not durable:
                    self._conn.execute("PRAGMA synchronous=FULL")
                if self._stored:
                    _crash_point("stored")

    def enqueue(self, sink: str, kind: str, body: Mapping[str, Any], *, order_key: str, route: str) -> int:
        """Store one event for ``sink``; committed (durable) when this returns outside a transaction."""
        try:
            text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise DataError(f"the event body is not plain JSON ({exc})", where=f"outbox event for {sink}",
                            hint="pass data through goldwatch.serialize.to_jsonable (NaN becomes null)") from None
        now = self._clock()
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO outbox (sink, kind, order_key, route, body, created_at, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sink, kind, order_key, route, text, now, now),
            )
            self._stored = True
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    # -- reading -------------------------------------------------------------------------------------------------

    def entries(self, status: Literal["pending", "dead"] | None = None) -> list[OutboxEntry]:
        """Queued events in id order (``status`` filters)."""
        sql = ("SELECT id, sink, kind, order_key, route, body, created_at, attempts, next_attempt_at, status, "
               "last_error, dead_reason FROM outbox")
        with self._lock:
            rows = (self._conn.execute(sql + " WHERE status = ? ORDER BY id", (status,)) if status
                    else self._conn.execute(sql + " ORDER BY id")).fetchall()
        return [OutboxEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), *r[6:]) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = dict(self._conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
        return {"pending": int(rows.get("pending", 0)), "dead": int(rows.get("dead", 0))}

    def requeue(self, ids: list[int] | None = None) -> int:
        """Put dead letters (all, or ``ids``) back in the queue, e.g. after fixing a routing key."""
        now = self._clock()
        with self.transaction() as conn:
            if ids is None:
                cur = conn.execute("UPDATE outbox SET status='pending', attempts=0, next_attempt_at=?, created_at=?, "
                                   "dead_reason=NULL WHERE status='dead'", (now, now))
            else:
                marks = ",".join("?" * len(ids))
                cur = conn.execute(f"UPDATE outbox SET status='pending', attempts=0, next_attempt_at=?, "
                                   f"created_at=?, dead_reason=NULL WHERE status='dead' AND id IN ({marks})",
                                   (now, now, *ids))
        return int(cur.rowcount)

    def next_due(self, sinks: Mapping[str, _Sender]) -> float | None:
        """When the next queued event may be attempted (head of its key, backoff and rate limit considered)."""
        now = self._clock()
        with self._lock:
            heads = self._heads()
            due: list[float] = []
            for _id, sink, _kind, _ok, route, _body, _created, _attempts, next_at, lease, owner in heads:
                if sink not in sinks:
                    continue
                t = max(float(next_at), float(lease) if _leased(lease, owner, now) else 0.0)
                limit = sinks[sink].rate_limit_per_minute
                if limit is not None:
                    t = max(t, self._rate_free_at(route, limit, now))
                due.append(t)
        return min(due) if due else None

    # -- sending -------------------------------------------------------------------------------------------------

    def _heads(self) -> list[tuple[Any, ...]]:
        # The oldest pending row of each (sink, order_key): only it may be sent, which keeps per-key order.
        return self._conn.execute(
            "SELECT o.id, o.sink, o.kind, o.order_key, o.route, o.body, o.created_at, o.attempts, "
            "o.next_attempt_at, o.lease_until, o.lease_owner FROM outbox o WHERE o.status = 'pending' AND NOT EXISTS ("
            "SELECT 1 FROM outbox p WHERE p.status = 'pending' AND p.sink = o.sink AND p.order_key = o.order_key "
            "AND p.id < o.id) ORDER BY o.id"
        ).fetchall()

    def _rate_free_at(self, route: str, limit: int, now: float) -> float:
        """The earliest time a new attempt on ``route`` stays within ``limit`` per 60 s window."""
        rows = self._conn.execute(
            "SELECT sent_at FROM send_log WHERE route = ? AND sent_at > ? ORDER BY sent_at DESC LIMIT ?",
            (route, now - RATE_WINDOW_S, limit),
        ).fetchall()
        if len(rows) < limit:
            return now
        return float(rows[-1][0]) + RATE_WINDOW_S

    def _claim(self, row_id: int, route: str, limit: int | None, now: float) -> bool:
        with self.transaction(durable=False) as conn:
            if limit is not None and self._rate_free_at(route, limit, now) > now:
                return False
            row = conn.execute("SELECT lease_until, lease_owner FROM outbox WHERE id = ? AND status = 'pending'",
                               (row_id,)).fetchone()
            if row is None or _leased(row[0], row[1], now):
                return False
            conn.execute("UPDATE outbox SET lease_until = ?, lease_owner = ? WHERE id = ?",
                         (now + self.policy.lease_s, os.getpid(), row_id))
            conn.execute("INSERT INTO send_log (route, sent_at) VALUES (?, ?)", (route, now))
        return True

    def deliver_once(self, sinks: Mapping[str, _Sender], *, deadline: float | None = None) -> DeliveryReport:
        """One pass: attempt every event that is due and at the head of its key. Never sleeps.

        With ``deadline`` (a clock value) no further attempt starts once a send ends past it (at least one
        is always made); the rest wait for the next pass.
        """
        report = DeliveryReport()
        now = self._clock()
        with self.transaction(durable=False) as conn:
            heads = self._heads()
            conn.execute("DELETE FROM send_log WHERE sent_at <= ?", (now - RATE_WINDOW_S,))
        for row_id, sink_name, kind, _order, route, body, created, attempts, next_at, lease, owner in heads:
            sink = sinks.get(sink_name)
            if sink is None:
                # Keep it: the sink may be configured again (e.g. the env var was missing in this process).
                report.unroutable += 1
                continue
            if float(next_at) > now or _leased(lease, owner, now):
                continue
            if now - float(created) > self.policy.max_age_s:
                self._kill(row_id, f"expired after {attempts} attempt(s) and {now - float(created):.0f} s")
                report.expired += 1
                report.errors.append(f"event {row_id} expired")
                continue
            if not self._claim(row_id, route, sink.rate_limit_per_minute, now):
                report.rate_limited += 1
                continue
            result = sink.send(kind, json.loads(body))
            self._settle(row_id, int(attempts) + 1, result, report, sink_name)
            now = self._clock()
            if deadline is not None and now >= deadline:
                break
        counts = self.counts()
        report.pending, report.dead = counts["pending"], counts["dead"]
        return report

    def _kill(self, row_id: int, reason: str) -> None:
        with self.transaction(durable=False) as conn:
            conn.execute("UPDATE outbox SET status = 'dead', dead_reason = ?, lease_until = NULL WHERE id = ?",
                         (reason, row_id))

    def _settle(self, row_id: int, attempts: int, result: SendResult, report: DeliveryReport, sink: str) -> None:
        if result.outcome == "delivered":
            _crash_point("sent")
            with self.transaction(durable=False) as conn:
                conn.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
            report.delivered += 1
            log.info("alert event %d delivered via %s (attempt %d)", row_id, sink, attempts)
        elif result.outcome == "reject":
            with self.transaction(durable=False) as conn:
                conn.execute("UPDATE outbox SET status = 'dead', attempts = ?, dead_reason = ?, last_error = ?, "
                             "lease_until = NULL WHERE id = ?", (attempts, result.detail, result.detail, row_id))
            report.rejected += 1
            report.errors.append(f"event {row_id} rejected by {sink}: {result.detail}")
            log.error("alert event %d rejected by %s, kept as a dead letter: %s", row_id, sink, result.detail)
        else:
            wait = self.policy.delay(attempts, self._rng)
            if result.retry_after_s is not None:
                wait = max(wait, min(result.retry_after_s, self.policy.max_delay_s))
            with self.transaction(durable=False) as conn:
                conn.execute("UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?, "
                             "lease_until = NULL WHERE id = ?", (attempts, self._clock() + wait, result.detail, row_id))
            report.retried += 1
            report.errors.append(f"event {row_id} via {sink}: {result.detail}")
            log.warning("alert event %d via %s not delivered (attempt %d: %s); retrying in %.1f s",
                        row_id, sink, attempts, result.detail, wait)

    def drain(self, sinks: Mapping[str, _Sender], *, timeout_s: float) -> DeliveryReport:
        """Deliver until the outbox holds nothing deliverable, or ``timeout_s`` passed (sleeping between tries)."""
        deadline = self._clock() + timeout_s
        total = DeliveryReport()
        while True:
            step = self.deliver_once(sinks, deadline=deadline)
            total.merge(step)
            due = self.next_due(sinks)
            now = self._clock()
            if due is None or now >= deadline or due > deadline:
                return total
            progressed = step.delivered or step.rejected or step.expired
            if not progressed:
                # Nothing moved: wait for the next due time (never a busy loop, never past the deadline).
                self._sleep(max(0.005, min(due, deadline) - now))
