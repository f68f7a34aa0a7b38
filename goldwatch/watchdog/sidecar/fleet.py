"""The sidecar as one pod of a fleet: its heartbeat in the registry, and its pages through the fleet's incident book.

Every sidecar that watches a model through the registry keeps this host's entry in the registry alive
(:meth:`~goldwatch.watchdog.registry.Registry.heartbeat`, every ``serve.heartbeat_s``), so ``goldwatch registry
show`` says which pods serve which version and when each was last seen. Its host name is ``$GOLDWATCH_HOST``, else
``registry.host``, else the hostname (a pod's name).

On a registry shared by a fleet (PostgreSQL), pages go through the fleet's incident book
(:mod:`goldwatch.watchdog.registry.incidents`) instead of each pod's own:

* a pod that sees a problem joins its incident; the page goes out once for the fleet (and again when what fails
  changes, or after ``alerts.renotify_s``), never once per pod;
* a pod that recovers leaves; the resolve goes out only when the last pod that saw the problem recovers;
* a pod that vanishes stops counting once its heartbeat is older than 3 x ``serve.heartbeat_s``; the other pods
  watching the model then resolve what only it still saw, and send what it had decided to send but never
  confirmed queueing.

Each decision is queued in the pod's durable outbox, then confirmed in the book; one this pod took and never
confirmed (it stopped in between) is sent again when it starts. When the database cannot be reached or does not
answer within 5 s, a pod decides alone, as on one host (a page is not held back for the book). On SQLite (one
host) pages go straight through the alert manager's own book, as they always did.

Every method blocks on the database: the service calls them from worker threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from goldwatch.checks import Check
from goldwatch.config import GoldwatchConfig
from goldwatch.errors import GoldwatchError
from goldwatch.logs import get_logger
from goldwatch.watchdog.alerts import ActionTaken, AlertManager, AlertOutcome, Timing, dedup_key, page_fingerprint
from goldwatch.watchdog.registry import Registry, Takeover, database_from_config, host_from_config

__all__ = ["HOST_TTL_FACTOR", "FleetLink"]

log = get_logger(__name__)

#: a pod whose heartbeat is older than this many heartbeat intervals has vanished (stops counting in incidents)
HOST_TTL_FACTOR = 3.0


class FleetLink:
    """This sidecar's handle on the registry as a member of the fleet (see the module docstring)."""

    def __init__(self, registry: Registry, *, heartbeat_s: float, renotify_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.shared = registry.db.dialect == "postgresql"
        self.heartbeat_s = heartbeat_s
        self.ttl_s = HOST_TTL_FACTOR * heartbeat_s
        self.renotify_s = renotify_s
        self.clock = clock
        self._lock = threading.Lock()  # one database connection: one call at a time

    @classmethod
    def open(cls, config: GoldwatchConfig, *, clock: Callable[[], float] = time.time) -> FleetLink | None:
        """The link for ``config``'s registry, or None when no watched model uses one."""
        if not any(w.uses_registry for w in config.serve.watch):
            return None
        registry = Registry.open(config.registry.root, database=database_from_config(config.registry),
                                 host=host_from_config(config.registry), create=False)
        return cls(registry, heartbeat_s=config.serve.heartbeat_s, renotify_s=config.alerts.renotify_s, clock=clock)

    @property
    def host(self) -> str:
        return self.registry.host

    def close(self) -> None:
        with self._lock:
            self.registry.close()

    def heartbeat(self) -> None:
        with self._lock:
            self.registry.heartbeat()

    # ---- pages ----------------------------------------------------------------------------------------------
    def trigger(self, alerts: AlertManager, model: str, check_class: str, *, checks: Sequence[Check] = (),
                severity: str, served_version: str | None = None, action: ActionTaken | None = None,
                timing: Timing | None = None, summary: str | None = None,
                details: Mapping[str, Any] | None = None) -> AlertOutcome:
        """Open or update the incident of (model, check class): once for the fleet on a shared registry."""
        page: dict[str, Any] = dict(checks=checks, severity=severity, served_version=served_version, action=action,
                                    timing=timing, summary=summary, details=details)
        if not self.shared:
            return alerts.trigger(model, check_class, **page)
        key = dedup_key(model, check_class)
        failed = [c for c in checks if not c.ok]
        text = summary or (f"{failed[0].name}: {failed[0].summary}" if failed else f"{model}: {check_class}")
        try:
            with self._lock:
                decision = self.registry.incidents.trigger(
                    key, model=model, check_class=check_class, severity=severity, summary=text[:2000],
                    fingerprint=page_fingerprint(severity=severity, checks=checks, served_version=served_version,
                                                 action=action, summary=summary),
                    now=self.clock(), renotify_s=self.renotify_s, ttl_s=self.ttl_s)
        except GoldwatchError as exc:
            log.warning("the fleet's incident book is unreachable (%s): %s decides alone", exc, self.host)
            return alerts.trigger(model, check_class, **page)
        fleet = {"fleet": {"incident": decision.number, "pods_seeing_it": list(decision.participants),
                           "reported_by": self.host}}
        outcome = alerts.trigger(model, check_class, **{**page, "details": {**(details or {}), **fleet}},
                                 send=decision.send)
        log.info("%s: fleet incident #%d %s (%s); pods seeing it: %s", key, decision.number,
                 "paged by this pod" if decision.send else "already paged", decision.reason,
                 ", ".join(decision.participants) or self.host)
        if decision.send:
            self._confirm(key, decision.number)
        return outcome

    def resolve(self, alerts: AlertManager, model: str, check_class: str, *, summary: str) -> AlertOutcome:
        """This pod recovered: resolve the incident, on a shared registry only when no other pod still sees it."""
        if not self.shared:
            return alerts.resolve(model, check_class, summary=summary)
        key = dedup_key(model, check_class)
        try:
            with self._lock:
                decision = self.registry.incidents.passed(key, now=self.clock(), ttl_s=self.ttl_s)
        except GoldwatchError as exc:
            log.warning("the fleet's incident book is unreachable (%s): %s decides alone", exc, self.host)
            return alerts.resolve(model, check_class, summary=summary)
        if decision.reason == "not-open":  # the fleet never knew it (paged alone while the book was unreachable)
            return alerts.resolve(model, check_class, summary=summary)
        if not decision.send:
            log.info("%s: %s recovered; still failing on %s: the incident stays open", key, self.host,
                     ", ".join(decision.participants))
            return alerts.resolve(model, check_class, summary=summary, send=False)
        outcome = alerts.resolve(model, check_class, summary=f"{summary} (the last pod that saw it: {self.host})",
                                 send=True)
        self._confirm(key, decision.number)
        return outcome

    def _confirm(self, key: str, number: int) -> None:
        try:
            with self._lock:
                self.registry.incidents.confirm(key, number=number)
        except GoldwatchError as exc:  # at least once: this pod sends it again when it next starts
            log.warning("could not confirm %s in the fleet's incident book (%s)", key, exc)

    # ---- the fleet's loose ends --------------------------------------------------------------------------------
    def sweep(self, alerts: AlertManager, models: Collection[str]) -> list[Takeover]:
        """Resolve what only vanished pods still saw, and send what a vanished pod decided and never confirmed."""
        if not self.shared:
            return []
        with self._lock:
            takeovers = self.registry.incidents.sweep(models=models, now=self.clock(), ttl_s=self.ttl_s)
        for t in takeovers:
            self._send(alerts, t)
        return takeovers

    def resend_unconfirmed(self, alerts: AlertManager) -> list[Takeover]:
        """At start: what this pod decided to send and stopped before confirming is sent again (at least once)."""
        if not self.shared:
            return []
        with self._lock:
            takeovers = self.registry.incidents.unconfirmed()
        for t in takeovers:
            self._send(alerts, t)
        return takeovers

    def _send(self, alerts: AlertManager, t: Takeover) -> None:
        inc = t.incident
        log.warning("%s: sending the fleet's %s (%s)", inc.dedup_key, t.action, t.why)
        if t.action == "resolve":
            alerts.resolve(inc.model, inc.check_class, send=True,
                           summary=f"{inc.model}: {inc.check_class}: resolved for the fleet: {t.why}")
        else:
            alerts.trigger(inc.model, inc.check_class, severity=inc.severity, summary=inc.summary,  # type: ignore[arg-type]
                           send=True, details={"note": t.why, "fleet": {"incident": inc.number,
                                                                       "reported_by": self.host}})
        self._confirm(inc.dedup_key, inc.number)
