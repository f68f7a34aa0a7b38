"""The fleet's shared incident book: one PagerDuty incident per problem, opened once and resolved once, however many
sidecars see it.

Every sidecar derives the same PagerDuty ``dedup_key`` from (model, check class), so their pages land on one
incident. Alone, though, each sidecar keeps its own book of what it has open: the first pod to recover would resolve
the shared incident while another pod still fails, and that pod's next page would open a new one. When the fleet
shares a registry database, the sidecars keep this book in it instead:

* ``fleet_incidents``: per dedup key, open or resolved, the incident number, and the last page sent (severity,
  summary, a fingerprint of what failed, when, by which host, and -- until that host confirms it queued the page
  in its durable outbox -- ``pending``);
* ``fleet_participants``: per dedup key, the hosts that see the problem now.

Each call is one transaction with the incident's row locked (``FOR UPDATE``), so two hosts never both open, or both
resolve, the same incident:

* :meth:`FleetIncidents.trigger` -- the host joins. A page is sent when the incident is new to the fleet, when it
  changed (severity, or which checks fail and how), when the last one is older than ``renotify_s``, or when the host
  that decided to send it never confirmed it queued it and is this host (a crash in between) or has vanished;
  otherwise it is already on the incident and nothing is sent;
* :meth:`FleetIncidents.passed` -- the host leaves; the resolve is sent only when no live participant is left;
* :meth:`FleetIncidents.sweep` -- an open incident whose participants have all vanished (their hosts' heartbeats,
  ``hosts.last_seen``, older than ``ttl_s``) is resolved by one of the hosts watching the model; a decision whose
  sender vanished before confirming it is taken over.

A host is live while its heartbeat (:meth:`~goldwatch.watchdog.registry.Registry.heartbeat`) is younger than
``ttl_s``. Sending is at least once: a decision is ``pending`` on its sender until :meth:`FleetIncidents.confirm`,
and a pending decision is sent again by its sender after a restart (:meth:`FleetIncidents.unconfirmed`) or taken
over by another host once the sender vanished.

>>> import tempfile, pathlib, time
>>> from goldwatch.watchdog.registry import Registry
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> reg = {h: Registry.open(d, host=h) for h in ("pod-a", "pod-b")}        # opening records a heartbeat
>>> book = {h: reg[h].incidents for h in reg}
>>> now = time.time()
>>> page = dict(model="fraud", check_class="integrity", severity="critical", summary="w differs", fingerprint="f1",
...             renotify_s=3600.0, ttl_s=90.0)
>>> a = book["pod-a"].trigger("goldwatch/fraud/integrity", now=now, **page)
>>> b = book["pod-b"].trigger("goldwatch/fraud/integrity", now=now + 1, **page)
>>> (a.send, a.reason), (b.send, b.reason)
((True, 'new'), (False, 'unchanged'))
>>> book["pod-a"].confirm("goldwatch/fraud/integrity", number=a.number)
>>> first = book["pod-a"].passed("goldwatch/fraud/integrity", now=now + 2, ttl_s=90.0)
>>> last = book["pod-b"].passed("goldwatch/fraud/integrity", now=now + 3, ttl_s=90.0)
>>> (first.send, first.reason, first.participants), (last.send, last.reason)
((False, 'others-failing', ('pod-b',)), (True, 'last'))
>>> for r in reg.values(): r.close()
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
from collections.abc import Collection
from typing import Literal

from goldwatch.watchdog.registry.storage import Database

__all__ = ["FleetDecision", "FleetIncident", "FleetIncidents", "Takeover"]

Reason = Literal["new", "changed", "renotify", "resend", "unchanged", "last", "others-failing", "not-open"]


@dataclasses.dataclass(frozen=True)
class FleetDecision:
    """What the fleet's book decided for one host's page or pass.

    ``send``: this host sends the event (then calls :meth:`FleetIncidents.confirm`). ``number`` counts the
    incidents this key has had. ``participants``: the live hosts that still see the problem after the change.
    """

    send: bool
    reason: Reason
    number: int
    participants: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class FleetIncident:
    """One row of the fleet's book, with the hosts that currently see the problem."""

    dedup_key: str
    model: str
    check_class: str
    state: Literal["open", "resolved"]
    number: int
    severity: str
    summary: str
    fingerprint: str
    opened_at: float
    last_sent_at: float
    sent_by: str
    pending: str | None
    resolved_at: float | None
    resolved_by: str | None
    participants: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Takeover:
    """An event this host must now send for the fleet (after :meth:`FleetIncidents.sweep` or a restart):
    ``action`` resolve or trigger, with the incident it belongs to and why."""

    action: Literal["trigger", "resolve"]
    incident: FleetIncident
    why: str


_COLUMNS = ("dedup_key, model, check_class, state, number, severity, summary, fingerprint, opened_at, last_sent_at, "
            "sent_by, pending, resolved_at, resolved_by")


def _iso(epoch: float) -> str:
    """An epoch as the registry's timestamps are written (UTC ISO 8601 with microseconds: compares as text)."""
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).isoformat(timespec="microseconds")


class FleetIncidents:
    """The fleet's incident book in the registry database, for the host ``db.host`` (see the module docstring).

    Not thread-safe (one :class:`~goldwatch.watchdog.registry.storage.Database` connection): callers serialise.
    """

    def __init__(self, db: Database, *, timeout_s: float = 5.0) -> None:
        self.db = db
        self.timeout_s = timeout_s

    def _bounded(self) -> None:
        """A page must not wait on a busy database: inside a transaction, a lock or a statement that takes longer
        than ``timeout_s`` fails it (ConcurrentChangeError / DatabaseUnavailableError), and the caller pages alone."""
        if self.db.dialect == "postgresql":
            ms = max(1, int(self.timeout_s * 1000))
            self.db.execute(f"SET LOCAL lock_timeout = {ms}")  # another host holds the row
            self.db.execute(f"SET LOCAL statement_timeout = {2 * ms}")  # the server itself is slow

    @property
    def host(self) -> str:
        return self.db.host

    # ---- reading ------------------------------------------------------------------------------------------
    def _row(self, key: str, *, lock: bool) -> FleetIncident | None:
        row = self.db.one(f"SELECT {_COLUMNS} FROM fleet_incidents WHERE dedup_key = ?"
                          + (self.db.for_update if lock else ""), (key,))
        return None if row is None else FleetIncident(*row)

    def _live(self, key: str, *, now_s: float, ttl_s: float, exclude: str | None = None) -> tuple[str, ...]:
        rows = self.db.query(
            "SELECT p.host FROM fleet_participants p JOIN hosts h ON h.host = p.host "
            "WHERE p.dedup_key = ? AND h.last_seen >= ? ORDER BY p.host", (key, _iso(now_s - ttl_s)))
        return tuple(r[0] for r in rows if r[0] != exclude)

    def _alive(self, host: str, *, now_s: float, ttl_s: float) -> bool:
        row = self.db.one("SELECT last_seen FROM hosts WHERE host = ?", (host,))
        return row is not None and str(row[0]) >= _iso(now_s - ttl_s)

    def get(self, key: str, *, now_s: float | None = None, ttl_s: float | None = None) -> FleetIncident | None:
        """The incident of ``key`` with its live participants (every participant when no ``ttl_s`` is given)."""
        found = self._row(key, lock=False)
        if found is None:
            return None
        if ttl_s is None or now_s is None:
            hosts = tuple(r[0] for r in self.db.query(
                "SELECT host FROM fleet_participants WHERE dedup_key = ? ORDER BY host", (key,)))
        else:
            hosts = self._live(key, now_s=now_s, ttl_s=ttl_s)
        return dataclasses.replace(found, participants=hosts)

    def list(self, *, state: Literal["open", "resolved"] | None = None,
             models: Collection[str] | None = None) -> builtins.list[FleetIncident]:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM fleet_incidents WHERE number > 0"
                             + (" AND state = ?" if state else "") + " ORDER BY dedup_key",
                             (state,) if state else ())
        out = []
        for r in rows:
            inc = FleetIncident(*r)
            if models is None or inc.model in models:
                hosts = tuple(x[0] for x in self.db.query(
                    "SELECT host FROM fleet_participants WHERE dedup_key = ? ORDER BY host", (inc.dedup_key,)))
                out.append(dataclasses.replace(inc, participants=hosts))
        return out

    # ---- decisions ----------------------------------------------------------------------------------------
    def _locked(self, key: str, model: str, check_class: str) -> FleetIncident:
        # a placeholder row (number 0, resolved) first, so there is always a row to lock: two hosts creating the
        # same key's row at once would otherwise both insert
        self.db.execute(
            "INSERT INTO fleet_incidents (dedup_key, model, check_class, state, number, severity, summary, "
            "fingerprint, opened_at, last_sent_at, sent_by) VALUES (?, ?, ?, 'resolved', 0, '', '', '', 0, 0, '') "
            "ON CONFLICT (dedup_key) DO NOTHING", (key, model, check_class))
        found = self._row(key, lock=True)
        assert found is not None  # inserted or already there, in this transaction
        return found

    def trigger(self, key: str, *, model: str, check_class: str, severity: str, summary: str, fingerprint: str,
                now: float, renotify_s: float, ttl_s: float) -> FleetDecision:
        """This host sees the problem of ``key``: join its participants; decide whether this host sends the page."""
        with self.db.transaction():
            self._bounded()
            row = self._locked(key, model, check_class)
            self.db.execute("INSERT INTO fleet_participants (dedup_key, host, joined_at) VALUES (?, ?, ?) "
                            "ON CONFLICT (dedup_key, host) DO NOTHING", (key, self.host, now))
            reason: Reason
            number = row.number
            if row.state != "open":
                reason, number = "new", row.number + 1
                self.db.execute(
                    "UPDATE fleet_incidents SET state = 'open', number = ?, opened_at = ?, resolved_at = NULL, "
                    "resolved_by = NULL WHERE dedup_key = ?", (number, now, key))
            elif row.severity != severity or row.fingerprint != fingerprint:
                reason = "changed"
            elif now - row.last_sent_at >= renotify_s:
                reason = "renotify"
            elif row.pending is not None and (row.pending == self.host or not self._alive(
                    row.pending, now_s=now, ttl_s=ttl_s)):
                reason = "resend"  # its sender may have died before queueing it
            else:
                reason = "unchanged"
            send = reason != "unchanged"
            if send:
                self.db.execute(
                    "UPDATE fleet_incidents SET severity = ?, summary = ?, fingerprint = ?, last_sent_at = ?, "
                    "sent_by = ?, pending = ? WHERE dedup_key = ?",
                    (severity, summary, fingerprint, now, self.host, self.host, key))
            live = self._live(key, now_s=now, ttl_s=ttl_s)
        return FleetDecision(send, reason, number, live)

    def passed(self, key: str, *, now: float, ttl_s: float) -> FleetDecision:
        """This host no longer sees the problem of ``key``: leave; the resolve is this host's to send only when no
        live participant is left."""
        with self.db.transaction():
            self._bounded()
            row = self._row(key, lock=True)
            self.db.execute("DELETE FROM fleet_participants WHERE dedup_key = ? AND host = ?", (key, self.host))
            if row is None or row.state != "open":
                return FleetDecision(False, "not-open", row.number if row else 0)
            live = self._live(key, now_s=now, ttl_s=ttl_s, exclude=self.host)
            if live:
                return FleetDecision(False, "others-failing", row.number, live)
            self._resolve(key, now=now)
        return FleetDecision(True, "last", row.number)

    def _resolve(self, key: str, *, now: float) -> None:
        self.db.execute("UPDATE fleet_incidents SET state = 'resolved', resolved_at = ?, resolved_by = ?, "
                        "pending = ? WHERE dedup_key = ?", (now, self.host, self.host, key))
        self.db.execute("DELETE FROM fleet_participants WHERE dedup_key = ?", (key,))

    def confirm(self, key: str, *, number: int) -> None:
        """This host queued the event it was told to send (in its durable outbox): nobody needs to send it again."""
        with self.db.transaction():
            self._bounded()
            self.db.execute("UPDATE fleet_incidents SET pending = NULL WHERE dedup_key = ? AND pending = ? "
                            "AND number = ?", (key, self.host, number))

    def sweep(self, *, models: Collection[str], now: float, ttl_s: float) -> builtins.list[Takeover]:
        """What this host must send for the fleet about ``models``: the resolve of an open incident whose
        participants have all vanished, and any decision whose sender vanished before confirming it. Each is
        taken over (``pending`` = this host) in one transaction; send it, then :meth:`confirm`."""
        out: list[Takeover] = []
        if not models:
            return out
        marks = ", ".join("?" for _ in models)
        candidates = self.db.query(
            f"SELECT dedup_key FROM fleet_incidents WHERE model IN ({marks}) AND number > 0 "
            "AND (state = 'open' OR pending IS NOT NULL)", tuple(models))
        for (key,) in candidates:
            with self.db.transaction():
                self._bounded()
                row = self._row(key, lock=True)
                if row is None:
                    continue
                if row.pending is not None and row.pending != self.host and not self._alive(
                        row.pending, now_s=now, ttl_s=ttl_s):
                    self.db.execute("UPDATE fleet_incidents SET pending = ? WHERE dedup_key = ?", (self.host, key))
                    out.append(Takeover("trigger" if row.state == "open" else "resolve",
                                        dataclasses.replace(row, pending=self.host),
                                        f"{row.pending} decided to send it and vanished before confirming"))
                    continue
                if row.state == "open":
                    gone = [r[0] for r in self.db.query(
                        "SELECT host FROM fleet_participants WHERE dedup_key = ? ORDER BY host", (key,))]
                    if self._live(key, now_s=now, ttl_s=ttl_s):
                        continue
                    self._resolve(key, now=now)
                    resolved = self._row(key, lock=False)
                    assert resolved is not None
                    why = (f"every pod that saw it is gone ({', '.join(gone)}: no heartbeat for {ttl_s:g} s)"
                           if gone else "no pod sees it any more")
                    out.append(Takeover("resolve", dataclasses.replace(resolved, participants=tuple(gone)), why))
        return out

    def unconfirmed(self) -> builtins.list[Takeover]:
        """Decisions this host took and never confirmed (it stopped in between): send each again, then confirm."""
        rows = self.db.query(f"SELECT {_COLUMNS} FROM fleet_incidents WHERE pending = ? AND number > 0", (self.host,))
        return [Takeover("trigger" if r[3] == "open" else "resolve", FleetIncident(*r),
                         "this host decided to send it and stopped before confirming") for r in rows]
